/**
 * The shared content decision against real structures: TLS 1.3 CertificateVerify content, a
 * TBSCertificate, CSR CertificationRequestInfo and OCSP ResponseData cut out of openssl output,
 * an RFC 6962 precert SCT struct around that TBSCertificate, bare digests, and garbage.
 */
import { derChildren } from '../der.js';
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkContent, type ContentVerdict, type DigestAlg, type SignContent } from '../../src/policy/check.js';
import { classify, tls13CertificateVerifyContent, type Context } from '../../src/policy/classify.js';
import { normaliseKeyPolicy, type KeyPolicy } from '../../src/policy/key-policy.js';


const X509 = { dnsSuffixes: ['example.com'], ipRanges: [], maxValidityDays: 90, allowCa: false, extendedKeyUsages: ['serverAuth'] };

function policy(contexts: Context[]): KeyPolicy {
  return normaliseKeyPolicy(contexts.includes('x509-cert') ? { contexts, x509: X509 } : { contexts });
}

function refusal(v: ContentVerdict, reason: string, context: string, ...mentions: string[]): void {
  assert.equal(v.allowed, false, `expected ${reason}, got ${JSON.stringify(v)}`);
  if (v.allowed) return;
  assert.equal(v.reason, reason, v.message);
  assert.equal(v.context, context, v.message);
  for (const m of mentions) assert.ok(v.message.includes(m), `message ${JSON.stringify(v.message)} should mention ${m}`);
}

function sha(alg: DigestAlg, bytes: Uint8Array): Buffer {
  return createHash(alg).update(bytes).digest();
}

