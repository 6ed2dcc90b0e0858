/**
 * Pairwise zero-sharing (DKLs23 Functionality 3.4): parties i and j share a seed; for a session,
 * each derives PRF(seed, session context) and i adds it while j subtracts it (i < j), so the
 * contributions of any signing subset sum to zero while each one looks random to outsiders.
 */
import { mod } from './math/scalar.js';
import { Transcript } from './transcript.js';

export function zeroShare(self: number, subset: readonly number[], seeds: ReadonlyMap<number, Uint8Array>, context: Uint8Array, index: number): bigint {
  let acc = 0n;
  for (const peer of subset) {
    if (peer === self) continue;
    const seed = seeds.get(peer);
    if (!seed) throw new Error(`no zero-sharing seed with party ${peer}`);
    const value = new Transcript('zero-share').append('seed', seed).append('context', context).append('index', index).challengeScalar();
    acc = self < peer ? acc + value : acc - value;
  }
  return mod(acc);
}
