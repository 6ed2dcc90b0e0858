/** ECDSA encodings and verification over the active curve backend (independent of the signers). */
import { p256 } from '@noble/curves/nist.js';
import { add, isIdentity, mul, mulBase, pointX } from './math/curve.js';
import { bytesToBigInt, invert, mod, N, scalarToBytes } from './math/scalar.js';

/** The leftmost 256 bits of a digest as an integer mod n (FIPS 186-5 §6.4.1). */
export function digestToScalar(digest: Uint8Array): bigint {
  return mod(bytesToBigInt(digest.subarray(0, 32)));
}

export function verifyDigest(publicKey: Uint8Array, digest: Uint8Array, r: bigint, s: bigint): boolean {
  if (r <= 0n || r >= N || s <= 0n || s >= N) return false;
  const sInv = invert(s);
  const point = add(mulBase(mod(digestToScalar(digest) * sInv)), mul(publicKey, mod(r * sInv)));
  return !isIdentity(point) && mod(pointX(point)) === r;
}

/** r ‖ s, 32 bytes each (the IEEE P1363 / JOSE form). */
export function rawSignature(r: bigint, s: bigint): Uint8Array {
  const out = new Uint8Array(64);
  out.set(scalarToBytes(r), 0);
  out.set(scalarToBytes(s), 32);
  return out;
}

function derInteger(value: bigint): Uint8Array {
  let bytes = scalarToBytes(value);
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  const pad = bytes[0]! & 0x80 ? 1 : 0;
  const out = new Uint8Array(2 + pad + bytes.length);
  out[0] = 0x02;
  out[1] = pad + bytes.length;
  out.set(bytes, 2 + pad);
  return out;
}

/** DER ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (at most 72 bytes for P-256). */
export function derSignature(r: bigint, s: bigint): Uint8Array {
  const ri = derInteger(r);
  const si = derInteger(s);
  const out = new Uint8Array(2 + ri.length + si.length);
  out[0] = 0x30;
  out[1] = ri.length + si.length;
  out.set(ri, 2);
  out.set(si, 2 + ri.length);
  return out;
}

const SPKI_P256_UNCOMPRESSED_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03,
  0x42, 0x00,
]);

/** DER SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, uncompressed point) for a compressed public key. */
export function publicKeySpki(publicKey: Uint8Array): Uint8Array {
  const uncompressed = p256.Point.fromBytes(publicKey).toBytes(false);
  const out = new Uint8Array(SPKI_P256_UNCOMPRESSED_PREFIX.length + uncompressed.length);
  out.set(SPKI_P256_UNCOMPRESSED_PREFIX, 0);
  out.set(uncompressed, SPKI_P256_UNCOMPRESSED_PREFIX.length);
  return out;
}
