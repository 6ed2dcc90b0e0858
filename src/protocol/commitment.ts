/** Hash commitments: Com(value) = H(domain, context, salt, value) with a fresh 32-byte salt. */
import type { Rng } from './rng.js';
import { taggedHash } from './transcript.js';
import { pointsEqual } from './math/curve.js';

export const COMMITMENT_BYTES = 32;
export const SALT_BYTES = 32;

export interface Commitment {
  commitment: Uint8Array;
  salt: Uint8Array;
}

/** `context` binds the commitment to its session and committer so it cannot be replayed elsewhere. */
export function commit(context: Uint8Array, value: Uint8Array, rng: Rng): Commitment {
  const salt = rng(SALT_BYTES);
  return { commitment: commitmentOf(context, value, salt), salt };
}

export function commitmentOf(context: Uint8Array, value: Uint8Array, salt: Uint8Array): Uint8Array {
  return taggedHash('commitment', [
    ['context', context],
    ['salt', salt],
    ['value', value],
  ]);
}

export function opens(commitment: Uint8Array, context: Uint8Array, value: Uint8Array, salt: Uint8Array): boolean {
  return salt.length === SALT_BYTES && pointsEqual(commitment, commitmentOf(context, value, salt));
}
