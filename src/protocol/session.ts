/**
 * The round-based session driver shared by every protocol. A protocol supplies, for each round,
 * the messages it sends (computed from the previous round's verified inbox) and, after its last
 * round, its output. The driver owns the bookkeeping that every message must pass: protocol,
 * key id, session id, round, sender, receiver, duplicates and missing messages. Transport is
 * not its concern: a unit test and a gRPC service feed it the same way.
 *
 * Fresh joint randomness (DESIGN rule: the coordinator's session id is a label, never a source
 * of freshness). Before any protocol round, every party sends every peer a fresh 32-byte nonce
 * (wire round 1). The session context is then
 *     H("session-context", protocol, key id, label, parties, nonce_p for every party p),
 * and everything a protocol derives — OT-extension streams, VOLE challenges, zero shares,
 * commitments' contexts, presignature ids — derives from `context`, never from the label. So a
 * replayed label (after a restart, a failover, from a backup) never reproduces a pad, a mask or
 * a share: the honest party's new nonce changes the context. Every later message carries the
 * context and is refused unless it equals ours ('context-mismatch', not a blame: a party that
 * sent different nonces to different peers makes honest peers disagree, and that must end the
 * session before any OT check could fail between two honest parties). Protocol round r is wire
 * round r + 1.
 *
 * Such a disagreement between this party's view and a peer's (the context here, the dealing
 * echo in dkg.ts) names that peer only when it is the only peer. With several, the peer whose
 * message shows the difference may be honest — another one told the two of us different things —
 * so nobody is named and every peer is a suspect (`disagreement`).
 */
import { abort, ProtocolAbort, type AbortReason } from './errors.js';
import { bytesEqual, field, type Payload, type ProtocolMessage, type ProtocolName, SESSION_ID_BYTES, toHex } from './message.js';
import type { Rng } from './rng.js';
import { systemRng } from './rng.js';
import { taggedHash } from './transcript.js';

export const SESSION_NONCE_BYTES = 32;
export const CONTEXT_BYTES = 32;
/** Wire rounds before the protocol's own: the nonce round. */
const NONCE_ROUNDS = 1;

export interface SessionParams {
  protocol: ProtocolName;
  keyId: string;
  sessionId: Uint8Array;
  self: number;
  /** Every party of the session, including self. */
  parties: readonly number[];
  /** Source of this party's session nonce (and nothing else here). */
  rng?: Rng;
}

export type Inbox = ReadonlyMap<number, Payload>;

export abstract class Session<Output> {
  readonly protocol: ProtocolName;
  readonly keyId: string;
  readonly sessionId: Uint8Array;
  readonly self: number;
  readonly parties: readonly number[];
  readonly peers: readonly number[];

  /** Number of protocol rounds (the nonce round not counted); after the last one `finish` produces the output. */
  protected abstract readonly rounds: number;
  /** Messages of protocol round `round` (1-based) for each peer, from the verified inbox of round − 1. */
  protected abstract send(round: number, inbox: Inbox): Map<number, Payload>;
  /** Verifies the last round's inbox and produces the output. */
  protected abstract finish(inbox: Inbox): Output;

  private readonly nonceRng: Rng;
  private ownNonce: Uint8Array | undefined;
  private sessionContext: Uint8Array | undefined;
  private round = 0;
  private inbox = new Map<number, Payload>();
  private failure: ProtocolAbort | undefined;
  private result: Output | undefined;

  constructor(params: SessionParams) {
    if (params.sessionId.length !== SESSION_ID_BYTES) abort('bad-parameters', `session id must be ${SESSION_ID_BYTES} bytes`);
    const sorted = [...params.parties].sort((a, b) => a - b);
    if (new Set(sorted).size !== sorted.length || !sorted.includes(params.self)) abort('bad-parameters', 'party list must be distinct and include self');
    this.protocol = params.protocol;
    this.keyId = params.keyId;
    this.sessionId = params.sessionId;
    this.self = params.self;
    this.parties = sorted;
    this.peers = sorted.filter((p) => p !== params.self);
    this.nonceRng = params.rng ?? systemRng;
  }

  /**
   * The session context: the hash of the label and every party's fresh nonce. Exists from
   * protocol round 1 on; every value a protocol derives for this session derives from it.
   */
  get context(): Uint8Array {
    if (!this.sessionContext) throw new Error('session context is not established before the nonce round');
    return this.sessionContext;
  }

  get currentRound(): number {
    return this.round;
  }
  get done(): boolean {
    return this.result !== undefined;
  }
  get aborted(): ProtocolAbort | undefined {
    return this.failure;
  }
  get output(): Output {
    if (this.result === undefined) throw new Error('session has no output yet');
    return this.result;
  }

  /** Wire round 1: this party's fresh nonce, the same to every peer. */
  start(): ProtocolMessage[] {
    if (this.round !== 0) throw new Error('session already started');
    return this.guard(() => {
      const nonce = this.nonceRng(SESSION_NONCE_BYTES);
      if (nonce.length !== SESSION_NONCE_BYTES) throw new Error('rng returned the wrong number of bytes');
      this.ownNonce = nonce;
      this.round = 1;
      return this.envelopes(1, new Map(this.peers.map((p) => [p, { nonce }])));
    });
  }

