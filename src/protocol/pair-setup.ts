/**
 * Pairwise re-setup: fresh base OTs in both directions (new Δ, new seeds) between this party
 * and one peer, for one key, keeping the key shares and the zero-sharing seed. It is how a pair
 * whose OT correlation was retired (a failed OT / VOLE check: each failure may have leaked a
 * bit of Δ) works together again; a refresh does the same for every pair.
 *
 *   round 1  base-OT receiver message (as future OT-extension sender, we pick Δ)
 *   round 2  base-OT sender answer
 *   finish   the pair's new OT-extension state; Party.complete merges it into the share then
 *            current (not the one the session started from: another pair may have been
 *            retired meanwhile) and ends the pair's retirement
 *
 * Like every session it starts with the nonce round (session.ts), so the base OTs run under a
 * context no one could have chosen or replayed.
 */
import { abort } from './errors.js';
import type { KeyShare } from './keyshare.js';
import { field, type Payload } from './message.js';
import type { OtExtReceiverSetup, OtExtSenderSetup } from './ot/extension.js';
import { PairwiseOtSetup } from './ot/pairwise-setup.js';
import type { Rng } from './rng.js';
import { systemRng } from './rng.js';
import { type Inbox, Session } from './session.js';
import { taggedHash } from './transcript.js';

export interface PairSetupParams {
  share: KeyShare;
  sessionId: Uint8Array;
  peer: number;
  rng?: Rng;
}

/** The new OT-extension state of one pair of one key's epoch. */
export interface PairState {
  keyId: string;
  epoch: number;
  peer: number;
  sender: OtExtSenderSetup;
  receiver: OtExtReceiverSetup;
}

/** `share` with `state` installed for its peer and the pair no longer retired. */
export function withPairState(share: KeyShare, state: PairState): KeyShare {
  if (share.keyId !== state.keyId || share.epoch !== state.epoch) abort('bad-parameters', `pair re-setup was made for epoch ${state.epoch}, the share is at epoch ${share.epoch}`);
  const otSender = new Map(share.otSender).set(state.peer, state.sender);
  const otReceiver = new Map(share.otReceiver).set(state.peer, state.receiver);
  const retiredPeers = new Set(share.retiredPeers);
  retiredPeers.delete(state.peer);
  return { ...share, otSender, otReceiver, retiredPeers };
}

export class PairSetupSession extends Session<PairState> {
  protected readonly rounds = 2;
  readonly peer: number;
  private readonly share: KeyShare;
  private readonly ot: PairwiseOtSetup;

  constructor(params: PairSetupParams) {
    const { share, peer } = params;
    if (peer === share.self || !share.parties.includes(peer)) abort('bad-parameters', `party ${peer} is not another holder of key '${share.keyId}'`);
    super({ protocol: 'pair-setup', keyId: share.keyId, sessionId: params.sessionId, self: share.self, parties: [share.self, peer], rng: params.rng });
    this.share = share;
    this.peer = peer;
    this.ot = new PairwiseOtSetup(this.self, (from, to) => this.pairContext(from, to), params.rng ?? systemRng);
  }

  private pairContext(from: number, to: number): Uint8Array {
    return taggedHash('pair-setup-context', [['context', this.context], ['epoch', this.share.epoch], ['from', from], ['to', to]]);
  }

  protected send(round: number, inbox: Inbox): Map<number, Payload> {
    if (round === 1) return new Map([[this.peer, { baseOt: this.ot.open(this.peer) }]]);
    const msg = inbox.get(this.peer)!;
    return new Map([[this.peer, { baseOt: this.ot.answer(this.peer, field(msg, 'baseOt', this.peer)) }]]);
  }

  protected finish(inbox: Inbox): PairState {
    this.ot.close(this.peer, field(inbox.get(this.peer)!, 'baseOt', this.peer));
    return { keyId: this.keyId, epoch: this.share.epoch, peer: this.peer, sender: this.ot.sender.get(this.peer)!, receiver: this.ot.receiver.get(this.peer)! };
  }
}
