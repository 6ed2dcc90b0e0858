/**
 * The pure CT modules against bytes written out here: SCT and SCT list encodings, SERVERINFOV2,
 * the precertificate edits of an openssl-made certificate (poison in, poison out, SCT list in
 * its place), SCT / tree head verification, and chain validation.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateChain } from '../../src/ct/chain.js';
import { addPoison, embedScts, POISON_OID, PrecertError, SCT_LIST_OID, splitCertificate, tbsWithoutPoison } from '../../src/ct/precert.js';
import { sctServerInfo, sctServerInfoPem } from '../../src/ct/serverinfo.js';
import { decodeSct, decodeSctList, encodeSct, encodeSctList, logIdOf, sctSignatureInput, type Sct } from '../../src/ct/structures.js';
import { TlsDecodeError } from '../../src/ct/tls-encoding.js';
import { sctValid, treeHeadValid } from '../../src/ct/verify.js';
import { derChildren } from '../der.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('CT structures (RFC 6962)', () => {
  const sct: Sct = { logId: Buffer.alloc(32, 0xab), timestamp: 0x0102030405, extensions: new Uint8Array(0), signature: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]) };
  // sct_version 0 ‖ LogID ‖ timestamp u64 ‖ extensions<2> ‖ sha256(4) ecdsa(3) signature<2>.
  const serialized = Buffer.concat([hex('00'), Buffer.alloc(32, 0xab), hex('0000000102030405'), hex('0000'), hex('0403 0005 3003020101')]);

  it('encodes an SCT byte for byte and decodes it back', () => {
    assert.deepEqual(Buffer.from(encodeSct(sct)), serialized);
    const back = decodeSct(serialized);
    assert.equal(back.timestamp, sct.timestamp);
    assert.deepEqual(Buffer.from(back.logId), Buffer.from(sct.logId));
    assert.deepEqual(Buffer.from(back.signature), Buffer.from(sct.signature));
  });

  it('an SCT list is a u16 vector of u16-prefixed SCTs; malformed lists get named errors', () => {
    const list = encodeSctList([sct, sct]);
    const one = serialized.length;
    assert.deepEqual(Buffer.from(list), Buffer.concat([Buffer.from([0, 2 * (one + 2)]), Buffer.from([0, one]), serialized, Buffer.from([0, one]), serialized]));
    assert.equal(decodeSctList(list).length, 2);
    assert.throws(() => decodeSctList(list.subarray(0, list.length - 1)), TlsDecodeError);
    assert.throws(() => decodeSctList(Buffer.concat([list, Buffer.from([0])])), /trailing bytes/);
    assert.throws(() => decodeSctList(hex('0000')), /shorter than 1 bytes/);
    assert.throws(() => decodeSct(Buffer.concat([hex('01'), serialized.subarray(1)])), /not v1/);
    assert.throws(() => decodeSct(Buffer.concat([serialized.subarray(0, 43), hex('0103'), serialized.subarray(45)])), /not \(sha256, ecdsa\)/);
    assert.throws(() => encodeSctList([]), RangeError);
  });

  it('SERVERINFOV2: context 0x1180 (ClientHello, TLS 1.2 ServerHello, TLS 1.3 Certificate), type 18, the list', () => {
    const list = Buffer.from(encodeSctList([sct]));
    assert.deepEqual(Buffer.from(sctServerInfo([sct])), Buffer.concat([hex('00001180 0012'), Buffer.from([list.length >> 8, list.length & 0xff]), list]));
    const pem = sctServerInfoPem([sct]);
    assert.match(pem, /^-----BEGIN SERVERINFOV2 FOR signed_certificate_timestamp-----\n/);
    const body = pem.split('\n').slice(1, -2).join('');
    assert.deepEqual(Buffer.from(body, 'base64'), Buffer.from(sctServerInfo([sct])));
  });

  describe('with an openssl-made CA and certificate', () => {
    let dir: string;
    let caCert: X509Certificate;
    let leafDer: Buffer;
    let tbs: Buffer;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'qk-ct-'));
      const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
      run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=CT test CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE');
      run('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost');
      run('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-days', '2', '-copy_extensions', 'copy', '-outform', 'DER', '-out', 'leaf.der');
      caCert = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
      leafDer = readFileSync(join(dir, 'leaf.der'));
      tbs = derChildren(leafDer)[0]!;
    });

    it('adds the critical poison last and removes it to the same bytes; the SCT list takes its place', () => {
      const precert = Buffer.from(addPoison(tbs));
      // The poison extension: SEQUENCE { OID 1.3.6.1.4.1.11129.2.4.3, BOOLEAN TRUE, OCTET STRING { NULL } }.
      const poison = hex('3013 060a 2b06010401d679020403 0101ff 0402 0500');
      assert.deepEqual(precert.subarray(precert.length - poison.length), poison);
      assert.deepEqual(Buffer.from(tbsWithoutPoison(precert)), tbs);
      assert.throws(() => addPoison(precert), /already has the CT poison/);
      assert.throws(() => tbsWithoutPoison(tbs), /poison extension is missing/);
      assert.throws(() => addPoison(Buffer.concat([tbs, Buffer.from([0])])), PrecertError);
      const final = Buffer.from(embedScts(precert, [sct]));
      assert.ok(!final.includes(poison), 'the poison is gone');
      // SEQUENCE { OID …2.4.2, OCTET STRING { OCTET STRING { the TLS list } } } where the poison was.
      const list = Buffer.from(encodeSctList([sct]));
      assert.deepEqual(final.subarray(final.length - list.length - 18), Buffer.concat([Buffer.from([0x30, list.length + 16, 0x06, 0x0a]), hex('2b06010401d679020402'), Buffer.from([0x04, list.length + 2, 0x04, list.length]), list]));
      assert.equal(POISON_OID, '1.3.6.1.4.1.11129.2.4.3');
      assert.equal(SCT_LIST_OID, '1.3.6.1.4.1.11129.2.4.2');
    });

    it('validates chains: to an accepted root, signed link by link, poison only in add-pre-chain', () => {
      const roots = [caCert];
      const v = validateChain([leafDer], roots, false);
      assert.equal(v.chain.length, 2, 'the accepted root is appended');
      assert.equal(v.issuer.subject, caCert.subject);
      assert.deepEqual(Buffer.from(v.leafTbs), tbs);
      assert.equal(validateChain([leafDer, caCert.raw], roots, false).chain.length, 2);
      assert.throws(() => validateChain([leafDer], [], false), /does not end at an accepted root/);
      assert.throws(() => validateChain([leafDer, leafDer], roots, false), /chain\[1\] .* is not a CA/);
      assert.throws(() => validateChain([leafDer], roots, true), /not a precertificate/);
      assert.throws(() => validateChain([], roots, false), /chain is empty/);
      assert.throws(() => validateChain([Buffer.alloc(20_000)], roots, false), /at most 16384/);
      const tampered = Buffer.from(leafDer);
      tampered[tampered.length - 3]! ^= 1;
      assert.throws(() => validateChain([tampered], roots, false), /does not end at an accepted root|not a DER/);
      assert.equal(splitCertificate(leafDer).precert, false);
    });

    it('sctValid and treeHeadValid check the log id and the signature over the RFC 6962 input', () => {
      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const spki = publicKey.export({ type: 'spki', format: 'der' });
      const entry = { type: 'x509' as const, certificate: leafDer };
      const timestamp = 1_700_000_000_000;
      const signature = sign('sha256', sctSignatureInput(timestamp, entry), { key: privateKey, dsaEncoding: 'der' });
      const good: Sct = { logId: logIdOf(spki), timestamp, extensions: new Uint8Array(0), signature };
      assert.deepEqual(Buffer.from(good.logId), createHash('sha256').update(spki).digest());
      assert.ok(sctValid(good, entry, spki));
      assert.ok(!sctValid({ ...good, timestamp: timestamp + 1 }, entry, spki));
      assert.ok(!sctValid({ ...good, logId: Buffer.alloc(32) }, entry, spki));
      assert.ok(!sctValid(good, { type: 'x509', certificate: caCert.raw }, spki));
      const head = { timestamp, treeSize: 3, rootHash: Buffer.alloc(32, 7) };
      const input = Buffer.concat([hex('0001'), hex('0000018bcfe56800'), hex('0000000000000003'), Buffer.alloc(32, 7)]);
      const headSig = sign('sha256', input, { key: privateKey, dsaEncoding: 'der' });
      assert.ok(treeHeadValid({ ...head, signature: headSig }, spki));
      assert.ok(!treeHeadValid({ ...head, treeSize: 4, signature: headSig }, spki));
    });
  });
});
