/** src/protocol/zero-sharing.ts: pairwise-seeded additive sharings of zero (DKLs23 Functionality 3.4). */
import assert from 'node:assert/strict';
import { mod, N } from '../../src/protocol/math/scalar.js';
import { seededRng } from '../../src/protocol/rng.js';
import { Transcript } from '../../src/protocol/transcript.js';
import { zeroShare } from '../../src/protocol/zero-sharing.js';
import { subsets } from './harness.js';

const PARTIES = 8;

/** Symmetric pairwise seeds: seeds.get(i).get(j) === seeds.get(j).get(i). */
function pairwiseSeeds(n: number, label: string): Map<number, Map<number, Uint8Array>> {
  const rng = seededRng(label);
  const out = new Map<number, Map<number, Uint8Array>>();
  for (let i = 1; i <= n; i++) out.set(i, new Map());
  for (let i = 1; i <= n; i++) {
    for (let j = i + 1; j <= n; j++) {
      const seed = rng(32);
      out.get(i)!.set(j, seed);
      out.get(j)!.set(i, seed);
    }
  }
  return out;
}

describe('zero-sharing', () => {
  const seeds = pairwiseSeeds(PARTIES, 'zero-sharing/seeds');
  const sid = seededRng('zero-sharing/session')(32);

  it('Σ zeroShare = 0 mod N for every subset of size 2..6 of 8 parties', () => {
    let checked = 0;
    for (let size = 2; size <= 6; size++) {
      for (const subset of subsets(PARTIES, size)) {
        for (const index of [0, 3]) {
          const shares = subset.map((i) => zeroShare(i, subset, seeds.get(i)!, sid, index));
          assert.equal(mod(shares.reduce((a, b) => a + b, 0n)), 0n, `subset ${subset}, index ${index}`);
          for (const s of shares) assert.ok(s > 0n && s < N, `share in (0, N) for subset ${subset}`);
          checked++;
        }
      }
    }
    assert.equal(checked, 2 * (28 + 56 + 70 + 56 + 28));
  });

  it('the order in which the subset is listed does not matter', () => {
    const subset = [7, 2, 5, 1];
    const sorted = [1, 2, 5, 7];
    for (const i of subset) assert.equal(zeroShare(i, subset, seeds.get(i)!, sid, 0), zeroShare(i, sorted, seeds.get(i)!, sid, 0));
  });

  it('matches the documented construction: Σ_{j>i} PRF(seed_ij) − Σ_{j<i} PRF(seed_ij)', () => {
    const prf = (seed: Uint8Array, index: number): bigint => new Transcript('zero-share').append('seed', seed).append('context', sid).append('index', index).challengeScalar();
    const subset = [2, 4, 5, 8];
    const self = 5;
    const expected = mod(prf(seeds.get(5)!.get(8)!, 1) - prf(seeds.get(5)!.get(2)!, 1) - prf(seeds.get(5)!.get(4)!, 1));
    assert.equal(zeroShare(self, subset, seeds.get(self)!, sid, 1), expected);
  });

  it('a subset of self alone gives zero', () => {
    assert.equal(zeroShare(3, [3], seeds.get(3)!, sid, 0), 0n);
  });

  it('shares are nonzero and differ across parties, session ids and indices', () => {
    const subset = [1, 3, 4, 6, 8];
    const otherSid = seededRng('zero-sharing/session-2')(32);
    const seen = new Set<bigint>();
    for (const s of [sid, otherSid]) {
      for (let index = 0; index < 8; index++) {
        for (const i of subset) {
          const share = zeroShare(i, subset, seeds.get(i)!, s, index);
          assert.notEqual(share, 0n);
          seen.add(share);
        }
      }
    }
    assert.equal(seen.size, 2 * 8 * subset.length, 'every (session, index, party) share is distinct');
  });

  it('shares change when a seed changes (they depend on every pairwise seed)', () => {
    const subset = [1, 2, 3];
    const before = zeroShare(1, subset, seeds.get(1)!, sid, 0);
    const changed = new Map(seeds.get(1)!);
    const seed = changed.get(3)!.slice();
    seed[0]! ^= 1;
    changed.set(3, seed);
    assert.notEqual(zeroShare(1, subset, changed, sid, 0), before);
  });

  it('a missing seed throws, naming the peer', () => {
    const partial = new Map(seeds.get(2)!);
    partial.delete(6);
    assert.throws(() => zeroShare(2, [1, 2, 6], partial, sid, 0), /party 6/);
    // A peer outside the key's parties has no seed either.
    assert.throws(() => zeroShare(2, [2, 9], seeds.get(2)!, sid, 0), /party 9/);
    // Seeds of peers outside the subset are not needed.
    assert.doesNotThrow(() => zeroShare(2, [1, 2], partial, sid, 0));
  });
});
