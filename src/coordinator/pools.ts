/**
 * Presignature pools (DESIGN §4). The coordinator holds, per (key, subset of T holders), the
 * public half of presignatures its signers made together: id and nonce R, plus the boot ids of
 * the members when they were made. Nothing here is secret and nothing is persisted: a
 * presignature exists only in the memory of its signers, and a restarted signer has none.
 *
 * - Ranking: a subset is eligible when every member is healthy and it holds no conflicting pair
 *   of the key (conflicts.ts: two members that reported a failed check between them are never
 *   scheduled together); eligible subsets are ranked by their slowest member's latency EWMA
 *   (ties by indices).
 * - Refill: for each key, the `pool.subsets` best-ranked eligible subsets are kept filled between
 *   two marks: a pool starts filling once it holds fewer than `pool.lowWater` and then fills up
 *   to `pool.target` (hysteresis: a warm pool serves a burst from what it holds, its refill does
 *   not compete with the burst), in batches of `pool.batch` (one presign session each), with at
 *   most `pool.refillConcurrency` sessions in flight overall and one per pool. A pool whose
 *   session failed backs off (1 s doubling to 30 s). Pools of other subsets keep what they hold
 *   and are still used, but not refilled.
 * - Refill yields to online work (`plan(slots, busy)`, Refiller's `quietIn`): while sign
 *   requests are in flight, or ended less than `pool.refillQuietMs` ago, no new batch starts,
 *   except for pools below half their low-water mark. The presign computation runs on the same
 *   signers (and, on a small machine, the same cores) as the online rounds, so deferring it keeps
 *   the online latency flat during a burst; the exception bounds the deferral by depth rather
 *   than time, so a sustained load drains a pool to that reserve, never to empty, and a sign
 *   request waiting for an empty pool is never held up by the yielding.
 * - Take: pops (single use) the oldest entry of the best-ranked eligible subset that has one.
 * - A boot id change drops every entry involving that signer; a refresh drops the key's pools; a
 *   new pair conflict drops the entries of the subsets holding the pair (`dropUnusable`).
 *
 * PoolSet is pure (injected signer view and clock) so that the selection logic is unit-tested;
 * Refiller drives it with a presign function.
 */
import { lowWaterOf, type PoolConfig } from '../cluster/config.js';
import type { Logger } from './log.js';

export interface PoolEntry {
  id: Uint8Array;
  /** R, 33-byte compressed point, as reported by every member. */
  nonce: Uint8Array;
  /** Boot id of each member when the presignature was made. */
  bootIds: ReadonlyMap<number, string>;
  created: number;
}

export interface SignerView {
  healthy(index: number): boolean;
  latencyMs(index: number): number;
  bootId(index: number): string;
}

export interface PoolKey {
  id: string;
  epoch: number;
  threshold: number;
  signers: readonly number[];
}

export interface RefillJob {
  keyId: string;
  epoch: number;
  subset: number[];
  count: number;
}

export interface PoolInfo {
  keyId: string;
  subset: number[];
  depth: number;
  target: number;
}

export type DropReason = 'signer-restart' | 'refresh' | 'failed-sign' | 'pair-conflict' | 'deleted';

/** False for a subset that must not be scheduled for the key (it holds a conflicting pair). */
export type SubsetFilter = (keyId: string, subset: readonly number[]) => boolean;

export interface PoolHooks {
  depth?(keyId: string, subset: string, depth: number): void;
  dropped?(keyId: string, reason: DropReason, count: number): void;
  /** A planning round in which `pools` filling pools waited for the online path to be quiet. */
  deferred?(pools: number): void;
}

/** All subsets of `holders` of size t, each ascending, in lexicographic order. */
export function subsetsOf(holders: readonly number[], t: number): number[][] {
  const sorted = [...holders].sort((a, b) => a - b);
  const out: number[][] = [];
  const pick = (start: number, acc: number[]) => {
    if (acc.length === t) {
      out.push([...acc]);
      return;
    }
    for (let k = start; k <= sorted.length - (t - acc.length); k++) {
      acc.push(sorted[k]!);
      pick(k + 1, acc);
      acc.pop();
    }
  };
  if (t >= 1 && t <= sorted.length) pick(0, []);
  return out;
}

/** Keys with more subsets than this get per-subset series and status rows only for pools in use. */
export const MAX_EAGER_SERIES = 64;
const RANK_CACHE_MS = 1000;

