/**
 * The CA, CRL and OCSP modules without a cluster: a node:crypto P-256 key is the TbsSigner here
 * (the modules take any signer; test/pki/ca-cluster.test.ts signs through the threshold).
 * Requests come from `openssl ocsp -reqout`, and what is made is checked with openssl and
 * node:crypto, not with the code that made it.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert, AsnParser } from '@peculiar/asn1-schema';
import { SubjectPublicKeyInfo, TBSCertList, Time, Version } from '@peculiar/asn1-x509';
import { initCa, issueCertificate, makeCrl, readRoot, revokeCertificate } from '../../src/pki/ca/authority.js';
import { buildTbsCertificate, ecdsaWithSha256, pem, randomSerial, signCertificate, type TbsSigner } from '../../src/pki/ca/certificate.js';
import { CsrError, parseCsr } from '../../src/pki/ca/csr.js';
import { parseSubject } from '../../src/pki/ca/names.js';
import { rootExtensions } from '../../src/pki/ca/profiles.js';
import { buildTbsCertList } from '../../src/pki/ca/crl.js';
import { caPaths, normaliseSerial, CaStateError, type CaPaths } from '../../src/pki/ca/store.js';
import { errorResponse, OCSPResponseStatus } from '../../src/pki/ocsp/messages.js';
import { FRESH_RESPONSES_PER_SECOND, NONCE_RESPONSES_PER_SECOND, OcspResponder } from '../../src/pki/ocsp/responder.js';
import { checkStaple, StapleError } from '../../src/pki/ocsp/staple.js';
import { classify } from '../../src/policy/classify.js';
import { checkContent } from '../../src/policy/check.js';
import { normaliseKeyPolicy, PolicyError } from '../../src/policy/key-policy.js';

const NO_PROVIDER = { ...process.env, OPENSSL_CONF: '/dev/null' };

function openssl(args: string[]): { status: number; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', env: NO_PROVIDER });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const spkiOf = (k: KeyObject) => new Uint8Array(k.export({ type: 'spki', format: 'der' }));
const rawPoint = (k: KeyObject) => new Uint8Array(AsnParser.parse(spkiOf(k), SubjectPublicKeyInfo).subjectPublicKey);

/** A signer that counts its signatures (and can be made to fail). */
function counting(key: KeyObject) {
  const s = {
    count: 0,
    fail: false,
    sign: (async (tbs) => {
      s.count++;
      if (s.fail) throw new Error('signing refused');
      return new Uint8Array(nodeSign('sha256', tbs, key));
    }) as TbsSigner,
  };
  return s;
}

const POLICY = normaliseKeyPolicy({
  contexts: ['x509-cert'],
  x509: { dnsSuffixes: ['localhost'], ipRanges: ['127.0.0.0/8'], maxValidityDays: 3650, allowCa: 'self-signed', extendedKeyUsages: ['serverAuth', 'OCSPSigning'] },
});

