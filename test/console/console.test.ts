/**
 * The operator console of a real `quorumkey up` cluster, in Debian's headless Chromium driven over
 * the DevTools protocol (playwright-core, no downloaded browser): every page shows the cluster's
 * real data, nothing logs an error, a value carrying <script> is shown as text, a signer killed
 * with SIGKILL shows down on the open page without a reload; every console URL refuses a request
 * without credentials, with a wrong token, or with a non-admin client certificate.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { paths } from '../../src/cluster/config.js';
import { derChildren } from '../der.js';
import { cli, signOverGrpc, UpProcess } from '../services/cluster-harness.js';

const CHROMIUM = '/usr/bin/chromium';
const HOSTILE_CN = '<script>window.__pwned=1</script>';
const DATA_URLS = ['/console', '/console/', '/console/keys', '/console/pools', '/console/audit', '/console/api/snapshot', '/console/assets/console.js', '/console/assets/console.css'];

/** A DER CertificationRequestInfo whose subject CN is `cn` (made by openssl, not by the code under test). */
function csrInfo(dir: string, cn: string): Buffer {
  const key = join(dir, 'hostile.key');
  const der = join(dir, 'hostile.csr.der');
  const r = spawnSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/CN=${cn.replace(/\//g, '\\/')}`, '-outform', 'DER', '-out', der], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return derChildren(readFileSync(der))[0]!;
}

function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return errors;
}

const cells = (page: Page, table: string, column: number) => page.$$eval(`table.${table} tbody tr td:nth-child(${column})`, (tds) => tds.map((td) => td.textContent ?? ''));

/** The key ids `quorumkey key list` prints (each key's first line starts with its id), sorted. */
function listedKeyIds(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => /^\S+  \d+-of-\d+ signers/.test(l))
    .map((l) => l.split(' ')[0]!)
    .sort();
}

