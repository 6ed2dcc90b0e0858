/**
 * Content classification against real structures: TLS 1.3 CertificateVerify content, a
 * TBSCertificate and a CertificationRequestInfo cut out of openssl-made DER, an OCSP ResponseData
 * cut out of a response made by `openssl ocsp` (responder mode), RFC 6962 SCT signed structs
 * built around the real certificate, and garbage / truncated / client-side inputs.
 */
import { derChildren } from '../der.js';
import { strict as assert } from 'node:assert';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classify, parseTbsCertificate, tls13CertificateVerifyContent } from '../../src/policy/classify.js';

/** Content of a primitive TLV. */
function content(tlv: Buffer): Buffer {
  let len = tlv[1]!;
  let off = 2;
  if (len & 0x80) {
    off += len & 0x7f;
    len = tlv.length - off;
  }
  return tlv.subarray(off, off + len);
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

describe('coordinator content classification', () => {
  let dir: string;
  let certDer: Buffer;
  let tbsCert: Buffer;
  let csrInfo: Buffer;
  let ocspResponseData: Buffer;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-classify-'));
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/O=Example Org/CN=Example CA', '-days', '2'], dir);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr.der', '-outform', 'DER', '-subj', '/C=DE/O=Example, Inc./CN=www.example.com'], dir);
    writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=DNS:www.example.com\nextendedKeyUsage=serverAuth\n');
    openssl(['x509', '-req', '-inform', 'DER', '-in', 'leaf.csr.der', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '0x1234abcd', '-days', '1', '-extfile', 'leaf.ext', '-out', 'leaf.crt'], dir);
    openssl(['x509', '-req', '-inform', 'DER', '-in', 'leaf.csr.der', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '7', '-days', '1', '-out', 'v1.crt'], dir);
    certDer = Buffer.from(new X509Certificate(readFileSync(join(dir, 'leaf.crt'))).raw);
    tbsCert = derChildren(certDer)[0]!;
    csrInfo = derChildren(readFileSync(join(dir, 'leaf.csr.der')))[0]!;
    // OCSP: a request for the leaf, answered by `openssl ocsp` in responder mode from an index file.
    writeFileSync(join(dir, 'index.txt'), 'V\t301231235959Z\t\t1234ABCD\tunknown\t/CN=www.example.com\n');
    openssl(['ocsp', '-issuer', 'ca.crt', '-cert', 'leaf.crt', '-no_nonce', '-reqout', 'req.der'], dir);
    openssl(['ocsp', '-index', 'index.txt', '-rsigner', 'ca.crt', '-rkey', 'ca.key', '-CA', 'ca.crt', '-reqin', 'req.der', '-respout', 'resp.der', '-ndays', '1'], dir);
    // OCSPResponse { status, [0] { SEQUENCE { OID basic, OCTET STRING BasicOCSPResponse } } } → tbsResponseData.
    const resp = readFileSync(join(dir, 'resp.der'));
    const responseBytes = derChildren(derChildren(resp)[1]!)[0]!;
    const basic = content(derChildren(responseBytes)[1]!);
    ocspResponseData = derChildren(basic)[0]!;
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('recognises TLS 1.3 server CertificateVerify content for SHA-256/384/512 transcripts', () => {
    for (const alg of ['sha256', 'sha384', 'sha512']) {
      const transcript = createHash(alg).update(randomBytes(100)).digest();
      const c = classify(tls13CertificateVerifyContent(transcript));
      assert.equal(c.context, 'tls-server');
      assert.equal(c.detail.transcript_hash_bytes, transcript.length);
    }
    // Byte-exact form from RFC 8446 §4.4.3.
    const manual = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify'), Buffer.from([0]), Buffer.alloc(32, 0xab)]);
    assert.equal(classify(manual).context, 'tls-server');
  });

  it('does not take the client CertificateVerify or near misses for tls-server', () => {
    const h = randomBytes(32);
    assert.equal(classify(tls13CertificateVerifyContent(h, 'client')).context, 'unknown');
    const good = Buffer.from(tls13CertificateVerifyContent(h));
    const variants = [
      good.subarray(0, good.length - 1), // transcript of 31 bytes
      Buffer.concat([good, Buffer.from([0])]), // 33 bytes
      Buffer.concat([good.subarray(0, 64 + 33), Buffer.from([1]), h]), // separator not 0
      Buffer.concat([Buffer.from([0x21]), good.subarray(1)]), // padding byte
      Buffer.from(good.toString('latin1').replace('server', 'Server'), 'latin1'),
      Buffer.concat([good.subarray(0, 64 + 33 + 1), Buffer.alloc(20)]), // SHA-1 sized
    ];
    for (const v of variants) assert.equal(classify(v).context, 'unknown', v.toString('hex').slice(0, 40));
  });

  it('recognises a real TBSCertificate and reports subject, issuer and serial', () => {
    const c = classify(tbsCert);
    assert.equal(c.context, 'x509-cert');
    assert.equal(c.detail.subject, 'C=DE, O=Example\\, Inc., CN=www.example.com');
    assert.equal(c.detail.issuer, 'O=Example Org, CN=Example CA');
    assert.equal(c.detail.serial, '1234abcd');
    assert.equal(c.detail.key_algorithm, 'ec');
    assert.equal(c.detail.version, 3);
    assert.equal(c.detail.signature_algorithm, 'ecdsa-with-SHA256');
    // A v1 certificate (no [0] version, no extensions).
    const v1 = classify(derChildren(Buffer.from(new X509Certificate(readFileSync(join(dir, 'v1.crt'))).raw))[0]!);
    assert.equal(v1.context, 'x509-cert');
    assert.equal(v1.detail.version, 1);
    assert.equal(v1.detail.serial, '07');
    // The whole certificate (TBS + algorithm + signature) is not a TBSCertificate.
    assert.equal(classify(certDer).context, 'unknown');
    // The cluster PKI's certificates (with extensions) too.
    const x = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    assert.equal(classify(derChildren(Buffer.from(x.raw))[0]!).context, 'x509-cert');
  });

  it('recognises a real CertificationRequestInfo', () => {
    const c = classify(csrInfo);
    assert.equal(c.context, 'x509-csr');
    assert.equal(c.detail.subject, 'C=DE, O=Example\\, Inc., CN=www.example.com');
    assert.equal(c.detail.key_algorithm, 'ec');
  });

  it('recognises an OCSP ResponseData made by openssl ocsp, with serial and status', () => {
    const c = classify(ocspResponseData);
    assert.equal(c.context, 'ocsp');
    assert.deepEqual(c.detail.serials, ['1234abcd']);
    assert.deepEqual(c.detail.statuses, ['good']);
    assert.equal(c.detail.responder, 'O=Example Org, CN=Example CA');
    assert.equal(c.detail.responses, 1);
  });

  it('recognises RFC 6962 §3.2 SCT signed structs for x509_entry and precert_entry', () => {
    const ts = Buffer.alloc(8);
    const when = Date.UTC(2024, 0, 2, 3, 4, 5);
    ts.writeBigUInt64BE(BigInt(when));
    const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
    const x509 = Buffer.concat([Buffer.from([0, 0]), ts, Buffer.from([0, 0]), u24(certDer.length), certDer, Buffer.from([0, 0])]);
    const c = classify(x509);
    assert.equal(c.context, 'sct');
    assert.equal(c.detail.entry_type, 'x509_entry');
    assert.equal(c.detail.timestamp, new Date(when).toISOString());
    assert.equal(c.detail.subject, 'C=DE, O=Example\\, Inc., CN=www.example.com');
    const issuerKeyHash = createHash('sha256').update('issuer key').digest();
    const ext = Buffer.from([1, 2, 3]);
    const pre = Buffer.concat([Buffer.from([0, 0]), ts, Buffer.from([0, 1]), issuerKeyHash, u24(tbsCert.length), tbsCert, Buffer.from([0, 3]), ext]);
    const p = classify(pre);
    assert.equal(p.context, 'sct');
    assert.equal(p.detail.entry_type, 'precert_entry');
    assert.equal(p.detail.serial, '1234abcd');
    // Wrong version, tree_hash signature type, unknown entry type, bad lengths.
    const bad = [
      Buffer.concat([Buffer.from([1]), x509.subarray(1)]),
      Buffer.concat([Buffer.from([0, 1]), x509.subarray(2)]),
      Buffer.concat([x509.subarray(0, 10), Buffer.from([0, 2]), x509.subarray(12)]),
      x509.subarray(0, x509.length - 1),
      Buffer.concat([x509, Buffer.from([0])]),
      Buffer.concat([pre.subarray(0, pre.length - 5), Buffer.from([0, 4]), ext]),
    ];
    for (const b of bad) assert.equal(classify(b).context, 'unknown');
  });

  it('recognises RFC 6962 §3.5 tree head signed structs (a CT log\'s STH) as sct', () => {
    const when = Date.UTC(2025, 5, 6, 7, 8, 9);
    const head = Buffer.alloc(50);
    head[1] = 1;
    head.writeBigUInt64BE(BigInt(when), 2);
    head.writeBigUInt64BE(12345n, 10);
    const root = createHash('sha256').update('root').digest();
    root.copy(head, 18);
    const c = classify(head);
    assert.equal(c.context, 'sct');
    assert.deepEqual(c.detail, { signature_type: 'tree_hash', timestamp: new Date(when).toISOString(), tree_size: 12345, root_hash: root.toString('hex') });
    // One byte short or long, version v2, a tree size beyond 2^53.
    const huge = Buffer.from(head);
    huge.writeBigUInt64BE(1n << 60n, 10);
    const v2 = Buffer.from(head);
    v2[0] = 1;
    for (const b of [head.subarray(0, 49), Buffer.concat([head, Buffer.from([0])]), v2, huge]) assert.equal(classify(b).context, 'unknown');
  });

  it('answers unknown for garbage, truncated DER and empty input, and never throws', () => {
    assert.equal(classify(new Uint8Array(0)).context, 'unknown');
    assert.equal(classify(Buffer.from('hello world')).context, 'unknown');
    for (let k = 1; k < tbsCert.length; k += 7) assert.equal(classify(tbsCert.subarray(0, k)).context, 'unknown');
    for (let k = 1; k < csrInfo.length; k += 5) assert.equal(classify(csrInfo.subarray(0, k)).context, 'unknown');
    for (let k = 1; k < ocspResponseData.length; k += 5) assert.equal(classify(ocspResponseData.subarray(0, k)).context, 'unknown');
    assert.equal(classify(Buffer.concat([tbsCert, Buffer.from([0])])).context, 'unknown');
    // Indefinite length (BER) and non-minimal lengths are not DER.
    const ber = Buffer.concat([Buffer.from([0x30, 0x80]), tbsCert.subarray(4), Buffer.from([0, 0])]);
    assert.equal(classify(ber).context, 'unknown');
    const nonMinimal = Buffer.from([0x30, 0x81, 0x03, 0x02, 0x01, 0x00]);
    assert.equal(classify(nonMinimal).context, 'unknown');
    // Random bytes (some starting like a SEQUENCE or an SCT): never a recognised structure.
    for (let n = 0; n < 2000; n++) {
      const r = randomBytes(1 + (n % 300));
      if (n % 3 === 0) r[0] = 0x30;
      if (n % 5 === 0) r[0] = 0x00;
      assert.equal(classify(r).context, 'unknown', r.toString('hex').slice(0, 40));
    }
    // Single-byte corruptions of a real TBSCertificate either still parse as one or give unknown.
    const seen = new Set<string>();
    for (let n = 0; n < 500; n++) {
      const t = Buffer.from(tbsCert);
      t[n % t.length] ^= 1 + (n % 255);
      const { context } = classify(t);
      assert.ok(context === 'x509-cert' || context === 'unknown', `byte ${n % t.length}: ${context}`);
      seen.add(context);
    }
    assert.deepEqual([...seen].sort(), ['unknown', 'x509-cert'], 'some corruptions keep a TBSCertificate (e.g. in the serial), most break it');
  });

  it('does not confuse the structures with one another', () => {
    // The parser's own DER error (its class is not exported), naming what a TBSCertificate has there instead.
    const derError = (message: RegExp) => (e: unknown) => e instanceof Error && e.constructor.name === 'DerError' && message.test(e.message);
    // Where a TBSCertificate has its signature AlgorithmIdentifier, a CertificationRequestInfo has its subject Name.
    assert.throws(() => parseTbsCertificate(csrInfo), derError(/^malformed signature AlgorithmIdentifier$/));
    // Where it has its serial number, an OCSP ResponseData has its responder id ([1] or [2]).
    assert.throws(() => parseTbsCertificate(ocspResponseData), derError(/^expected serialNumber INTEGER$/));
  });
});