export const subsetLabel = (subset: readonly number[]): string => subset.join(',');

/**
 * Eligible subsets (all members healthy), fastest first (by slowest member), ties by indices.
 * Penalised subsets (recently produced an invalid signature) come after all others.
 */
export function rankSubsets(subsets: readonly (readonly number[])[], view: SignerView, penalised: (subset: readonly number[]) => boolean = () => false): number[][] {
  const scored = subsets
    .filter((s) => s.every((i) => view.healthy(i)))
    .map((s) => ({ s: [...s], worst: Math.max(...s.map((i) => view.latencyMs(i))), penalty: penalised(s) ? 1 : 0 }));
  scored.sort((a, b) => {
    if (a.penalty !== b.penalty) return a.penalty - b.penalty;
    if (a.worst !== b.worst) {
      // Infinity (no sample yet) after every measured one; NaN-free comparison.
      if (!Number.isFinite(a.worst)) return 1;
      if (!Number.isFinite(b.worst)) return -1;
      return a.worst - b.worst;
    }
    const la = subsetLabel(a.s);
    const lb = subsetLabel(b.s);
    return la < lb ? -1 : la > lb ? 1 : 0;
  });
  return scored.map((x) => x.s);
}

interface Pool {
  subset: number[];
  entries: PoolEntry[];
  /** Presign sessions in flight for this pool (at most one) and their count. */
  inflight: number;
  /** Below the low-water mark since it was last full: refilled until it reaches the target. */
  filling: boolean;
  failures: number;
  retryAt: number;
}

interface KeyPools {
  key: PoolKey;
  subsets: number[][];
  pools: Map<string, Pool>;
}

export class PoolSet {
  private readonly keys = new Map<string, KeyPools>();
  private readonly suspended = new Set<string>();
  /** `${key}/${subset}` → until (ms): ranked last. */
  private readonly penalties = new Map<string, number>();
  /** Keys with many subsets: their order by (penalty, latency), recomputed at most every RANK_CACHE_MS. */
  private readonly rankCache = new Map<string, { at: number; order: number[][] }>();
  /** A pool starts filling below this depth. */
  readonly lowWater: number;
  /** Below this depth a pool refills even while online work is in progress. */
  readonly reserve: number;

  constructor(
    readonly config: PoolConfig,
    private readonly view: SignerView,
    private readonly hooks: PoolHooks = {},
    private readonly now: () => number = Date.now,
    private readonly usable: SubsetFilter = () => true,
  ) {
    this.lowWater = lowWaterOf(config);
    this.reserve = Math.ceil(this.lowWater / 2);
  }

  /** Reports a pool's new depth and moves its refill state between the marks. */
  private changed(keyId: string, pool: Pool): void {
    const depth = pool.entries.length;
    if (depth >= this.config.target) pool.filling = false;
    else if (depth < this.lowWater) pool.filling = true;
    this.hooks.depth?.(keyId, subsetLabel(pool.subset), depth);
  }

  /** Adds a key, or updates it; a new epoch (refresh) drops all its presignatures. */
  setKey(key: PoolKey): void {
    const existing = this.keys.get(key.id);
    if (existing && existing.key.epoch === key.epoch && subsetLabel(existing.key.signers) === subsetLabel(key.signers)) {
      existing.key = key;
      return;
    }
    if (existing) this.dropKey(key.id, 'refresh');
    const subsets = subsetsOf(key.signers, key.threshold);
    const pools = new Map<string, Pool>();
    for (const s of subsets) pools.set(subsetLabel(s), { subset: s, entries: [], inflight: 0, filling: this.lowWater > 0, failures: 0, retryAt: 0 });
    this.keys.set(key.id, { key: { ...key, signers: [...key.signers] }, subsets, pools });
    // Depth series start at 0 for small subset counts; with many subsets (up to C(16,8)) they
    // appear as pools get used, to keep the metric cardinality bounded.
    if (subsets.length <= MAX_EAGER_SERIES) for (const pool of pools.values()) this.changed(key.id, pool);
  }

  key(keyId: string): PoolKey | undefined {
    return this.keys.get(keyId)?.key;
  }

  /** Stops (true) or resumes refills of a key (during a refresh). */
  suspend(keyId: string, suspended: boolean): void {
    if (suspended) this.suspended.add(keyId);
    else this.suspended.delete(keyId);
  }

