/**
 * The pairwise OT-extension set-up (DKLs23 Functionality 3.5) between this party and each peer,
 * both directions at once, in two message rounds. Used by key generation / refresh (dkg.ts) and
 * by the pair re-setup after a retired correlation (pair-setup.ts), so both run the same code.
 *
 *   round 1  open(peer):   as the future OT-extension sender we pick Δ and start the base OTs
 *                          as their receiver
 *   round 2  answer(peer): as the base-OT sender for the peer's direction; our receiver set-up
 *                          is ready
 *   after    close(peer):  finish our sender set-up from the peer's answer
 *
 * `pairContext(from, to)` names the direction where `from` is the OT-extension sender; it must
 * derive from the session context (fresh nonces of both parties).
 */
import type { Rng } from '../rng.js';
import {
  otExtSetupReceiverRespond,
  otExtSetupSenderFinish,
  otExtSetupSenderStart,
  type OtExtReceiverSetup,
  type OtExtSenderSetup,
  type OtExtSetupSenderState,
} from './extension.js';

export class PairwiseOtSetup {
  private readonly pending = new Map<number, OtExtSetupSenderState>();
  readonly sender = new Map<number, OtExtSenderSetup>();
  readonly receiver = new Map<number, OtExtReceiverSetup>();

  constructor(
    private readonly self: number,
    private readonly pairContext: (from: number, to: number) => Uint8Array,
    private readonly rng: Rng,
  ) {}

  open(peer: number): Uint8Array {
    const { message, state } = otExtSetupSenderStart(this.pairContext(this.self, peer), this.rng);
    this.pending.set(peer, state);
    return message;
  }

  answer(peer: number, message: Uint8Array): Uint8Array {
    const r = otExtSetupReceiverRespond(this.pairContext(peer, this.self), message, peer, this.rng);
    this.receiver.set(peer, r.setup);
    return r.message;
  }

  close(peer: number, message: Uint8Array): void {
    const state = this.pending.get(peer);
    if (!state) throw new Error(`pairwise OT set-up with party ${peer} was not opened`);
    this.pending.delete(peer);
    this.sender.set(peer, otExtSetupSenderFinish(this.pairContext(this.self, peer), state, message, peer));
  }
}
