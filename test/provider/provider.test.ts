/**
 * The OpenSSL provider (provider/, quorumkey.so) against a real `quorumkey up` cluster (3 signers,
 * 2-of-3), driven through the real `openssl` binary: key loading, public export, private export
 * refused, prehashed and digest signatures, certificates and CSRs, TLS 1.3 handshakes with
 * s_server/s_client, bad key references under ASan/UBSan, and a stopped / restarted coordinator
 * seen from a long-running s_server.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { keyReferencePem } from '../../src/keyref/keyref.js';
import { cli, UpProcess } from '../services/cluster-harness.js';
import { waitFor } from '../coordinator/clients.js';
import { eventually } from '../tls/servers.js';
import { sample } from '../services/processes.js';
import {
  buildProvider,
  exited,
  expectOk,
  freePort,
  openssl,
  readText,
  runCheckProgram,
  SANITIZER_MARKERS,
  sanitizerPreload,
  SServer,
  writeConf,
  type Ossl,
} from './openssl.js';

const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));
/** deadline_ms of the short-deadline configuration (s_server) and of the ASan one. */
const SHORT_DEADLINE_MS = 2000;
const ASAN_DEADLINE_MS = 3000;
/**
 * A failure bounded by the deadline, not a hang: a bound several times deadline_ms, which a slow
 * machine cannot reach (the reason in the log says which mechanism ended the call).
 */
const assertBoundedBy = (ms: number, deadlineMs: number, what: string) => assert.ok(ms < 5 * deadlineMs, `${what} took ${ms} ms with deadline_ms ${deadlineMs}: a hang?`);

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

/** SubjectPublicKeyInfo DER out of a "PUBLIC KEY" PEM. */
function spkiOf(pubPem: string): Buffer {
  return pemBody(pubPem);
}

