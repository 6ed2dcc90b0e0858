/**
 * The signer's own policy gate in front of the online round (DESIGN §2 step 5, §5): whatever the
 * coordinator says, this signer hashes and classifies the content itself, checks it against the
 * policy sealed with its share and the key's rate limit, and records every answer — signed or
 * refused — in its own hash-chained audit log before the answer leaves. A refusal names its
 * reason (trailing metadata `qk-refusal`) and destroys the presignature it was asked to use.
 */
import * as grpc from '@grpc/grpc-js';
import { AuditLog } from '../src/audit/log.js';
import type { Detail } from '../src/policy/classify.js';
import { checkContent, type ContentVerdict, type SignContent } from '../src/policy/check.js';
import { decodeKeyPolicy, type KeyPolicy } from '../src/policy/key-policy.js';
import { RateLimiter } from '../src/policy/rate-limit.js';
import type { KeyShare } from '../src/protocol/keyshare.js';
import { toHex } from '../src/protocol/message.js';
import { REFUSAL_METADATA } from '../src/transport/proto.js';
import type { Logger } from './log.js';

/**
 * Opens a signer's audit log (paths(dir).signerAudit). A record torn by a crash is moved aside (and said so in the
 * log) rather than keeping the signer down: the chain up to the last whole record still verifies.
 */
export async function openSignerAudit(path: string, log: Logger, rotateBytes: number): Promise<AuditLog> {
  const audit = await AuditLog.open(path, { repairTruncatedTail: true, rotateBytes });
  log.info('audit log open', { records: audit.head().seq, head: audit.head().hash });
  return audit;
}

/** Why a Finish is refused, as the `qk-refusal` metadata says it. */
export type FinishRefusal = Exclude<ContentVerdict, { allowed: true }>['reason'] | 'rate-limited' | 'policy-not-sealed';

export class FinishRefused extends Error {
  constructor(
    readonly reason: FinishRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'FinishRefused';
  }

  get code(): grpc.status {
    return this.reason === 'rate-limited' ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.PERMISSION_DENIED;
  }

  metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(REFUSAL_METADATA, this.reason);
    return md;
  }
}

export interface FinishContent extends SignContent {
  presignatureId: Uint8Array;
  /** The client identity as the coordinator passed it (recorded, not trusted). */
  caller: string;
}

/** What the online round may sign, once admitted. */
export interface Admitted {
  digest: Uint8Array;
  /** Appends the "signed" record; the share may be answered once it resolves. */
  record(): Promise<void>;
}

interface KeyGate {
  policyBytes: Uint8Array;
  policy: KeyPolicy;
  limiter: RateLimiter;
}

export class SignGate {
  private readonly keys = new Map<string, KeyGate>();

  constructor(
    private readonly audit: AuditLog,
    private readonly onRefusal: (keyId: string, reason: FinishRefusal) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Decides a Finish for `share`. Resolves with the digest to sign, or — after the refusal is
   * durably recorded — rejects with FinishRefused.
   */
  async admit(share: KeyShare, content: FinishContent): Promise<Admitted> {
    const base = {
      event: 'finish',
      key: share.keyId,
      epoch: share.epoch,
      presignature: toHex(content.presignatureId),
      caller: content.caller,
      digest_alg: content.digestAlg,
    };
    const gate = this.gate(share);
    let refusal: FinishRefused;
    let context = 'unknown';
    let detail: Detail = {};
    if (!gate) {
      refusal = new FinishRefused('policy-not-sealed', `key '${share.keyId}' has no sealed policy on this signer (a share from before policies): the operator runs 'quorumkey key adopt-policy ${share.keyId}'`);
    } else {
      const verdict = checkContent(gate.policy, { ...content, publicKey: share.publicKey });
      context = verdict.context;
      detail = verdict.detail;
      if (verdict.allowed) {
        const taken = gate.limiter.take();
        if (taken.ok) {
          const digest = verdict.digest;
          const record = { ...base, result: 'signed', context, detail, digest: toHex(digest) };
          return { digest, record: async () => void (await this.audit.append(record)) };
        }
        refusal = new FinishRefused('rate-limited', `key '${share.keyId}' is over its rate limit of ${taken.window === 'second' ? `${gate.policy.rate.perSecond} per second` : `${gate.policy.rate.perHour} per hour`} on this signer; retry in ${Math.ceil(taken.retryAfterMs / 1000)} s`);
      } else {
        refusal = new FinishRefused(verdict.reason, verdict.message);
      }
    }
    await this.audit.append({ ...base, result: 'refused', reason: refusal.reason, context, detail, ...(content.digest ? { digest: toHex(content.digest) } : {}) });
    this.onRefusal(share.keyId, refusal.reason);
    throw refusal;
  }

  /** The decoded policy and rate limiter of a share (rebuilt when the sealed policy changes). */
  private gate(share: KeyShare): KeyGate | undefined {
    if (share.policy.length === 0) return undefined;
    const known = this.keys.get(share.keyId);
    if (known && Buffer.from(known.policyBytes).equals(share.policy)) return known;
    const policy = decodeKeyPolicy(share.policy);
    const gate = { policyBytes: share.policy, policy, limiter: new RateLimiter(policy.rate, this.now) };
    this.keys.set(share.keyId, gate);
    return gate;
  }
}
