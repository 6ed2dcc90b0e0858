/**
 * One presign session as the coordinator runs it: Presign to every member of the subset
 * concurrently, all with the same fresh 32-byte session id. The batch is accepted only if every
 * member answered with the same presignature ids and nonces (valid points), the expected count,
 * and a boot id that is still the one the coordinator knows (otherwise the presignatures may
 * already be gone). An ABORTED answer carrying a blame (qk-blame=1, qk-culprit=c from member s) is
 * s's report of a failed check with c: the registry records the pair conflict {s,c} for the key
 * (conflicts.ts), so that no subset holding both is scheduled again; neither signer is avoided
 * on its own for it.
 *
 * Every Presign carries this coordinator's generation (random, fixed for the process): a signer
 * that sees a new one wipes the presignatures of the earlier generations, which no coordinator
 * will ask for any more, so restarts do not pile up presignature halves in signer memory.
 */
import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import type { Logger } from './log.js';
import type { CoordinatorMetrics } from './metrics.js';
import type { PoolEntry, RefillJob } from './pools.js';
import { SignerCallError, type PresignResponse, type SignerRegistry } from './signers.js';

export class PresignError extends Error {
  constructor(
    message: string,
    /** Members to avoid for the rest of a sign request. */
    readonly signers: readonly number[],
    readonly kind: 'error' | 'blame' | 'mismatch' | 'stale' | 'timeout',
    /** The subset of the failed session (not to be tried again in the same sign request). */
    readonly subset: readonly number[] = [],
  ) {
    super(message);
    this.name = 'PresignError';
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function validNonce(nonce: Uint8Array): boolean {
  if (nonce.length !== 33) return false;
  try {
    p256.Point.fromBytes(nonce).assertValidity();
    return true;
  } catch {
    return false;
  }
}

export class Presigner {
  constructor(
    private readonly signers: SignerRegistry,
    private readonly metrics: CoordinatorMetrics,
    private readonly log: Logger,
    /** Deadline of a presign session: base + per presignature. */
    private readonly timeout: (count: number) => number,
    /** This coordinator process's generation (COORDINATOR_GENERATION_BYTES random bytes). */
    private readonly generation: Uint8Array,
  ) {}

  async run(job: RefillJob, timeoutMs = this.timeout(job.count)): Promise<PoolEntry[]> {
    const sessionId = randomBytes(32);
    const subset = [...job.subset].sort((a, b) => a - b);
    const boots = new Map(subset.map((i) => [i, this.signers.bootId(i)]));
    const started = process.hrtime.bigint();
    const label = { key: job.keyId };
    let result: 'ok' | PresignError['kind'] = 'error';
    try {
      // Fail as soon as one member fails (the others would only wait for it until their
      // session timeout); later failures are still noted by the registry (blames: conflicts).
      let answers: PresignResponse[];
      try {
        answers = await Promise.all(
          subset.map((i) => this.signers.presign(i, { key_id: job.keyId, session_id: sessionId, subset, count: job.count, epoch: job.epoch, coordinator_generation: this.generation }, timeoutMs)),
        );
      } catch (e) {
        if (!(e instanceof SignerCallError)) throw e;
        let avoid: number[];
        if (e.blame && e.culprit !== undefined) {
          // One member's word against another's: the pair is kept apart (a conflict), not either signer.
          result = 'blame';
          avoid = [];
        } else {
          result = e.timedOut ? 'timeout' : 'error';
          // Unreachable, timed out or failing on its own: that member (the coordinator saw it).
          // An error naming another member is that member's word against it: the subset only.
          avoid = e.unreachable || e.timedOut || e.culprit === undefined || e.culprit === e.signer || !subset.includes(e.culprit) ? [e.signer] : [];
        }
        throw new PresignError(`presign on subset [${subset}] failed: ${e.message}`, avoid, result, subset);
      }
      // Every member must be running the boot it had when we planned this (else presignatures are lost).
      for (const [k, i] of subset.entries()) {
        const answer = answers[k]!;
        if (boots.get(i) && answer.boot_id !== boots.get(i)) {
          result = 'stale';
          void this.signers.probe(i);
          throw new PresignError(`presign on subset [${subset}]: signer ${i} answered under boot id ${answer.boot_id}, expected ${boots.get(i)}`, [i], 'stale', subset);
        }
        if (!boots.get(i)) {
          this.signers.observeBootId(i, answer.boot_id);
          boots.set(i, answer.boot_id);
        }
      }
      const first = answers[0]!.presignatures ?? [];
      if (first.length !== job.count) {
        result = 'mismatch';
        throw new PresignError(`presign on subset [${subset}]: signer ${subset[0]} returned ${first.length} presignatures, asked for ${job.count}`, subset, 'mismatch', subset);
      }
      for (const [k, answer] of answers.entries()) {
        const list = answer.presignatures ?? [];
        const same =
          list.length === first.length &&
          list.every((p, b) => Buffer.from(p.id).equals(Buffer.from(first[b]!.id)) && Buffer.from(p.nonce).equals(Buffer.from(first[b]!.nonce)));
        if (!same) {
          result = 'mismatch';
          throw new PresignError(`presign on subset [${subset}]: signers ${subset[0]} and ${subset[k]} disagree on the presignatures`, subset, 'mismatch', subset);
        }
      }
      const ids = new Set<string>();
      for (const p of first) {
        if (p.id.length < 16 || p.id.length > 64 || ids.has(hex(p.id)) || !validNonce(p.nonce)) {
          result = 'mismatch';
          throw new PresignError(`presign on subset [${subset}]: malformed presignature id or nonce`, subset, 'mismatch', subset);
        }
        ids.add(hex(p.id));
      }
      const now = Date.now();
      const entries = first.map((p) => ({ id: new Uint8Array(p.id), nonce: new Uint8Array(p.nonce), bootIds: new Map(boots), created: now }));
      result = 'ok';
      this.metrics.presignaturesGenerated.inc(label, entries.length);
      return entries;
    } finally {
      this.metrics.presign.inc({ key: job.keyId, result });
      this.metrics.presignDuration.observe(label, Number(process.hrtime.bigint() - started) / 1e9);
      if (result !== 'ok') this.log.debug('presign failed', { key: job.keyId, subset, result });
    }
  }
}
