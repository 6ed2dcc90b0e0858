import { abort } from '../errors.js';
import type { Rng } from '../rng.js';

/** Order of the P-256 group. */
export const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
export const SCALAR_BYTES = 32;

export function mod(a: bigint): bigint {
  const r = a % N;
  return r < 0n ? r + N : r;
}

/** Modular inverse by Fermat; the caller guarantees a ≠ 0 mod N. */
export function invert(a: bigint): bigint {
  return modPow(mod(a), N - 2n);
}

function modPow(base: bigint, exp: bigint): bigint {
  let result = 1n;
  let b = base;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % N;
    b = (b * b) % N;
    e >>= 1n;
  }
  return result;
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  // Hex is V8's fastest path from bytes to BigInt (per-byte shifting allocates a BigInt per step).
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex'));
}

export function scalarToBytes(s: bigint): Uint8Array {
  if (s < 0n || s >= 1n << 256n) throw new RangeError('scalar does not fit in 32 bytes');
  return new Uint8Array(Buffer.from(s.toString(16).padStart(2 * SCALAR_BYTES, '0'), 'hex'));
}

/**
 * Reduces a uniformly random byte string of at least 48 bytes to a scalar; the bias is below
 * 2^-128 (the FIPS 186-5 A.2.1 method).
 */
export function reduceWide(bytes: Uint8Array): bigint {
  if (bytes.length < 48) throw new Error('reduceWide needs at least 48 bytes');
  return mod(bytesToBigInt(bytes));
}

/** A uniformly random scalar in [1, N). */
export function randomScalar(rng: Rng): bigint {
  for (;;) {
    const s = reduceWide(rng(48));
    if (s !== 0n) return s;
  }
}

/**
 * Decodes a received 32-byte big-endian scalar, rejecting wrong lengths and values ≥ N
 * (and zero unless allowed). `field` and `sender` only name the input in the error.
 */
export function decodeScalar(bytes: Uint8Array, field: string, sender: number, allowZero = false): bigint {
  if (bytes.length !== SCALAR_BYTES) abort('wrong-length', `${field}: expected ${SCALAR_BYTES} bytes, got ${bytes.length}`, sender);
  const s = bytesToBigInt(bytes);
  if (s >= N) abort('invalid-scalar', `${field}: scalar not below the group order`, sender);
  if (s === 0n && !allowZero) abort('invalid-scalar', `${field}: scalar is zero`, sender);
  return s;
}
