/**
 * Pair conflicts (per key): a blame is a conflict between two parties, not a verdict. The
 * coordinator cannot tell accuser from accused, so a failed OT / VOLE check between signers a and
 * b only means that a and b must not be scheduled together for that key. Signers are never
 * evicted for what another signer says; every subset without a conflicting pair stays usable.
 *
 * A conflict {a,b} of a key is recorded only from a report by a or b themselves:
 *  - a Presign call to signer s answered ABORTED with qk-blame=1 / qk-culprit=c: {s,c}
 *    (`reportCallError`; a culprit equal to s, or not a holder of the key, is ignored);
 *  - signer s's Health lists p among the key's retired_peers: {s,p} (`reportHealth`).
 * A signer can never create a conflict between two other signers.
 *
 * A conflict is cleared only when the latest Health answers of BOTH members list neither the
 * other, and both answers come from probes started after the last report asserting the conflict
 * (a call error or a Health answer listing it). Reports carry a stamp from `stamp()`, a strictly
 * increasing counter: a probe takes its stamp when it starts, a call error when it is observed,
 * so a Health answer to a probe started before an error was seen (stale) can never clear it.
 *
 * Pure (no I/O, injected wall clock for display only) so that it is unit-tested; the signer
 * registry feeds it Health answers, the presigner call errors, and the pools ask `conflicting`.
 */
import { subsetsOf } from './pools.js';

export interface ConflictKey {
  id: string;
  threshold: number;
  signers: readonly number[];
}

export interface PairConflictView {
  keyId: string;
  /** a < b. */
  a: number;
  b: number;
  /** Members that reported it (one or both). */
  reportedBy: number[];
  reason: string;
  /** Wall-clock ms when it was first recorded. */
  since: number;
}

export interface ConflictHooks {
  /** A new conflict (not one reported again). */
  added?(conflict: PairConflictView): void;
  cleared?(keyId: string, a: number, b: number): void;
  /** A member newly reports the other: a call error, or a Health answer that did not list it before. */
  blame?(keyId: string, reporter: number, peer: number, reason: string): void;
}

export interface HealthKeyReport {
  keyId: string;
  retiredPeers: readonly number[];
}

interface Conflict {
  keyId: string;
  a: number;
  b: number;
  reportedBy: Set<number>;
  reason: string;
  since: number;
  /** Stamp of the latest report asserting it: only Health answers stamped later may clear it. */
  asserted: number;
}

interface HealthReport {
  stamp: number;
  retired: ReadonlySet<number>;
}

interface KeyState {
  key: ConflictKey;
  holders: ReadonlySet<number>;
  /** `${a},${b}` → conflict. */
  conflicts: Map<string, Conflict>;
  /** Member → the other members it is in conflict with. */
  adjacency: Map<number, Set<number>>;
  /** Signer → its latest Health answer about this key. */
  health: Map<number, HealthReport>;
}

const pairLabel = (a: number, b: number) => (a < b ? `${a},${b}` : `${b},${a}`);

function view(c: Conflict): PairConflictView {
  return { keyId: c.keyId, a: c.a, b: c.b, reportedBy: [...c.reportedBy].sort((x, y) => x - y), reason: c.reason, since: c.since };
}

export class ConflictGraph {
  private seq = 0;
  private readonly keys = new Map<string, KeyState>();

  constructor(
    private readonly hooks: ConflictHooks = {},
    private readonly now: () => number = Date.now,
  ) {}

  /** A fresh, strictly increasing stamp (take it when a probe starts or an error is observed). */
  stamp(): number {
    return ++this.seq;
  }

