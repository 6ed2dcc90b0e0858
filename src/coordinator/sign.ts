/**
 * The sign path (DESIGN §2): validate → key → client ACL → content policy and rate limit (the
 * same check every signer repeats on the content itself) → presignature (pool,
 * else inline presign) → Finish on the T signers concurrently → combine and verify → audit →
 * answer. A failed attempt (a Finish error, a nonce mismatch, an invalid combination) records the
 * signers involved and retries on another subset, up to `maxAttempts`; only the combiner's own
 * proof against a signer (its online share echoes a wrong nonce) quarantines it, a signer's
 * report about a peer never does (it is a pair conflict, conflicts.ts, which the pools and the
 * inline presign never schedule). When the culprit is unknown (an invalid combination, a signer's error answer),
 * the retry prefers subsets without the prime suspects (the signers common to every such failure
 * so far), then those sharing the fewest signers with any failure (`preferredSubsets`). Nothing is
 * returned that did not verify against the key, and nothing is returned before its audit record
 * is durable.
 */
import { randomBytes } from 'node:crypto';
import type { AuditLog } from '../audit/log.js';
import { combineSignature, TWEAK_SEED_BYTES } from '../protocol/online.js';
import { ProtocolAbort } from '../protocol/errors.js';
import type { ProtocolMessage } from '../protocol/message.js';
import { digestAlgToWire, fromEnvelope } from '../transport/proto.js';
import { CONTEXTS, type Context, type Detail } from '../policy/classify.js';
import { checkContent, DIGEST_BYTES, type DigestAlg } from '../policy/check.js';
import { RateLimiter } from '../policy/rate-limit.js';
import { CoordinatorError, errorName, fail, formatSigners } from './errors.js';
import type { ConflictGraph } from './conflicts.js';
import type { KeyRecord, KeyStore } from './keys.js';
import type { Logger } from './log.js';
import { UNKNOWN_KEY_LABEL, type CoordinatorMetrics } from './metrics.js';
import { KEY_ID_PATTERN, mayUse } from './policy.js';
import { subsetLabel, type PoolEntry, type PoolSet, type Refiller } from './pools.js';
import { PresignError, type Presigner } from './presign.js';
import { SignerCallError, type SignerRegistry } from './signers.js';

export type { DigestAlg };
/** How long a subset that produced an invalid signature is ranked last. */
export const SUBSET_PENALTY_MS = 60_000;
/** Largest accepted tbs (bytes). */
export const MAX_TBS_BYTES = 1024 * 1024;

export interface SignInput {
  keyId: string;
  tbs?: Uint8Array | undefined;
  digest?: Uint8Array | undefined;
  digestAlg: DigestAlg;
  /** Caller identity: certificate CN, "unix" or "http". */
  caller: string;
  /** Context the caller says it is signing (HTTP); must match the classification when given. */
  claimedContext?: string | undefined;
  /** Absolute deadline, ms since the epoch. */
  deadline: number;
}

export interface SignOutput {
  keyId: string;
  epoch: number;
  signatureDer: Uint8Array;
  r: Uint8Array;
  s: Uint8Array;
  publicKey: Uint8Array;
  quorum: number[];
  presignatureId: Uint8Array;
  context: Context;
  auditSeq: number;
  timestampMs: number;
}

export interface SignOptions {
  maxAttempts?: number;
  /** Deadline of one Finish RPC (bounded by the request's deadline). */
  finishTimeoutMs?: number;
  /** Inline presign sessions allowed at once; further requests wait for a slot or a refill. */
  inlineConcurrency?: number;
}

export interface SignDeps {
  keys: KeyStore;
  signers: SignerRegistry;
  pools: PoolSet;
  refiller: Refiller;
  presigner: Presigner;
  conflicts: ConflictGraph;
  audit: AuditLog;
  metrics: CoordinatorMetrics;
  log: Logger;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const scalar32 = (v: bigint) => Uint8Array.from(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));

interface Chosen {
  subset: number[];
  entry: PoolEntry;
  inline: boolean;
}

/** What one sign request learnt from its failed attempts so far. */
interface AttemptLog {
  /** Signers never to use again in this request (named culprits, unreachable, timed out). */
  avoidSigners: Set<number>;
  /** Subsets (labels) not to use again in this request. */
  avoidSubsets: Set<string>;
  /**
   * Signers involved in each failure whose culprit is unknown: the subset of an invalid
   * combination, or the signer that answered Finish with an error.
   */
  failedSets: number[][];
  /** Subsets attempted, in order (pooled or inline). */
  tried: number[][];
  failures: string[];
}