describe('operator console (headless Chromium, real cluster)', function () {
  this.timeout(600_000);
  const up = new UpProcess();
  const work = mkdtempSync(join(tmpdir(), 'qk-console-'));
  let base = '';
  let token = '';
  let browser: Browser;
  let page: Page;
  let errors: string[] = [];

  before(async () => {
    await up.start(['--signers', '3', '--threshold', '2', '--no-tls']);
    base = `http://${up.config().coordinator.http}`;
    token = readFileSync(join(paths(up.dir).coordinator, 'console.token'), 'utf8').trim();
    // An audited signature whose context detail carries markup: a CSR for CN=<script>…
    const signed = await signOverGrpc(up.coordinator(), 'tls', csrInfo(work, HOSTILE_CN), 60_000);
    assert.ok(signed.ok, `CSR signature failed: ${signed.details}`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage();
    errors = pageErrors(page);
  });

  after(async () => {
    await browser?.close();
    await up.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(up.dir, { recursive: true, force: true });
  });

  it('up prints the console URL and how to sign in', async () => {
    const line = await up.line(/^quorumkey console:/);
    assert.ok(line.includes(`${base}/console/login`), line);
    assert.ok(line.includes(join(paths(up.dir).coordinator, 'console.token')), line);
    assert.equal(statSync(join(paths(up.dir).coordinator, 'console.token')).mode & 0o777, 0o600);
  });

  it('every console URL refuses a request without credentials or with a wrong token', async () => {
    for (const url of DATA_URLS) {
      const none = await fetch(base + url, { redirect: 'manual' });
      assert.equal(none.status, 401, url);
      const body = await none.text();
      assert.ok(!body.includes('"signers"') && !body.includes('signer-count') && !body.includes('quorumkey console: live refresh'), `${url} leaked data`);
      assert.equal((await fetch(base + url, { headers: { authorization: 'Bearer not-the-token-but-long-enough-0123456789' } })).status, 401, url);
      assert.equal((await fetch(base + url, { headers: { cookie: 'qk_console=forged' } })).status, 401, url);
    }
    // A token is refused from another site's form, and for a wrong Host (DNS rebinding).
    const form = { method: 'POST', redirect: 'manual' as const, headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' }, body: `token=${token}` };
    const crossSite = await fetch(`${base}/console/login`, form);
    assert.equal(crossSite.status, 403);
    assert.equal(crossSite.headers.get('set-cookie'), null);
    const wrong = await fetch(`${base}/console/login`, { ...form, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=wrong' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('set-cookie'), null);
    const rebound = await new Promise<number>((resolve, reject) =>
      httpRequest(`${base}/console`, { headers: { authorization: `Bearer ${token}`, host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end(),
    );
    assert.equal(rebound, 421);
  });

  it('the bearer token opens the JSON snapshot', async () => {
    const res = await fetch(`${base}/console/api/snapshot`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    const snap = (await res.json()) as { signers: unknown[]; keys: { id: string }[] };
    assert.equal(snap.signers.length, 3);
    const listed = cli(up.dir, 'key', 'list');
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(snap.keys.map((k) => k.id).sort(), listedKeyIds(listed.stdout));
    assert.ok(snap.keys.some((k) => k.id === 'tls'), 'the embedded TLS key is among them');
  });

  it('signs in with the token and renders every page with the real data', async () => {
    await page.goto(`${base}/console/login`);
    await page.fill('input[name=token]', token);
    await Promise.all([page.waitForURL(`${base}/console`), page.click('button[type=submit]')]);
    // Cluster: the configured signers, each up.
    assert.equal(await page.textContent('#signer-count'), String(up.config().signers.length));
    assert.deepEqual(await cells(page, 'signers', 1), ['1', '2', '3']);
    await page.waitForSelector('tr.signer-1.up');
    // Keys: the ids `key list` prints.
    await page.goto(`${base}/console/keys`);
    const listed = cli(up.dir, 'key', 'list');
    assert.equal(listed.status, 0, listed.stderr);
    const ids = await cells(page, 'keys', 1);
    assert.deepEqual([...ids].sort(), listedKeyIds(listed.stdout));
    // Pools: the depths `status --json` reports (retried: refills may run between the two reads).
    let pagePools: string[] = [];
    let cliPools: string[] = [];
    for (let attempt = 0; attempt < 30; attempt++) {
      await page.goto(`${base}/console/pools`);
      const [keys, subsets, depths] = await Promise.all([cells(page, 'pools', 1), cells(page, 'pools', 2), cells(page, 'pools', 3)]);
      pagePools = keys.map((k, i) => `${k} ${subsets[i]} ${depths[i]}`).sort();
      const status = cli(up.dir, 'status', '--json');
      assert.equal(status.status, 0, status.stderr);
      const json = JSON.parse(status.stdout) as { pools: { key_id: string; subset: number[]; depth: number }[] };
      cliPools = json.pools.map((p) => `${p.key_id} ${p.subset.join(', ')} ${p.depth}`).sort();
      if (pagePools.join('|') === cliPools.join('|')) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.deepEqual(pagePools, cliPools);
    assert.ok(pagePools.length > 0);
    // Audit: head and Merkle root exactly as `audit head` prints them.
    await page.goto(`${base}/console/audit`);
    const head = cli(up.dir, 'audit', 'head');
    assert.equal(head.status, 0, head.stderr);
    const [headLine, rootLine] = head.stdout.trim().split('\n');
    assert.equal(await page.textContent('#audit-head'), headLine);
    assert.equal(await page.textContent('#audit-root'), rootLine);
    await page.screenshot({ path: join(work, 'console-audit.png'), fullPage: true });
    assert.ok(statSync(join(work, 'console-audit.png')).size > 1000);
    assert.deepEqual(errors, []);
  });

  it('shows a certificate subject carrying <script> as text, and runs no script but its own', async () => {
    await page.goto(`${base}/console/audit`);
    // The classifier writes the subject RFC 4514-escaped (\\<script\\>…): its markup characters reach the page as text.
    const details = (await cells(page, 'audit-records', 7)).join('\n');
    assert.ok(details.includes('<script') && details.includes('window.__pwned'), details);
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    assert.deepEqual(await page.$$eval('script', (s) => s.map((x) => x.getAttribute('src'))), ['/console/assets/console.js']);
    assert.deepEqual(errors, []);
  });

  it('shows a signer killed with SIGKILL as down, and the degraded banner, without a reload', async () => {
    await page.goto(`${base}/console`);
    await page.screenshot({ path: join(work, 'console.png') });
    await page.evaluate(() => ((window as unknown as { __sameDocument: boolean }).__sameDocument = true));
    await page.waitForSelector('tr.signer-3.up');
    assert.equal(await page.$('#degraded'), null);
    process.kill(up.pid('signer-3'), 'SIGKILL');
    // The registry notices at its next probe, the page at its next refresh.
    await page.waitForSelector('tr.signer-3.down', { timeout: 120_000 });
    await page.waitForSelector('#degraded', { timeout: 120_000 });
    assert.match((await page.textContent('#degraded')) ?? '', /one failure from losing quorum/);
    assert.equal(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument), true);
    assert.ok(Number(await page.getAttribute('body', 'data-refreshes')) > 0);
    assert.deepEqual(errors, []);
  });

  describe('over HTTPS with client certificates (up --http-sign mtls)', () => {
    let httpsBase = '';
    const pki = () => paths(up.dir).pki;
    const get = (url: string, identity?: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const id = identity ? { cert: readFileSync(join(pki(), `${identity}.crt`)), key: readFileSync(join(pki(), `${identity}.key`)) } : {};
        const req = httpsRequest(httpsBase + url, { ca: readFileSync(join(pki(), 'ca.crt')), ...id }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });

    before(async () => {
      await up.stop();
      await up.start(['--signers', '3', '--threshold', '2', '--no-tls', '--http-sign', 'mtls']);
      httpsBase = `https://${up.config().coordinator.http}`;
    });

    it('shows an admin certificate subject carrying <script> as text, and runs no script but its own', async () => {
      const name = join(work, 'hostile-admin');
      const openssl = (...args: string[]) => assert.equal(spawnSync('openssl', args, { encoding: 'utf8' }).status, 0, args.join(' '));
      openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-subj', `/CN=admin-${HOSTILE_CN.replace(/\//g, '\\/')}`, '-out', `${name}.csr`);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', join(pki(), 'ca.crt'), '-CAkey', join(pki(), 'ca.key'), '-days', '1', '-out', `${name}.crt`);
      // The browser presents the certificate; the coordinator's own certificate is of the cluster CA, which Chromium does not know.
      const context = await browser.newContext({ ignoreHTTPSErrors: true, clientCertificates: [{ origin: httpsBase, certPath: `${name}.crt`, keyPath: `${name}.key` }] });
      const admin = await context.newPage();
      const adminErrors = pageErrors(admin);
      const res = await admin.goto(`${httpsBase}/console`);
      assert.equal(res?.status(), 200);
      assert.equal(await admin.textContent('.who'), `signed in as admin-${HOSTILE_CN}`);
      assert.equal(await admin.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
      assert.deepEqual(await admin.$$eval('script', (s) => s.map((x) => x.getAttribute('src'))), ['/console/assets/console.js']);
      assert.deepEqual(adminErrors, []);
      await context.close();
    });

    it('refuses every console URL to the provider and signer identities and without a certificate; opens them to the admin', async () => {
      for (const url of DATA_URLS) {
        assert.equal(await get(url), 401, `${url} without a certificate`);
        assert.equal(await get(url, 'provider'), 403, `${url} as provider`);
        assert.equal(await get(url, 'signer-1'), 403, `${url} as signer-1`);
        assert.equal(await get(url, 'http-client'), 403, `${url} as http-client`);
        assert.equal(await get(url, 'admin'), 200, `${url} as admin`);
      }
    });
  });
});