  /** Adds or updates a key; conflicts and reports about signers no longer holders are dropped. */
  setKey(key: ConflictKey): void {
    const holders = new Set(key.signers);
    const existing = this.keys.get(key.id);
    if (!existing) {
      this.keys.set(key.id, { key: { ...key, signers: [...key.signers] }, holders, conflicts: new Map(), adjacency: new Map(), health: new Map() });
      return;
    }
    existing.key = { ...key, signers: [...key.signers] };
    existing.holders = holders;
    for (const c of [...existing.conflicts.values()]) if (!holders.has(c.a) || !holders.has(c.b)) this.remove(existing, c);
    for (const i of [...existing.health.keys()]) if (!holders.has(i)) existing.health.delete(i);
  }

  removeKey(keyId: string): void {
    const ks = this.keys.get(keyId);
    if (!ks) return;
    for (const c of [...ks.conflicts.values()]) this.remove(ks, c);
    this.keys.delete(keyId);
  }

  /**
   * A Presign call to `reporter` failed with a blame naming `culprit`. Ignored (returns false)
   * for an unknown key, a culprit equal to the reporter, or either not being a holder.
   */
  reportCallError(keyId: string, reporter: number, culprit: number, reason: string, stamp: number = this.stamp()): boolean {
    const ks = this.keys.get(keyId);
    if (!ks || reporter === culprit || !ks.holders.has(reporter) || !ks.holders.has(culprit)) return false;
    this.assert(ks, reporter, culprit, `${reason} (Presign at signer ${reporter})`, stamp);
    this.hooks.blame?.(keyId, reporter, culprit, reason);
    return true;
  }

  /**
   * Signer `reporter`'s Health answer to a probe stamped `stamp` (taken when the probe started):
   * for every key it lists, the peers it has retired. Keys it does not list are left as they were.
   * An answer older than the last one recorded for the same signer and key is ignored.
   */
  reportHealth(reporter: number, stamp: number, keys: readonly HealthKeyReport[]): void {
    for (const k of keys) {
      const ks = this.keys.get(k.keyId);
      if (!ks || !ks.holders.has(reporter)) continue;
      const previous = ks.health.get(reporter);
      if (previous && previous.stamp >= stamp) continue;
      const retired = new Set(k.retiredPeers.filter((p) => p !== reporter && ks.holders.has(p)));
      ks.health.set(reporter, { stamp, retired });
      for (const p of retired) {
        this.assert(ks, reporter, p, `retired pair (reported in the Health of signer ${reporter})`, stamp);
        if (!previous?.retired.has(p)) this.hooks.blame?.(k.keyId, reporter, p, 'retired-peer');
      }
      for (const peer of [...(ks.adjacency.get(reporter) ?? [])]) this.tryClear(ks, ks.conflicts.get(pairLabel(reporter, peer))!);
    }
  }