describe('checkContent', () => {
  let dir: string;
  const content: Record<Exclude<Context, 'raw-digest'>, Buffer> = {} as never;
  let tbs384: Buffer;
  let tbsEvil: Buffer;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-check-'));
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const tbsOf = (file: string) => derChildren(Buffer.from(new X509Certificate(readFileSync(join(dir, file))).raw))[0]!;
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=Example CA', '-days', '2');
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr.der', '-outform', 'DER', '-subj', '/CN=www.example.com');
    writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=DNS:www.example.com\nextendedKeyUsage=serverAuth\n');
    writeFileSync(join(dir, 'evil.ext'), 'subjectAltName=DNS:www.bank.example\nextendedKeyUsage=serverAuth\n');
    const issue = (out: string, ext: string, ...more: string[]) =>
      openssl('x509', '-req', '-inform', 'DER', '-in', 'leaf.csr.der', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '0x1234abcd', '-days', '30', '-extfile', ext, '-out', out, ...more);
    issue('leaf.crt', 'leaf.ext');
    issue('leaf384.crt', 'leaf.ext', '-sha384');
    issue('evil.crt', 'evil.ext');
    content['x509-cert'] = tbsOf('leaf.crt');
    tbs384 = tbsOf('leaf384.crt');
    tbsEvil = tbsOf('evil.crt');
    content['x509-csr'] = derChildren(readFileSync(join(dir, 'leaf.csr.der')))[0]!;
    writeFileSync(join(dir, 'index.txt'), 'V\t301231235959Z\t\t1234ABCD\tunknown\t/CN=www.example.com\n');
    openssl('ocsp', '-issuer', 'ca.crt', '-cert', 'leaf.crt', '-no_nonce', '-reqout', 'req.der');
    openssl('ocsp', '-index', 'index.txt', '-rsigner', 'ca.crt', '-rkey', 'ca.key', '-CA', 'ca.crt', '-reqin', 'req.der', '-respout', 'resp.der', '-ndays', '1');
    // OCSPResponse → responseBytes → BasicOCSPResponse (in an OCTET STRING) → tbsResponseData.
    const responseBytes = derChildren(derChildren(readFileSync(join(dir, 'resp.der')))[1]!)[0]!;
    const octetString = derChildren(responseBytes)[1]!;
    const basic = octetString.subarray(octetString[1]! & 0x80 ? 2 + (octetString[1]! & 0x7f) : 2);
    content.ocsp = derChildren(basic)[0]!;
    const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
    const ts = Buffer.alloc(8);
    ts.writeBigUInt64BE(BigInt(Date.UTC(2025, 0, 2)));
    const cert = content['x509-cert'];
    content.sct = Buffer.concat([Buffer.from([0, 0]), ts, Buffer.from([0, 1]), sha('sha256', Buffer.from('issuer key')), u24(cert.length), cert, Buffer.from([0, 0])]);
    content['tls-server'] = Buffer.from(tls13CertificateVerifyContent(sha('sha256', Buffer.from('transcript'))));
    for (const [context, bytes] of Object.entries(content)) assert.equal(classify(bytes).context, context, 'fixture');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('allows each structure to a key of its context, hashing the tbs with the digest algorithm', () => {
    for (const [context, tbs] of Object.entries(content) as Array<[Context, Buffer]>) {
      for (const alg of ['sha256', 'sha384', 'sha512'] as const) {
        if (context === 'x509-cert' && alg !== 'sha256') continue; // the TBSCertificate names ecdsa-with-SHA256
        const v = checkContent(policy([context]), { tbs, digestAlg: alg });
        assert.ok(v.allowed, `${context}/${alg}: ${JSON.stringify(v)}`);
        assert.equal(v.context, context);
        assert.deepEqual(Buffer.from(v.digest), sha(alg, tbs));
      }
    }
  });

  it('reports the classifier detail, plus the checked names for a certificate', () => {
    const cert = checkContent(policy(['x509-cert']), { tbs: content['x509-cert'], digestAlg: 'sha256' });
    assert.ok(cert.allowed);
    assert.deepEqual(cert.detail, { ...classify(content['x509-cert']).detail, names: ['www.example.com'] });
    const ocsp = checkContent(policy(['ocsp']), { tbs: content.ocsp, digestAlg: 'sha256' });
    assert.ok(ocsp.allowed);
    assert.deepEqual(ocsp.detail.serials, ['1234abcd']);
  });

  it('refuses every structure to a key without its context (TLS key vs TBSCertificate, OCSP key vs CertificateVerify, …)', () => {
    const contexts = Object.keys(content) as Context[];
    for (const keyContext of [...contexts, 'raw-digest' as const]) {
      for (const [context, tbs] of Object.entries(content)) {
        if (context === keyContext) continue;
        const v = checkContent(policy([keyContext]), { tbs, digestAlg: 'sha256' });
        refusal(v, 'context-not-allowed', context, `(${context})`, `this key signs ${keyContext}`);
      }
    }
    // A key with several contexts takes each of them and nothing else.
    const two = policy(['tls-server', 'ocsp']);
    assert.ok(checkContent(two, { tbs: content['tls-server'], digestAlg: 'sha256' }).allowed);
    assert.ok(checkContent(two, { tbs: content.ocsp, digestAlg: 'sha256' }).allowed);
    refusal(checkContent(two, { tbs: content['x509-csr'], digestAlg: 'sha256' }), 'context-not-allowed', 'x509-csr', 'tls-server, ocsp');
  });

  it('refuses content it does not recognise, saying what it saw without dumping it', () => {
    const tls = policy(['tls-server']);
    const client = Buffer.from(tls13CertificateVerifyContent(sha('sha256', Buffer.from('t')), 'client'));
    refusal(checkContent(tls, { tbs: client, digestAlg: 'sha256' }), 'unrecognised-content', 'unknown', 'TLS 1.3 client CertificateVerify');
    const big = Buffer.concat([Buffer.from('0123456789abcdef', 'hex'), Buffer.alloc(1 << 20, 0x41)]);
    const v = checkContent(tls, { tbs: big, digestAlg: 'sha256' });
    refusal(v, 'unrecognised-content', 'unknown', `${big.length} bytes`, 'starting 0123456789abcdef', 'this key signs tls-server');
    assert.ok(!v.allowed && v.message.length < 400, 'message is short');
    // A raw-digest key is told to send the digest.
    refusal(checkContent(policy(['raw-digest']), { tbs: big, digestAlg: 'sha256' }), 'unrecognised-content', 'unknown', 'digest instead');
  });

  describe('digests', () => {
    it('a bare digest is only for raw-digest keys', () => {
      const digest = sha('sha256', Buffer.from('x'));
      for (const keyContext of Object.keys(content) as Context[]) {
        refusal(checkContent(policy([keyContext]), { digest, digestAlg: 'sha256' }), 'raw-digest-not-allowed', 'raw-digest', 'send the to-be-signed bytes');
      }
    });

    it('a raw-digest key signs a digest of the right length, as a copy', () => {
      const raw = policy(['raw-digest']);
      for (const [alg, n] of [['sha256', 32], ['sha384', 48], ['sha512', 64]] as const) {
        const digest = randomBytes(n);
        const v = checkContent(raw, { digest, digestAlg: alg });
        assert.ok(v.allowed);
        assert.equal(v.context, 'raw-digest');
        assert.deepEqual(v.detail, { digest_alg: alg });
        assert.deepEqual(Buffer.from(v.digest), digest);
        digest[0] ^= 1;
        assert.notDeepEqual(Buffer.from(v.digest), digest, 'the verdict keeps its own bytes');
      }
    });

    it('bad-digest for a length that does not match the algorithm', () => {
      const raw = policy(['raw-digest']);
      refusal(checkContent(raw, { digest: randomBytes(32), digestAlg: 'sha384' }), 'bad-digest', 'raw-digest', 'sha384 digest is 48 bytes, got 32');
      refusal(checkContent(raw, { digest: randomBytes(20), digestAlg: 'sha256' }), 'bad-digest', 'raw-digest', 'got 20');
    });

    it('bad-digest-algorithm for anything but sha256, sha384 and sha512', () => {
      for (const alg of ['md5', 'SHA256', 'sha1', '', 'constructor']) {
        const v = checkContent(policy(['tls-server']), { tbs: content['tls-server'], digestAlg: alg as DigestAlg });
        refusal(v, 'bad-digest-algorithm', 'unknown', 'is not one of sha256, sha384, sha512');
      }
      refusal(checkContent(policy(['raw-digest']), { digest: randomBytes(32), digestAlg: 'md5' as DigestAlg }), 'bad-digest-algorithm', 'unknown');
    });

    it('exactly one of tbs and digest; an empty field counts as absent', () => {
      const raw = policy(['raw-digest']);
      const tls = policy(['tls-server']);
      const digest = randomBytes(32);
      refusal(checkContent(raw, { tbs: content['tls-server'], digest, digestAlg: 'sha256' }), 'unrecognised-content', 'unknown', 'both');
      refusal(checkContent(raw, { digestAlg: 'sha256' }), 'unrecognised-content', 'unknown', 'neither');
      refusal(checkContent(raw, { tbs: new Uint8Array(0), digest: new Uint8Array(0), digestAlg: 'sha256' }), 'unrecognised-content', 'unknown', 'neither');
      assert.equal(checkContent(raw, { tbs: new Uint8Array(0), digest, digestAlg: 'sha256' }).context, 'raw-digest');
      assert.equal(checkContent(tls, { tbs: content['tls-server'], digest: new Uint8Array(0), digestAlg: 'sha256' }).context, 'tls-server');
    });
  });

  describe('x509-cert', () => {
    it('applies the constraints and reports their reason', () => {
      const v = checkContent(policy(['x509-cert']), { tbs: tbsEvil, digestAlg: 'sha256' });
      refusal(v, 'dns-name-not-permitted', 'x509-cert', 'www.bank.example');
      assert.ok(!v.allowed && v.detail.subject === 'CN=www.example.com', 'the refusal carries the classifier detail');
    });

    it('the digest algorithm must be the one the TBSCertificate names', () => {
      const ca = policy(['x509-cert']);
      refusal(checkContent(ca, { tbs: tbs384, digestAlg: 'sha256' }), 'bad-digest-algorithm', 'x509-cert', 'ecdsa-with-SHA384', 'needs sha384');
      refusal(checkContent(ca, { tbs: content['x509-cert'], digestAlg: 'sha512' }), 'bad-digest-algorithm', 'x509-cert', 'needs sha256');
      const v = checkContent(ca, { tbs: tbs384, digestAlg: 'sha384' });
      assert.ok(v.allowed);
      assert.deepEqual(Buffer.from(v.digest), sha('sha384', tbs384));
    });

    it('a policy with x509-cert but no constraints signs no certificate', () => {
      const broken = { contexts: ['x509-cert'], rate: { perSecond: 1, perHour: 1 } } as KeyPolicy;
      refusal(checkContent(broken, { tbs: content['x509-cert'], digestAlg: 'sha256' }), 'context-not-allowed', 'x509-cert', 'no x509 constraints');
    });
  });

  it('never throws, and allows only what the policy names, on random and corrupted input', () => {
    const policies = [policy(['tls-server']), policy(['ocsp', 'sct']), policy(['x509-cert', 'x509-csr']), policy(['raw-digest'])];
    const algs: DigestAlg[] = ['sha256', 'sha384', 'sha512'];
    const inputs: SignContent[] = [];
    for (let n = 0; n < 300; n++) inputs.push({ tbs: randomBytes(n % 200), digestAlg: algs[n % 3]! });
    for (let n = 0; n < 100; n++) inputs.push({ digest: randomBytes(n % 70), digestAlg: algs[n % 3]! });
    for (const bytes of Object.values(content)) {
      for (let n = 0; n < 60; n++) {
        const t = Buffer.from(bytes);
        t[(n * 7919) % t.length] ^= 1 + (n % 255);
        inputs.push({ tbs: t, digestAlg: 'sha256' });
        inputs.push({ tbs: t.subarray(0, (n * 31) % t.length), digestAlg: 'sha256' });
      }
    }
    for (const p of policies) {
      for (const input of inputs) {
        const v = checkContent(p, input);
        if (v.allowed) {
          assert.ok(p.contexts.includes(v.context), `${v.context} allowed by ${p.contexts.join(',')}`);
          if (input.tbs) assert.equal(classify(input.tbs).context, v.context);
        } else {
          assert.ok(v.message.length > 0 && v.message.length < 600);
        }
      }
    }
  });
});