const subsetText = (s: readonly number[]) => `[${s.join(',')}]`;
const triedText = (tried: readonly (readonly number[])[]) => (tried.length ? tried.map(subsetText).join(', ') : 'none');

/** Signers that are members of every failed set (empty when there is none, or no common member). */
export function primeSuspects(failed: readonly (readonly number[])[]): number[] {
  if (failed.length === 0) return [];
  return [...new Set(failed[0])].filter((i) => failed.every((f) => f.includes(i))).sort((a, b) => a - b);
}

/**
 * The subsets to try next after failures without a named culprit, best first: `ranked` (already
 * without the excluded subsets, in preference order) restricted to its best tier, where a subset
 * is better when it holds no prime suspect (a member of every failed set), then when it shares
 * fewer signers with the failed sets. With no failure, `ranked` as is.
 *
 * E.g. 2-of-4, signer 4 corrupts its shares and [3,4] failed: prime suspects {3,4}, next [1,2]
 * only (not [1,4] or [2,4], which avoiding only the failed subset would allow).
 */
export function preferredSubsets(ranked: readonly (readonly number[])[], failed: readonly (readonly number[])[]): number[][] {
  if (failed.length === 0 || ranked.length === 0) return ranked.map((s) => [...s]);
  const prime = new Set(primeSuspects(failed));
  const involved = new Set(failed.flat());
  const score = (s: readonly number[]): [number, number] => [s.some((i) => prime.has(i)) ? 1 : 0, s.filter((i) => involved.has(i)).length];
  const scored = ranked.map((s) => ({ s, score: score(s) }));
  let best = scored[0]!.score;
  for (const { score: c } of scored) if (c[0] < best[0] || (c[0] === best[0] && c[1] < best[1])) best = c;
  return scored.filter(({ score: c }) => c[0] === best[0] && c[1] === best[1]).map(({ s }) => [...s]);
}

export class SignService {
  private readonly maxAttempts: number;
  private readonly finishTimeoutMs: number;
  private readonly inlineLimit: number;
  private inlineRunning = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private inflight = 0;
  private endedAt = Number.NEGATIVE_INFINITY;
  private readonly idleWaiters: (() => void)[] = [];
  /** The coordinator's copy of each key's rate limit, so it does not spend presignatures the signers would refuse. */
  private readonly limiters = new Map<string, { policy: KeyRecord['policy']; limiter: RateLimiter }>();

  constructor(
    private readonly d: SignDeps,
    options: SignOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 3;
    this.finishTimeoutMs = options.finishTimeoutMs ?? 5000;
    this.inlineLimit = options.inlineConcurrency ?? 4;
  }

