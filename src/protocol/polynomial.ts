/**
 * Shamir/Feldman: random polynomials over Z_n, their public coefficient commitments C_k = a_k·G,
 * share verification against the commitments, and Lagrange coefficients at zero.
 */
import { abort } from './errors.js';
import { add, decodePoint, IDENTITY, mul, mulBase, POINT_BYTES } from './math/curve.js';
import { invert, mod, randomScalar } from './math/scalar.js';
import type { Rng } from './rng.js';

/** Coefficients a_0..a_{degree}; a_0 = `constant` when given (0 for a refresh). */
export function randomPolynomial(degree: number, rng: Rng, constant?: bigint): bigint[] {
  const coefficients = Array.from({ length: degree + 1 }, () => randomScalar(rng));
  if (constant !== undefined) coefficients[0] = constant;
  return coefficients;
}

export function evaluate(coefficients: readonly bigint[], x: number): bigint {
  const bx = BigInt(x);
  let acc = 0n;
  for (let k = coefficients.length - 1; k >= 0; k--) acc = mod(acc * bx + coefficients[k]!);
  return acc;
}

/** Concatenated commitments to the coefficients from index `first` on (1 for zero-constant polynomials). */
export function commitCoefficients(coefficients: readonly bigint[], first = 0): Uint8Array {
  const out = new Uint8Array((coefficients.length - first) * POINT_BYTES);
  for (let k = first; k < coefficients.length; k++) out.set(mulBase(coefficients[k]!), (k - first) * POINT_BYTES);
  return out;
}

/**
 * Decodes a received commitment vector, enforcing exactly `count` valid points: a vector of
 * another length would change the threshold.
 */
export function decodeCommitments(bytes: Uint8Array, count: number, field: string, sender: number): Uint8Array[] {
  if (bytes.length !== count * POINT_BYTES) {
    const got = bytes.length % POINT_BYTES === 0 ? `${bytes.length / POINT_BYTES} coefficients` : `${bytes.length} bytes`;
    abort('wrong-length', `${field}: polynomial has ${got}, expected ${count} coefficients`, sender);
  }
  return Array.from({ length: count }, (_, k) => decodePoint(bytes.subarray(k * POINT_BYTES, (k + 1) * POINT_BYTES), `${field}[${k}]`, sender));
}

/** Σ_k C_k · x^(k + first): the public image of the polynomial at x. */
export function evaluateCommitments(commitments: readonly Uint8Array[], x: number, first = 0): Uint8Array {
  const bx = BigInt(x);
  let power = first === 0 ? 1n : bx;
  let acc = IDENTITY;
  for (const c of commitments) {
    acc = add(acc, mul(c, power));
    power = mod(power * bx);
  }
  return acc;
}

/** Lagrange coefficient of party `i` for interpolation at zero over the index set `subset`. */
export function lagrangeAtZero(i: number, subset: readonly number[]): bigint {
  let num = 1n;
  let den = 1n;
  for (const j of subset) {
    if (j === i) continue;
    num = mod(num * BigInt(j));
    den = mod(den * BigInt(j - i));
  }
  return mod(num * invert(den));
}
