/**
 * Pool selection, ranking, refill planning between the low- and high-water marks, yielding to
 * online work, and drop-on-boot-change (pure PoolSet with a fake signer view; the Refiller with a
 * presign function the test releases by hand).
 */
import { strict as assert } from 'node:assert';
import { PoolSet, quietIn, rankSubsets, Refiller, subsetsOf, type PoolEntry, type RefillJob, type SignerView } from '../../src/coordinator/pools.js';
import { jsonLogger } from '../../src/coordinator/log.js';

class FakeView implements SignerView {
  healthyMap = new Map<number, boolean>();
  latency = new Map<number, number>();
  boots = new Map<number, string>();
  constructor(n: number) {
    for (let i = 1; i <= n; i++) {
      this.healthyMap.set(i, true);
      this.latency.set(i, 10 * i);
      this.boots.set(i, `boot-${i}-a`);
    }
  }
  healthy(i: number) {
    return this.healthyMap.get(i) ?? false;
  }
  latencyMs(i: number) {
    return this.latency.get(i) ?? Number.POSITIVE_INFINITY;
  }
  bootId(i: number) {
    return this.boots.get(i) ?? '';
  }
}

let counter = 0;
function entries(view: FakeView, subset: number[], n: number): PoolEntry[] {
  return Array.from({ length: n }, () => {
    counter++;
    return { id: Uint8Array.of(counter & 0xff, counter >> 8), nonce: new Uint8Array(33), bootIds: new Map(subset.map((i) => [i, view.bootId(i)])), created: counter };
  });
}