  depth(keyId: string, subset: readonly number[]): number {
    return this.keys.get(keyId)?.pools.get(subsetLabel(subset))?.entries.length ?? 0;
  }

  totalDepth(keyId: string): number {
    let n = 0;
    for (const p of this.keys.get(keyId)?.pools.values() ?? []) n += p.entries.length;
    return n;
  }

  /**
   * Eligible subsets of a key (every member healthy, no conflicting pair), best first, skipping
   * those `exclude` rejects.
   */
  ranked(keyId: string, exclude?: (subset: readonly number[]) => boolean): number[][] {
    const kp = this.keys.get(keyId);
    if (!kp) return [];
    if (kp.subsets.length <= MAX_EAGER_SERIES) {
      return rankSubsets(kp.subsets, this.view, (s) => this.penalised(keyId, s)).filter((s) => this.usable(keyId, s) && !exclude?.(s));
    }
    // Up to C(16,8) subsets: sorting them costs tens of ms, so the order is cached briefly and
    // only health and exclusions are applied per call.
    let cached = this.rankCache.get(keyId);
    if (!cached || this.now() - cached.at > RANK_CACHE_MS) {
      const all: SignerView = { healthy: () => true, latencyMs: (i) => this.view.latencyMs(i), bootId: (i) => this.view.bootId(i) };
      cached = { at: this.now(), order: rankSubsets(kp.subsets, all, (s) => this.penalised(keyId, s)) };
      this.rankCache.set(keyId, cached);
    }
    return cached.order.filter((s) => s.every((i) => this.view.healthy(i)) && this.usable(keyId, s) && !exclude?.(s));
  }

  private penalised(keyId: string, subset: readonly number[]): boolean {
    const k = `${keyId}/${subsetLabel(subset)}`;
    const until = this.penalties.get(k);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.penalties.delete(k);
    return false;
  }

  /**
   * A subset produced an invalid signature (one member misbehaved, which one is unknown): its
   * entries are dropped and it is ranked after every other eligible subset for `ms`, so that
   * signing and refills move to subsets without the culprit while some remain.
   */
  penalise(keyId: string, subset: readonly number[], ms: number): void {
    const kp = this.keys.get(keyId);
    const pool = kp?.pools.get(subsetLabel(subset));
    if (!pool) return;
    this.penalties.set(`${keyId}/${subsetLabel(subset)}`, this.now() + ms);
    this.rankCache.delete(keyId);
    if (pool.entries.length) this.hooks.dropped?.(keyId, 'failed-sign', pool.entries.length);
    pool.entries = [];
    this.changed(keyId, pool);
  }

  /**
   * Pops the oldest presignature of the best-ranked eligible subset that has one, skipping
   * entries whose members restarted since (their presignatures are gone).
   */
  take(keyId: string, exclude?: (subset: readonly number[]) => boolean): { subset: number[]; entry: PoolEntry } | undefined {
    const kp = this.keys.get(keyId);
    if (!kp) return undefined;
    for (const subset of this.ranked(keyId, exclude)) {
      const pool = kp.pools.get(subsetLabel(subset))!;
      while (pool.entries.length > 0) {
        const entry = pool.entries.shift()!;
        if (this.current(entry)) {
          this.changed(keyId, pool);
          return { subset: [...subset], entry };
        }
        this.hooks.dropped?.(keyId, 'signer-restart', 1);
      }
      this.changed(keyId, pool);
    }
    return undefined;
  }

  private current(entry: PoolEntry): boolean {
    for (const [i, boot] of entry.bootIds) if (this.view.bootId(i) !== boot) return false;
    return true;
  }

  /**
   * Adds a finished batch. Refused (returns 0) when the key's epoch moved on, the pool does not
   * exist, a member's boot id is no longer the one the batch was made under, or the subset holds
   * a conflicting pair by now.
   */
  add(keyId: string, epoch: number, subset: readonly number[], entries: readonly PoolEntry[]): number {
    const kp = this.keys.get(keyId);
    if (!kp || kp.key.epoch !== epoch) return 0;
    if (!this.usable(keyId, subset)) return 0;
    const pool = kp.pools.get(subsetLabel(subset));
    if (!pool) return 0;
    const fresh = entries.filter((e) => this.current(e));
    pool.entries.push(...fresh);
    this.changed(keyId, pool);
    return fresh.length;
  }