describe('OpenSSL provider (quorumkey.so) with a real cluster', function () {
  this.timeout(300_000);

  const up = new UpProcess();
  let work: string;
  let conf: string;
  let asanConf: string;
  let shortConf: string;
  let preload: string;
  let sockPath: string;
  const children: ChildProcess[] = [];
  const servers: SServer[] = [];

  const q = (...args: string[]) => {
    const r = cli(up.dir, ...args);
    if (r.status !== 0) throw new Error(`quorumkey ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const ossl = (args: string[], extra: { conf?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Ossl =>
    openssl(args, { conf: extra.conf ?? conf, cwd: work, input: extra.input, env: extra.env, timeoutMs: extra.timeoutMs });
  const asan = (args: string[], input?: string): Ossl =>
    openssl(args, { conf: asanConf, cwd: work, input, env: { LD_PRELOAD: preload, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1' } });
  /** Signatures the coordinator recorded for key 'web'. */
  const webSignatures = () =>
    readFileSync(join(up.dir, 'coordinator', 'audit.log'), 'utf8')
      .trim()
      .split('\n')
      .filter((l) => {
        const r = JSON.parse(l).record;
        return r.event === 'sign' && r.key_id === 'web';
      }).length;
  /** Key 'web' sign requests the coordinator answered deadline_exceeded. */
  const expiredRequests = async () => sample(await (await fetch(`http://${up.config().coordinator.http}/metrics`)).text(), 'quorumkey_sign_requests_total', 'key="web",result="deadline_exceeded"');
  const noSanitizerReport = (r: Ossl, what: string) => assert.doesNotMatch(r.stderr, SANITIZER_MARKERS, `${what}: sanitizer report\n${r.stderr}`);

  before(async function () {
    buildProvider(false);
    const asanModule = buildProvider(true);
    preload = sanitizerPreload();
    work = mkdtempSync(join(tmpdir(), 'qk-provider-'));
    await up.start(['--signers', '3', '--threshold', '2']);
    sockPath = up.config().coordinator.socket;
    const base = q('openssl-conf');
    conf = join(work, 'openssl.cnf');
    writeFileSync(conf, base);
    asanConf = writeConf(join(work, 'openssl-asan.cnf'), base, asanModule, ASAN_DEADLINE_MS);
    shortConf = writeConf(join(work, 'openssl-short.cnf'), base, readText(conf).match(/^module = (.*)$/m)![1]!, SHORT_DEADLINE_MS);
    const key = (id: string, ...policy: string[]) => q('key', 'create', id, '--threshold', '2', '--signers', '3', '--clients', 'unix,provider', ...policy);
    key('raw', '--policy', 'raw-digest');
    // The test CA certifies localhost servers and an OCSP responder, and makes its own root.
    key('ca', '--policy', 'x509-cert', '--dns-suffix', 'localhost', '--ip-range', '127.0.0.0/8', '--max-validity-days', '2', '--allow-ca', '--eku', 'serverAuth,OCSPSigning');
    key('csr', '--policy', 'x509-csr');
    key('web', '--policy', 'tls-server');
    key('ocsp', '--policy', 'ocsp');
    for (const id of ['raw', 'ca', 'csr', 'web', 'ocsp']) writeFileSync(join(work, `${id}.pem`), q('key', 'ref', id));
    writeFileSync(join(work, 'raw-tcp.pem'), q('key', 'ref', 'raw', '--tcp'));
    writeFileSync(join(work, 'data.txt'), 'quorumkey provider test data\n'.repeat(100));
  });

  after(async function () {
    for (const s of servers) await s.stop();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    try {
      process.kill(up.pid('coordinator'), 'SIGCONT');
    } catch {
      /* not running */
    }
    await up.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is listed by `openssl list -providers` as active', function () {
    const r = expectOk(ossl(['list', '-providers']), 'list -providers');
    assert.match(r.stdout, /quorumkey\n\s+name: quorumkey/);
    assert.match(r.stdout, /quorumkey[\s\S]*status: active/);
  });

  it('exports the public key (pkey -pubout) exactly as the coordinator reports it', function () {
    for (const id of ['raw', 'ca', 'web', 'ocsp']) {
      const r = expectOk(ossl(['pkey', '-in', `${id}.pem`, '-pubout']), `pkey -pubout ${id}`);
      assert.equal(r.stdout.trim(), q('key', 'show', id, '--pem').trim());
      writeFileSync(join(work, `${id}.pub`), r.stdout);
    }
    const text = expectOk(ossl(['pkey', '-in', 'web.pem', '-pubout', '-text_pub', '-noout']), 'pkey -text_pub');
    assert.match(text.stdout, /Public-Key: \(256 bit\)/);
    assert.match(text.stdout, /NIST CURVE: P-256/);
  });

  it('refuses to export the private key and writes none', function () {
    const r = ossl(['pkey', '-in', 'web.pem', '-out', 'priv.pem']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /quorumkey:.*private key is not exportable.*key 'web' is held by the quorumkey threshold signers/);
    assert.doesNotMatch(readText(join(work, 'priv.pem')), /PRIVATE KEY/);
    const der = ossl(['pkey', '-in', 'web.pem', '-outform', 'DER', '-out', 'priv.der']);
    assert.notEqual(der.status, 0);
    assert.equal(readText(join(work, 'priv.der')).length, 0);
  });

  it('signs a SHA-256 digest (pkeyutl -sign, raw-digest key) that verifies with the public key', function () {
    const digest = createHash('sha256').update(readFileSync(join(work, 'data.txt'))).digest();
    writeFileSync(join(work, 'data.sha256'), digest);
    expectOk(ossl(['pkeyutl', '-sign', '-inkey', 'raw.pem', '-in', 'data.sha256', '-out', 'raw.sig']), 'pkeyutl -sign');
    const v = expectOk(ossl(['pkeyutl', '-verify', '-pubin', '-inkey', 'raw.pub', '-in', 'data.sha256', '-sigfile', 'raw.sig']), 'pkeyutl -verify');
    assert.match(v.stdout, /Signature Verified Successfully/);
  });

  it('signs with openssl dgst -sign: SHA-256/384/512 as digests for a raw-digest key, plain data refused by policy', function () {
    for (const md of ['sha256', 'sha384', 'sha512']) {
      expectOk(ossl(['dgst', `-${md}`, '-sign', 'raw.pem', '-sigopt', 'quorumkey-send:digest', '-out', `dgst-${md}.sig`, 'data.txt']), `dgst -${md} -sign`);
      const v = expectOk(ossl(['dgst', `-${md}`, '-verify', 'raw.pub', '-signature', `dgst-${md}.sig`, 'data.txt']), `dgst -${md} -verify`);
      assert.match(v.stdout, /Verified OK/);
    }
    // Without quorumkey-send:digest the provider sends the data itself; the coordinator does not
    // recognise it as a structure any policy allows.
    const refused = ossl(['dgst', '-sha256', '-sign', 'raw.pem', '-out', 'plain.sig', 'data.txt']);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /quorumkey:.*policy refused \(unrecognised-content\) for key 'raw'/);
    const sha1 = ossl(['dgst', '-sha1', '-sign', 'raw.pem', '-sigopt', 'quorumkey-send:digest', '-out', 'sha1.sig', 'data.txt']);
    assert.notEqual(sha1.status, 0);
    assert.match(sha1.stderr, /quorumkey:.*unsupported digest:.*SHA-256, SHA-384 or SHA-512/);
  });

  it('makes a self-signed certificate (req -x509, x509-cert key) that verifies; a tls-server key is refused', function () {
    expectOk(ossl(['req', '-x509', '-new', '-key', 'ca.pem', '-subj', '/CN=quorumkey test CA', '-days', '1', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.crt']), 'req -x509');
    assert.match(expectOk(ossl(['verify', '-CAfile', 'ca.crt', 'ca.crt']), 'verify').stdout, /ca.crt: OK/);
    const text = expectOk(ossl(['x509', '-in', 'ca.crt', '-noout', '-text']), 'x509 -text').stdout;
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    // The certificate's key is the threshold key.
    assert.equal(expectOk(ossl(['x509', '-in', 'ca.crt', '-noout', '-pubkey']), 'x509 -pubkey').stdout.trim(), readText(join(work, 'ca.pub')).trim());
    const sha384 = expectOk(ossl(['req', '-x509', '-new', '-sha384', '-key', 'ca.pem', '-subj', '/CN=sha384', '-days', '1', '-addext', 'basicConstraints=critical,CA:TRUE', '-out', 'ca384.crt']), 'req -x509 -sha384');
    assert.equal(sha384.status, 0);
    assert.match(expectOk(ossl(['x509', '-in', 'ca384.crt', '-noout', '-text']), 'x509').stdout, /ecdsa-with-SHA384/);
    assert.match(expectOk(ossl(['verify', '-CAfile', 'ca384.crt', 'ca384.crt']), 'verify 384').stdout, /OK/);

    const refused = ossl(['req', '-x509', '-new', '-key', 'web.pem', '-subj', '/CN=nope', '-days', '1', '-out', 'nope.crt']);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /quorumkey:.*policy refused \(context-not-allowed\) for key 'web': the content is a TBSCertificate/);
  });

  it('makes a CSR (req -new, x509-csr key) that verifies', function () {
    expectOk(ossl(['req', '-new', '-key', 'csr.pem', '-subj', '/O=quorumkey/CN=csr.example', '-out', 'test.csr']), 'req -new');
    const v = expectOk(ossl(['req', '-verify', '-in', 'test.csr', '-noout']), 'req -verify');
    assert.match(v.stdout + v.stderr, /verify OK/);
    assert.equal(expectOk(ossl(['req', '-in', 'test.csr', '-noout', '-pubkey']), 'req -pubkey').stdout.trim(), q('key', 'show', 'csr', '--pem').trim());
  });

  for (const asanBuild of [false, true]) {
    it(`loads in a parent without starting gRPC, signs in forked workers from 4 threads each, refuses a fork after signing${asanBuild ? ' (ASan build)' : ''}`, function () {
      const stdout = runCheckProgram('qk-fork-check', ['raw.pem'], { cwd: work, conf: asanBuild ? asanConf : conf, asan: asanBuild });
      assert.match(stdout, /threads after loading the key: 1\n/);
      assert.equal((stdout.match(/worker \d+: 20 signatures, 0 failed/g) ?? []).length, 2, stdout);
      assert.match(stdout, /late child: refused \(.*process forked after using gRPC\)/);
      assert.match(stdout, /\nOK\n/);
    });
  }

  it('signs over TCP with mutual TLS when the key reference says so', function () {
    expectOk(ossl(['pkeyutl', '-sign', '-inkey', 'raw-tcp.pem', '-in', 'data.sha256', '-out', 'raw-tcp.sig']), 'pkeyutl -sign (tcp)');
    expectOk(ossl(['pkeyutl', '-verify', '-pubin', '-inkey', 'raw.pub', '-in', 'data.sha256', '-sigfile', 'raw-tcp.sig']), 'verify (tcp)');
  });

  describe('TLS 1.3 with s_server', function () {
    let server: SServer;
    let port: number;

    const handshake = (extraConf?: string): Ossl =>
      ossl(['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', 'ca.crt', '-verify_return_error', '-tls1_3', '-servername', 'localhost'], {
        input: '',
        timeoutMs: 30_000,
        ...(extraConf ? { conf: extraConf } : {}),
      });
    const assertHandshake = (r: Ossl) => {
      assert.equal(r.status, 0, `handshake failed:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /Peer signature type: ECDSA/);
      assert.match(r.stdout, /Peer signing digest: SHA256/);
      assert.match(r.stdout, /New, TLSv1.3/);
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    };

    before(async function () {
      // A certificate for the web key (tls-server only), issued by the threshold CA key 'ca':
      // the request is signed by a throwaway key and the certificate carries web's public key.
      expectOk(ossl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'throwaway.key', '-subj', '/CN=localhost', '-out', 'throwaway.csr']), 'throwaway csr');
      writeFileSync(join(work, 'web.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
      expectOk(ossl(['x509', '-req', '-in', 'throwaway.csr', '-CA', 'ca.crt', '-CAkey', 'ca.pem', '-CAcreateserial', '-force_pubkey', 'web.pub', '-days', '1', '-extfile', 'web.ext', '-out', 'web.crt']), 'x509 -req -force_pubkey');
      assert.match(expectOk(ossl(['verify', '-CAfile', 'ca.crt', 'web.crt']), 'verify web.crt').stdout, /OK/);
      port = await freePort();
      server = new SServer(port, ['-cert', 'web.crt', '-key', 'web.pem', '-tls1_3', '-www'], shortConf, work);
      servers.push(server);
      await server.start();
    });

    it('signs an OCSP response (openssl ocsp, ocsp key) that verifies', function () {
      writeFileSync(join(work, 'ocsp.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n');
      expectOk(ossl(['x509', '-req', '-in', 'throwaway.csr', '-CA', 'ca.crt', '-CAkey', 'ca.pem', '-CAcreateserial', '-force_pubkey', 'ocsp.pub', '-days', '1', '-extfile', 'ocsp.ext', '-subj', '/CN=quorumkey OCSP', '-out', 'ocsp.crt']), 'OCSP responder certificate');
      const serial = expectOk(ossl(['x509', '-in', 'web.crt', '-noout', '-serial']), 'serial').stdout.trim().replace(/^serial=/, '');
      writeFileSync(join(work, 'index.txt'), `V\t301231235959Z\t\t${serial}\tunknown\t/CN=localhost\n`);
      const resp = ossl(['ocsp', '-index', 'index.txt', '-rsigner', 'ocsp.crt', '-rkey', 'ocsp.pem', '-CA', 'ca.crt', '-issuer', 'ca.crt', '-cert', 'web.crt', '-no_nonce', '-ndays', '1', '-respout', 'web.ocsp']);
      expectOk(resp, 'ocsp responder');
      const check = expectOk(ossl(['ocsp', '-respin', 'web.ocsp', '-no_nonce', '-CAfile', 'ca.crt', '-issuer', 'ca.crt', '-cert', 'web.crt']), 'ocsp -respin');
      assert.match(check.stdout + check.stderr, /Response verify OK/);
      assert.match(check.stdout, /web.crt: good/);
    });

    it('completes 20 handshakes with an ECDSA/SHA256 CertificateVerify made by the quorum', async function () {
      for (let i = 0; i < 20; i++) assertHandshake(handshake());
      await server.logged(/quorumkey provider\[\d+\]: first signature: key 'web' via unix:/);
    });

    it('fails handshakes within deadline_ms while the coordinator is stopped, and works again after SIGCONT', async function () {
      const pid = up.pid('coordinator');
      const logged = server.stderr.length;
      const signedBefore = webSignatures();
      const expiredBefore = await expiredRequests();
      process.kill(pid, 'SIGSTOP');
      try {
        const r = handshake();
        assert.notEqual(r.status, 0, 'handshake should fail while the coordinator is stopped');
        assert.ok(r.ms >= SHORT_DEADLINE_MS - 100, `failure after ${r.ms} ms: before the deadline?`);
        assertBoundedBy(r.ms, SHORT_DEADLINE_MS, 'the failed handshake');
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      // The mechanism: the provider's deadline ended the call (a stopped coordinator accepts and never answers).
      // The provider logs 'signing failed' first, then s_server prints the OpenSSL error.
      const failure = await server.logged(/quorumkey:[^\n]*deadline exceeded/, logged);
      assert.match(failure, /quorumkey:[^\n]*deadline exceeded:[^\n]*no signature from unix:[^\n]* for key 'web' within deadline_ms=2000/);
      assert.match(failure, /signing failed [^\n]*no signature from [^\n]*within deadline_ms=2000/);
      // The request the stopped coordinator reads late carries the provider's absolute deadline:
      // it is answered DEADLINE_EXCEEDED, not signed behind the back of a caller that gave up.
      await waitFor('the stalled request counted as deadline_exceeded', async () => (await expiredRequests()) > expiredBefore);
      assert.equal(webSignatures(), signedBefore, 'nothing signed for the stalled request');
      const recovered = server.stderr.length;
      assertHandshake(handshake());
      await server.logged(/signing works again: key 'web'/, recovered);
      assert.equal(webSignatures(), signedBefore + 1);
    });

    it('reports the coordinator unreachable when it is killed, and works again once it is restarted', async function () {
      const pid = up.pid('coordinator');
      process.kill(pid, 'SIGKILL');
      while (!exited(pid)) await new Promise((r) => setTimeout(r, 50));
      const logged = server.stderr.length;
      const down = handshake();
      const stderrWhileDown = await server.logged(/quorumkey:[^\n]*coordinator unreachable/, logged);

      // Restart it before asserting anything, so later tests find a coordinator.
      const child = spawn(process.execPath, [COORDINATOR_MAIN, '--dir', up.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('restarted coordinator not ready')), 60_000);
        createInterface({ input: child.stdout! }).on('line', (line) => {
          if (line.startsWith('coordinator ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`restarted coordinator exited with ${code}`)));
      });

      assert.notEqual(down.status, 0);
      assertBoundedBy(down.ms, SHORT_DEADLINE_MS, 'the failed handshake');
      // The mechanism: the transport failed at once; the deadline did not have to end the call.
      // "Connection refused", "No such file or directory" or "Broken pipe", depending on timing.
      assert.match(stderrWhileDown, /quorumkey:[^\n]*coordinator unreachable:[^\n]*unix:\/[^\n]*coordinator\.sock \(key 'web'/);
      assert.doesNotMatch(stderrWhileDown, /deadline exceeded/);

      // Same s_server process, no restart: gRPC reconnects in the background (until then the
      // provider's circuit fails handshakes at once), and the first answer closes the circuit.
      const recovered = server.stderr.length;
      await eventually(async () => handshake().status === 0);
      for (let i = 0; i < 4; i++) assertHandshake(handshake());
      await server.logged(/signing works again: key 'web'/, recovered);
    });
  });

  describe('bad key references (ASan/UBSan build)', function () {
    const badRefs: Record<string, string> = {};

    before(function () {
      const good = readText(join(work, 'raw.pem'));
      const lines = good.trimEnd().split('\n');
      badRefs.truncated = lines.slice(0, Math.ceil(lines.length / 2)).join('\n') + '\n';
      badRefs.garbage = `${lines[0]}\n${'!@#$%^&*()'.repeat(6)}\n${lines[lines.length - 1]}\n`;
      badRefs.shortBody = `${lines[0]}\n${lines[1]!.slice(0, 20)}\n${lines[lines.length - 1]}\n`;
      const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'der' });
      badRefs.p384 = keyReferencePem({ keyId: 'raw', endpoint: `unix:${sockPath}`, spki: p384 });
      const rawSpki = spkiOf(readText(join(work, 'raw.pub')));
      badRefs.unknownKey = keyReferencePem({ keyId: 'no-such-key', endpoint: `unix:${sockPath}`, spki: rawSpki });
      badRefs.unreachable = keyReferencePem({ keyId: 'raw', endpoint: `unix:${join(work, 'missing', 'coordinator.sock')}`, spki: rawSpki });
      for (const [name, pem] of Object.entries(badRefs)) writeFileSync(join(work, `bad-${name}.pem`), pem);
    });

    it('serves TLS 1.3 handshakes from an ASan-built provider in s_server without a report', async function () {
      const port = await freePort();
      const server = new SServer(port, ['-cert', 'web.crt', '-key', 'web.pem', '-tls1_3', '-www'], asanConf, work, {
        LD_PRELOAD: preload,
        ASAN_OPTIONS: 'detect_leaks=1',
      });
      servers.push(server);
      await server.start();
      for (let i = 0; i < 5; i++) {
        const r = ossl(['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', 'ca.crt', '-verify_return_error', '-tls1_3'], { input: '' });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /Peer signature type: ECDSA/);
      }
      await server.stop();
      assert.doesNotMatch(server.stderr, SANITIZER_MARKERS, server.stderr);
      assert.match(server.stderr, /first signature: key 'web'/);
    });

    it('signs and exports through the ASan build without a report (sanity)', function () {
      const r = asan(['pkeyutl', '-sign', '-inkey', 'raw.pem', '-in', 'data.sha256', '-out', 'asan.sig']);
      noSanitizerReport(r, 'pkeyutl -sign');
      expectOk(r, 'pkeyutl -sign (asan)');
      expectOk(ossl(['pkeyutl', '-verify', '-pubin', '-inkey', 'raw.pub', '-in', 'data.sha256', '-sigfile', 'asan.sig']), 'verify');
      const pub = asan(['pkey', '-in', 'raw.pem', '-pubout']);
      noSanitizerReport(pub, 'pkey -pubout');
      assert.equal(pub.stdout.trim(), readText(join(work, 'raw.pub')).trim());
      const priv = asan(['pkey', '-in', 'raw.pem', '-out', 'asan-priv.pem']);
      noSanitizerReport(priv, 'pkey -out');
      assert.notEqual(priv.status, 0);
    });

    const loadFailures: [string, RegExp][] = [
      ['truncated', /invalid key reference:.*truncated PEM: no '-----END QUORUMKEY KEY-----' line/],
      ['garbage', /invalid key reference:.*PEM body is not base64/],
      ['shortBody', /invalid key reference:.*(malformed DER|not valid base64)/],
      ['p384', /invalid key reference:.*public key is on curve secp384r1; quorumkey keys are P-256/],
    ];
    for (const [name, expected] of loadFailures) {
      it(`rejects a ${name} key reference at load time with a clear error`, function () {
        const r = asan(['pkey', '-in', `bad-${name}.pem`, '-pubout']);
        noSanitizerReport(r, name);
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, expected);
      });
    }

    it('names an unknown key id at sign time (NOT_FOUND)', function () {
      const load = asan(['pkey', '-in', 'bad-unknownKey.pem', '-pubout']);
      noSanitizerReport(load, 'load unknown key');
      expectOk(load, 'an unknown key id loads (no network at load time)');
      const r = asan(['pkeyutl', '-sign', '-inkey', 'bad-unknownKey.pem', '-in', 'data.sha256', '-out', 'unknown.sig']);
      noSanitizerReport(r, 'sign unknown key');
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /quorumkey:[^\n]*key not found:[^\n]*does not know key 'no-such-key'/);
    });

    it('reports an unreachable coordinator within the deadline', function () {
      const load = asan(['pkey', '-in', 'bad-unreachable.pem', '-pubout']);
      noSanitizerReport(load, 'load unreachable');
      expectOk(load, 'loading does not contact the coordinator');
      const r = asan(['pkeyutl', '-sign', '-inkey', 'bad-unreachable.pem', '-in', 'data.sha256', '-out', 'unreachable.sig']);
      noSanitizerReport(r, 'sign unreachable');
      assert.notEqual(r.status, 0);
      // The mechanism: no socket at all, so the call fails at once instead of waiting for the deadline.
      assert.match(r.stderr, /quorumkey:[^\n]*coordinator unreachable:[^\n]*unix:\/[^\n]*missing\/coordinator\.sock[^\n]*No such file or directory/);
      assert.doesNotMatch(r.stderr, /deadline exceeded/);
      assertBoundedBy(r.ms, ASAN_DEADLINE_MS, 'the failed signature');
    });

    it('rejects quorumkey: store URIs that are malformed, and loads a good one', function () {
      const good = asan(['pkey', '-in', `quorumkey:ref=${join(work, 'raw.pem')}`, '-pubout']);
      noSanitizerReport(good, 'store good');
      assert.equal(expectOk(good, 'store URI').stdout.trim(), readText(join(work, 'raw.pub')).trim());
      const sig = asan(['pkeyutl', '-sign', '-inkey', `quorumkey:ref=${join(work, 'raw.pem')}`, '-in', 'data.sha256', '-out', 'store.sig']);
      noSanitizerReport(sig, 'store sign');
      expectOk(sig, 'sign through a store URI');
      const relative = asan(['pkey', '-in', 'quorumkey:ref=raw.pem', '-pubout']);
      noSanitizerReport(relative, 'store relative');
      assert.notEqual(relative.status, 0);
      assert.match(relative.stderr, /invalid quorumkey: URI/);
      const bad = asan(['pkey', '-in', `quorumkey:ref=${join(work, 'bad-p384.pem')}`, '-pubout']);
      noSanitizerReport(bad, 'store bad');
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /secp384r1/);
    });
  });
});
