/**
 * One share holder's protocol state, with no I/O: its key shares, its in-memory presignatures,
 * the session ids it has seen (never reused) and the peers it has blamed. The signer service
 * wraps exactly this object.
 */
import { abort, ProtocolAbort } from './errors.js';
import { keyGenSession, refreshSession, type KeyDealingSession } from './dkg.js';
import type { KeyShare } from './keyshare.js';
import { toHex } from './message.js';
import { signShare, type SignRequest } from './online.js';
import { PresignSession, type Presignature } from './presign.js';
import { systemRng, type Rng } from './rng.js';
import type { Session } from './session.js';
import type { ProtocolMessage } from './message.js';

export class Party {
  readonly index: number;
  private readonly rng: Rng;
  private readonly shares = new Map<string, KeyShare>();
  private readonly presignatures = new Map<string, Presignature>();
  private readonly seenSessions = new Set<string>();
  private readonly blamed = new Set<number>();
  private readonly active = new Set<Session<unknown>>();

  constructor(index: number, rng: Rng = systemRng) {
    this.index = index;
    this.rng = rng;
  }

  share(keyId: string): KeyShare {
    const share = this.shares.get(keyId);
    if (!share) abort('bad-parameters', `no share of key '${keyId}'`);
    return share;
  }
  /** Installs a share (after a session, or loaded from sealed storage). */
  installShare(share: KeyShare): void {
    const previous = this.shares.get(share.keyId);
    if (previous && previous.epoch >= share.epoch) abort('bad-parameters', `share of epoch ${share.epoch} does not supersede epoch ${previous.epoch}`);
    this.shares.set(share.keyId, share);
    // Presignatures of an older epoch are bound to the old shares: destroy them.
    for (const [id, p] of this.presignatures) if (p.keyId === share.keyId && p.epoch !== share.epoch) this.presignatures.delete(id);
  }

  get blamedPeers(): ReadonlySet<number> {
    return this.blamed;
  }
  presignatureCount(keyId: string): number {
    return [...this.presignatures.values()].filter((p) => p.keyId === keyId).length;
  }

  startKeyGen(keyId: string, sessionId: Uint8Array, parties: readonly number[], threshold: number): KeyDealingSession {
    if (this.shares.has(keyId)) abort('bad-parameters', `key '${keyId}' already exists`);
    return this.track(keyGenSession({ keyId, sessionId, self: this.index, parties, threshold, rng: this.rng }), parties);
  }
  startRefresh(keyId: string, sessionId: Uint8Array): KeyDealingSession {
    const share = this.share(keyId);
    return this.track(refreshSession({ share, sessionId, rng: this.rng }), share.parties);
  }
  startPresign(keyId: string, sessionId: Uint8Array, subset: readonly number[], count: number): PresignSession {
    return this.track(new PresignSession({ share: this.share(keyId), sessionId, subset, count, rng: this.rng }), subset);
  }

  /** Stores a finished session's output. */
  complete(session: KeyDealingSession | PresignSession): void {
    this.active.delete(session);
    if (session instanceof PresignSession) {
      for (const p of session.output) this.presignatures.set(toHex(p.id), p);
    } else {
      this.installShare(session.output);
    }
  }

  /**
   * Records a session's failure. A blame (failed OT / VOLE check) quarantines the peer: every
   * running session with it is stopped and no new one starts until `readmit`.
   */
  reportAbort(session: Session<unknown>, failure: ProtocolAbort): void {
    this.active.delete(session);
    if (!failure.isBlame || failure.culprit === undefined) return;
    const culprit = failure.culprit;
    this.blamed.add(culprit);
    for (const other of this.active) {
      if (other.peers.includes(culprit)) {
        other.fail(new ProtocolAbort('peer-blamed', 'session stopped: the peer was blamed in another session', culprit));
        this.active.delete(other);
      }
    }
  }
  readmit(peer: number): void {
    this.blamed.delete(peer);
  }

  /**
   * The online round. The presignature is removed from memory before the share is computed,
   * so it can never answer twice.
   */
  sign(keyId: string, presignatureId: Uint8Array, request: SignRequest): ProtocolMessage {
    const id = toHex(presignatureId);
    const presignature = this.presignatures.get(id);
    if (!presignature || presignature.keyId !== keyId) abort('presignature-used', `presignature ${id} is unknown or already used`);
    this.presignatures.delete(id);
    return signShare(presignature, request);
  }

  private track<S extends Session<unknown>>(session: S, parties: readonly number[]): S {
    if (this.seenSessions.has(toHex(session.sessionId))) abort('session-reused', `session id ${toHex(session.sessionId)} was used before`);
    const blamed = parties.find((p) => this.blamed.has(p));
    if (blamed !== undefined) abort('peer-blamed', 'peer is quarantined after a failed check', blamed);
    this.seenSessions.add(toHex(session.sessionId));
    this.active.add(session);
    return session;
  }
}
