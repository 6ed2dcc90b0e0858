/**
 * Resharing's pure dealing (src/protocol/reshare.ts): honest 3-of-5 → 3-of-5 with signer 4
 * replaced by 6, and 3-of-5 → 4-of-7, from a real key generation; the new shares interpolate to
 * the same key from every subset of T′, the old shares do not mix with them; then every way a
 * dealer or the parameters can be wrong, each refused with its reason and, where it can be
 * attributed, the dealer named.
 */
import { strict as assert } from 'node:assert';
import { add, IDENTITY, mul, mulBase, pointsEqual, POINT_BYTES } from '../../src/protocol/math/curve.js';
import { mod } from '../../src/protocol/math/scalar.js';
import { ProtocolAbort } from '../../src/protocol/errors.js';
import { lagrangeAtZero } from '../../src/protocol/polynomial.js';
import { checkReshareParams, combineReshare, dealReshare, verifyDealing, type ReshareParams } from '../../src/protocol/reshare.js';
import { systemRng } from '../../src/protocol/rng.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { Cluster, subsets } from './harness.js';

function aborts(fn: () => unknown, reason: string, culprit?: number): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ProtocolAbort, `a ProtocolAbort, got ${(e as Error)?.message}`);
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.culprit, culprit, `culprit of: ${e.message}`);
    return;
  }
  assert.fail(`expected ${reason}`);
}

/** Σ λ_j·x_j over `subset` (the secret those shares stand for), times G. */
function interpolatedKey(shares: ReadonlyMap<number, bigint>, subset: readonly number[]): Uint8Array {
  let s = 0n;
  for (const j of subset) s = mod(s + lagrangeAtZero(j, subset) * shares.get(j)!);
  return mulBase(s);
}

