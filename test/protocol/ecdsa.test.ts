/**
 * src/protocol/ecdsa.ts against OpenSSL (node:crypto): signature encodings (DER and IEEE P1363),
 * verification, digest truncation and the SubjectPublicKeyInfo of a compressed public key.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { derSignature, digestToScalar, publicKeySpki, rawSignature, verifyDigest } from '../../src/protocol/ecdsa.js';
import { mulBase } from '../../src/protocol/math/curve.js';
import { bytesToBigInt, mod, N, randomScalar } from '../../src/protocol/math/scalar.js';
import { seededRng } from '../../src/protocol/rng.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const big = (b: Uint8Array): bigint => (b.length === 0 ? 0n : BigInt('0x' + hex(b)));
const TWO_248 = 1n << 248n;
const TWO_255 = 1n << 255n;

/** Independent strict DER decoder for ECDSA-Sig-Value (short-form lengths only, as P-256 needs). */
function parseDer(der: Uint8Array): { r: bigint; s: bigint } {
  assert.equal(der[0], 0x30, 'SEQUENCE');
  assert.equal(der[1], der.length - 2, 'SEQUENCE length');
  let at = 2;
  const ints: bigint[] = [];
  for (let k = 0; k < 2; k++) {
    assert.equal(der[at], 0x02, 'INTEGER');
    const len = der[at + 1]!;
    const body = der.subarray(at + 2, at + 2 + len);
    assert.ok(len >= 1 && len <= 33);
    assert.equal(body[0]! & 0x80, 0, 'positive');
    if (len > 1) assert.ok(body[0] !== 0 || (body[1]! & 0x80) !== 0, 'minimal');
    ints.push(big(body));
    at += 2 + len;
  }
  assert.equal(at, der.length, 'no trailing bytes');
  return { r: ints[0]!, s: ints[1]! };
}

function compressedPublicKey(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  const y = Buffer.from(jwk.y!, 'base64url');
  return new Uint8Array(Buffer.concat([Buffer.of(2 + (y[31]! & 1)), x]));
}

function sha(alg: string, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(alg).update(data).digest());
}

const nodeVerifyRaw = (alg: string, msg: Uint8Array, key: KeyObject, sig: Uint8Array) => verify(alg, msg, { key, dsaEncoding: 'ieee-p1363' }, sig);
const nodeVerifyDer = (alg: string, msg: Uint8Array, key: KeyObject, sig: Uint8Array) => verify(alg, msg, { key, dsaEncoding: 'der' }, sig);

