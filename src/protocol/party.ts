/**
 * One share holder's protocol state, with no I/O: its key shares and their pair states, and
 * its in-memory presignatures. The signer service wraps exactly this object and persists every
 * share change it reports.
 *
 * Freshness comes from the sessions themselves (session.ts: every party's nonce goes into the
 * context), so the Party does not need to remember labels for safety; it only refuses a label
 * that is running right now (a confused or replaying coordinator gets a clear error).
 *
 * A blame (failed OT / VOLE check) retires the pair's OT correlation for that key at once: the
 * OT-extension state is wiped from memory, every running presign of the key with the peer is
 * stopped, and no presign with it starts again until a pair re-setup or a refresh. The caller
 * persists the changed share (`retirePair` returns it) so the retirement survives restarts.
 */
import { abort, ProtocolAbort } from './errors.js';
import { keyGenSession, refreshSession, type KeyDealingSession } from './dkg.js';
import type { KeyShare } from './keyshare.js';
import { toHex } from './message.js';
import { signShare, type SignRequest } from './online.js';
import { wipe } from './math/secret-scalar.js';
import { PairSetupSession, withPairState, type PairState } from './pair-setup.js';
import { PresignSession, type PresignParams, type Presignature } from './presign.js';
import { systemRng, type Rng } from './rng.js';
import type { Session } from './session.js';
import type { ProtocolMessage } from './message.js';

export class Party {
  readonly index: number;
  private readonly rng: Rng;
  private readonly shares = new Map<string, KeyShare>();
  private readonly presignatures = new Map<string, Presignature>();
  /** When each presignature was stored (ms, the caller's clock): they expire (expirePresignatures). */
  private readonly presignedAt = new Map<string, number>();
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
  /** Installs a share of a new epoch (after a session, or loaded from sealed storage). */
  installShare(share: KeyShare): void {
    const previous = this.shares.get(share.keyId);
    if (previous && previous.epoch >= share.epoch) abort('bad-parameters', `share of epoch ${share.epoch} does not supersede epoch ${previous.epoch}`);
    this.shares.set(share.keyId, share);
    // Presignatures of an older epoch are bound to the old shares: destroy them.
    for (const [id, p] of this.presignatures) {
      if (p.keyId === share.keyId && p.epoch !== share.epoch) {
        this.presignatures.delete(id);
        this.presignedAt.delete(id);
      }
    }
  }

  presignatureCount(keyId: string): number {
    return [...this.presignatures.values()].filter((p) => p.keyId === keyId).length;
  }

  startKeyGen(keyId: string, sessionId: Uint8Array, parties: readonly number[], threshold: number, policy?: Uint8Array): KeyDealingSession {
    if (this.shares.has(keyId)) abort('bad-parameters', `key '${keyId}' already exists`);
    return this.track(keyGenSession({ keyId, sessionId, self: this.index, parties, threshold, rng: this.rng, ...(policy ? { policy } : {}) }));
  }
  startRefresh(keyId: string, sessionId: Uint8Array): KeyDealingSession {
    return this.track(refreshSession({ share: this.share(keyId), sessionId, rng: this.rng }));
  }
  /**
   * Seals `policy` into a share that has none (sealed before policies existed); a share's policy
   * never changes otherwise. Returns the share to persist.
   */
  adoptPolicy(keyId: string, policy: Uint8Array): KeyShare {
    const share = this.share(keyId);
    if (share.policy.length > 0) abort('bad-parameters', `key '${keyId}' already has a sealed policy; it cannot be replaced`);
    if (policy.length === 0) abort('bad-parameters', 'the policy is empty');
    const updated: KeyShare = { ...share, policy: policy.slice() };
    this.shares.set(keyId, updated);
    return updated;
  }
  startPresign(keyId: string, sessionId: Uint8Array, subset: readonly number[], count: number): PresignSession {
    return this.track(new PresignSession({ ...this.presignParams(keyId, sessionId, subset, count), rng: this.rng }));
  }
  /**
   * The parameters of a presign this party may start now (refused while a pair of the subset is
   * retired), for a session built elsewhere: a signer's compute thread (signer-node/compute/).
   * Such a session is not tracked here; its caller stores its output (storePresignatures).
   */
  presignParams(keyId: string, sessionId: Uint8Array, subset: readonly number[], count: number): PresignParams {
    const share = this.share(keyId);
    const retired = subset.find((p) => share.retiredPeers.has(p));
    if (retired !== undefined) abort('pair-retired', `the OT correlation with this peer is retired for key '${keyId}' after a failed check; run the pair re-setup first`, retired);
    return { share, sessionId, subset, count };
  }
  startPairSetup(keyId: string, sessionId: Uint8Array, peer: number): PairSetupSession {
    return this.track(new PairSetupSession({ share: this.share(keyId), sessionId, peer, rng: this.rng }));
  }