describe('resharing: the pure dealing', function () {
  this.timeout(120_000);
  let old: Map<number, KeyShare>;

  before(() => {
    const cluster = new Cluster(5, 'reshare');
    assert.equal(cluster.keyGen('k', 3).aborts.size, 0);
    old = new Map([1, 2, 3, 4, 5].map((i) => [i, cluster.party(i).share('k')] as const));
  });

  const paramsFor = (dealers: number[], newParties: number[], newThreshold: number): ReshareParams => {
    const any = old.get(1)!;
    return { dealers, oldThreshold: 3, oldPublicShares: any.publicShares, publicKey: any.publicKey, newParties, newThreshold };
  };

  /** Every dealer deals, every new party combines: the new shares and each party's public shares. */
  function reshare(p: ReshareParams) {
    const dealings = new Map(p.dealers.map((i) => [i, dealReshare(p, i, old.get(i)!.secretShare, systemRng)] as const));
    const results = new Map(
      p.newParties.map((j) => [j, combineReshare(p, j, new Map(p.dealers.map((i) => [i, { commitments: dealings.get(i)!.commitments, share: dealings.get(i)!.shares.get(j)! }] as const)))] as const),
    );
    return { dealings, results, shares: new Map([...results].map(([j, r]) => [j, r.secretShare] as const)) };
  }

  it('3-of-5 → signer 4 replaced by 6: the same key from every 3 new shares (including 6); the public shares agree', () => {
    const p = paramsFor([1, 2, 5], [1, 2, 3, 5, 6], 3);
    const { results, shares } = reshare(p);
    for (const subset of subsets(5, 3).map((s) => s.map((k) => p.newParties[k - 1]!))) {
      assert.ok(pointsEqual(interpolatedKey(shares, subset), p.publicKey), `subset ${subset}`);
    }
    const first = results.get(1)!.publicShares;
    for (const [j, r] of results) {
      for (const k of p.newParties) assert.ok(pointsEqual(r.publicShares.get(k)!, first.get(k)!), `party ${j}'s view of ${k}`);
      assert.ok(pointsEqual(mulBase(r.secretShare), first.get(j)!));
      assert.notEqual(r.secretShare, old.get(j)?.secretShare, `party ${j} has a new share`);
    }
  });

  it("the removed signer's old share does not combine with the new ones (nor do old and new shares of a holder)", () => {
    const p = paramsFor([1, 2, 3], [1, 2, 3, 5, 6], 3);
    const { shares } = reshare(p);
    const mixed = new Map(shares);
    mixed.set(4, old.get(4)!.secretShare);
    assert.ok(!pointsEqual(interpolatedKey(mixed, [1, 4, 6]), p.publicKey), 'old share 4 with new 1 and 6');
    assert.ok(!pointsEqual(interpolatedKey(mixed, [2, 4, 5]), p.publicKey), 'old share 4 with new 2 and 5');
    const oldAndNew = new Map([[1, old.get(1)!.secretShare], [2, shares.get(2)!], [3, shares.get(3)!]]);
    assert.ok(!pointsEqual(interpolatedKey(oldAndNew, [1, 2, 3]), p.publicKey), 'old 1 with new 2, 3');
  });

  it('3-of-5 → 4-of-7: every 4 of the 7 new shares give the key, no 3 of them do', () => {
    const p = paramsFor([2, 4, 5], [1, 2, 3, 4, 5, 6, 7], 4);
    const { shares } = reshare(p);
    for (const subset of subsets(7, 4)) assert.ok(pointsEqual(interpolatedKey(shares, subset), p.publicKey), `subset ${subset}`);
    for (const subset of subsets(7, 3).slice(0, 5)) assert.ok(!pointsEqual(interpolatedKey(shares, subset), p.publicKey), `3 shares ${subset}`);
  });

  describe('a dishonest dealer is caught and named', () => {
    const p = () => paramsFor([1, 2, 3], [1, 2, 3, 5, 6], 3);

    it('commitments to another constant term → public-key-mismatch naming the dealer', () => {
      const params = p();
      const honest = dealReshare(params, 2, old.get(2)!.secretShare, systemRng);
      const wrong = new Uint8Array(honest.commitments);
      wrong.set(add(honest.commitments.subarray(0, POINT_BYTES), mulBase(1n)), 0);
      aborts(() => verifyDealing(params, 2, wrong), 'public-key-mismatch', 2);
    });

    it('a private share off the commitments → share-inconsistent naming the dealer', () => {
      const params = p();
      const d = dealReshare(params, 3, old.get(3)!.secretShare, systemRng);
      aborts(() => verifyDealing(params, 3, d.commitments, { index: 6, share: mod(d.shares.get(6)! + 1n) }), 'share-inconsistent', 3);
      assert.doesNotThrow(() => verifyDealing(params, 3, d.commitments, { index: 6, share: d.shares.get(6)! }));
    });

    it('one coefficient too few or too many (another threshold) → wrong-length; a bad point → invalid-point', () => {
      const params = p();
      const d = dealReshare(params, 1, old.get(1)!.secretShare, systemRng);
      aborts(() => verifyDealing(params, 1, d.commitments.subarray(0, 2 * POINT_BYTES)), 'wrong-length', 1);
      aborts(() => verifyDealing(params, 1, new Uint8Array([...d.commitments, ...d.commitments.subarray(0, POINT_BYTES)])), 'wrong-length', 1);
      const bad = new Uint8Array(d.commitments);
      bad[POINT_BYTES] = 0x07;
      aborts(() => verifyDealing(params, 1, bad), 'invalid-point', 1);
      const identity = new Uint8Array(d.commitments);
      identity.set(IDENTITY, POINT_BYTES);
      aborts(() => verifyDealing(params, 1, identity), 'invalid-point', 1);
    });

    it('a party that is not a dealer, or a dealer missing → named', () => {
      const params = p();
      const d = dealReshare(params, 1, old.get(1)!.secretShare, systemRng);
      aborts(() => verifyDealing(params, 4, d.commitments), 'wrong-sender', 4);
      const dealings = new Map([1, 2].map((i) => {
        const x = dealReshare(params, i, old.get(i)!.secretShare, systemRng);
        return [i, { commitments: x.commitments, share: x.shares.get(6)! }] as const;
      }));
      aborts(() => combineReshare(params, 6, dealings), 'missing-message', 3);
    });
  });

  describe('parameters', () => {
    it('every malformed parameter set is refused (bad-parameters), wrong old public shares as public-key-mismatch', () => {
      const good = paramsFor([1, 2, 3], [1, 2, 3, 5, 6], 3);
      assert.doesNotThrow(() => checkReshareParams(good));
      aborts(() => checkReshareParams({ ...good, dealers: [1, 2] }), 'bad-parameters');
      aborts(() => checkReshareParams({ ...good, dealers: [3, 2, 1] }), 'bad-parameters');
      aborts(() => checkReshareParams({ ...good, dealers: [1, 2, 9] }), 'bad-parameters');
      aborts(() => checkReshareParams({ ...good, newParties: [1, 1, 2] }), 'bad-parameters');
      aborts(() => checkReshareParams({ ...good, newParties: [0, 1, 2] }), 'bad-parameters');
      aborts(() => checkReshareParams({ ...good, newParties: [1], newThreshold: 1 }), 'bad-parameters');
      aborts(() => checkReshareParams({ ...good, newThreshold: 6 }), 'bad-parameters');
      aborts(() => checkReshareParams({ ...good, newThreshold: 1 }), 'bad-parameters');
      const forged = new Map(good.oldPublicShares);
      forged.set(2, mul(forged.get(2)!, 2n));
      aborts(() => checkReshareParams({ ...good, oldPublicShares: forged }), 'public-key-mismatch');
      aborts(() => dealReshare(good, 4, old.get(4)!.secretShare, systemRng), 'bad-parameters');
      aborts(() => dealReshare(good, 2, old.get(3)!.secretShare, systemRng), 'share-inconsistent');
      aborts(() => combineReshare(good, 4, new Map()), 'bad-parameters');
    });
  });
});