describe('ecdsa: encodings against node:crypto', function () {
  this.timeout(20000);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

  it('derSignature re-encodes 200+ OpenSSL DER signatures byte for byte (incl. high-bit and leading-zero r and s)', () => {
    const seen = { rHigh: 0, sHigh: 0, rShort: 0, sShort: 0 };
    const kept: { msg: Uint8Array; der: Uint8Array }[] = [];
    for (let i = 0; i < 20000; i++) {
      const done = kept.length >= 200 && seen.rHigh && seen.sHigh && seen.rShort && seen.sShort;
      if (done) break;
      const msg = new Uint8Array(randomBytes(16));
      const der = new Uint8Array(sign('sha256', msg, { key: privateKey, dsaEncoding: 'der' }));
      const { r, s } = parseDer(der);
      const interesting = (r >= TWO_255 && !seen.rHigh) || (s >= TWO_255 && !seen.sHigh) || (r < TWO_248 && !seen.rShort) || (s < TWO_248 && !seen.sShort);
      if (r >= TWO_255) seen.rHigh++;
      if (s >= TWO_255) seen.sHigh++;
      if (r < TWO_248) seen.rShort++;
      if (s < TWO_248) seen.sShort++;
      if (kept.length < 200 || interesting) kept.push({ msg, der });
    }
    assert.ok(seen.rHigh && seen.sHigh && seen.rShort && seen.sShort, `coverage ${JSON.stringify(seen)}`);
    const pub = compressedPublicKey(publicKey);
    for (const { msg, der } of kept) {
      const { r, s } = parseDer(der);
      assert.equal(hex(derSignature(r, s)), hex(der));
      assert.ok(derSignature(r, s).length <= 72);
      const raw = rawSignature(r, s);
      assert.equal(raw.length, 64);
      assert.ok(nodeVerifyRaw('sha256', msg, publicKey, raw), 'raw form verifies in OpenSSL');
      assert.equal(verifyDigest(pub, sha('sha256', msg), r, s), true);
    }
  });

  it('rawSignature re-encodes 200 OpenSSL IEEE P1363 signatures byte for byte', () => {
    for (let i = 0; i < 200; i++) {
      const msg = new Uint8Array(randomBytes(16));
      const raw = new Uint8Array(sign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
      assert.equal(raw.length, 64);
      const r = big(raw.subarray(0, 32));
      const s = big(raw.subarray(32));
      assert.equal(hex(rawSignature(r, s)), hex(raw));
      assert.ok(nodeVerifyDer('sha256', msg, publicKey, derSignature(r, s)), 'DER form verifies in OpenSSL');
    }
  });

  it('DER known answers: minimal integers, 0x00 pad before a high bit, 72-byte maximum', () => {
    assert.equal(hex(derSignature(1n, 1n)), '3006020101020101');
    assert.equal(hex(derSignature(0x7fn, 0x80n)), '300702017f02020080');
    assert.equal(hex(derSignature(0x0100n, 0xffn)), '3008' + '02020100' + '020200ff');
    const maxR = N - 1n;
    const der = derSignature(maxR, TWO_255);
    assert.equal(der.length, 72);
    assert.equal(hex(der), '3046' + '022100' + 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550' + '022100' + '80' + '00'.repeat(31));
    // 2^248 − 1: 31 bytes of 0xff, so a pad byte but no leading zero of the 32-byte form.
    assert.equal(hex(derSignature(TWO_248 - 1n, 1n)), '3025' + '022000' + 'ff'.repeat(31) + '020101');
    assert.deepEqual(parseDer(derSignature(TWO_248 - 1n, 5n)), { r: TWO_248 - 1n, s: 5n });
  });

  it('raw known answer: r ‖ s, 32 bytes each, big-endian with leading zeros', () => {
    assert.equal(hex(rawSignature(1n, 0x0203n)), '00'.repeat(31) + '01' + '00'.repeat(30) + '0203');
  });
});

describe('ecdsa: verifyDigest against node:crypto', function () {
  this.timeout(20000);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pub = compressedPublicKey(publicKey);
  const samples = Array.from({ length: 20 }, () => {
    const msg = new Uint8Array(randomBytes(32));
    const raw = new Uint8Array(sign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
    return { msg, digest: sha('sha256', msg), r: big(raw.subarray(0, 32)), s: big(raw.subarray(32)) };
  });

  /** Our verdict must equal OpenSSL's on the same (r, s) whenever both are encodable. */
  function agree(msg: Uint8Array, digest: Uint8Array, r: bigint, s: bigint): boolean {
    const ours = verifyDigest(pub, digest, r, s);
    if (r < 1n << 256n && s < 1n << 256n && r >= 0n && s >= 0n) assert.equal(nodeVerifyRaw('sha256', msg, publicKey, rawSignature(r, s)), ours, `r ${r}, s ${s}`);
    return ours;
  }

  it('accepts valid signatures, and the (r, N − s) twin like OpenSSL does', () => {
    for (const { msg, digest, r, s } of samples) {
      assert.equal(agree(msg, digest, r, s), true);
      assert.equal(agree(msg, digest, r, N - s), true);
    }
  });

  it('rejects a modified r, s or digest', () => {
    for (const { msg, digest, r, s } of samples) {
      assert.equal(agree(msg, digest, mod(r + 1n), s), false);
      assert.equal(agree(msg, digest, r, mod(s + 1n)), false);
      assert.equal(agree(msg, digest, s, r), false);
      const other = digest.slice();
      other[0]! ^= 1;
      assert.equal(verifyDigest(pub, other, r, s), false);
      const otherLast = digest.slice();
      otherLast[31]! ^= 0x80;
      assert.equal(verifyDigest(pub, otherLast, r, s), false);
    }
  });

  it('rejects r = 0, s = 0, r ≥ N, s ≥ N (including r + N and s + N, which reduce to the valid values)', () => {
    for (const { msg, digest, r, s } of samples) {
      assert.equal(agree(msg, digest, 0n, s), false);
      assert.equal(agree(msg, digest, r, 0n), false);
      assert.equal(agree(msg, digest, N, s), false);
      assert.equal(agree(msg, digest, r, N), false);
      assert.equal(verifyDigest(pub, digest, r + N, s), false);
      assert.equal(verifyDigest(pub, digest, r, s + N), false);
      assert.equal(verifyDigest(pub, digest, -r, s), false);
      assert.equal(verifyDigest(pub, digest, r, -s), false);
    }
  });

  it('rejects a signature under another public key', () => {
    const other = mulBase(randomScalar(seededRng('ecdsa/other-key')));
    for (const { digest, r, s } of samples.slice(0, 5)) assert.equal(verifyDigest(other, digest, r, s), false);
  });

  it('verifies signatures over SHA-384 and SHA-512 digests (truncated to 256 bits) like OpenSSL', () => {
    for (const alg of ['sha384', 'sha512']) {
      for (let i = 0; i < 5; i++) {
        const msg = new Uint8Array(randomBytes(40));
        const raw = new Uint8Array(sign(alg, msg, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
        const r = big(raw.subarray(0, 32));
        const s = big(raw.subarray(32));
        const digest = sha(alg, msg);
        assert.equal(verifyDigest(pub, digest, r, s), true, alg);
        assert.equal(verifyDigest(pub, digest.subarray(0, 32), r, s), true, `${alg}: only the leftmost 32 bytes count`);
        const tail = digest.slice();
        tail[tail.length - 1]! ^= 1;
        assert.equal(verifyDigest(pub, tail, r, s), true, `${alg}: bytes beyond 32 are ignored`);
      }
    }
  });
});

describe('ecdsa: digestToScalar', () => {
  it('takes the leftmost 256 bits of a 48- or 64-byte digest', () => {
    for (const len of [48, 64]) {
      const d = new Uint8Array(randomBytes(len));
      assert.equal(digestToScalar(d), big(d.subarray(0, 32)) % N);
      const e = d.slice();
      e[len - 1]! ^= 0xff;
      assert.equal(digestToScalar(e), digestToScalar(d), 'trailing bytes do not matter');
      const f = d.slice();
      f[31]! ^= 1;
      assert.notEqual(digestToScalar(f), digestToScalar(d), 'byte 31 does');
    }
  });

  it('reduces a 32-byte digest mod N', () => {
    assert.equal(digestToScalar(new Uint8Array(32).fill(0xff)), ((1n << 256n) - 1n) % N);
    assert.equal(digestToScalar(new Uint8Array(Buffer.from(N.toString(16), 'hex'))), 0n);
    assert.equal(digestToScalar(new Uint8Array(Buffer.from((N + 5n).toString(16), 'hex'))), 5n);
    const d = new Uint8Array(randomBytes(32));
    assert.equal(digestToScalar(d), big(d) % N);
  });

  it('takes a shorter digest (SHA-1, 20 bytes) whole, as FIPS 186-5 does', () => {
    const d = new Uint8Array(randomBytes(20));
    assert.equal(digestToScalar(d), bytesToBigInt(d));
  });
});

describe('ecdsa: publicKeySpki', () => {
  it('equals the SPKI OpenSSL exports for the same key', () => {
    for (let i = 0; i < 10; i++) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      assert.equal(hex(publicKeySpki(compressedPublicKey(publicKey))), hex(spki));
    }
  });

  it('imports with createPublicKey and round-trips to the same point (both y parities)', () => {
    const rng = seededRng('ecdsa/spki');
    const parities = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const point = mulBase(randomScalar(rng));
      parities.add(point[0]!);
      const spki = publicKeySpki(point);
      assert.equal(spki.length, 91);
      const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      assert.equal(key.asymmetricKeyType, 'ec');
      assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      assert.equal(hex(compressedPublicKey(key)), hex(point));
      assert.equal(hex(new Uint8Array(key.export({ type: 'spki', format: 'der' }))), hex(spki));
    }
    assert.deepEqual([...parities].sort(), [2, 3]);
  });

  it('a key imported from our SPKI verifies OpenSSL signatures of the original key', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const imported = createPublicKey({ key: Buffer.from(publicKeySpki(compressedPublicKey(publicKey))), format: 'der', type: 'spki' });
    const msg = new Uint8Array(randomBytes(50));
    assert.ok(verify('sha256', msg, imported, sign('sha256', msg, privateKey)));
  });

  it('rejects an invalid compressed point', () => {
    // @noble/curves refuses both while decoding the point.
    assert.throws(() => publicKeySpki(new Uint8Array(33)), /^Error: bad point/);
    assert.throws(() => publicKeySpki(new Uint8Array(32).fill(2)), /^Error: bad point: got length 32/);
  });
});