  /** Sign requests in progress (for draining at shutdown). */
  get active(): number {
    return this.inflight;
  }
  /** When the latest sign request ended (ms since the epoch): refills wait for a quiet period. */
  get lastEndedAt(): number {
    return this.endedAt;
  }
  /** Resolves once no sign request is in progress. */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async sign(input: SignInput): Promise<SignOutput> {
    const started = process.hrtime.bigint();
    this.inflight++;
    let keyLabel = UNKNOWN_KEY_LABEL;
    let contextLabel = 'none';
    try {
      const key = this.lookup(input);
      keyLabel = key.id;
      const access = mayUse(key, input.caller);
      if (!access.allowed) fail('policy', access.message);
      const verdict = checkContent(key.policy, input.digest && input.digest.length > 0 ? { digest: input.digest, digestAlg: input.digestAlg } : { tbs: input.tbs!, digestAlg: input.digestAlg, publicKey: key.publicKey });
      contextLabel = verdict.context;
      if (input.claimedContext !== undefined && input.claimedContext !== verdict.context) {
        fail('invalid', `content is ${verdict.context === 'unknown' ? 'not a recognised structure' : verdict.context}, request says ${input.claimedContext}`);
      }
      if (!verdict.allowed) throw new CoordinatorError('policy', `policy refused (${verdict.reason}) for key '${key.id}': ${verdict.message}`);
      if (!key.policySealed) fail('policy', `key '${key.id}' was created before policies were sealed with the shares: its signers sign nothing until 'quorumkey key adopt-policy ${key.id}'`);
      this.rateLimit(key);
      const out = await this.signDigest(key, verdict.context, verdict.detail, verdict.digest, input);
      this.d.metrics.signRequests.inc({ key: keyLabel, context: contextLabel, result: 'ok' });
      this.d.metrics.signDuration.observe({ key: keyLabel }, Number(process.hrtime.bigint() - started) / 1e9);
      return out;
    } catch (e) {
      const err = e instanceof CoordinatorError ? e : new CoordinatorError('internal', `internal error: ${(e as Error).message}`);
      this.d.metrics.signRequests.inc({ key: keyLabel, context: contextLabel, result: errorName(err.kind) });
      const level = err.kind === 'internal' ? 'error' : err.kind === 'invalid' || err.kind === 'not-found' ? 'debug' : 'warn';
      this.d.log[level]('sign refused', { key: keyLabel, context: contextLabel, caller: input.caller, status: errorName(err.kind), message: err.message });
      throw err;
    } finally {
      this.inflight--;
      this.endedAt = Date.now();
      if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private lookup(input: SignInput): KeyRecord {
    if (typeof input.keyId !== 'string' || !KEY_ID_PATTERN.test(input.keyId)) fail('invalid', 'key_id must match ^[A-Za-z0-9._-]{1,64}$');
    const hasTbs = !!input.tbs && input.tbs.length > 0;
    const hasDigest = !!input.digest && input.digest.length > 0;
    if (hasTbs === hasDigest) fail('invalid', 'exactly one of tbs / digest must be set');
    if (!(input.digestAlg in DIGEST_BYTES)) fail('invalid', 'unknown digest algorithm');
    if (hasDigest && input.digest!.length !== DIGEST_BYTES[input.digestAlg]) {
      fail('invalid', `digest must be ${DIGEST_BYTES[input.digestAlg]} bytes for ${input.digestAlg}, got ${input.digest!.length}`);
    }
    if (hasTbs && input.tbs!.length > MAX_TBS_BYTES) fail('invalid', `tbs is longer than ${MAX_TBS_BYTES} bytes`);
    if (input.claimedContext !== undefined && !(CONTEXTS as readonly string[]).includes(input.claimedContext)) {
      fail('invalid', `unknown context '${input.claimedContext}' (one of ${CONTEXTS.join(', ')})`);
    }
    const key = this.d.keys.get(input.keyId);
    if (!key) fail('not-found', `unknown key '${input.keyId}'`);
    return key!;
  }

  private rateLimit(key: KeyRecord): void {
    let entry = this.limiters.get(key.id);
    if (!entry || entry.policy !== key.policy) {
      entry = { policy: key.policy, limiter: new RateLimiter(key.policy.rate) };
      this.limiters.set(key.id, entry);
    }
    const taken = entry.limiter.take();
    if (!taken.ok) {
      const limit = taken.window === 'second' ? `${key.policy.rate.perSecond} per second` : `${key.policy.rate.perHour} per hour`;
      fail('rate-limited', `key '${key.id}' is over its rate limit of ${limit}; retry in ${Math.ceil(taken.retryAfterMs / 1000)} s`);
    }
  }

  /**
   * Fewer than T healthy holders, or no subset of T healthy holders without a conflicting pair?
   * Then the fail-fast error.
   */
  quorumError(key: KeyRecord): CoordinatorError | undefined {
    const healthy = key.signers.filter((i) => this.d.signers.healthy(i));
    if (healthy.length >= key.threshold) {
      if (this.d.conflicts.count(key.id) === 0 || this.d.conflicts.hasUsableSubset(key.id, healthy)) return undefined;
      const conflicts = this.d.conflicts.list(key.id).filter((c) => healthy.includes(c.a) && healthy.includes(c.b));
      const first = conflicts[0];
      return new CoordinatorError(
        'quorum',
        `quorum insufficient: key '${key.id}' needs ${key.threshold} of signers ${formatSigners(key.signers)} without a pair conflict, healthy: ${formatSigners(healthy)}, ` +
          `conflicts: ${conflicts.map((c) => `{${c.a},${c.b}}`).join(' ')}` +
          (first ? `; reconcile a pair with 'quorumkey signers reconcile --key ${key.id} ${first.a} ${first.b}'` : ''),
      );
    }
    const quarantined = key.signers.filter((i) => this.d.signers.has(i) && this.d.signers.state(i).quarantined);
    return new CoordinatorError(
      'quorum',
      `quorum insufficient: key '${key.id}' needs ${key.threshold} of signers ${formatSigners(key.signers)}, healthy: ${formatSigners(healthy)}` +
        (quarantined.length ? `, quarantined: ${formatSigners(quarantined)}` : ''),
    );
  }

  private async signDigest(key: KeyRecord, context: Context, detail: Detail, digest: Uint8Array, input: SignInput): Promise<SignOutput> {
    const q = this.quorumError(key);
    if (q) throw q;
    const log: AttemptLog = { avoidSigners: new Set(), avoidSubsets: new Set(), failedSets: [], tried: [], failures: [] };
    let lastTimedOut = false;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (Date.now() >= input.deadline) {
        fail('deadline', `deadline exceeded after ${attempt - 1} attempt(s)${log.tried.length ? ` on subsets ${triedText(log.tried)}` : ''}${log.failures.length ? `: ${log.failures.join('; ')}` : ''}`);
      }
      if (attempt > 1) this.d.metrics.signAttempts.inc({ key: key.id });
      let chosen: Chosen;
      try {
        chosen = await this.choose(key, input.deadline, log);
      } catch (e) {
        if (!(e instanceof PresignError)) throw e;
        for (const i of e.signers) log.avoidSigners.add(i);
        if (e.subset.length) log.avoidSubsets.add(subsetLabel(e.subset));
        log.failures.push(e.message);
        lastTimedOut = e.kind === 'timeout';
        continue;
      }
      const tweakSeed = randomBytes(TWEAK_SEED_BYTES);
      try {
        const shares = await this.finish(key, chosen, digest, input, tweakSeed, log);
        const sig = combineSignature({
          keyId: key.id,
          publicKey: key.publicKey,
          presignatureId: chosen.entry.id,
          nonce: chosen.entry.nonce,
          subset: chosen.subset,
          shares,
          digest,
          tweakSeed,
        });
        // A stalled coordinator (paused, swapped out) must not hand out what its client gave up on.
        if (Date.now() > input.deadline) {
          await this.recordUnreleased(key, chosen, digest, 'expired');
          fail('deadline', 'deadline passed before the signature could be returned: it was not returned and is recorded as not released');
        }
        return await this.release(key, context, detail, digest, input, chosen, sig);
      } catch (e) {
        if (e instanceof CoordinatorError) throw e;
        if (e instanceof AttemptFailed) {
          log.failures.push(e.message);
          lastTimedOut = e.timedOut;
          continue;
        }
        if (e instanceof ProtocolAbort) {
          await this.recordUnreleased(key, chosen, digest, e.reason);
          log.failures.push(`subset ${subsetText(chosen.subset)}: ${e.message}`);
          lastTimedOut = false;
          if (e.culprit !== undefined && chosen.subset.includes(e.culprit)) {
            // The combiner's own verified evidence about that signer's answer (its channel is
            // authenticated), not another signer's word: it is set aside until an operator readmits it.
            log.avoidSigners.add(e.culprit);
            this.d.metrics.blames.inc({ key: key.id, reporter: 'combiner', peer: String(e.culprit) });
            this.d.signers.quarantine(e.culprit, `online share rejected by the combiner: ${e.message}`);
          } else {
            const suspects = e.suspects.filter((i) => chosen.subset.includes(i));
            log.avoidSubsets.add(subsetLabel(chosen.subset));
            log.failedSets.push(suspects.length ? suspects : [...chosen.subset]);
            this.d.pools.penalise(key.id, chosen.subset, SUBSET_PENALTY_MS);
            for (const i of e.suspects.length ? e.suspects : chosen.subset) this.d.metrics.suspected.inc({ signer: String(i) });
            this.d.log.error('combined signature invalid: one of the subset misbehaved', {
              key: key.id,
              subset: chosen.subset,
              suspects: e.suspects,
              prime_suspects: primeSuspects(log.failedSets),
              reason: e.reason,
            });
          }
          continue;
        }
        throw e;
      }
    }
    const q2 = this.quorumError(key);
    if (q2) throw q2;
    const summary = `${this.maxAttempts} attempts on subsets ${triedText(log.tried)}: ${log.failures.join('; ')}`;
    if (lastTimedOut || Date.now() >= input.deadline) fail('deadline', `signing timed out after ${summary}`);
    return fail('internal', `signing failed after ${summary}`);
  }

  /**
   * A presignature from the pools, else an inline presign of count 1 on the best subset; after
   * failures both only among the preferred subsets (`preferredSubsets`).
   */
  private async choose(key: KeyRecord, deadline: number, log: AttemptLog): Promise<Chosen> {
    const excluded = (s: readonly number[]) => s.some((i) => log.avoidSigners.has(i)) || log.avoidSubsets.has(subsetLabel(s));
    const noneLeft = (): never => {
      const q = this.quorumError(key);
      if (q) throw q;
      const avoiding = log.avoidSigners.size ? `; avoiding signers ${formatSigners([...log.avoidSigners])}` : '';
      return fail(
        'unavailable',
        `no usable signer subset left for key '${key.id}' after trying ${triedText(log.tried)}${avoiding}` + (log.failures.length ? `: ${log.failures.join('; ')}` : ''),
      );
    };
    for (;;) {
      // Without failures (the common case) every eligible subset may serve, best-ranked first.
      let preferred: number[][] | undefined;
      let usable = excluded;
      if (log.failedSets.length) {
        preferred = preferredSubsets(this.d.pools.ranked(key.id, excluded), log.failedSets);
        if (preferred.length === 0) noneLeft();
        const allowed = new Set(preferred.map(subsetLabel));
        usable = (s) => excluded(s) || !allowed.has(subsetLabel(s));
      }
      const taken = this.d.pools.take(key.id, usable);
      if (taken) {
        log.tried.push([...taken.subset]);
        return { ...taken, inline: false };
      }
      const ranked = preferred ?? this.d.pools.ranked(key.id, excluded);
      if (ranked.length === 0) noneLeft();
      if (this.inlineRunning < this.inlineLimit) {
        this.inlineRunning++;
        this.d.metrics.inlinePresign.inc({ key: key.id });
        try {
          const remaining = deadline - Date.now();
          const subset = ranked[0]!;
          log.tried.push([...subset]);
          const entries = await this.d.presigner.run({ keyId: key.id, epoch: key.epoch, subset, count: 1 }, Math.max(1, Math.min(remaining, 60_000)));
          return { subset, entry: entries[0]!, inline: true };
        } finally {
          this.inlineRunning--;
          for (const w of this.slotWaiters.splice(0)) w();
        }
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) fail('exhausted', `pool of key '${key.id}' depleted and inline presigning impossible: ${this.inlineLimit} inline presigns already running`);
      await new Promise<void>((resolve) => {
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          const k = this.slotWaiters.indexOf(finish);
          if (k >= 0) this.slotWaiters.splice(k, 1);
          resolve();
        };
        this.slotWaiters.push(finish);
        void this.d.refiller.waitForRefill(remaining).then(finish);
      });
    }
  }

