/**
 * The pair conflict graph (src/coordinator/conflicts.ts) and how the pools use it: only a member
 * of a pair can report it, subsets holding a conflicting pair are never scheduled, stale Health
 * answers never clear a conflict learnt from a call error, both members must stop listing.
 */
import { strict as assert } from 'node:assert';
import { binomial, ConflictGraph, countConflictFree, type PairConflictView } from '../../src/coordinator/conflicts.js';
import { PoolSet, subsetsOf, type PoolEntry, type SignerView } from '../../src/coordinator/pools.js';

const KEY = { id: 'tls', threshold: 3, signers: [1, 2, 3, 4, 5] };
const label = (s: readonly number[]) => s.join(',');
const pairs = (g: ConflictGraph, keyId = 'tls') => g.list(keyId).map((c) => `${c.a},${c.b}`);

function graph() {
  const added: PairConflictView[] = [];
  const cleared: string[] = [];
  const blames: string[] = [];
  const g = new ConflictGraph({
    added: (c) => added.push(c),
    cleared: (k, a, b) => cleared.push(`${k}:${a},${b}`),
    blame: (k, r, p) => blames.push(`${k}:${r}->${p}`),
  });
  g.setKey(KEY);
  return { g, added, cleared, blames };
}

/** Signer `s` answers Health listing `retired` for key tls, to a probe started now. */
const health = (g: ConflictGraph, s: number, retired: number[], stamp = g.stamp()) => g.reportHealth(s, stamp, [{ keyId: 'tls', retiredPeers: retired }]);

class View implements SignerView {
  up = new Set([1, 2, 3, 4, 5]);
  healthy(i: number) {
    return this.up.has(i);
  }
  latencyMs(i: number) {
    return 10 * i;
  }
  bootId(i: number) {
    return `boot-${i}`;
  }
}

let counter = 0;
const entries = (view: View, subset: number[], n: number): PoolEntry[] =>
  Array.from({ length: n }, () => {
    counter++;
    return { id: Uint8Array.of(counter & 0xff, counter >> 8, 7), nonce: new Uint8Array(33), bootIds: new Map(subset.map((i) => [i, view.bootId(i)])), created: counter };
  });

