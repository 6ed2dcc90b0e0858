/**
 * Secret scalars mod n as 32-byte big-endian buffers, with their arithmetic in the native addon
 * (native/scalar.cc: fixed 4×64-bit limbs, Montgomery multiplication, no branch or
 * index on a value). The protocol keeps its secrets (nonce shares r, masks φ, key shares, the
 * VOLE shares and the presignature's u, v) in these buffers instead of bigints — a bigint can
 * neither be computed on in constant time nor wiped — and wipes them (wipe) when done.
 *
 * Every operation writes into a caller's buffer (`…Into`) or a fresh one; operands are 32·k bytes
 * (k scalars, element-wise) or 32 bytes (the same scalar for every element); an output may be
 * one of its operands. Public operands (a tweak, a digest, a Lagrange coefficient) come in as
 * publicScalar(bigint).
 *
 * The bigint implementation below is the TypeScript reference: used only when the addon is not
 * loaded (QUORUMKEY_NATIVE=0, which a signer refuses) or after useReferenceKernelsForTests(),
 * and tested against the native one (test/native/secret-scalar.test.ts).
 */
import type { Rng } from '../rng.js';
import { loadNative, registerKernel } from './kernels.js';
import { bytesToBigInt, mod, scalarToBytes, SCALAR_BYTES } from './scalar.js';

/** 32 bytes, big-endian, below n. */
export type SecretScalar = Uint8Array;

const WIDE_BYTES = 48;

/** The addon's scalar surface (native/scalar.cc). */
export interface NativeScalar {
  scalarAdd(out: Uint8Array, a: Uint8Array, b: Uint8Array): void;
  scalarSub(out: Uint8Array, a: Uint8Array, b: Uint8Array): void;
  scalarMul(out: Uint8Array, a: Uint8Array, b: Uint8Array): void;
  scalarMulAdd(out: Uint8Array, a: Uint8Array, b: Uint8Array, c: Uint8Array): void;
  scalarFromWide(out: Uint8Array, wide: Uint8Array): void;
}

export interface ScalarKernel extends NativeScalar {
  readonly name: 'native' | 'typescript';
}

// ---------------------------------------------------------------------------------------------
// The reference.

function operand(x: Uint8Array, i: number): bigint {
  const at = x.length === SCALAR_BYTES ? 0 : i * SCALAR_BYTES;
  return mod(bytesToBigInt(x.subarray(at, at + SCALAR_BYTES)));
}

function elementwise(out: Uint8Array, operands: readonly Uint8Array[], f: (x: bigint[]) => bigint): void {
  const k = out.length / SCALAR_BYTES;
  if (!Number.isInteger(k) || k < 1) throw new TypeError('out must be 1 or more scalars of 32 bytes');
  for (const x of operands) if (x.length !== SCALAR_BYTES && x.length !== out.length) throw new TypeError('operand length must be 32 bytes or that of out');
  const results: bigint[] = [];
  for (let i = 0; i < k; i++) results.push(f(operands.map((x) => operand(x, i))));
  results.forEach((r, i) => out.set(scalarToBytes(mod(r)), i * SCALAR_BYTES));
}

/** The TypeScript reference: bigint arithmetic (not constant time; tests only). */
export const typescriptScalarKernel: ScalarKernel = {
  name: 'typescript',
  scalarAdd: (out, a, b) => elementwise(out, [a, b], ([x, y]) => x! + y!),
  scalarSub: (out, a, b) => elementwise(out, [a, b], ([x, y]) => x! - y!),
  scalarMul: (out, a, b) => elementwise(out, [a, b], ([x, y]) => x! * y!),
  scalarMulAdd: (out, a, b, c) => elementwise(out, [a, b, c], ([x, y, z]) => x! * y! + z!),
  scalarFromWide(out, wide) {
    const k = out.length / SCALAR_BYTES;
    if (!Number.isInteger(k) || k < 1 || wide.length !== k * WIDE_BYTES) throw new TypeError('scalarFromWide: out must be 32·k bytes and wide 48·k bytes');
    for (let i = 0; i < k; i++) out.set(scalarToBytes(mod(bytesToBigInt(wide.subarray(i * WIDE_BYTES, (i + 1) * WIDE_BYTES)))), i * SCALAR_BYTES);
  },
};

