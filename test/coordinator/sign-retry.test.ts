/**
 * Which subset the sign path retries on after a failure without a named culprit (an invalid
 * combined signature, a signer's error answer): src/coordinator/sign.ts preferredSubsets.
 */
import { strict as assert } from 'node:assert';
import { preferredSubsets, primeSuspects } from '../../src/coordinator/sign.js';
import { subsetsOf } from '../../src/coordinator/pools.js';

const label = (s: readonly number[]) => s.join(',');

/** Deterministic shuffle (xorshift32). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let x = seed | 1;
  for (let k = out.length - 1; k > 0; k--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (k + 1);
    [out[k], out[j]] = [out[j]!, out[k]!];
  }
  return out;
}

/**
 * The retry loop of SignService.signDigest in miniature: each attempt takes the first preferred
 * subset not tried yet (in `ranking` order); a subset fails when it contains a bad signer.
 */
function attempts(ranking: readonly number[][], bad: ReadonlySet<number>, max: number): number[][] {
  const tried: number[][] = [];
  const failed: number[][] = [];
  for (let n = 0; n < max; n++) {
    const left = ranking.filter((s) => !tried.some((t) => label(t) === label(s)));
    const next = preferredSubsets(left, failed)[0];
    if (!next) break;
    tried.push(next);
    if (!next.some((i) => bad.has(i))) break;
    failed.push(next);
  }
  return tried;
}

describe('sign retry: preferred subsets after failures', () => {
  it('without failures: every subset, in ranking order', () => {
    const ranked = [[3, 4], [1, 2], [1, 4]];
    assert.deepEqual(preferredSubsets(ranked, []), ranked);
    assert.deepEqual(preferredSubsets([], [[1, 2]]), []);
  });

  it('prime suspects are the signers common to every failure', () => {
    assert.deepEqual(primeSuspects([]), []);
    assert.deepEqual(primeSuspects([[3, 4]]), [3, 4]);
    assert.deepEqual(primeSuspects([[3, 4], [1, 4]]), [4]);
    assert.deepEqual(primeSuspects([[3, 4], [1, 4], [1, 2]]), []);
    assert.deepEqual(primeSuspects([[2, 4, 5], [4]]), [4]);
  });

  it('2-of-4, [3,4] failed: only [1,2] (not [1,4] / [2,4], which avoiding the failed subset alone allows)', () => {
    const ranked = [[1, 4], [2, 4], [1, 3], [2, 3], [1, 2]];
    assert.deepEqual(preferredSubsets(ranked, [[3, 4]]), [[1, 2]]);
  });

  it('no subset without a prime suspect: those sharing the fewest signers with the failures, in ranking order', () => {
    // [1,2] is not available (tried already, or a member unhealthy): every subset left holds 3 or 4.
    assert.deepEqual(preferredSubsets([[2, 4], [1, 3], [1, 4], [2, 3]], [[3, 4]]), [[2, 4], [1, 3], [1, 4], [2, 3]]);
    // Failures [3,4] and [1,4]: prime suspect 4; without it, [1,2] and [2,3] share one signer with the failures, [1,3] two.
    assert.deepEqual(preferredSubsets([[1, 3], [2, 3], [1, 2]], [[3, 4], [1, 4]]), [[2, 3], [1, 2]]);
    // A signer that answered Finish with an error is a failed set of its own.
    assert.deepEqual(preferredSubsets([[1, 3], [2, 3], [1, 2]], [[3]]), [[1, 2]]);
  });

  it('the case found by the malicious-signer test: [3,4], [1,4], [2,4] can no longer be the three attempts', () => {
    const ranking = [[3, 4], [1, 4], [2, 4], [1, 3], [2, 3], [1, 2]];
    assert.deepEqual(attempts(ranking, new Set([4]), 3), [[3, 4], [1, 2]]);
  });

  it('2-of-4 with one bad signer: a good subset by the second attempt, whatever the ranking', () => {
    const all = subsetsOf([1, 2, 3, 4], 2);
    for (let seed = 1; seed <= 400; seed++) {
      const ranking = shuffled(all, seed);
      for (const bad of [1, 2, 3, 4]) {
        const tried = attempts(ranking, new Set([bad]), 3);
        assert.ok(tried.length <= 2 && !tried.at(-1)!.includes(bad), `bad ${bad}, ranking ${ranking.map(label).join(' ')}: tried ${tried.map(label).join(' ')}`);
      }
    }
  });

  it('3-of-5 with one bad signer: a good subset within three attempts, whatever the ranking', () => {
    const all = subsetsOf([1, 2, 3, 4, 5], 3);
    for (let seed = 1; seed <= 400; seed++) {
      const ranking = shuffled(all, seed);
      for (const bad of [1, 2, 3, 4, 5]) {
        const tried = attempts(ranking, new Set([bad]), 3);
        assert.ok(!tried.at(-1)!.includes(bad), `bad ${bad}, ranking ${ranking.map(label).join(' ')}: tried ${tried.map(label).join(' ')}`);
      }
    }
  });
});
