/**
 * The native RFC 9380 hash-to-curve (native/hash-to-curve.cc, P256_XMD:SHA-256_SSWU_RO_) against
 * the RFC's test vectors (Appendix J.1.1) and @noble/curves on random messages and tags.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { p256_hasher } from '@noble/curves/nist.js';
import { seededRng } from '../../src/protocol/rng.js';

interface NativeHashToCurve {
  p256HashToCurve(msg: Uint8Array, dst: Uint8Array): Uint8Array;
}

const enc = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const RFC_DST = enc.encode('QUUX-V01-CS02-with-P256_XMD:SHA-256_SSWU_RO_');

describe('native hash-to-curve (RFC 9380, P-256)', function () {
  this.timeout(120_000);
  const addon = createRequire(import.meta.url)('../../../build/Release/quorumkey_native.node') as NativeHashToCurve;

  it('gives the RFC 9380 J.1.1 points', () => {
    const vectors: [string, string, string][] = [
      ['', '2c15230b26dbc6fc9a37051158c95b79656e17a1a920b11394ca91c44247d3e4', '8a7a74985cc5c776cdfe4b1f19884970453912e9d31528c060be9ab5c43e8415'],
      ['abc', '0bb8b87485551aa43ed54f009230450b492fead5f1cc91658775dac4a3388a0f', '5c41b3d0731a27a7b14bc0bf0ccded2d8751f83493404c84a88e71ffd424212e'],
    ];
    for (const [msg, x, y] of vectors) {
      const prefix = (parseInt(y.slice(-1), 16) & 1) === 1 ? '03' : '02';
      assert.equal(hex(addon.p256HashToCurve(enc.encode(msg), RFC_DST)), prefix + x, `msg "${msg}"`);
    }
  });

  it('equals @noble/curves on random messages and tags of every length class', () => {
    const rng = seededRng('hash-to-curve');
    for (let i = 0; i < 200; i++) {
      const msg = rng(i % 3 === 0 ? i : i % 70);
      const dst = rng(1 + ((i * 7) % 255));
      assert.equal(hex(addon.p256HashToCurve(msg, dst)), hex(p256_hasher.hashToCurve(msg, { DST: dst }).toBytes(true)), `case ${i}`);
    }
  });

  it('throws TypeError for a tag of 0 or more than 255 bytes and for non-bytes', () => {
    assert.throws(() => addon.p256HashToCurve(new Uint8Array(1), new Uint8Array(0)), TypeError);
    assert.throws(() => addon.p256HashToCurve(new Uint8Array(1), new Uint8Array(256)), TypeError);
    assert.throws(() => (addon.p256HashToCurve as (...a: unknown[]) => unknown)('abc', RFC_DST), TypeError);
    assert.equal(addon.p256HashToCurve(new Uint8Array(0), new Uint8Array(255)).length, 33);
  });
});