describe('threshold CA modules (a local signer)', function () {
  this.timeout(60_000);
  const work = mkdtempSync(join(tmpdir(), 'qk-ca-'));
  const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const responderKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caSigner = counting(caKey.privateKey);
  const responderSigner = counting(responderKey.privateKey);
  let p: CaPaths;
  let rootFile: string;
  let n = 0;

  /** A CSR made by openssl for a fresh key. */
  function csr(san = 'DNS:localhost,IP:127.0.0.1'): Buffer {
    const key = join(work, `k${++n}.pem`);
    const out = join(work, `r${n}.csr`);
    assert.equal(openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=localhost', '-addext', `subjectAltName=${san}`, '-out', out]).status, 0);
    return readFileSync(out);
  }

  async function issue(): Promise<{ file: string; serial: string }> {
    const issued = await issueCertificate(p, csr(), 'server', 30, caSigner.sign);
    const file = join(work, `c${issued.serial}.crt`);
    writeFileSync(file, pem('CERTIFICATE', Buffer.from(issued.der, 'base64')));
    return { file, serial: issued.serial };
  }

  /** openssl ocsp -reqout for `cert` (a nonce unless noNonce). */
  function request(cert: string, noNonce = true, issuer = rootFile): Buffer {
    const out = join(work, `q${++n}.der`);
    assert.equal(openssl(['ocsp', '-issuer', issuer, '-cert', cert, ...(noNonce ? ['-no_nonce'] : []), '-reqout', out]).status, 0);
    return readFileSync(out);
  }

  /** openssl's reading of a response: verified against the CA, the status line. */
  function opensslReads(der: Uint8Array, cert: string, reqFile?: string): string {
    const file = join(work, `a${++n}.der`);
    writeFileSync(file, der);
    return openssl(['ocsp', '-respin', file, '-issuer', rootFile, '-cert', cert, '-CAfile', rootFile, ...(reqFile ? ['-reqin', reqFile] : [])]).out;
  }

  before(async function () {
    p = caPaths(work);
    await initCa(p, {
      config: { caKey: 'ca', responderKey: 'ocsp', ocspUrl: 'http://127.0.0.1:9/ocsp', crlUrl: 'http://127.0.0.1:9/crl', ocspValiditySeconds: 3600, crlValidityDays: 7 },
      subject: parseSubject('/O=test/CN=test threshold CA'),
      rootDays: 3650,
      responderDays: 365,
      caSpki: spkiOf(caKey.publicKey),
      responderSpki: spkiOf(responderKey.publicKey),
      sign: caSigner.sign,
    });
    rootFile = p.rootCert;
  });

  describe('issuance', function () {
    it('a root and a responder certificate openssl accepts, the responder for OCSPSigning only', function () {
      assert.equal(openssl(['verify', '-CAfile', rootFile, p.responderCert]).status, 0);
      const text = openssl(['x509', '-in', p.responderCert, '-noout', '-text']).out;
      assert.match(text, /Extended Key Usage: \n\s+OCSP Signing\n/);
      assert.match(text, /OCSP No Check/);
      assert.match(openssl(['x509', '-in', rootFile, '-noout', '-text']).out, /CA:TRUE/);
    });

    it('a server certificate for a CSR: its names, AIA OCSP and CRL DP, verified by openssl for serverAuth', async function () {
      const { file } = await issue();
      assert.equal(openssl(['verify', '-CAfile', rootFile, '-purpose', 'sslserver', file]).status, 0);
      const text = openssl(['x509', '-in', file, '-noout', '-text']).out;
      assert.match(text, /DNS:localhost, IP Address:127\.0\.0\.1/);
      assert.match(text, /OCSP - URI:http:\/\/127\.0\.0\.1:9\/ocsp/);
      assert.match(text, /URI:http:\/\/127\.0\.0\.1:9\/crl/);
      assert.match(text, /CA:FALSE/);
    });

    it('refuses a CSR whose signature does not verify (no proof of possession)', function () {
      const der = Buffer.from(readFileSync(join(work, 'r1.csr'), 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
      der[der.length - 5]! ^= 0x01;
      assert.throws(() => parseCsr(der), (e: Error) => e instanceof CsrError && /does not verify/.test(e.message));
      assert.throws(() => parseCsr(Buffer.from('junk')), CsrError);
    });

    it('a server certificate needs names, a revocation a known serial, once', async function () {
      await assert.rejects(issueCertificate(p, Buffer.from(openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'nosan.key'), '-subj', '/CN=localhost']).out.match(/-----BEGIN CERTIFICATE REQUEST-----[\s\S]+?-----END CERTIFICATE REQUEST-----/)![0]), 'server', 30, caSigner.sign), /needs subjectAltName/);
      await assert.rejects(revokeCertificate(p, 'abcdef', 'keyCompromise'), CaStateError);
      const { serial } = await issue();
      await revokeCertificate(p, serial, 'superseded');
      await assert.rejects(revokeCertificate(p, serial, 'superseded'), /already revoked/);
      assert.equal(normaliseSerial('0x0A:BC'), '0abc');
      assert.throws(() => normaliseSerial('xyz'), CaStateError);
    });
  });

  describe("policy: allowCa 'self-signed' and CRLs (what every signer checks)", function () {
    const point = () => rawPoint(caKey.publicKey);

    it('allows the key its own root, and refuses a CA certificate for any other key, even with the same name', function () {
      const tbs = firstElement(derOf(rootFile));
      assert.equal(checkContent(POLICY, { tbs: new Uint8Array(tbs), digestAlg: 'sha256', publicKey: point() }).allowed, true);
      // Without knowing its own key, a signer cannot tell: refused.
      const blind = checkContent(POLICY, { tbs: new Uint8Array(tbs), digestAlg: 'sha256' });
      assert.equal(blind.allowed, false);
      assert.equal(!blind.allowed && blind.reason, 'ca-not-allowed');
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const name = readRoot(p).subject;
      const otherSpki = AsnParser.parse(spkiOf(other.publicKey), SubjectPublicKeyInfo);
      const forged = buildTbsCertificate({ serial: randomSerial(), issuer: name, subject: name, spki: otherSpki, notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), extensions: rootExtensions(otherSpki) });
      const verdict = checkContent(POLICY, { tbs: forged, digestAlg: 'sha256', publicKey: point() });
      assert.equal(verdict.allowed, false);
      assert.equal(!verdict.allowed && verdict.reason, 'ca-not-allowed');
      assert.match(!verdict.allowed ? verdict.message : '', /only for itself/);
    });

    it("key policies take allowCa true, false or 'self-signed', nothing else", function () {
      assert.equal(POLICY.x509!.allowCa, 'self-signed');
      assert.throws(() => normaliseKeyPolicy({ contexts: ['x509-cert'], x509: { maxValidityDays: 1, allowCa: 'yes' } }), PolicyError);
    });

    it('classifies a TBSCertList as x509-cert (detail TBSCertList) and allows it within maxValidityDays', async function () {
      const { der } = await makeCrl(p, caSigner.sign);
      const tbs = firstElement(der);
      const c = classify(tbs);
      assert.equal(c.context, 'x509-cert');
      assert.equal(c.detail.structure, 'TBSCertList');
      assert.equal(c.detail.issuer, 'O=test, CN=test threshold CA');
      assert.ok(Number(c.detail.revoked) >= 1);
      assert.equal(checkContent(POLICY, { tbs, digestAlg: 'sha256' }).allowed, true);
      const wrongHash = checkContent(POLICY, { tbs, digestAlg: 'sha384' });
      assert.equal(!wrongHash.allowed && wrongHash.reason, 'bad-digest-algorithm');
    });

    it('refuses a CRL valid longer than maxValidityDays, or without nextUpdate', function () {
      const root = readRoot(p);
      const long = buildTbsCertList({ issuer: root.subject, issuerSpki: root.spki, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 3651 * 86_400_000), crlNumber: 9, revoked: [] });
      const v = checkContent(POLICY, { tbs: long, digestAlg: 'sha256' });
      assert.equal(!v.allowed && v.reason, 'validity-too-long');
      const open = new Uint8Array(AsnConvert.serialize(new TBSCertList({ version: Version.v2, signature: ecdsaWithSha256(), issuer: root.subject, thisUpdate: new Time(new Date()) })));
      assert.equal(classify(open).detail.structure, 'TBSCertList');
      const w = checkContent(POLICY, { tbs: open, digestAlg: 'sha256' });
      assert.equal(!w.allowed && w.reason, 'malformed-certificate');
      assert.match(!w.allowed ? w.message : '', /nextUpdate/);
    });

    it('the CRL openssl reads: signed by the CA, listing the revoked serial with its reason', async function () {
      const { serial } = await issue();
      await revokeCertificate(p, serial, 'keyCompromise');
      await makeCrl(p, caSigner.sign);
      const text = openssl(['crl', '-in', p.crlPem, '-CAfile', rootFile, '-noout', '-text']).out;
      assert.match(text, /verify OK/);
      assert.match(text, new RegExp(`Serial Number: ${serial.toUpperCase()}\\n[\\s\\S]*?Key Compromise`));
    });
  });

  describe('OCSP responder', function () {
    const log = { warn: () => undefined };
    let clock = Date.now();
    beforeEach(() => (clock = Date.now()));
    const responder = () => new OcspResponder(p, (keyId, tbs) => (assert.equal(keyId, 'ocsp'), responderSigner.sign(tbs)), log, () => clock);

    it('good, revoked with its reason, unknown — verified by openssl against the CA', async function () {
      const r = responder();
      const good = await issue();
      const answer = await r.respond(request(good.file));
      assert.equal(answer.status, OCSPResponseStatus.successful);
      const read = opensslReads(answer.der, good.file);
      assert.match(read, /Response verify OK/);
      assert.match(read, /: good\n/);
      await revokeCertificate(p, good.serial, 'cessationOfOperation');
      const revoked = opensslReads((await r.respond(request(good.file))).der, good.file);
      assert.match(revoked, /: revoked\n[\s\S]*Reason: cessationOfOperation/);
      const unknownReq = join(work, 'unknown.der');
      assert.equal(openssl(['ocsp', '-issuer', rootFile, '-serial', '0x7777', '-no_nonce', '-reqout', unknownReq]).status, 0);
      const unknown = await r.respond(readFileSync(unknownReq));
      const file = join(work, 'unknown-resp.der');
      writeFileSync(file, unknown.der);
      assert.match(openssl(['ocsp', '-respin', file, '-issuer', rootFile, '-serial', '0x7777', '-CAfile', rootFile]).out, /0x7777: unknown/);
    });

    it('200 concurrent queries share one signature; a cached answer lasts until shortly before nextUpdate', async function () {
      const r = responder();
      const { file } = await issue();
      const req = request(file);
      const before = responderSigner.count;
      const answers = await Promise.all(Array.from({ length: 200 }, () => r.respond(req)));
      assert.equal(responderSigner.count - before, 1);
      assert.equal(new Set(answers.map((a) => Buffer.from(a.der).toString('hex'))).size, 1);
      assert.ok(answers.every((a) => a.maxAgeSeconds > 0));
      clock += 50 * 60_000; // 50 of the 60 minutes: still served from the cache
      await r.respond(req);
      assert.equal(responderSigner.count - before, 1);
      clock += 6 * 60_000; // within the last five minutes: signed anew
      await r.respond(req);
      assert.equal(responderSigner.count - before, 2);
    });

    it('echoes a nonce, signing fresh at most NONCE_RESPONSES_PER_SECOND a second, then answers without it', async function () {
      const r = responder();
      const { file } = await issue();
      const reqFile = join(work, 'nonce.der');
      writeFileSync(reqFile, request(file, false));
      const first = await r.respond(readFileSync(reqFile));
      assert.doesNotMatch(opensslReads(first.der, file, reqFile), /WARNING: no nonce|nonce verify error/);
      const before = responderSigner.count;
      for (let k = 0; k < NONCE_RESPONSES_PER_SECOND + 10; k++) await r.respond(request(file, false));
      assert.ok(responderSigner.count - before <= NONCE_RESPONSES_PER_SECOND, `${responderSigner.count - before} signatures for nonces in one second`);
    });

    it('new serials are signed at most FRESH_RESPONSES_PER_SECOND a second, then tryLater (unsigned)', async function () {
      const r = responder();
      const before = responderSigner.count;
      const statuses: OCSPResponseStatus[] = [];
      for (let k = 0; k < FRESH_RESPONSES_PER_SECOND + 5; k++) {
        const file = join(work, `serial-${k}.der`);
        assert.equal(openssl(['ocsp', '-issuer', rootFile, '-serial', `0x${(0x5000 + k).toString(16)}`, '-no_nonce', '-reqout', file]).status, 0);
        statuses.push((await r.respond(readFileSync(file))).status);
      }
      assert.equal(responderSigner.count - before, FRESH_RESPONSES_PER_SECOND);
      assert.deepEqual(statuses.slice(FRESH_RESPONSES_PER_SECOND), new Array(5).fill(OCSPResponseStatus.tryLater));
      clock += 1000; // the next second signs again
      const again = join(work, 'serial-again.der');
      assert.equal(openssl(['ocsp', '-issuer', rootFile, '-serial', '0x6000', '-no_nonce', '-reqout', again]).status, 0);
      assert.equal((await r.respond(readFileSync(again))).status, OCSPResponseStatus.successful);
    });

    it('malformedRequest for junk, unauthorized for another issuer, tryLater (not cached) when signing fails', async function () {
      const r = responder();
      assert.equal((await r.respond(Buffer.from('not ocsp'))).status, OCSPResponseStatus.malformedRequest);
      const other = join(work, 'other-ca.pem');
      const otherKey = join(work, 'other-ca.key');
      assert.equal(openssl(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', otherKey, '-subj', '/CN=other', '-days', '1', '-out', other]).status, 0);
      assert.equal((await r.respond(request(other, true, other))).status, OCSPResponseStatus.unauthorized);
      const { file } = await issue();
      responderSigner.fail = true;
      try {
        assert.equal((await r.respond(request(file))).status, OCSPResponseStatus.tryLater);
      } finally {
        responderSigner.fail = false;
      }
      assert.equal((await r.respond(request(file))).status, OCSPResponseStatus.successful);
    });
  });

  describe('staple check', function () {
    it('accepts a current good or revoked answer; refuses error statuses, unknown, a bad signature, an expired one', async function () {
      const r = new OcspResponder(p, (_k, tbs) => responderSigner.sign(tbs), { warn: () => undefined });
      const { file, serial } = await issue();
      const cert = derOf(file);
      const root = derOf(rootFile);
      const good = (await r.respond(request(file))).der;
      assert.equal(checkStaple(good, cert, root).status, 'good');
      assert.throws(() => checkStaple(errorResponse(OCSPResponseStatus.tryLater), cert, root), (e: Error) => e instanceof StapleError && /tryLater/.test(e.message));
      assert.throws(() => checkStaple(good, cert, root, new Date(Date.now() + 2 * 3600_000)), /expired/);
      const tampered = Buffer.from(good);
      tampered[tampered.indexOf(Buffer.from(serial, 'hex'))]! ^= 0x01; // the serial in the signed ResponseData
      assert.throws(() => checkStaple(tampered, cert, root), /signature does not verify/);
      const other = await issue();
      assert.throws(() => checkStaple(good, derOf(other.file), root), /does not answer for this certificate/);
      // A certificate of this CA's name and key that its database does not know: unknown.
      const rootInfo = readRoot(p);
      const stray = await signCertificate(
        buildTbsCertificate({ serial: randomSerial(), issuer: rootInfo.subject, subject: rootInfo.subject, spki: rootInfo.spki, notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), extensions: [] }),
        caSigner.sign,
      );
      const strayFile = join(work, 'stray.crt');
      writeFileSync(strayFile, pem('CERTIFICATE', stray));
      assert.throws(() => checkStaple(new Uint8Array([0x30, 0x00]), stray, root), StapleError);
      const unknown = (await r.respond(request(strayFile))).der;
      assert.throws(() => checkStaple(unknown, stray, root), /status unknown/);
      await revokeCertificate(p, serial, 'keyCompromise');
      assert.equal(checkStaple((await r.respond(request(file))).der, cert, root).status, 'revoked');
    });
  });
});

function derOf(file: string): Uint8Array {
  return new Uint8Array(Buffer.from(readFileSync(file, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64'));
}

/** The first element of a DER SEQUENCE (the TBS of a signed structure). */
function firstElement(der: Uint8Array): Uint8Array {
  const skip = (pos: number) => (der[pos + 1]! & 0x80 ? 2 + (der[pos + 1]! & 0x7f) : 2);
  const start = skip(0);
  const lenBytes = der[start + 1]! & 0x80 ? der[start + 1]! & 0x7f : 0;
  let len = lenBytes ? 0 : der[start + 1]!;
  for (let k = 0; k < lenBytes; k++) len = len * 256 + der[start + 2 + k]!;
  return der.subarray(start, start + skip(start) + len);
}
