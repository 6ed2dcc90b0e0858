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
  let v = 0n;
  for (const byte of bytes) v = (v << 8n) | BigInt(byte);
  return v;
}

export function scalarToBytes(s: bigint): Uint8Array {
  const out = new Uint8Array(SCALAR_BYTES);
  let v = s;
  for (let i = SCALAR_BYTES - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
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
