/**
 * The operator console of a real `quorumkey up` cluster, in Debian's headless Chromium driven over
 * the DevTools protocol (playwright-core, no downloaded browser): every page shows the cluster's
 * real data, nothing logs an error, a value carrying <script> is shown as text, a signer killed
 * with SIGKILL shows down on the open page without a reload; epochs, pending shares, pool marks,
 * CA-issued certificates and audit files match `status --json`, `cert list` and the directory; a
 * signer restarted with a share restored from before a refresh makes the banner degraded; every
 * console URL refuses a request without credentials, with a wrong token, or with a non-admin
 * client certificate.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { lowWaterOf, paths } from '../../src/cluster/config.js';
import { poolConfig } from '../../src/coordinator/service.js';
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

/** The cells of the column headed `head` in `table`, one per row. */
async function column(page: Page, table: string, head: string): Promise<string[]> {
  const heads = await page.$$eval(`table.${table} thead th`, (ths) => ths.map((th) => th.textContent ?? ''));
  const at = heads.indexOf(head);
  assert.ok(at >= 0, `table ${table} has no column '${head}': ${heads.join(', ')}`);
  return cells(page, table, at + 1);
}

interface StatusJson {
  signers: { index: number; epochs: { key_id: string; epoch: number }[]; pending: { key_id: string; epoch: number }[] }[];
  pools: { key_id: string; subset: number[]; depth: number; target: number }[];
}
function statusJson(dir: string): StatusJson {
  const status = cli(dir, 'status', '--json');
  assert.equal(status.status, 0, status.stderr);
  return JSON.parse(status.stdout) as StatusJson;
}
const epochList = (xs: { key_id: string; epoch: number }[]) => (xs.length ? xs.map((e) => `${e.key_id}@${e.epoch}`).join(', ') : '—');