describe('pair conflict graph', () => {
  it('a call error gives the pair {reporter, culprit}; culprit = reporter, non-holders and unknown keys are ignored', () => {
    const { g, added, blames } = graph();
    assert.equal(g.reportCallError('tls', 4, 1, 'ot-check-failed'), true);
    assert.deepEqual(pairs(g), ['1,4']);
    assert.deepEqual(added.map((c) => [c.a, c.b, c.reportedBy]), [[1, 4, [4]]]);
    assert.match(added[0]!.reason, /ot-check-failed/);
    assert.equal(g.reportCallError('tls', 4, 4, 'ot-check-failed'), false, 'a signer cannot conflict with itself');
    assert.equal(g.reportCallError('tls', 4, 9, 'ot-check-failed'), false, 'culprit not a holder');
    assert.equal(g.reportCallError('tls', 9, 1, 'ot-check-failed'), false, 'reporter not a holder');
    assert.equal(g.reportCallError('other', 4, 1, 'ot-check-failed'), false, 'unknown key');
    assert.deepEqual(pairs(g), ['1,4']);
    // Reported again (by the other member): one conflict, two reporters.
    g.reportCallError('tls', 1, 4, 'vole-check-failed');
    assert.equal(added.length, 1);
    assert.deepEqual(g.list('tls')[0]!.reportedBy, [1, 4]);
    assert.deepEqual(blames, ['tls:4->1', 'tls:1->4']);
  });

  it('only members of a pair create it: a Health answer names pairs with the reporter only', () => {
    const { g } = graph();
    // Signer 4 lists every other signer (and itself, and a stranger): pairs {4,j} only.
    health(g, 4, [1, 2, 3, 4, 5, 9]);
    assert.deepEqual(pairs(g), ['1,4', '2,4', '3,4', '4,5']);
    // Nothing any signer says can produce {1,2}, {1,3} or {2,3} unless 1, 2 or 3 says it.
    for (const s of [4, 5]) for (const [x, y] of [[1, 2], [1, 3], [2, 3]] as const) g.reportCallError('tls', s, x, 'ot-check-failed') && g.reportCallError('tls', s, y, 'x');
    for (const honest of ['1,2', '1,3', '2,3']) assert.ok(!pairs(g).includes(honest), `no conflict ${honest}`);
  });

  it('3-of-5 with signers 4 and 5 in conflict with everyone: the only usable subset is [1,2,3]', () => {
    const { g } = graph();
    health(g, 4, [1, 2, 3, 5]);
    health(g, 5, [1, 2, 3, 4]);
    assert.deepEqual(g.usableSubsets('tls'), [[1, 2, 3]]);
    assert.equal(binomial(5, 3), 10);
    assert.equal(g.countUsable('tls', [1, 2, 3, 4, 5]), 1);
    assert.equal(g.hasUsableSubset('tls', [1, 2, 3, 4, 5]), true);
    assert.equal(g.hasUsableSubset('tls', [1, 2, 4, 5]), false, 'without signer 3 no subset is free of conflicts');
    for (const s of subsetsOf([1, 2, 3, 4, 5], 3)) assert.equal(g.conflicting('tls', s), label(s) !== '1,2,3', label(s));
  });

  it('the same usable subsets from call errors alone (each accuser names someone of the requested subset)', () => {
    const { g } = graph();
    for (const s of subsetsOf([1, 2, 3, 4, 5], 3)) {
      for (const accuser of s.filter((i) => i >= 4)) for (const other of s.filter((i) => i !== accuser)) g.reportCallError('tls', accuser, other, 'ot-check-failed');
    }
    assert.deepEqual(g.usableSubsets('tls'), [[1, 2, 3]]);
    assert.ok(g.list('tls').every((c) => c.b >= 4 && (c.reportedBy.includes(c.a) || c.reportedBy.includes(c.b))));
  });

  it('a Health answer to a probe started before a call error was observed does not clear it', () => {
    const { g, cleared } = graph();
    const early1 = g.stamp(); // probes of 1 and 4 start …
    const early4 = g.stamp();
    g.reportCallError('tls', 4, 1, 'ot-check-failed'); // … the error is observed …
    health(g, 1, [], early1); // … then the probes answer, listing nothing: stale
    health(g, 4, [], early4);
    assert.deepEqual(pairs(g), ['1,4'], 'stale answers do not clear');
    assert.deepEqual(cleared, []);
    // A later probe of one member only: still not cleared.
    health(g, 4, []);
    assert.deepEqual(pairs(g), ['1,4']);
    // A later probe of the other, listing neither: cleared.
    health(g, 1, []);
    assert.deepEqual(pairs(g), []);
    assert.deepEqual(cleared, ['tls:1,4']);
  });

  it('cleared only when both members stop listing the other', () => {
    const { g, cleared } = graph();
    health(g, 2, [5]);
    health(g, 5, [2]);
    assert.deepEqual(pairs(g), ['2,5']);
    assert.deepEqual(g.list('tls')[0]!.reportedBy, [2, 5]);
    health(g, 2, []); // 2 re-set up, 5 still lists 2
    assert.deepEqual(pairs(g), ['2,5']);
    health(g, 5, [2]);
    assert.deepEqual(pairs(g), ['2,5']);
    health(g, 5, []);
    // Signer 2's last answer is older than 5's last listing of the pair: one more answer of 2.
    assert.deepEqual(pairs(g), ['2,5']);
    health(g, 2, []);
    assert.deepEqual(pairs(g), [], 'both stopped listing');
    assert.deepEqual(cleared, ['tls:2,5']);
    // Listing again: a new conflict.
    health(g, 5, [2]);
    assert.deepEqual(pairs(g), ['2,5']);
  });

  it('a member that never answered Health keeps the conflict; an older answer than the last one is ignored', () => {
    const { g } = graph();
    g.reportCallError('tls', 3, 4, 'vole-check-failed');
    health(g, 3, []);
    assert.deepEqual(pairs(g), ['3,4'], 'signer 4 has not answered since');
    const old = g.stamp();
    health(g, 4, []); // clears
    assert.deepEqual(pairs(g), []);
    health(g, 4, [3], old); // out of order: ignored
    assert.deepEqual(pairs(g), []);
  });

  it('setKey drops conflicts with signers that are no longer holders', () => {
    const { g } = graph();
    health(g, 5, [1]);
    g.setKey({ id: 'tls', threshold: 3, signers: [1, 2, 3, 4] });
    assert.deepEqual(pairs(g), []);
  });

  it('countConflictFree stops at the limit and prunes conflicting picks', () => {
    const conflict = (i: number, j: number) => i + j === 9; // {4,5}
    assert.equal(countConflictFree([1, 2, 3, 4, 5], 3, conflict, Infinity), 7); // 10 − 3 with both 4 and 5
    assert.equal(countConflictFree([1, 2, 3, 4, 5], 3, conflict, 2), 2);
    assert.equal(countConflictFree([1, 2], 3, conflict, Infinity), 0);
    const members = Array.from({ length: 16 }, (_, k) => k + 1);
    assert.equal(countConflictFree(members, 8, () => false, Infinity), binomial(16, 8));
  });
});