  private async finish(key: KeyRecord, chosen: Chosen, digest: Uint8Array, input: SignInput, tweakSeed: Uint8Array, log: AttemptLog): Promise<Map<number, ProtocolMessage>> {
    const timeout = Math.min(this.finishTimeoutMs, input.deadline - Date.now());
    if (timeout <= 0) fail('deadline', 'deadline exceeded before the online round');
    // The signers check the content itself: tbs for every context but raw-digest.
    const content = input.digest && input.digest.length > 0 ? { digest, tbs: new Uint8Array(0) } : { digest: new Uint8Array(0), tbs: input.tbs! };
    const req = {
      key_id: key.id,
      presignature_id: chosen.entry.id,
      tweak_seed: tweakSeed,
      ...content,
      digest_alg: digestAlgToWire(input.digestAlg),
      caller: input.caller,
      deadline_unix_ms: input.deadline,
    };
    const settled = await Promise.allSettled(chosen.subset.map((i) => this.d.signers.finish(i, req, timeout)));
    // A signer refusing under its sealed policy is the answer, not a failure to route around.
    const refused = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected' && s.reason instanceof SignerCallError && s.reason.refusal !== undefined);
    const anyFailed = settled.some((s) => s.status === 'rejected');
    if (anyFailed) await this.recordUnreleased(key, chosen, digest, refused ? `refused: ${(refused.reason as SignerCallError).refusal}` : 'finish-failed');
    if (refused) {
      const e = refused.reason as SignerCallError;
      this.d.log.warn('a signer refused under the key policy it sealed', { key: key.id, signer: e.signer, reason: e.refusal });
      fail(e.refusal === 'rate-limited' ? 'rate-limited' : 'policy', `signer ${e.signer} refused (${e.refusal}): ${e.details}`);
    }
    const errors: string[] = [];
    let timedOut = false;
    const shares = new Map<number, ProtocolMessage>();
    settled.forEach((s, k) => {
      const i = chosen.subset[k]!;
      if (s.status === 'rejected') {
        const e = s.reason as unknown;
        errors.push(e instanceof Error ? e.message : String(e));
        if (e instanceof SignerCallError) {
          timedOut ||= e.timedOut;
          // A signer naming another (a blame) is its word against the other's: this subset only.
          if (e.blame && e.culprit !== undefined && e.culprit !== i) log.avoidSubsets.add(subsetLabel(chosen.subset));
          else if (e.unreachable || e.timedOut) log.avoidSigners.add(i);
          else {
            // An error answer (e.g. a presignature it no longer has): this subset is done for,
            // and the signer that answered so is the one to steer away from.
            log.avoidSubsets.add(subsetLabel(chosen.subset));
            log.failedSets.push([i]);
          }
        } else {
          log.avoidSigners.add(i);
        }
        return;
      }
      const envelope = s.value.share;
      const message = envelope ? fromEnvelope(envelope) : undefined;
      // Attribution follows the channel: the share is signer i's whatever its header says.
      if (!message) throw new ProtocolAbort('malformed-message', 'Finish answer without a valid share envelope', i);
      shares.set(i, message);
    });
    if (errors.length) throw new AttemptFailed(`subset ${subsetText(chosen.subset)}: ${errors.join('; ')}`, timedOut);
    return shares;
  }