  private assert(ks: KeyState, reporter: number, peer: number, reason: string, stamp: number): void {
    const label = pairLabel(reporter, peer);
    const existing = ks.conflicts.get(label);
    if (existing) {
      existing.reportedBy.add(reporter);
      existing.asserted = Math.max(existing.asserted, stamp);
      return;
    }
    const [a, b] = reporter < peer ? [reporter, peer] : [peer, reporter];
    const c: Conflict = { keyId: ks.key.id, a, b, reportedBy: new Set([reporter]), reason, since: this.now(), asserted: stamp };
    ks.conflicts.set(label, c);
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      let set = ks.adjacency.get(x);
      if (!set) ks.adjacency.set(x, (set = new Set()));
      set.add(y);
    }
    this.hooks.added?.(view(c));
  }

  private tryClear(ks: KeyState, c: Conflict): void {
    const ha = ks.health.get(c.a);
    const hb = ks.health.get(c.b);
    if (!ha || !hb) return;
    if (ha.stamp <= c.asserted || hb.stamp <= c.asserted) return;
    if (ha.retired.has(c.b) || hb.retired.has(c.a)) return;
    this.remove(ks, c);
    this.hooks.cleared?.(c.keyId, c.a, c.b);
  }

  private remove(ks: KeyState, c: Conflict): void {
    ks.conflicts.delete(pairLabel(c.a, c.b));
    ks.adjacency.get(c.a)?.delete(c.b);
    ks.adjacency.get(c.b)?.delete(c.a);
  }

  /** True when the key has a conflict {a,b}. */
  has(keyId: string, a: number, b: number): boolean {
    return this.keys.get(keyId)?.conflicts.has(pairLabel(a, b)) ?? false;
  }

  /** Number of conflicts of a key. */
  count(keyId: string): number {
    return this.keys.get(keyId)?.conflicts.size ?? 0;
  }

  /** True when `subset` contains a conflicting pair of `keyId` (never to be scheduled). */
  conflicting(keyId: string, subset: readonly number[]): boolean {
    const ks = this.keys.get(keyId);
    if (!ks || ks.conflicts.size === 0) return false;
    for (const i of subset) {
      const others = ks.adjacency.get(i);
      if (others && others.size > 0 && subset.some((j) => others.has(j))) return true;
    }
    return false;
  }

  /** Every conflict (of one key, or all), by key then pair. */
  list(keyId?: string): PairConflictView[] {
    const out: PairConflictView[] = [];
    const states = keyId === undefined ? [...this.keys.values()] : this.keys.has(keyId) ? [this.keys.get(keyId)!] : [];
    for (const ks of states) for (const c of ks.conflicts.values()) out.push(view(c));
    return out.sort((x, y) => (x.keyId < y.keyId ? -1 : x.keyId > y.keyId ? 1 : x.a - y.a || x.b - y.b));
  }

  /** The key's subsets of T holders without a conflicting pair (whatever the signers' health), ascending. */
  usableSubsets(keyId: string): number[][] {
    const ks = this.keys.get(keyId);
    if (!ks) return [];
    return subsetsOf(ks.key.signers, ks.key.threshold).filter((s) => !this.conflicting(keyId, s));
  }

  /**
   * Whether some subset of T signers drawn from `candidates` (e.g. the healthy holders) has no
   * conflicting pair; stops at the first one found.
   */
  hasUsableSubset(keyId: string, candidates: readonly number[]): boolean {
    return this.countUsable(keyId, candidates, 1) > 0;
  }

  /** How many subsets of T signers drawn from `candidates` have no conflicting pair (up to `limit`). */
  countUsable(keyId: string, candidates: readonly number[], limit = Number.POSITIVE_INFINITY): number {
    const ks = this.keys.get(keyId);
    if (!ks) return 0;
    const members = [...new Set(candidates)].filter((i) => ks.holders.has(i)).sort((a, b) => a - b);
    return countConflictFree(members, ks.key.threshold, (i, j) => ks.adjacency.get(i)?.has(j) ?? false, limit);
  }

  /** The latest retired_peers a signer reported for a key (undefined: no Health answer yet). */
  retiredBy(keyId: string, signer: number): number[] | undefined {
    const h = this.keys.get(keyId)?.health.get(signer);
    return h ? [...h.retired].sort((a, b) => a - b) : undefined;
  }
}

/**
 * Counts the t-subsets of `members` (ascending) without a pair for which `conflict` holds, up to
 * `limit` (a backtracking search that prunes as soon as a conflicting pair is picked).
 */
export function countConflictFree(members: readonly number[], t: number, conflict: (i: number, j: number) => boolean, limit: number): number {
  if (t < 1 || t > members.length) return 0;
  let count = 0;
  const acc: number[] = [];
  const pick = (start: number): boolean => {
    if (acc.length === t) {
      count++;
      return count >= limit;
    }
    for (let k = start; k <= members.length - (t - acc.length); k++) {
      const m = members[k]!;
      if (acc.some((x) => conflict(x, m))) continue;
      acc.push(m);
      const done = pick(k + 1);
      acc.pop();
      if (done) return true;
    }
    return false;
  };
  pick(0);
  return count;
}

/** C(n, k) as a number (exact for the key sizes allowed, n ≤ 16). */
export function binomial(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}
