/**
 * Every protocol failure is a ProtocolAbort: a stable machine-readable reason, the party
 * index held responsible (when the check can attribute it) and a short human detail.
 * Details never contain secret values: callers pass only public context (field names,
 * lengths, indices).
 */
export type AbortReason =
  | 'malformed-message'
  | 'wrong-key-id'
  | 'wrong-session-id'
  | 'wrong-round'
  | 'wrong-sender'
  | 'wrong-receiver'
  | 'duplicate-message'
  | 'missing-message'
  | 'invalid-point'
  | 'invalid-scalar'
  | 'wrong-length'
  | 'commitment-mismatch'
  | 'proof-invalid'
  | 'share-inconsistent'
  | 'broadcast-inconsistent'
  | 'ot-check-failed'
  | 'vole-check-failed'
  | 'nonce-inconsistent'
  | 'public-key-mismatch'
  | 'signature-invalid'
  | 'session-reused'
  | 'presignature-used'
  | 'peer-blamed'
  | 'context-mismatch'
  | 'pair-retired'
  | 'bad-parameters';

/** Reasons that prove misbehaviour of a peer in the OT / VOLE layer: the peer must be blamed. */
const BLAME_REASONS: ReadonlySet<AbortReason> = new Set(['ot-check-failed', 'vole-check-failed']);

export class ProtocolAbort extends Error {
  readonly reason: AbortReason;
  /** 1-based party index of the peer at fault, when the failed check identifies one. */
  readonly culprit: number | undefined;
  /** Parties one of which misbehaved when the check cannot say which (e.g. the combined signature). */
  readonly suspects: readonly number[];

  constructor(reason: AbortReason, detail: string, culprit?: number, suspects: readonly number[] = []) {
    const who = culprit !== undefined ? ` (party ${culprit})` : suspects.length ? ` (one of parties ${suspects.join(',')})` : '';
    super(`${reason}${who}: ${detail}`);
    this.name = 'ProtocolAbort';
    this.reason = reason;
    this.culprit = culprit;
    this.suspects = culprit !== undefined ? [culprit] : suspects;
  }

  /** True when the failure is a blame: every session with the culprit must stop. */
  get isBlame(): boolean {
    return this.culprit !== undefined && BLAME_REASONS.has(this.reason);
  }
}

export function abort(reason: AbortReason, detail: string, culprit?: number, suspects?: readonly number[]): never {
  throw new ProtocolAbort(reason, detail, culprit, suspects);
}