  /**
   * Checks a message's envelope and stores it for the current round. `sender` is the party the
   * transport authenticated (mTLS certificate, or the in-memory network): a message claiming
   * another origin is that sender's fault.
   */
  receive(message: ProtocolMessage, sender: number): void {
    this.guard(() => {
      if (!this.peers.includes(sender)) abort('wrong-sender', `party ${sender} is not a peer of this session`);
      if (message.from !== sender) abort('wrong-sender', `message claims to come from party ${message.from}`, sender);
      const from = sender;
      if (message.protocol !== this.protocol) abort('malformed-message', `message for protocol '${message.protocol}', expected '${this.protocol}'`, from);
      if (message.keyId !== this.keyId) abort('wrong-key-id', `message for key '${message.keyId}', expected '${this.keyId}'`, from);
      if (!(message.sessionId instanceof Uint8Array) || !bytesEqual(message.sessionId, this.sessionId))
        abort('wrong-session-id', `message for another session (${message.sessionId instanceof Uint8Array ? toHex(message.sessionId).slice(0, 16) : 'none'}…)`, from);
      if (message.to !== this.self) abort('wrong-receiver', `message addressed to party ${message.to}, this is party ${this.self}`, from);
      if (message.round !== this.round) abort('wrong-round', `message for round ${message.round}, session is in round ${this.round}`, from);
      if (this.inbox.has(from)) abort('duplicate-message', `second message in round ${this.round}`, from);
      if (typeof message.payload !== 'object' || message.payload === null) abort('malformed-message', 'payload is not an object', from);
      if (this.round === NONCE_ROUNDS) field(message.payload, 'nonce', from, SESSION_NONCE_BYTES);
      else if (!bytesEqual(field(message.payload, 'context', from, CONTEXT_BYTES), this.context))
        this.disagreement('context-mismatch', `message from party ${from} bound to another session context (a party sent different nonces to different peers, or the message is replayed)`, from);
      this.inbox.set(from, message.payload);
    });
  }

  /** True when every peer's message of the current round has arrived. */
  get ready(): boolean {
    return this.failure === undefined && this.result === undefined && this.round > 0 && this.inbox.size === this.peers.length;
  }

  /**
   * Processes the complete current round: the next round's messages, or [] once the output
   * exists. Called before every message arrived (a timeout), it aborts naming the first
   * missing peer.
   */
  advance(): ProtocolMessage[] {
    return this.guard(() => {
      if (this.round === 0) throw new Error('session not started');
      const missing = this.peers.find((p) => !this.inbox.has(p));
      if (missing !== undefined) abort('missing-message', `no round-${this.round} message`, missing);
      const inbox = this.inbox;
      this.inbox = new Map();
      if (this.round === NONCE_ROUNDS) {
        this.sessionContext = this.deriveContext(inbox);
        return this.emit(this.round + 1, new Map());
      }
      if (this.round < this.rounds + NONCE_ROUNDS) return this.emit(this.round + 1, inbox);
      this.result = this.finish(inbox);
      this.round += 1;
      return [];
    });
  }

  /**
   * Aborts on a difference between this party's view and `peer`'s: `peer` is the culprit when it
   * is the only peer, otherwise every peer is a suspect (see the header).
   */
  protected disagreement(reason: AbortReason, detail: string, peer: number): never {
    if (this.peers.length === 1) abort(reason, detail, peer);
    abort(reason, detail, undefined, this.peers);
  }

  /** Stops the session from outside (e.g. a peer was blamed in another session). */
  fail(failure: ProtocolAbort): void {
    this.failure ??= failure;
  }

  private deriveContext(nonces: Inbox): Uint8Array {
    const items: [string, Uint8Array | string | number][] = [
      ['protocol', this.protocol],
      ['key', this.keyId],
      ['label', this.sessionId],
      ['parties', this.parties.length],
    ];
    for (const p of this.parties) items.push([`nonce/${p}`, p === this.self ? this.ownNonce! : nonces.get(p)!.nonce!]);
    return taggedHash('session-context', items);
  }

  /** Wire round `round` (≥ 2) from protocol round round − 1, each message bound to the context. */
  private emit(round: number, inbox: Inbox): ProtocolMessage[] {
    const payloads = this.send(round - NONCE_ROUNDS, inbox);
    this.round = round;
    for (const payload of payloads.values()) payload.context = this.context;
    return this.envelopes(round, payloads);
  }

  private envelopes(round: number, payloads: ReadonlyMap<number, Payload>): ProtocolMessage[] {
    return this.peers.map((to) => {
      const payload = payloads.get(to);
      if (!payload) throw new Error(`round ${round} produced no message for party ${to}`);
      return { protocol: this.protocol, keyId: this.keyId, sessionId: this.sessionId, round, from: this.self, to, payload };
    });
  }

  private guard<T>(step: () => T): T {
    if (this.failure) throw this.failure;
    try {
      return step();
    } catch (err) {
      if (err instanceof ProtocolAbort) this.failure = err;
      throw err;
    }
  }
}