describe('coordinator presignature pools', () => {
  it('enumerates subsets of size T', () => {
    assert.deepEqual(subsetsOf([3, 1, 2], 2), [[1, 2], [1, 3], [2, 3]]);
    assert.equal(subsetsOf([1, 2, 3, 4, 5], 3).length, 10);
    assert.deepEqual(subsetsOf([1, 2], 2), [[1, 2]]);
    assert.deepEqual(subsetsOf([1, 2], 3), []);
  });

  it('ranks eligible subsets by their slowest member and skips unhealthy ones', () => {
    const view = new FakeView(5);
    view.latency.set(1, 50);
    const ranked = rankSubsets(subsetsOf([1, 2, 3, 4, 5], 3), view);
    assert.deepEqual(ranked[0], [2, 3, 4]); // worst 40
    assert.deepEqual(ranked[1], [1, 2, 3]); // worst 50 (ties broken by indices)
    view.healthyMap.set(3, false);
    const r2 = rankSubsets(subsetsOf([1, 2, 3, 4, 5], 3), view);
    assert.ok(r2.every((s) => !s.includes(3)));
    assert.equal(r2.length, 4);
    // Not yet measured members come last.
    view.latency.delete(5);
    const r3 = rankSubsets(subsetsOf([1, 2, 4, 5], 3), view);
    assert.deepEqual(r3[0], [1, 2, 4]);
  });

  it('takes single-use entries from the fastest healthy subset with depth > 0', () => {
    const view = new FakeView(3);
    const depths: Record<string, number> = {};
    const pools = new PoolSet({ target: 4, batch: 2, refillConcurrency: 2, subsets: 2 }, view, { depth: (k, s, d) => (depths[`${k}/${s}`] = d) });
    pools.setKey({ id: 'k', epoch: 0, threshold: 2, signers: [1, 2, 3] });
    assert.equal(pools.take('k'), undefined);
    const a = entries(view, [1, 3], 2);
    assert.equal(pools.add('k', 0, [1, 3], a), 2);
    const b = entries(view, [1, 2], 1);
    pools.add('k', 0, [1, 2], b);
    assert.equal(depths['k/1,2'], 1);
    // [1,2] is fastest (worst 20 < 30) and has one.
    const t1 = pools.take('k')!;
    assert.deepEqual(t1.subset, [1, 2]);
    assert.equal(t1.entry, b[0]);
    assert.equal(depths['k/1,2'], 0);
    // Then [1,3], oldest first; never the same entry twice.
    assert.equal(pools.take('k')!.entry, a[0]);
    assert.equal(pools.take('k')!.entry, a[1]);
    assert.equal(pools.take('k'), undefined);
    // Exclusion (subsets with a member that failed during this request).
    pools.add('k', 0, [1, 3], entries(view, [1, 3], 1));
    assert.equal(pools.take('k', (s) => s.includes(3)), undefined);
    assert.ok(pools.take('k'));
    // Unhealthy members make a pool ineligible, but it keeps its entries.
    pools.add('k', 0, [2, 3], entries(view, [2, 3], 1));
    view.healthyMap.set(2, false);
    assert.equal(pools.take('k'), undefined);
    view.healthyMap.set(2, true);
    assert.deepEqual(pools.take('k')!.subset, [2, 3]);
  });

  it('drops every entry involving a restarted signer, and refuses batches made under an old boot', () => {
    const view = new FakeView(3);
    const dropped: number[] = [];
    const pools = new PoolSet({ target: 10, batch: 5, refillConcurrency: 1, subsets: 3 }, view, { dropped: (_k, _r, n) => dropped.push(n) });
    pools.setKey({ id: 'k', epoch: 0, threshold: 2, signers: [1, 2, 3] });
    pools.add('k', 0, [1, 2], entries(view, [1, 2], 3));
    pools.add('k', 0, [1, 3], entries(view, [1, 3], 2));
    pools.add('k', 0, [2, 3], entries(view, [2, 3], 4));
    const stale = entries(view, [1, 2], 2);
    view.boots.set(2, 'boot-2-b');
    assert.equal(pools.dropSigner(2), 7);
    assert.deepEqual(dropped, [7]);
    assert.equal(pools.depth('k', [1, 2]), 0);
    assert.equal(pools.depth('k', [2, 3]), 0);
    assert.equal(pools.depth('k', [1, 3]), 2);
    assert.equal(pools.add('k', 0, [1, 2], stale), 0, 'batch made before the restart is refused');
    // Entries whose member restarted but were not dropped yet are skipped by take().
    pools.add('k', 0, [1, 2], entries(view, [1, 2], 1));
    view.boots.set(1, 'boot-1-b');
    const t = pools.take('k');
    assert.equal(t, undefined);
  });

  it('refresh (new epoch) drops the key and refuses batches of the old epoch', () => {
    const view = new FakeView(3);
    const pools = new PoolSet({ target: 10, batch: 5, refillConcurrency: 1, subsets: 3 }, view);
    pools.setKey({ id: 'k', epoch: 0, threshold: 2, signers: [1, 2, 3] });
    pools.add('k', 0, [1, 2], entries(view, [1, 2], 3));
    pools.setKey({ id: 'k', epoch: 1, threshold: 2, signers: [1, 2, 3] });
    assert.equal(pools.totalDepth('k'), 0);
    assert.equal(pools.add('k', 0, [1, 2], entries(view, [1, 2], 1)), 0);
    assert.equal(pools.add('k', 1, [1, 2], entries(view, [1, 2], 1)), 1);
  });

  it('plans refills: best subsets first, batches, concurrency, one session per pool, back-off', () => {
    let now = 1000;
    const view = new FakeView(5);
    const pools = new PoolSet({ target: 10, batch: 4, refillConcurrency: 3, subsets: 2 }, view, {}, () => now);
    pools.setKey({ id: 'a', epoch: 0, threshold: 3, signers: [1, 2, 3, 4, 5] });
    pools.setKey({ id: 'b', epoch: 2, threshold: 2, signers: [4, 5] });
    const jobs = pools.plan(3);
    assert.equal(jobs.length, 3);
    // Rank 0 of each key first, then rank 1 of key a (key b has a single subset).
    assert.deepEqual(jobs.map((j) => [j.keyId, j.subset.join(',')]), [
      ['a', '1,2,3'],
      ['b', '4,5'],
      ['a', '1,2,4'],
    ]);
    assert.ok(jobs.every((j) => j.count === 4));
    assert.equal(jobs[1]!.epoch, 2);
    for (const j of jobs) pools.started(j);
    assert.deepEqual(pools.plan(3), [], 'one session per pool; only 2 subsets per key are refilled');
    // Finish one: fill to 8 → next batch is the deficit (2).
    pools.add('a', 0, [1, 2, 3], entries(view, [1, 2, 3], 8));
    pools.finished(jobs[0]!, true);
    const next = pools.plan(1);
    assert.deepEqual(next.map((j) => [j.subset.join(','), j.count]), [['1,2,3', 2]]);
    // A failure backs the pool off.
    pools.finished(jobs[1]!, false);
    assert.ok(!pools.plan(5).some((j) => j.keyId === 'b'));
    now += 1001;
    assert.ok(pools.plan(5).some((j) => j.keyId === 'b'));
    // Unhealthy member: generation shifts away from its subsets.
    view.healthyMap.set(1, false);
    const shifted = pools.plan(5).filter((j) => j.keyId === 'a');
    assert.ok(shifted.every((j) => !j.subset.includes(1)));
    // Suspended keys (refresh in progress) get no refills.
    pools.suspend('a', true);
    assert.ok(!pools.plan(5).some((j) => j.keyId === 'a'));
    pools.suspend('a', false);
    // Full pools are not refilled.
    pools.add('a', 0, [1, 2, 3], entries(view, [1, 2, 3], 2));
    view.healthyMap.set(1, true);
    assert.ok(!pools.plan(10).some((j) => j.keyId === 'a' && j.subset.join(',') === '1,2,3'));
  });

  it('ranks a penalised subset (invalid signature) last for a while and drops its entries', () => {
    let now = 0;
    const view = new FakeView(3);
    const pools = new PoolSet({ target: 4, batch: 2, refillConcurrency: 3, subsets: 2 }, view, {}, () => now);
    pools.setKey({ id: 'k', epoch: 0, threshold: 2, signers: [1, 2, 3] });
    pools.add('k', 0, [1, 2], entries(view, [1, 2], 2));
    pools.add('k', 0, [1, 3], entries(view, [1, 3], 2));
    pools.penalise('k', [1, 2], 1000);
    assert.equal(pools.depth('k', [1, 2]), 0);
    assert.deepEqual(pools.ranked('k'), [[1, 3], [2, 3], [1, 2]]);
    assert.deepEqual(pools.take('k')!.subset, [1, 3]);
    // Refills go to the two best unpenalised subsets.
    assert.deepEqual(pools.plan(3).map((j) => j.subset.join(',')), ['1,3', '2,3']);
    now = 1001;
    assert.deepEqual(pools.ranked('k')[0], [1, 2]);
  });

  it('reports pool status for every subset', () => {
    const view = new FakeView(3);
    const pools = new PoolSet({ target: 7, batch: 5, refillConcurrency: 1, subsets: 3 }, view);
    pools.setKey({ id: 'k', epoch: 0, threshold: 2, signers: [1, 2, 3] });
    pools.add('k', 0, [2, 3], entries(view, [2, 3], 2));
    const info = pools.info();
    assert.equal(info.length, 3);
    assert.deepEqual(info.find((p) => p.subset.join(',') === '2,3'), { keyId: 'k', subset: [2, 3], depth: 2, target: 7 });
    // Only the subsets kept filled have a target.
    const two = new PoolSet({ target: 7, batch: 5, refillConcurrency: 1, subsets: 2 }, view);
    two.setKey({ id: 'k', epoch: 0, threshold: 2, signers: [1, 2, 3] });
    assert.deepEqual(two.info().map((p) => [p.subset.join(','), p.target]), [['1,2', 7], ['1,3', 7], ['2,3', 0]]);
    view.healthyMap.set(1, false);
    assert.deepEqual(two.info().map((p) => [p.subset.join(','), p.target]), [['1,2', 0], ['1,3', 0], ['2,3', 7]]);
    // 8-of-16 has 12870 subsets: only pools in use are listed.
    const big = new FakeView(16);
    const many = new PoolSet({ target: 7, batch: 5, refillConcurrency: 1, subsets: 2 }, big);
    const holders = Array.from({ length: 16 }, (_, k) => k + 1);
    many.setKey({ id: 'big', epoch: 0, threshold: 8, signers: holders });
    assert.equal(many.ranked('big').length, 12870);
    assert.deepEqual(many.info().map((p) => p.subset.join(',')), ['1,2,3,4,5,6,7,8', '1,2,3,4,5,6,7,9']);
    assert.equal(many.plan(5).length, 2);
    big.healthyMap.set(1, false);
    assert.ok(many.ranked('big').every((s) => !s.includes(1)), 'health applies at once, even with the cached order');
    assert.equal(many.ranked('big').length, 6435);
  });

  describe('refill between the low- and the high-water mark', () => {
    const single = (low?: number) => {
      const view = new FakeView(2);
      const deferrals: number[] = [];
      const pools = new PoolSet({ target: 8, batch: 4, refillConcurrency: 1, subsets: 1, ...(low !== undefined ? { lowWater: low } : {}) }, view, { deferred: (n) => deferrals.push(n) });
      pools.setKey({ id: 'k', epoch: 0, threshold: 2, signers: [1, 2] });
      /** Plans, then completes the job with the batch it asked for. */
      const refill = (busy = false): RefillJob | undefined => {
        const [job] = pools.plan(1, busy);
        if (!job) return undefined;
        pools.started(job);
        pools.add('k', 0, job.subset, entries(view, job.subset, job.count));
        pools.finished(job, true);
        return job;
      };
      const take = (n: number) => {
        for (let k = 0; k < n; k++) assert.ok(pools.take('k'));
      };
      return { pools, refill, take, deferrals };
    };

    it('an empty pool fills up to the target; then it is refilled only once below the low mark, up to the target again', () => {
      const { pools, refill, take } = single(5);
      assert.equal(pools.lowWater, 5);
      assert.deepEqual([refill()?.count, refill()?.count, refill()], [4, 4, undefined], 'two batches to the target, then nothing');
      assert.equal(pools.depth('k', [1, 2]), 8);
      take(3);
      assert.equal(refill(), undefined, 'depth 5: not below the low mark, no refill');
      take(1);
      assert.equal(pools.depth('k', [1, 2]), 4);
      assert.equal(refill()?.count, 4, 'depth 4 < 5: a refill batch');
      assert.equal(pools.depth('k', [1, 2]), 8);
      take(2);
      assert.equal(refill(), undefined);
      take(4);
      // Below the low mark again (2): it keeps filling past the low mark, up to the target.
      assert.equal(refill()?.count, 4);
      assert.equal(pools.depth('k', [1, 2]), 6);
      assert.equal(refill()?.count, 2, 'above the low mark but still filling: the rest up to the target');
      assert.equal(refill(), undefined);
    });

    it('the low mark defaults to half the target (rounded up); equal to the target it refills at every use', () => {
      assert.equal(single().pools.lowWater, 4);
      const eager = single(8);
      eager.refill();
      eager.refill();
      eager.take(1);
      assert.equal(eager.refill()?.count, 1);
    });

    it('while online work is busy, only pools below the reserve (half the low mark) get a refill batch', () => {
      const { pools, refill, take, deferrals } = single(6);
      assert.equal(pools.reserve, 3);
      refill();
      refill();
      take(4);
      assert.equal(pools.depth('k', [1, 2]), 4, 'below the low mark (6), above the reserve (3)');
      assert.equal(refill(true), undefined, 'busy: it waits');
      assert.deepEqual(deferrals, [1], 'the deferral is reported');
      take(1);
      assert.equal(refill(true), undefined, 'depth 3 is not below the reserve');
      take(1);
      assert.equal(refill(true)?.count, 4, 'depth 2 < 3: refilled even under load');
      assert.equal(refill(true), undefined, 'depth 6, still filling, but busy again');
      assert.equal(refill(false)?.count, 2, 'quiet: the rest up to the target');
      // An empty pool under load is below any reserve: a waiting sign request is never held up.
      const fresh = single(1);
      assert.equal(fresh.pools.reserve, 1);
      assert.equal(fresh.refill(true)?.count, 4);
    });

    it('drops (restart, refresh, failed sign) put a pool below the low mark: it fills again', () => {
      const { pools, refill } = single(2);
      refill();
      refill();
      assert.equal(refill(), undefined);
      pools.dropKey('k', 'refresh');
      assert.equal(refill()?.count, 4);
      assert.equal(refill()?.count, 4);
      pools.penalise('k', [1, 2], 0);
      assert.equal(refill()?.count, 4);
    });

    it('quietIn: busy while requests are in flight and for quietMs after the last one ended', () => {
      assert.equal(quietIn(1, 0, 20, 1000), 20);
      assert.ok(quietIn(1, 0, 0, 1000) > 0, 'in flight is busy even without a quiet period');
      assert.equal(quietIn(0, 990, 20, 1000), 10);
      assert.equal(quietIn(0, 980, 20, 1000), 0);
      assert.equal(quietIn(0, Number.NEGATIVE_INFINITY, 20, 1000), 0, 'no request yet');
    });

    it('Refiller: no batch starts while busy, one starts once quiet (without waiting for its planning period)', async () => {
      const view = new FakeView(2);
      const pools = new PoolSet({ target: 8, batch: 8, refillConcurrency: 1, subsets: 1, lowWater: 8 }, view);
      pools.setKey({ id: 'k', epoch: 0, threshold: 2, signers: [1, 2] });
      pools.add('k', 0, [1, 2], entries(view, [1, 2], 6));
      const started: RefillJob[] = [];
      let release: (() => void) | undefined;
      let busyFor = 30;
      const refiller = new Refiller(
        pools,
        (job) => {
          started.push(job);
          return new Promise((resolve) => (release = () => resolve(entries(view, job.subset, job.count))));
        },
        jsonLogger('test'),
        { intervalMs: 3_600_000, quietIn: () => busyFor },
      );
      refiller.start();
      assert.equal(started.length, 0, 'busy: the pool (6, reserve 4) waits');
      busyFor = 0;
      // Timers fire in order of expiry: the quiet timer (30 ms, armed at start) before this one.
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(started.length, 1, 'planned again by the quiet timer, not the hour-long period');
      assert.equal(started[0]!.count, 2);
      const filled = refiller.waitForRefill(60_000);
      release!();
      await filled;
      assert.equal(pools.depth('k', [1, 2]), 8);
      await refiller.stop();
    });
  });
});
