/**
 * The threshold CA end to end with real clients against `quorumkey up`: `openssl ocsp -url`
 * (good / revoked / unknown / unauthorized, verified against the CA), GET and POST, a burst of
 * 200 queries costing at most a few signatures (counted in the audit log), `openssl verify
 * -crl_check` with the threshold-signed CRL, `ocsp staple` never writing a failed response, and
 * nginx and HAProxy stapling what it writes (`openssl s_client -status`, `gnutls-cli --ocsp`),
 * good and then revoked after `cert revoke` and a refresh; up's own endpoint with a stapled
 * OCSP response and an embedded SCT of up's CT log (`openssl s_client -status -ct`).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { cli, pool, UpProcess } from '../services/cluster-harness.js';
import { eventually, startHaproxy, startNginx, type RunningServer } from '../tls/servers.js';

const NO_PROVIDER = { ...process.env, OPENSSL_CONF: '/dev/null' };

function run(cmd: string, args: string[], input = ''): { status: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: NO_PROVIDER, input, timeout: 60_000 });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/**
 * One HTTP exchange on its own connection (no keep-alive: a reused idle connection can race the
 * server's keep-alive timeout and fail for reasons unrelated to the test).
 */
function http(target: string, body?: Buffer): Promise<{ status: number; type: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(target, { method: body ? 'POST' : 'GET', agent: false, headers: body ? { 'content-type': 'application/ocsp-request' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function records(file: string, pattern: string): number {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.includes(pattern)).length;
}

describe('threshold CA: OCSP responder, CRL and stapling with real clients', function () {
  this.timeout(900_000);
  const up = new UpProcess();
  const servers: RunningServer[] = [];
  let ca: string;
  let root: string;
  let url: string;
  let audit: string;
  let n = 0;
  let tlsPort: number;
  let revokedCert: { file: string; serial: string };

  /** A new server certificate for the TLS key's CSR, issued through the threshold CA. */
  function issue(): { file: string; serial: string } {
    const file = join(up.dir, `issued-${++n}.crt`);
    const r = cli(up.dir, 'cert', 'issue', '--csr', join(up.dir, 'tls', 'tls.csr'), '--days', '30', '--out', file);
    assert.equal(r.status, 0, r.stderr);
    const serial = /issued serial ([0-9a-f]+)/.exec(r.stderr)![1]!;
    return { file, serial };
  }

  /** `openssl ocsp -respin` of a response file: verified against the CA, and the certificate's status. */
  function assertVerified(file: string, cert: string, status: 'good' | 'revoked'): void {
    const out = run('openssl', ['ocsp', '-respin', file, '-issuer', root, '-cert', cert, '-CAfile', root]).out;
    assert.match(out, /Response verify OK/);
    assert.match(out, new RegExp(`: ${status}\n`));
  }

  const ocsp = (args: string[]) => run('openssl', ['ocsp', '-issuer', root, '-url', url, '-CAfile', root, ...args]);

  before(async function () {
    await up.start(['--signers', '3', '--threshold', '2']);
    ca = join(up.dir, 'ca');
    root = join(ca, 'root.crt');
    url = `http://${up.config().coordinator.http}/ocsp`;
    audit = join(up.dir, 'coordinator', 'audit.log');
    // The TLS endpoint (and the TLS key's CSR the tests reuse) is ready after this line.
    tlsPort = Number(/-connect 127\.0\.0\.1:(\d+)/.exec(await up.line(/openssl s_client -connect/))![1]);
  });

  after(async function () {
    for (const s of servers) await s.stop();
    await up.stop();
  });

  it("the served certificate names the responder and the CRL, and up's s_server staples a good response", async function () {
    const text = run('openssl', ['x509', '-in', join(up.dir, 'tls', 'tls.crt'), '-noout', '-text']).out;
    assert.match(text, new RegExp(`OCSP - URI:${url}`));
    assert.match(text, new RegExp(`URI:http://${up.config().coordinator.http}/crl`));
    const out = run('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-CAfile', root, '-verify_return_error', '-status', '-tls1_3'], '').out;
    assert.match(out, /OCSP Response Status: successful/);
    assert.match(out, /Cert Status: good/);
  });

  it("up's certificate carries an SCT of up's CT log: x509 -text lists it with AIA and CRL DP, s_client -status -ct validates both", async function () {
    const logList = join(up.dir, 'tls', 'ctlog.cnf');
    const logKey = /^key = ([A-Za-z0-9+/=]+)$/m.exec(readFileSync(logList, 'utf8'))![1]!;
    const logId = createHash('sha256').update(Buffer.from(logKey, 'base64')).digest('hex').toUpperCase().match(/../g)!;
    const shown = cli(up.dir, 'key', 'show', 'embedded-ct', '--pem');
    assert.equal(shown.status, 0, shown.stderr);
    assert.equal(createPublicKey(shown.stdout).export({ type: 'spki', format: 'der' }).toString('base64'), logKey, 'the log list names the embedded-ct key');
    const text = run('openssl', ['x509', '-in', join(up.dir, 'tls', 'tls.crt'), '-noout', '-text']).out;
    assert.match(text, /CT Precertificate SCTs:/);
    assert.match(text, new RegExp(`Log ID\\s*: ${logId.slice(0, 4).join(':')}`));
    assert.match(text, /Authority Information Access:\s*OCSP - URI:/);
    assert.match(text, /CRL Distribution Points:/);
    const out = run('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-CAfile', root, '-verify_return_error', '-status', '-tls1_3', '-ct', '-ctlogfile', logList], '').out;
    assert.match(out, /SCTs present \(1\)/, out);
    assert.match(out, /Log       : quorumkey threshold CT log \(key embedded-ct\)/);
    assert.deepEqual([...out.matchAll(/SCT validation status: (\w+)/g)].map((m) => m[1]), ['valid'], out);
    assert.match(out, /OCSP Response Status: successful/);
    assert.match(out, /Cert Status: good/);
    assert.match(out, /Verify return code: 0 \(ok\)/);
  });

  it('openssl ocsp -url: good, verified against the CA, nonce echoed; revoked after cert revoke; unknown for a foreign serial', function () {
    const cert = issue();
    const good = ocsp(['-cert', cert.file]);
    assert.equal(good.status, 0, good.out);
    assert.match(good.out, /Response verify OK/);
    assert.match(good.out, /: good\n/);
    assert.doesNotMatch(good.out, /WARNING: no nonce/);

    const revoke = cli(up.dir, 'cert', 'revoke', cert.serial, '--reason', 'keyCompromise');
    assert.equal(revoke.status, 0, revoke.stderr);
    revokedCert = cert;
    const revoked = ocsp(['-cert', cert.file]);
    assert.match(revoked.out, /Response verify OK/);
    assert.match(revoked.out, /: revoked\n/);
    assert.match(revoked.out, /Reason: keyCompromise/);
    // Without a nonce too (the cached answer from before the revocation is gone).
    assert.match(ocsp(['-cert', cert.file, '-no_nonce']).out, /: revoked\n/);

    const unknown = ocsp(['-serial', '0x1234567890abcdef']);
    assert.match(unknown.out, /Response verify OK/);
    assert.match(unknown.out, /: unknown\n/);
  });

  it('a certificate of another issuer gets unauthorized, an unsigned error', function () {
    const pki = join(up.dir, 'pki');
    const r = run('openssl', ['ocsp', '-issuer', join(pki, 'ca.crt'), '-cert', join(pki, 'admin.crt'), '-url', url, '-CAfile', root]);
    assert.notEqual(r.status, 0);
    assert.match(r.out, /Responder Error: unauthorized \(6\)/);
  });

  it('GET /ocsp/{base64} answers like POST', async function () {
    const cert = issue();
    const reqFile = join(up.dir, `req-${n}.der`);
    assert.equal(run('openssl', ['ocsp', '-issuer', root, '-cert', cert.file, '-no_nonce', '-reqout', reqFile]).status, 0);
    const res = await http(`${url}/${encodeURIComponent(readFileSync(reqFile).toString('base64'))}`);
    assert.equal(res.status, 200);
    assert.equal(res.type, 'application/ocsp-response');
    const respFile = join(up.dir, `resp-${n}.der`);
    writeFileSync(respFile, res.body);
    assertVerified(respFile, cert.file, 'good');
  });

  it('a burst of 200 queries costs at most a few signatures (audit count), and every answer verifies', async function () {
    const cert = issue();
    const reqFile = join(up.dir, `burst-req.der`);
    assert.equal(run('openssl', ['ocsp', '-issuer', root, '-cert', cert.file, '-no_nonce', '-reqout', reqFile]).status, 0);
    const ocspRequest = readFileSync(reqFile);
    const before = records(audit, '"context":"ocsp"');
    const answers = await pool(200, 20, async () => {
      const res = await http(url, ocspRequest);
      assert.equal(res.status, 200);
      return res.body;
    });
    const signatures = records(audit, '"context":"ocsp"') - before;
    assert.ok(signatures >= 1 && signatures <= 3, `200 queries cost ${signatures} OCSP signatures`);
    const distinct = [...new Set(answers.map((a) => a.toString('hex')))];
    assert.ok(distinct.length <= signatures, `${distinct.length} distinct answers from ${signatures} signatures`);
    for (const [k, der] of distinct.entries()) {
      const file = join(up.dir, `burst-${k}.der`);
      writeFileSync(file, Buffer.from(der, 'hex'));
      assertVerified(file, cert.file, 'good');
    }
  });

  it('openssl verify -crl_check accepts a good certificate and rejects a revoked one (CRL signed through the threshold, served on /crl)', async function () {
    const good = issue();
    const bad = issue();
    assert.equal(cli(up.dir, 'cert', 'revoke', bad.serial, '--reason', 'superseded').status, 0);
    const made = cli(up.dir, 'crl');
    assert.equal(made.status, 0, made.stderr);
    const res = await http(`http://${up.config().coordinator.http}/crl`);
    assert.equal(res.status, 200);
    assert.equal(res.type, 'application/pkix-crl');
    const der = join(up.dir, 'fetched.crl');
    writeFileSync(der, res.body);
    const pemFile = join(up.dir, 'fetched.crl.pem');
    assert.equal(run('openssl', ['crl', '-inform', 'DER', '-in', der, '-out', pemFile]).status, 0);
    const accepted = run('openssl', ['verify', '-crl_check', '-CAfile', root, '-CRLfile', pemFile, good.file]);
    assert.equal(accepted.status, 0, accepted.out);
    const rejected = run('openssl', ['verify', '-crl_check', '-CAfile', root, '-CRLfile', pemFile, bad.file]);
    assert.notEqual(rejected.status, 0);
    assert.match(rejected.out, /certificate revoked/);
    // Every signer checked it as a TBSCertList of the CA key.
    assert.ok(records(join(up.dir, 'signer-1', 'audit.log'), '"structure":"TBSCertList"') + records(join(up.dir, 'signer-2', 'audit.log'), '"structure":"TBSCertList"') >= 1);
  });

  it('ocsp staple writes a checked response, and leaves the last good one when signing is refused', function () {
    const cert = issue();
    const out = join(up.dir, 'staple.der');
    const ok = cli(up.dir, 'ocsp', 'staple', '--cert', cert.file, '--out', out);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /: good, this update/);
    const good = readFileSync(out);
    assertVerified(out, cert.file, 'good');

    // The responder may no longer sign: it answers tryLater, which must not become the staple.
    assert.equal(cli(up.dir, 'key', 'revoke', 'embedded-ocsp', 'ocsp-responder').status, 0);
    try {
      const other = issue(); // not cached: needs a signature
      const refusedOut = join(up.dir, 'refused.der');
      writeFileSync(refusedOut, good);
      const refused = cli(up.dir, 'ocsp', 'staple', '--cert', other.file, '--out', refusedOut);
      assert.notEqual(refused.status, 0);
      assert.match(refused.stderr, /not stapleable: the responder answered tryLater/);
      assert.deepEqual(readFileSync(refusedOut), good);
      assert.deepEqual(readdirSync(up.dir).filter((f) => f.endsWith('.tmp')), []);
      // openssl ocsp, for contrast, writes the error response it got.
      const opensslOut = join(up.dir, 'openssl-refused.der');
      ocsp(['-cert', other.file, '-no_nonce', '-respout', opensslOut]);
      assert.ok(existsSync(opensslOut));
    } finally {
      assert.equal(cli(up.dir, 'key', 'grant', 'embedded-ocsp', 'ocsp-responder').status, 0);
    }
  });

  describe('nginx and HAProxy staple the response; after revocation and a refresh they staple revoked', function () {
    const material = () => ({ opensslConf: join(up.dir, 'tls', 'openssl.cnf'), keyRef: join(up.dir, 'tls', 'tls.key.pem') });

    function sClient(port: number): string {
      return run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', root, '-verify_return_error', '-status', '-tls1_3'], '').out;
    }

    /** gnutls-cli --ocsp: its verdict, and the staple it received (saved) equals `staple`. */
    function gnutls(port: number, staple: string): string {
      const saved = join(up.dir, `gnutls-${++n}.der`);
      const r = run('gnutls-cli', ['--ocsp', '--x509cafile', root, '--save-ocsp', saved, '-p', String(port), 'localhost']);
      assert.ok(existsSync(saved), `gnutls-cli received no staple:\n${r.out}`);
      assert.deepEqual(readFileSync(saved), readFileSync(staple));
      return r.out;
    }

    async function checkServer(port: number, staple: string, refresh: () => Promise<void>, cert: { file: string; serial: string }) {
      const good = sClient(port);
      assert.match(good, /OCSP Response Status: successful/);
      assert.match(good, /Cert Status: good/);
      assert.match(good, /Verify return code: 0 \(ok\)/);
      assert.match(gnutls(port, staple), /Status: The certificate is trusted/);

      assert.equal(cli(up.dir, 'cert', 'revoke', cert.serial, '--reason', 'keyCompromise').status, 0);
      const refreshed = cli(up.dir, 'ocsp', 'staple', '--cert', cert.file, '--out', staple);
      assert.equal(refreshed.status, 0, refreshed.stderr);
      assert.match(refreshed.stdout, /: revoked, this update/);
      await refresh();
      await eventually(async () => /Cert Status: revoked/.test(sClient(port)));
      const revoked = gnutls(port, staple);
      assert.match(revoked, /NOT trusted/);
      assert.match(revoked, /revoked/);
    }

    it('nginx: ssl_stapling_file, reloaded after the refresh', async function () {
      const cert = issue();
      const staple = join(up.dir, 'nginx.ocsp');
      assert.equal(cli(up.dir, 'ocsp', 'staple', '--cert', cert.file, '--out', staple).status, 0);
      const nginx = await startNginx({ ...material(), serverCert: cert.file }, 'root root', `ssl_stapling on; ssl_stapling_file ${staple}; ssl_trusted_certificate ${root};`);
      servers.push(nginx);
      await checkServer(nginx.port, staple, async () => void process.kill(Number(readFileSync(join(nginx.prefix, 'nginx.pid'), 'utf8')), 'SIGHUP'), cert);
    });

    it('HAProxy: <crt>.ocsp with <crt>.issuer, updated on the admin socket after the refresh', async function () {
      const cert = issue();
      const staple = join(up.dir, 'haproxy.ocsp');
      assert.equal(cli(up.dir, 'ocsp', 'staple', '--cert', cert.file, '--out', staple).status, 0);
      const haproxy = await startHaproxy({ ...material(), serverCert: cert.file }, 'root', 'root', { ocsp: staple, issuer: root });
      servers.push(haproxy);
      const update = () =>
        new Promise<void>((resolve, reject) => {
          const socket = connect(join(haproxy.prefix, 'admin.sock'));
          let answer = '';
          socket.on('data', (c: Buffer) => (answer += c.toString()));
          socket.on('end', () => (/OCSP Response updated/.test(answer) ? resolve() : reject(new Error(`HAProxy: ${answer}`))));
          socket.on('error', reject);
          socket.end(`set ssl ocsp-response ${readFileSync(staple).toString('base64')}\n`);
        });
      await checkServer(haproxy.port, staple, update, cert);
    });
  });

  describe('after a restart of up', function () {
    it('the CA, its database and the HTTP port the certificates name survive; the endpoint staples again', async function () {
      const http = up.config().coordinator.http;
      const served = readFileSync(join(up.dir, 'tls', 'tls.crt'));
      const tlsLines = () => up.lines.filter((l) => /openssl s_client -connect/.test(l));
      const before = tlsLines().length;
      assert.equal(await up.stop(), 0);
      await up.start(['--signers', '3', '--threshold', '2']);
      await eventually(async () => tlsLines().length > before, 240_000);
      assert.equal(up.config().coordinator.http, http);
      assert.deepEqual(readFileSync(join(up.dir, 'tls', 'tls.crt')), served, 'the served certificate was issued again');
      const revoked = ocsp(['-cert', revokedCert.file]);
      assert.match(revoked.out, /Response verify OK/);
      assert.match(revoked.out, /: revoked\n/);
      assert.match(cli(up.dir, 'cert', 'list').stdout, new RegExp(`${revokedCert.serial}  revoked`));
      const port = Number(/-connect 127\.0\.0\.1:(\d+)/.exec(tlsLines().at(-1)!)![1]);
      assert.match(run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', root, '-verify_return_error', '-status', '-tls1_3'], '').out, /Cert Status: good/);
    });
  });
});
