/**
 * The provider with the objects every `openssl` command reads and writes (issue 11, DESIGN §8),
 * against a real `quorumkey up` cluster (3 signers, 2-of-3) and the real `openssl` binary:
 * one PEM file holding a certificate and a key reference (x509, storeutl, s_server -cert/-key),
 * a key reference loaded as a public key (pkey -pubin, dgst -verify, pkeyutl -verify -pubin)
 * that never signs, the text and SubjectPublicKeyInfo encoders, and error records without the
 * build path; the plain and the ASan/UBSan builds.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyReferencePem } from '../../src/keyref/keyref.js';
import { cli, UpProcess } from '../services/cluster-harness.js';
import { buildProvider, expectOk, freePort, openssl, REPO, runCheckProgram, SANITIZER_MARKERS, sanitizerPreload, SServer, writeConf, type Ossl } from './openssl.js';


/** The uncompressed point of a P-256 public key PEM, read by node:crypto (not by the provider). */
function pointOf(pubPem: string): Buffer {
  const jwk = createPublicKey(pubPem).export({ format: 'jwk' });
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/** The "pub:" block of `openssl pkey -text` as bytes. */
function printedPoint(text: string): Buffer {
  const m = text.match(/^pub:\n((?: {4}[0-9a-f:]+\n)+)/m);
  assert.ok(m, `no pub: block in\n${text}`);
  return Buffer.from(m[1]!.replace(/[\s:]/g, ''), 'hex');
}

describe('OpenSSL provider: multi-object PEM files, public-key loads, encoders (real cluster)', function () {
  this.timeout(300_000);

  const up = new UpProcess();
  let work: string;
  let conf: string;
  let asanConf: string;
  let preload: string;
  let tlsPub: string;
  let rawPub: string;
  const servers: SServer[] = [];

  const q = (...args: string[]) => {
    const r = cli(up.dir, ...args);
    if (r.status !== 0) throw new Error(`quorumkey ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const ossl = (args: string[], input?: string): Ossl => openssl(args, { conf, cwd: work, input });
  const asanEnv = () => ({ LD_PRELOAD: preload, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1' });
  const asan = (args: string[], input?: string): Ossl => {
    const r = openssl(args, { conf: asanConf, cwd: work, input, env: asanEnv() });
    assert.doesNotMatch(r.stderr, SANITIZER_MARKERS, `openssl ${args.join(' ')} (ASan build): sanitizer report\n${r.stderr}`);
    return r;
  };
  /** Both builds: the same command, the same outcome, no sanitizer report. */
  const both = (args: string[], what: string): Ossl => {
    const plain = expectOk(ossl(args), what);
    assert.equal(expectOk(asan(args), `${what} (ASan build)`).stdout, plain.stdout, `${what}: the ASan build prints something else`);
    return plain;
  };
  /** Signatures the coordinator recorded for `keyId`. */
  const signatures = (keyId: string) =>
    readFileSync(join(up.dir, 'coordinator', 'audit.log'), 'utf8')
      .trim()
      .split('\n')
      .filter((l) => {
        const r = JSON.parse(l).record;
        return r.event === 'sign' && r.key_id === keyId;
      }).length;

  before(async function () {
    buildProvider(false);
    const asanModule = buildProvider(true);
    preload = sanitizerPreload();
    work = mkdtempSync(join(tmpdir(), 'qk-objects-'));
    await up.start(['--signers', '3', '--threshold', '2']);
    const base = q('openssl-conf');
    conf = join(work, 'openssl.cnf');
    writeFileSync(conf, base);
    asanConf = writeConf(join(work, 'openssl-asan.cnf'), base, asanModule);
    q('key', 'create', 'raw', '--threshold', '2', '--signers', '3', '--clients', 'unix,provider', '--policy', 'raw-digest');
    writeFileSync(join(work, 'raw.pem'), q('key', 'ref', 'raw'));
    rawPub = q('key', 'show', 'raw', '--pem');
    tlsPub = q('key', 'show', 'tls', '--pem');
    // `up` made key 'tls' (tls-server) and a certificate for it, issued by its threshold CA.
    // The certificate is there once up prints the s_client line (the CA and CT keys come first).
    await up.line(/openssl s_client -connect/);
    const tls = join(up.dir, 'tls');
    const cert = readFileSync(join(tls, 'tls.crt'), 'utf8');
    const ref = readFileSync(join(tls, 'tls.key.pem'), 'utf8');
    writeFileSync(join(work, 'ca.crt'), readFileSync(join(tls, 'ca.crt')));
    writeFileSync(join(work, 'cert-then-key.pem'), cert + ref);
    writeFileSync(join(work, 'key-then-cert.pem'), ref + cert);
    writeFileSync(join(work, 'raw-after-cert.pem'), cert + readFileSync(join(work, 'raw.pem'), 'utf8'));
    writeFileSync(join(work, 'data.txt'), 'quorumkey public-key load test\n'.repeat(50));
  });

  after(async function () {
    for (const s of servers) await s.stop();
    await up.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const [file, order] of [
    ['cert-then-key.pem', ['Certificate', 'Pkey']],
    ['key-then-cert.pem', ['Pkey', 'Certificate']],
  ] as const) {
    it(`reads the certificate and the key reference of ${file} (x509 -in, storeutl, pkey -in), both builds`, function () {
      const x509 = both(['x509', '-in', file, '-noout', '-subject', '-pubkey'], `x509 -in ${file}`);
      assert.match(x509.stdout, /subject=.*CN = localhost/);
      assert.ok(x509.stdout.includes(tlsPub.trim()), `x509 -pubkey is not key 'tls':\n${x509.stdout}`);
      const listed = both(['storeutl', '-noout', file], `storeutl ${file}`);
      assert.match(listed.stdout, new RegExp(`^0: ${order[0]}\\n1: ${order[1]}\\nTotal found: 2`, 'm'));
      assert.equal(both(['pkey', '-in', file, '-pubout'], `pkey -in ${file}`).stdout.trim(), tlsPub.trim());
    });
  }

  it('serves TLS 1.3 with s_server -cert F -key F on one combined file (either order; ASan build too), signed by the quorum', async function () {
    for (const [file, asanBuild] of [
      ['cert-then-key.pem', false],
      ['key-then-cert.pem', false],
      ['key-then-cert.pem', true],
    ] as const) {
      const server = new SServer(await freePort(), ['-cert', file, '-key', file, '-tls1_3', '-www'], asanBuild ? asanConf : conf, work, asanBuild ? asanEnv() : {});
      servers.push(server);
      await server.start();
      const before = signatures('tls');
      const r = ossl(['s_client', '-connect', `127.0.0.1:${server.port}`, '-CAfile', 'ca.crt', '-verify_return_error', '-tls1_3', '-servername', 'localhost'], '');
      await server.stop();
      assert.equal(r.status, 0, `${file}: handshake failed:\n${r.stdout}\n${r.stderr}\n${server.stderr}`);
      assert.match(r.stdout, /Peer signature type: ECDSA/);
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
      // The mechanism: the CertificateVerify was a threshold signature the coordinator recorded.
      assert.equal(signatures('tls'), before + 1, `${file}: one signature for key 'tls'`);
      assert.doesNotMatch(server.stderr, SANITIZER_MARKERS, server.stderr);
    }
  });

  it('loads a key reference as a public key: pkey -pubin (file and quorumkey: URI), both builds', function () {
    assert.equal(both(['pkey', '-pubin', '-in', 'raw.pem', '-pubout'], 'pkey -pubin').stdout.trim(), rawPub.trim());
    const uri = `quorumkey:ref=${join(work, 'raw.pem')}`;
    assert.equal(both(['pkey', '-pubin', '-in', uri, '-pubout'], 'pkey -pubin quorumkey:').stdout.trim(), rawPub.trim());
  });

  it('verifies threshold signatures with the key reference as the public key (dgst -verify, pkeyutl -verify -pubin)', function () {
    expectOk(ossl(['dgst', '-sha256', '-sign', 'raw.pem', '-sigopt', 'quorumkey-send:digest', '-out', 'data.sig', 'data.txt']), 'dgst -sign');
    assert.match(both(['dgst', '-sha256', '-verify', 'raw.pem', '-signature', 'data.sig', 'data.txt'], 'dgst -verify').stdout, /Verified OK/);
    writeFileSync(join(work, 'other.txt'), 'not what was signed\n');
    const wrong = ossl(['dgst', '-sha256', '-verify', 'raw.pem', '-signature', 'data.sig', 'other.txt']);
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stdout, /Verification failure/);

    const digest = expectOk(ossl(['dgst', '-sha256', '-binary', '-out', 'data.sha256', 'data.txt']), 'dgst -binary');
    assert.equal(digest.status, 0);
    expectOk(ossl(['pkeyutl', '-sign', '-inkey', 'raw.pem', '-in', 'data.sha256', '-out', 'digest.sig']), 'pkeyutl -sign');
    const v = both(['pkeyutl', '-verify', '-pubin', '-inkey', 'raw.pem', '-in', 'data.sha256', '-sigfile', 'digest.sig'], 'pkeyutl -verify -pubin');
    assert.match(v.stdout, /Signature Verified Successfully/);
    writeFileSync(join(work, 'other.sha256'), Buffer.alloc(32, 7));
    const bad = ossl(['pkeyutl', '-verify', '-pubin', '-inkey', 'raw.pem', '-in', 'other.sha256', '-sigfile', 'digest.sig']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stdout, /Signature Verification Failure/);
  });

  for (const asanBuild of [false, true]) {
    it(`gives a key that cannot sign to every public-key load, a signing key to private-key loads, takes NULL params (qk-load-check${asanBuild ? ', ASan build' : ''})`, function () {
      const before = signatures('raw');
      const stdout = runCheckProgram('qk-load-check', [join(work, 'raw.pem'), 'raw-after-cert.pem'], { cwd: work, conf: asanBuild ? asanConf : conf, asan: asanBuild });
      assert.match(stdout, /^PEM_read_bio_PUBKEY: ok, public key only, cannot sign/m);
      assert.match(stdout, /^store expecting PUBKEY: info type: ok, Public key$/m);
      assert.match(stdout, /^store expecting PUBKEY: ok, public key only, cannot sign/m);
      assert.match(stdout, /^PEM_read_bio_PrivateKey: ok, signed, verified/m);
      assert.match(stdout, /^store expecting PKEY: info type: ok, Pkey$/m);
      assert.match(stdout, /^PEM_read_bio_PrivateKey, certificate first: ok, signed, verified/m);
      assert.match(stdout, /^NULL params: ok/m);
      assert.match(stdout, /\nOK\n/);
      // Three signing loads, three threshold signatures; the public-only ones asked for none.
      assert.equal(signatures('raw'), before + 3);
    });
  }

  it('prints the key as text (pkey -text): the public key, and the private key named as held by the cluster', function () {
    const text = both(['pkey', '-in', 'raw.pem', '-text', '-noout'], 'pkey -text').stdout;
    assert.match(text, /^Private-Key: \(256 bit\)$/m);
    assert.match(text, /^priv: held by the quorumkey cluster \(threshold signers\), not by this process$/m);
    assert.match(text, /^ {4}key id: raw$/m);
    assert.ok(text.includes(`    endpoint: unix:${up.config().coordinator.socket}\n`), text);
    assert.deepEqual(printedPoint(text), pointOf(rawPub));
    assert.match(text, /^ASN1 OID: prime256v1\nNIST CURVE: P-256$/m);
    assert.doesNotMatch(text, /^priv:\n/m, 'no private key bytes');

    const pubText = both(['pkey', '-pubin', '-in', 'raw.pem', '-text', '-noout'], 'pkey -pubin -text').stdout;
    assert.match(pubText, /^Public-Key: \(256 bit\)$/m);
    assert.deepEqual(printedPoint(pubText), pointOf(rawPub));
    assert.doesNotMatch(pubText, /Private-Key|held by/);
  });

  it('writes the public key as a SubjectPublicKeyInfo (-pubout PEM and DER) that the default provider alone reads', function () {
    const pem = both(['pkey', '-in', 'raw.pem', '-pubout'], 'pkey -pubout').stdout;
    assert.equal(pem.trim(), rawPub.trim());
    writeFileSync(join(work, 'raw.pub'), pem);
    const der = spawnSync('openssl', ['pkey', '-in', 'raw.pem', '-pubout', '-outform', 'DER'], { cwd: work, env: { ...process.env, OPENSSL_CONF: conf } });
    assert.equal(der.status, 0, der.stderr.toString());
    assert.deepEqual(der.stdout, createPublicKey(rawPub).export({ type: 'spki', format: 'der' }));
    // Without the quorumkey provider at all (an empty configuration: the default provider only).
    const empty = join(work, 'empty.cnf');
    writeFileSync(empty, '');
    const plain = expectOk(openssl(['pkey', '-pubin', '-in', 'raw.pub', '-noout', '-text'], { conf: empty, cwd: work }), 'default provider reads it');
    assert.deepEqual(printedPoint(plain.stdout), pointOf(rawPub));
    const refused = ossl(['pkey', '-in', 'raw.pem', '-out', 'priv.pem']);
    assert.notEqual(refused.status, 0, 'the private key is still not written');
    assert.match(refused.stderr, /private key is not exportable/);
  });

  it('names no build path in its errors (the file name only)', function () {
    writeFileSync(join(work, 'unreachable.pem'), keyReferencePem({ keyId: 'raw', endpoint: `unix:${join(work, 'missing', 'coordinator.sock')}`, spki: createPublicKey(rawPub).export({ type: 'spki', format: 'der' }) }));
    const lines = readFileSync(join(work, 'raw.pem'), 'utf8').trimEnd().split('\n');
    writeFileSync(join(work, 'truncated.pem'), lines.slice(0, 2).join('\n') + '\n');
    const failures: [string[], RegExp][] = [
      [['pkey', '-in', 'raw.pem', '-out', 'priv.pem'], /quorumkey:km_export:private key is not exportable:keymgmt\.c:\d+:/],
      [['pkey', '-in', 'truncated.pem', '-pubout'], /quorumkey:[^:]*:invalid key reference:keyref\.c:\d+:/],
      [['pkeyutl', '-sign', '-inkey', 'unreachable.pem', '-in', 'data.sha256', '-out', 'x.sig'], /quorumkey:[^:]*:coordinator unreachable:[a-z_]+\.c:\d+:/],
    ];
    for (const [args, expected] of failures) {
      const r = ossl(args);
      assert.notEqual(r.status, 0, `openssl ${args.join(' ')} should fail`);
      assert.match(r.stderr, expected);
      const repo = REPO.replace(/\/$/, '');
      assert.equal(r.stderr.split(repo).length - 1, 0, `openssl ${args.join(' ')} names the build path:\n${r.stderr}`);
    }
  });
});