export function nativeScalarKernel(addon: NativeScalar): ScalarKernel {
  const { scalarAdd, scalarSub, scalarMul, scalarMulAdd, scalarFromWide } = addon;
  return { name: 'native', scalarAdd, scalarSub, scalarMul, scalarMulAdd, scalarFromWide };
}

const addon = loadNative<NativeScalar>();
const nativeKernel = addon ? nativeScalarKernel(addon) : undefined;
let active: ScalarKernel = nativeKernel ?? typescriptScalarKernel;

export function scalarKernel(): ScalarKernel {
  return active;
}
export function nativeScalarBackend(): ScalarKernel | undefined {
  return nativeKernel;
}
registerKernel({ name: 'secret-scalar', active: () => active.name, useReference: () => (active = typescriptScalarKernel) });

// ---------------------------------------------------------------------------------------------
// The API.

/** A public value as a 32-byte operand (reduced mod n). */
export function publicScalar(x: bigint): Uint8Array {
  return scalarToBytes(mod(x));
}

/**
 * A secret held as a bigint elsewhere (a key share from keyshare.ts, a zero share) as a
 * buffer. The bigint itself cannot be wiped: prefer buffers end to end where the source allows.
 */
export function secretFromBigInt(x: bigint): SecretScalar {
  return scalarToBytes(mod(x));
}

export const addInto = (out: Uint8Array, a: Uint8Array, b: Uint8Array): Uint8Array => (active.scalarAdd(out, a, b), out);
export const subInto = (out: Uint8Array, a: Uint8Array, b: Uint8Array): Uint8Array => (active.scalarSub(out, a, b), out);
export const mulInto = (out: Uint8Array, a: Uint8Array, b: Uint8Array): Uint8Array => (active.scalarMul(out, a, b), out);
export const mulAddInto = (out: Uint8Array, a: Uint8Array, b: Uint8Array, c: Uint8Array): Uint8Array => (active.scalarMulAdd(out, a, b, c), out);

const outFor = (...xs: Uint8Array[]): Uint8Array => new Uint8Array(Math.max(...xs.map((x) => x.length)));
export const add = (a: Uint8Array, b: Uint8Array): Uint8Array => addInto(outFor(a, b), a, b);
export const sub = (a: Uint8Array, b: Uint8Array): Uint8Array => subInto(outFor(a, b), a, b);
export const mul = (a: Uint8Array, b: Uint8Array): Uint8Array => mulInto(outFor(a, b), a, b);
export const mulAdd = (a: Uint8Array, b: Uint8Array, c: Uint8Array): Uint8Array => mulAddInto(outFor(a, b, c), a, b, c);

/** BigInt(wide[48i, 48i + 48)) mod n for each i, exactly as scalar.ts reduceWide. */
export function fromWide(wide: Uint8Array): SecretScalar {
  const out = new Uint8Array((wide.length / WIDE_BYTES) * SCALAR_BYTES);
  active.scalarFromWide(out, wide);
  return out;
}

/** 1 if x is all zero, else 0, without a branch on the bytes. */
export function isZero(x: Uint8Array): number {
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc |= x[i]!;
  return ((acc - 1) >>> 31) & 1;
}

/**
 * A uniformly random secret scalar in [1, n): 48 bytes of `rng` reduced mod n (bias < 2^-128),
 * drawn again in the (probability 2^-256) case of zero. The same values, from the same rng
 * bytes, as scalar.ts randomScalar.
 */
export function randomSecret(rng: Rng): SecretScalar {
  for (;;) {
    const wide = rng(WIDE_BYTES);
    const s = fromWide(wide);
    wide.fill(0);
    if (!isZero(s)) return s;
  }
}

/** Wipes buffers of secrets. */
export function wipe(...xs: (Uint8Array | undefined)[]): void {
  for (const x of xs) x?.fill(0);
}

/** The TESTS-ONLY view of a secret as a bigint (for comparisons with the reference). */
export function secretToBigIntForTests(x: SecretScalar): bigint {
  return bytesToBigInt(x);
}
