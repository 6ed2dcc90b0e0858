/**
 * Schnorr proof of knowledge of a discrete logarithm, non-interactive by Fiat–Shamir.
 * Proof = A ‖ z with A = k·G, e = H(context, X, A), z = k + e·x; verified as z·G = A + e·X.
 */
import { abort } from './errors.js';
import { add, decodePoint, mul, mulBase, pointsEqual, POINT_BYTES } from './math/curve.js';
import { decodeScalar, mod, randomScalar, scalarToBytes, SCALAR_BYTES } from './math/scalar.js';
import type { Rng } from './rng.js';
import { Transcript } from './transcript.js';

export const PROOF_BYTES = POINT_BYTES + SCALAR_BYTES;

function challenge(context: Uint8Array, publicPoint: Uint8Array, nonceCommitment: Uint8Array): bigint {
  return new Transcript('schnorr-pok').append('context', context).append('X', publicPoint).append('A', nonceCommitment).challengeScalar();
}

export function proveDlog(context: Uint8Array, secret: bigint, publicPoint: Uint8Array, rng: Rng): Uint8Array {
  const k = randomScalar(rng);
  const a = mulBase(k);
  const z = mod(k + challenge(context, publicPoint, a) * secret);
  const proof = new Uint8Array(PROOF_BYTES);
  proof.set(a, 0);
  proof.set(scalarToBytes(z), POINT_BYTES);
  return proof;
}

/** Aborts with 'proof-invalid' (or a decoding reason) naming `prover` unless the proof verifies. */
export function verifyDlog(context: Uint8Array, publicPoint: Uint8Array, proof: Uint8Array, prover: number, field: string): void {
  if (proof.length !== PROOF_BYTES) abort('wrong-length', `${field}: expected ${PROOF_BYTES} bytes, got ${proof.length}`, prover);
  const a = decodePoint(proof.subarray(0, POINT_BYTES), `${field}.A`, prover);
  const z = decodeScalar(proof.subarray(POINT_BYTES), `${field}.z`, prover, true);
  const e = challenge(context, publicPoint, a);
  if (!pointsEqual(mulBase(z), add(a, mul(publicPoint, e)))) abort('proof-invalid', `${field}: proof of knowledge does not verify`, prover);
}