  /** Drops every entry involving signer `index` (it restarted). Returns how many. */
  dropSigner(index: number): number {
    let total = 0;
    for (const [keyId, kp] of this.keys) {
      let n = 0;
      for (const pool of kp.pools.values()) {
        if (!pool.subset.includes(index)) continue;
        n += pool.entries.length;
        pool.entries = [];
        pool.failures = 0;
        pool.retryAt = 0;
        this.changed(keyId, pool);
      }
      if (n) this.hooks.dropped?.(keyId, 'signer-restart', n);
      total += n;
    }
    return total;
  }

  /**
   * Drops every entry of the key's subsets that are no longer usable (a conflicting pair was
   * reported among their members). Returns how many.
   */
  dropUnusable(keyId: string): number {
    const kp = this.keys.get(keyId);
    if (!kp) return 0;
    let n = 0;
    for (const pool of kp.pools.values()) {
      if (pool.entries.length === 0 || this.usable(keyId, pool.subset)) continue;
      n += pool.entries.length;
      pool.entries = [];
      this.changed(keyId, pool);
    }
    if (n) this.hooks.dropped?.(keyId, 'pair-conflict', n);
    return n;
  }

  /** Drops every entry of a key. */
  dropKey(keyId: string, reason: DropReason): number {
    const kp = this.keys.get(keyId);
    if (!kp) return 0;
    let n = 0;
    for (const pool of kp.pools.values()) {
      n += pool.entries.length;
      pool.entries = [];
      this.changed(keyId, pool);
    }
    if (n) this.hooks.dropped?.(keyId, reason, n);
    return n;
  }

  /** Forgets a key (deleted): its entries dropped, no refill for it again. */
  removeKey(keyId: string): void {
    this.dropKey(keyId, 'deleted');
    this.keys.delete(keyId);
    this.suspended.delete(keyId);
    this.rankCache.delete(keyId);
  }

  /**
   * Clears the back-off of every pool involving `index` (e.g. it was readmitted or came back), or
   * of every pool; `keyId` restricts it to one key.
   */
  resetBackoff(index?: number, keyId?: string): void {
    for (const [id, kp] of this.keys) {
      if (keyId !== undefined && id !== keyId) continue;
      for (const pool of kp.pools.values()) {
        if (index === undefined || pool.subset.includes(index)) {
          pool.failures = 0;
          pool.retryAt = 0;
        }
      }
    }
  }

  /**
   * The next presign sessions to start, at most `slots`. Candidates are the `pool.subsets`
   * best-ranked eligible subsets of every key whose pool is filling (it fell below the low-water
   * mark and has not reached the target since), has no session in flight and is not backing off;
   * while online work is `busy`, only those below the reserve (half the low-water mark). The
   * best-ranked subset of each key comes first (then the second of each, …), emptier pools first
   * within a rank.
   */
  plan(slots: number, busy = false): RefillJob[] {
    if (slots <= 0) return [];
    const now = this.now();
    const candidates: { job: RefillJob; rank: number; depth: number }[] = [];
    let deferred = 0;
    for (const [keyId, kp] of this.keys) {
      if (this.suspended.has(keyId)) continue;
      const ranked = this.ranked(keyId).slice(0, Math.max(0, this.config.subsets));
      ranked.forEach((subset, rank) => {
        const pool = kp.pools.get(subsetLabel(subset))!;
        if (!pool.filling || pool.inflight > 0 || pool.retryAt > now) return;
        if (busy && pool.entries.length >= this.reserve) {
          deferred++;
          return;
        }
        const deficit = this.config.target - pool.entries.length;
        if (deficit <= 0) return;
        const count = Math.max(1, Math.min(this.config.batch, deficit));
        candidates.push({ job: { keyId, epoch: kp.key.epoch, subset: [...subset], count }, rank, depth: pool.entries.length });
      });
    }
    if (deferred) this.hooks.deferred?.(deferred);
    candidates.sort((a, b) => a.rank - b.rank || a.depth - b.depth || (a.job.keyId < b.job.keyId ? -1 : 1));
    return candidates.slice(0, slots).map((c) => c.job);
  }

  /** Marks a planned job as started / finished (ok resets back-off, failure doubles it). */
  started(job: RefillJob): void {
    const pool = this.keys.get(job.keyId)?.pools.get(subsetLabel(job.subset));
    if (pool) pool.inflight++;
  }
  finished(job: RefillJob, ok: boolean): void {
    const pool = this.keys.get(job.keyId)?.pools.get(subsetLabel(job.subset));
    if (!pool) return;
    pool.inflight = Math.max(0, pool.inflight - 1);
    if (ok) {
      pool.failures = 0;
      pool.retryAt = 0;
    } else {
      pool.failures++;
      pool.retryAt = this.now() + Math.min(30_000, 1000 * 2 ** (pool.failures - 1));
    }
  }