  /**
   * Records an attempt whose shares were asked for but whose signature was not released, so
   * that `audit verify --cross` accounts for the shares the signers did release.
   */
  private async recordUnreleased(key: KeyRecord, chosen: Chosen, digest: Uint8Array, reason: string): Promise<void> {
    const record = { event: 'sign-failed', key_id: key.id, epoch: key.epoch, digest: hex(digest), subset: chosen.subset, presignature_id: hex(chosen.entry.id), reason, time: new Date().toISOString() };
    try {
      await this.d.audit.append(record);
      this.d.metrics.auditRecords.inc();
    } catch (e) {
      this.d.metrics.auditFailures.inc();
      this.d.log.error('audit append of a failed attempt failed', { key: key.id, error: (e as Error).message });
    }
  }

  private async release(
    key: KeyRecord,
    context: Context,
    detail: Detail,
    digest: Uint8Array,
    input: SignInput,
    chosen: Chosen,
    sig: { r: bigint; s: bigint; der: Uint8Array; nonce: Uint8Array },
  ): Promise<SignOutput> {
    const time = new Date();
    const record = {
      event: 'sign',
      context,
      key_id: key.id,
      epoch: key.epoch,
      digest: hex(digest),
      digest_alg: input.digestAlg,
      subset: chosen.subset,
      presignature_id: hex(chosen.entry.id),
      nonce: hex(sig.nonce),
      presignature_nonce: hex(chosen.entry.nonce),
      signature: hex(sig.der),
      caller: input.caller,
      detail,
      inline_presign: chosen.inline,
      time: time.toISOString(),
    };
    const t0 = process.hrtime.bigint();
    let appended;
    try {
      appended = await this.d.audit.append(record);
    } catch (e) {
      this.d.metrics.auditFailures.inc();
      this.d.log.error('audit append failed: signature withheld', { key: key.id, error: (e as Error).message });
      return fail('internal', 'audit log unavailable: signature withheld');
    }
    this.d.metrics.auditAppendDuration.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    this.d.metrics.auditRecords.inc();
    this.d.metrics.auditLastAppend.set(Date.now() / 1000);
    this.d.log.info('signed', { key: key.id, context, subset: chosen.subset, caller: input.caller, audit_seq: appended.seq, inline_presign: chosen.inline });
    return {
      keyId: key.id,
      epoch: key.epoch,
      signatureDer: sig.der,
      r: scalar32(sig.r),
      s: scalar32(sig.s),
      publicKey: key.publicKey,
      quorum: chosen.subset,
      presignatureId: chosen.entry.id,
      context,
      auditSeq: appended.seq,
      timestampMs: time.getTime(),
    };
  }
}

/** One attempt failed at the signers (not the caller's fault); the loop retries. */
class AttemptFailed extends Error {
  constructor(
    message: string,
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}