describe('pools with pair conflicts', () => {
  const setup = () => {
    const view = new View();
    const { g } = graph();
    const pools = new PoolSet({ target: 4, batch: 2, refillConcurrency: 10, subsets: 10 }, view, {}, Date.now, (k, s) => !g.conflicting(k, s));
    pools.setKey({ id: 'tls', epoch: 1, threshold: 3, signers: [1, 2, 3, 4, 5] });
    return { view, g, pools };
  };

  it('ranking, refill planning and take never pick a subset holding a conflicting pair', () => {
    const { view, g, pools } = setup();
    assert.equal(pools.ranked('tls').length, 10);
    for (const s of subsetsOf([1, 2, 3, 4, 5], 3)) pools.add('tls', 1, s, entries(view, s, 2));
    health(g, 4, [1, 2, 3, 5]);
    health(g, 5, [1, 2, 3, 4]);
    assert.deepEqual(pools.ranked('tls'), [[1, 2, 3]]);
    assert.deepEqual(
      pools.plan(10).map((j) => label(j.subset)),
      ['1,2,3'],
    );
    // Pooled presignatures of conflicting subsets are never handed out (and are dropped).
    const taken: string[] = [];
    for (let n = 0; n < 10; n++) {
      const t = pools.take('tls');
      if (!t) break;
      taken.push(label(t.subset));
    }
    assert.deepEqual(taken, ['1,2,3', '1,2,3']);
    assert.equal(pools.dropUnusable('tls'), 9 * 2);
    assert.equal(pools.totalDepth('tls'), 0);
    // A batch finished by a subset that became conflicting meanwhile is refused.
    assert.equal(pools.add('tls', 1, [1, 4, 5], entries(view, [1, 4, 5], 2)), 0);
    assert.equal(pools.add('tls', 1, [1, 2, 3], entries(view, [1, 2, 3], 2)), 2);
    // Pools info: only [1,2,3] is kept filled.
    assert.deepEqual(
      pools.info().filter((p) => p.target > 0).map((p) => label(p.subset)),
      ['1,2,3'],
    );
  });

  it('signers are not evicted: with {4,5} only, every subset without both stays usable', () => {
    const { g, pools } = setup();
    g.reportCallError('tls', 4, 5, 'ot-check-failed');
    const ranked = pools.ranked('tls').map(label);
    assert.equal(ranked.length, 7);
    assert.ok(ranked.includes('1,2,4') && ranked.includes('1,2,5'));
    assert.ok(!ranked.includes('1,4,5') && !ranked.includes('2,4,5') && !ranked.includes('3,4,5'));
  });

  it('health and conflicts together: with signer 3 down and {4,5}, [1,2,4] and [1,2,5] serve', () => {
    const { view, g, pools } = setup();
    g.reportCallError('tls', 5, 4, 'ot-check-failed');
    view.up.delete(3);
    assert.deepEqual(pools.ranked('tls').map(label).sort(), ['1,2,4', '1,2,5']);
    assert.equal(g.countUsable('tls', [...view.up]), 2);
  });

  it('keys with many subsets (cached ranking) skip conflicting subsets too', () => {
    const view = new View();
    for (let i = 6; i <= 10; i++) view.up.add(i);
    const g = new ConflictGraph();
    const big = { id: 'big', threshold: 5, signers: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] };
    g.setKey(big);
    const pools = new PoolSet({ target: 4, batch: 2, refillConcurrency: 2, subsets: 3 }, view, {}, Date.now, (k, s) => !g.conflicting(k, s));
    pools.setKey({ ...big, epoch: 1 });
    assert.equal(pools.ranked('big').length, binomial(10, 5));
    g.reportHealth(1, g.stamp(), [{ keyId: 'big', retiredPeers: [2] }]);
    const ranked = pools.ranked('big');
    assert.equal(ranked.length, binomial(10, 5) - binomial(8, 3));
    assert.ok(ranked.every((s) => !(s.includes(1) && s.includes(2))));
    assert.ok(pools.plan(5).every((j) => !(j.subset.includes(1) && j.subset.includes(2))));
  });
});