  /**
   * Every pool (for keys with many subsets: those holding presignatures or kept filled);
   * `target` is pool.target for the subsets currently kept filled, 0 for the others.
   */
  info(): PoolInfo[] {
    const out: PoolInfo[] = [];
    for (const [keyId, kp] of this.keys) {
      const filled = this.suspended.has(keyId) ? new Set<string>() : new Set(this.ranked(keyId).slice(0, this.config.subsets).map(subsetLabel));
      const all = kp.subsets.length <= MAX_EAGER_SERIES;
      for (const [label, pool] of kp.pools) {
        const target = filled.has(label) ? this.config.target : 0;
        if (all || target > 0 || pool.entries.length > 0) out.push({ keyId, subset: [...pool.subset], depth: pool.entries.length, target });
      }
    }
    return out;
  }
}

export type PresignFn = (job: RefillJob) => Promise<PoolEntry[]>;

/** While requests are in flight, how often the refiller looks again (with a quiet period shorter than this). */
const BUSY_RECHECK_MS = 5;

/**
 * How long until the online path has been quiet for `quietMs`: 0 when it has (no request in
 * flight and the last one ended at least `quietMs` before `now`); with requests in flight, when
 * to look again.
 */
export function quietIn(active: number, lastEndedAt: number, quietMs: number, now: number): number {
  if (active > 0) return Math.max(quietMs, BUSY_RECHECK_MS);
  return Math.max(0, lastEndedAt + quietMs - now);
}

export interface RefillerOptions {
  /** Planning period (ms); refills are also planned on `kick()`. Default 250. */
  intervalMs?: number;
  /** Time until the online path is quiet (see `quietIn`); > 0 means busy. Default: always quiet. */
  quietIn?: () => number;
}

/**
 * Keeps the pools filled: plans jobs on a timer and on `kick()`, runs at most
 * `refillConcurrency` presign sessions at once. While online work is in progress it plans with
 * `busy` (pools above their reserve wait) and plans again once the online path is quiet.
 */
export class Refiller {
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private quietTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly inflight = new Set<Promise<void>>();
  private readonly waiters: (() => void)[] = [];
  private readonly intervalMs: number;
  private readonly quietIn: () => number;

  constructor(
    private readonly pools: PoolSet,
    private readonly presign: PresignFn,
    private readonly log: Logger,
    options: RefillerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 250;
    this.quietIn = options.quietIn ?? (() => 0);
  }

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Stops planning (at once) and waits for the sessions in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.timer = this.quietTimer = undefined;
    await Promise.allSettled([...this.inflight]);
  }

  /** Resolves the next time a batch is added to a pool (or after `ms`). */
  waitForRefill(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        const k = this.waiters.indexOf(done);
        if (k >= 0) this.waiters.splice(k, 1);
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.waiters.push(done);
    });
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  kick(): void {
    if (this.stopped) return;
    const wait = this.quietIn();
    if (wait > 0 && !this.quietTimer) {
      // Plan again as soon as the online path may be quiet (re-armed while it is not).
      this.quietTimer = setTimeout(() => {
        this.quietTimer = undefined;
        this.kick();
      }, wait);
      this.quietTimer.unref();
    }
    const jobs = this.pools.plan(this.pools.config.refillConcurrency - this.running, wait > 0);
    for (const job of jobs) {
      this.pools.started(job);
      this.running++;
      const p = this.run(job).finally(() => {
        this.running--;
        this.inflight.delete(p);
        if (!this.stopped) setImmediate(() => this.kick());
      });
      this.inflight.add(p);
    }
  }

  private async run(job: RefillJob): Promise<void> {
    let ok = false;
    try {
      const entries = await this.presign(job);
      const added = this.pools.add(job.keyId, job.epoch, job.subset, entries);
      ok = added > 0 || entries.length === 0;
      if (added) this.notify();
    } catch (e) {
      this.log.debug('presign batch failed', { key: job.keyId, subset: job.subset, error: (e as Error).message });
    } finally {
      this.pools.finished(job, ok);
    }
  }
}