/** The command line, working directory and environment of a running process (to start it again as it was). */
function processImage(pid: number): { argv: string[]; cwd: string; env: NodeJS.ProcessEnv } {
  const split = (file: string) => readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').filter(Boolean);
  const env = Object.fromEntries(split('environ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return { argv: split('cmdline'), cwd: readlinkSync(`/proc/${pid}/cwd`), env };
}

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
  let signer3: ReturnType<typeof processImage>;
  let restarted: ChildProcess | undefined;
  const staleShare = () => join(paths(up.dir).signer(3), 'shares', 'stale.share');

  before(async () => {
    await up.start(['--signers', '3', '--threshold', '2', '--no-tls']);
    signer3 = processImage(up.pid('signer-3'));
    // --no-tls makes no CA: one made here, its responder certificate revoked, so that the keys page has certificates of both states.
    const ca = cli(up.dir, 'ca', 'init', '--dns-suffix', 'localhost', '--ip-range', '127.0.0.0/8', '--threshold', '2', '--signers', '3');
    assert.equal(ca.status, 0, ca.stderr);
    const responder = cli(up.dir, 'cert', 'list').stdout.split('\n').find((l) => l.includes(' ocsp-responder '));
    assert.ok(responder, 'the CA issued its responder certificate');
    const revoked = cli(up.dir, 'cert', 'revoke', responder.split(' ')[0]!, '--reason', 'superseded');
    assert.equal(revoked.status, 0, revoked.stderr);
    // A key whose first-epoch share of signer 3 is kept aside, then refreshed: restored later, it is the backup of the runbook.
    const created = cli(up.dir, 'key', 'create', 'stale', '--threshold', '2', '--signers', '3');
    assert.equal(created.status, 0, created.stderr);
    copyFileSync(staleShare(), join(work, 'stale.share'));
    const refreshed = cli(up.dir, 'refresh', 'stale');
    assert.equal(refreshed.status, 0, refreshed.stderr);
    base = `http://${up.config().coordinator.http}`;
    token = readFileSync(join(paths(up.dir).coordinator, 'console.token'), 'utf8').trim();
    // An audited signature whose context detail carries markup: a CSR for CN=<script>…
    const signed = await signOverGrpc(up.coordinator(), 'tls', csrInfo(work, HOSTILE_CN), 60_000);
    assert.ok(signed.ok, `CSR signature failed: ${signed.details}`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage();
    errors = pageErrors(page);
  });

  /** Ends the signer this test started again (before `up` starts its own on the same data directory). */
  async function stopRestarted(): Promise<void> {
    if (!restarted || restarted.exitCode !== null || restarted.signalCode !== null) return;
    const exited = new Promise((resolve) => restarted!.once('exit', resolve));
    restarted.kill('SIGKILL');
    await exited;
  }

  after(async () => {
    await stopRestarted();
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
    // Certificates: each one shown is the `cert list` line of that serial (status, notAfter, subject); the CA's root and responder certificates are among them.
    const certList = cli(up.dir, 'cert', 'list');
    assert.equal(certList.status, 0, certList.stderr);
    const listedCerts = certList.stdout.trim().split('\n').map((l) => {
      const m = /^(\S+)  (valid|revoked \S+ \S+)  \S+  \S+ \.\. (\S+)  (.*)$/.exec(l);
      assert.ok(m, `unexpected cert list line: ${l}`);
      return `${m[1]} ${m[2]} ${m[3]} ${m[4]}`;
    });
    const shownCerts = await page.$$eval('table.keys .certificate', (divs) =>
      divs.map((d) => {
        const text = (sel: string) => d.querySelector(sel)?.textContent ?? '';
        const state = text('.state');
        return `${text('.serial')} ${state.startsWith('revoked') ? state.replace(/ \(/, ' ').replace(/\)$/, '') : state} ${text('.not-after')} ${text('.subject')}`;
      }),
    );
    assert.ok(shownCerts.length >= 2 && shownCerts.some((c) => / revoked \S+ superseded /.test(c)), shownCerts.join('\n'));
    assert.deepEqual([...shownCerts].sort(), [...listedCerts].sort());
    // Pools: the depths `status --json` reports (retried: refills may run between the two reads).
    let pagePools: string[] = [];
    let cliPools: string[] = [];
    for (let attempt = 0; attempt < 30; attempt++) {
      await page.goto(`${base}/console/pools`);
      const [keys, subsets, depths, lows, highs] = await Promise.all([cells(page, 'pools', 1), cells(page, 'pools', 2), cells(page, 'pools', 3), column(page, 'pools', 'low water'), column(page, 'pools', 'high water')]);
      pagePools = keys.map((k, i) => `${k} ${subsets[i]} ${depths[i]} low ${lows[i]} high ${highs[i]}`).sort();
      const lowWater = lowWaterOf(poolConfig(up.config()));
      cliPools = statusJson(up.dir).pools.map((p) => `${p.key_id} ${p.subset.join(', ')} ${p.depth} low ${Math.min(lowWater, p.target)} high ${p.target}`).sort();
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
    // The files of the rotation, as they are in the coordinator's directory.
    const onDisk = readdirSync(paths(up.dir).coordinator).filter((n) => /^audit\.log(\.\d{6,})?$/.test(n));
    assert.deepEqual([...(await column(page, 'audit-files', 'file'))].sort(), onDisk.sort());
    assert.deepEqual(await column(page, 'audit-files', 'state'), [...Array(onDisk.length - 1).fill('closed'), 'active']);
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

  it('shows each signer\'s key epochs and pending shares as status --json does; a signer restored to an older epoch flags its key and makes the banner degraded', async () => {
    // Signer 3 is down (the test before): its share of 'stale' goes back to the first epoch, and it starts again as it ran.
    copyFileSync(join(work, 'stale.share'), staleShare());
    restarted = spawn(signer3.argv[0]!, signer3.argv.slice(1), { cwd: signer3.cwd, env: signer3.env, stdio: 'ignore' });
    await page.goto(`${base}/console`);
    await page.waitForSelector('tr.signer-3.up', { timeout: 120_000 });
    await page.waitForFunction(() => /signer 3 holds epoch/.test(document.querySelector('#degraded')?.textContent ?? ''), undefined, { timeout: 120_000 });
    const status = statusJson(up.dir);
    const at = (i: number) => status.signers.find((s) => s.index === i)!;
    const stale3 = at(3).epochs.find((e) => e.key_id === 'stale')!.epoch;
    const stale1 = at(1).epochs.find((e) => e.key_id === 'stale')!.epoch;
    assert.equal(stale1, stale3 + 1, 'signer 3 is one refresh behind');
    const banner = (await page.textContent('#degraded')) ?? '';
    assert.ok(banner.includes(`key 'stale': signer 3 holds epoch ${stale3}, the committed epoch is ${stale1}`), banner);
    // Every signer's epochs and pending shares, cell by cell against status --json.
    assert.deepEqual(await column(page, 'signers', 'key epochs'), status.signers.map((s) => epochList(s.epochs)));
    assert.deepEqual(await column(page, 'signers', 'pending shares'), status.signers.map((s) => epochList(s.pending)));
    assert.ok((await page.textContent('section.cli pre'))?.includes('README runbook "restore a backup"'));
    // The keys page: the stale key flagged, each holder's epoch as status --json reports it.
    await page.goto(`${base}/console/keys`);
    assert.match((await page.textContent('tr.key-stale')) ?? '', /signers 3 on another epoch/);
    assert.ok(await page.$('tr.key-stale.bad'));
    const ids = await cells(page, 'keys', 1);
    const holderEpochs = await column(page, 'keys', 'holder epochs');
    const holderEpoch = (i: number, id: string) => {
      const pending = at(i).pending.find((e) => e.key_id === id);
      return `${i}:${at(i).epochs.find((e) => e.key_id === id)?.epoch ?? '-'}${pending ? ` (pending ${pending.epoch})` : ''}`;
    };
    // Every key of this cluster is held by all three signers.
    ids.forEach((id, row) => assert.equal(holderEpochs[row], [1, 2, 3].map((i) => holderEpoch(i, id)).join(' '), id));
    assert.deepEqual(errors, []);
    await stopRestarted();
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
