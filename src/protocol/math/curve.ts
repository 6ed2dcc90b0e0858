/**
 * P-256 group operations on 33-byte SEC1 compressed points. Two interchangeable backends:
 * the reference in TypeScript (@noble/curves) and the native addon (OpenSSL libcrypto), used
 * when it is built. The identity, which the wire never carries, is 33 zero bytes internally.
 *
 * Scalars are bigints (public values) or 32-byte big-endian buffers (secrets, see
 * secret-scalar.ts): the native backend hands a buffer to OpenSSL's constant-time EC_POINT_mul
 * as it is, without a detour through a JS BigInt; the noble reference converts.
 */
import { p256 } from '@noble/curves/nist.js';
import { abort } from '../errors.js';
import { loadNative, registerKernel } from './kernels.js';
import { bytesToBigInt, mod, scalarToBytes } from './scalar.js';

/** A scalar: a bigint, or 32 bytes big-endian (reduced mod n). */
export type ScalarInput = bigint | Uint8Array;

export const POINT_BYTES = 33;
export const IDENTITY: Uint8Array = new Uint8Array(POINT_BYTES);

export interface CurveBackend {
  readonly name: 'noble' | 'native';
  mulBase(k: ScalarInput): Uint8Array;
  mul(point: Uint8Array, k: ScalarInput): Uint8Array;
  add(a: Uint8Array, b: Uint8Array): Uint8Array;
  /** True for a canonical compressed encoding of a point on the curve other than the identity. */
  isValid(point: Uint8Array): boolean;
}

const Point = p256.Point;

function toNoble(bytes: Uint8Array) {
  return isIdentity(bytes) ? Point.ZERO : Point.fromBytes(bytes);
}
function fromNoble(p: InstanceType<typeof Point>): Uint8Array {
  return p.is0() ? IDENTITY.slice() : p.toBytes(true);
}

const asBigInt = (k: ScalarInput): bigint => (typeof k === 'bigint' ? k : mod(bytesToBigInt(k)));
const asBytes = (k: ScalarInput): Uint8Array => (typeof k === 'bigint' ? scalarToBytes(k) : k);

export const nobleBackend: CurveBackend = {
  name: 'noble',
  mulBase(k) {
    const s = asBigInt(k);
    return s === 0n ? IDENTITY.slice() : fromNoble(Point.BASE.multiply(s));
  },
  mul(point, k) {
    const s = asBigInt(k);
    return s === 0n ? IDENTITY.slice() : fromNoble(toNoble(point).multiply(s));
  },
  add: (a, b) => fromNoble(toNoble(a).add(toNoble(b))),
  isValid(point) {
    if (point.length !== POINT_BYTES || (point[0] !== 2 && point[0] !== 3)) return false;
    try {
      Point.fromBytes(point).assertValidity();
      return true;
    } catch {
      return false;
    }
  },
};

/** The native addon's P-256 surface (native/curve.cc). */
export interface NativeCurve {
  p256MulBase(k: Uint8Array): Uint8Array;
  p256Mul(point: Uint8Array, k: Uint8Array): Uint8Array;
  p256Add(a: Uint8Array, b: Uint8Array): Uint8Array;
  p256IsValid(point: Uint8Array): boolean;
}

export function nativeBackend(addon: NativeCurve): CurveBackend {
  return {
    name: 'native',
    mulBase: (k) => addon.p256MulBase(asBytes(k)),
    mul: (point, k) => addon.p256Mul(point, asBytes(k)),
    add: (a, b) => addon.p256Add(a, b),
    isValid: (point) => point.length === POINT_BYTES && addon.p256IsValid(point),
  };
}

const addon = loadNative<NativeCurve>();
let active: CurveBackend = addon ? nativeBackend(addon) : nobleBackend;

export function curveBackend(): CurveBackend {
  return active;
}
/** Switches the backend (tests compare both; benchmarks measure both). */
export function useCurveBackend(backend: CurveBackend): void {
  active = backend;
}
export function nativeCurveBackend(): CurveBackend | undefined {
  return addon ? nativeBackend(addon) : undefined;
}
registerKernel({ name: 'p256', active: () => active.name, useReference: () => (active = nobleBackend) });

export const mulBase = (k: ScalarInput): Uint8Array => active.mulBase(k);
export const mul = (point: Uint8Array, k: ScalarInput): Uint8Array => active.mul(point, k);
export const add = (a: Uint8Array, b: Uint8Array): Uint8Array => active.add(a, b);

export function isIdentity(point: Uint8Array): boolean {
  return point.length === POINT_BYTES && point.every((b) => b === 0);
}

export function pointsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Validates a received point: exact length, on the curve, not the identity. */
export function decodePoint(bytes: Uint8Array, field: string, sender: number): Uint8Array {
  if (bytes.length !== POINT_BYTES) abort('wrong-length', `${field}: expected ${POINT_BYTES}-byte point, got ${bytes.length}`, sender);
  if (isIdentity(bytes)) abort('invalid-point', `${field}: point is the identity`, sender);
  if (!active.isValid(bytes)) abort('invalid-point', `${field}: not a point on P-256`, sender);
  return bytes;
}

/** Affine x coordinate of a point, as an integer (for the ECDSA r value). */
export function pointX(point: Uint8Array): bigint {
  return bytesToBigInt(point.subarray(1, POINT_BYTES));
}