  /** Stores a finished presign (stored at `now`), key generation or refresh session's output. */
  complete(session: KeyDealingSession | PresignSession, now = 0): void {
    this.active.delete(session);
    if (session instanceof PresignSession) {
      this.storePresignatures(session.output, now);
    } else {
      this.installShare(session.output);
    }
  }

  /** Stores the halves a presign produced (at `now`); each is used at most once (sign). */
  storePresignatures(presignatures: readonly Presignature[], now: number): void {
    for (const p of presignatures) {
      this.presignatures.set(toHex(p.id), p);
      this.presignedAt.set(toHex(p.id), now);
    }
  }

  /** Forgets a key (erased): its share and presignatures, wiped. False when there was none. */
  removeShare(keyId: string): boolean {
    const share = this.shares.get(keyId);
    if (!share) return false;
    for (const [id, p] of this.presignatures) {
      if (p.keyId !== keyId) continue;
      this.presignatures.delete(id);
      this.presignedAt.delete(id);
      wipe(p.phi, p.u, p.v);
    }
    this.shares.delete(keyId);
    share.otSender.forEach((s) => s.delta.fill(0));
    return true;
  }

  /** Installs a finished pair re-setup into the current share; returns the share to persist. */
  completePairSetup(session: PairSetupSession): KeyShare {
    this.active.delete(session);
    return this.installPairState(session.output);
  }

  /** Installs a pair re-setup's new state (computed elsewhere: a signer's compute thread). */
  installPairState(state: PairState): KeyShare {
    const updated = withPairState(this.share(state.keyId), state);
    this.shares.set(updated.keyId, updated);
    return updated;
  }

  /**
   * Records a session's failure. A blame retires the pair (the session's key, the culprit) and
   * returns the share to persist; anything else returns undefined.
   */
  reportAbort(session: Session<unknown>, failure: ProtocolAbort): KeyShare | undefined {
    this.active.delete(session);
    if (!failure.isBlame || failure.culprit === undefined) return undefined;
    return this.retirePair(session.keyId, failure.culprit);
  }

  /**
   * Retires the OT correlation with `peer` for `keyId` (a blame here, or the peer told us it
   * retired its side): wipes both directions' OT-extension state and stops every running
   * presign of the key with the peer. Returns the share to persist, or undefined when there is
   * nothing to change (unknown key, not a holder, already retired).
   */
  retirePair(keyId: string, peer: number): KeyShare | undefined {
    const share = this.shares.get(keyId);
    if (!share || peer === this.index || !share.parties.includes(peer) || share.retiredPeers.has(peer)) return undefined;
    const sender = share.otSender.get(peer);
    const receiver = share.otReceiver.get(peer);
    const otSender = new Map(share.otSender);
    const otReceiver = new Map(share.otReceiver);
    otSender.delete(peer);
    otReceiver.delete(peer);
    const updated: KeyShare = { ...share, otSender, otReceiver, retiredPeers: new Set(share.retiredPeers).add(peer) };
    this.shares.set(keyId, updated);
    for (const other of this.active) {
      if (other instanceof PresignSession && other.keyId === keyId && other.peers.includes(peer)) {
        other.fail(new ProtocolAbort('pair-retired', 'session stopped: the OT correlation with the peer was retired', peer));
        this.active.delete(other);
      }
    }
    sender?.delta.fill(0);
    for (const s of [...(sender?.seeds ?? []), ...(receiver?.seeds0 ?? []), ...(receiver?.seeds1 ?? [])]) s.fill(0);
    return updated;
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
    this.presignedAt.delete(id);
    return signShare(presignature, request);
  }

  /**
   * Destroys (wipes) every presignature stored before `before`: halves that no coordinator will
   * ask for (it restarted, or lost its pools) must not pile up. Returns the key of each one.
   */
  expirePresignatures(before: number): string[] {
    const expired: string[] = [];
    for (const [id, p] of this.presignatures) {
      if ((this.presignedAt.get(id) ?? 0) >= before) continue;
      this.presignatures.delete(id);
      this.presignedAt.delete(id);
      wipe(p.phi, p.u, p.v);
      expired.push(p.keyId);
    }
    return expired;
  }

  /** Destroys an unused presignature (its Finish was refused); false if there was none. */
  discardPresignature(keyId: string, presignatureId: Uint8Array): boolean {
    const id = toHex(presignatureId);
    const presignature = this.presignatures.get(id);
    if (!presignature || presignature.keyId !== keyId) return false;
    this.presignatures.delete(id);
    this.presignedAt.delete(id);
    wipe(presignature.phi, presignature.u, presignature.v);
    return true;
  }

  private track<S extends Session<unknown>>(session: S): S {
    for (const other of this.active) {
      if (other.keyId === session.keyId && toHex(other.sessionId) === toHex(session.sessionId)) abort('session-reused', `session id ${toHex(session.sessionId)} is already running`);
    }
    this.active.add(session);
    return session;
  }
}
