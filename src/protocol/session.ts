/**
 * The round-based session driver shared by every protocol. A protocol supplies, for each round,
 * the messages it sends (computed from the previous round's verified inbox) and, after its last
 * round, its output. The driver owns the bookkeeping that every message must pass: protocol,
 * key id, session id, round, sender, receiver, duplicates and missing messages. Transport is
 * not its concern: a unit test and a gRPC service feed it the same way.
 */
import { abort, ProtocolAbort } from './errors.js';
import { bytesEqual, type Payload, type ProtocolMessage, type ProtocolName, SESSION_ID_BYTES, toHex } from './message.js';

export interface SessionParams {
  protocol: ProtocolName;
  keyId: string;
  sessionId: Uint8Array;
  self: number;
  /** Every party of the session, including self. */
  parties: readonly number[];
}

export type Inbox = ReadonlyMap<number, Payload>;

export abstract class Session<Output> {
  readonly protocol: ProtocolName;
  readonly keyId: string;
  readonly sessionId: Uint8Array;
  readonly self: number;
  readonly parties: readonly number[];
  readonly peers: readonly number[];

  /** Number of message rounds; after the last one `finish` produces the output. */
  protected abstract readonly rounds: number;
  /** Messages of `round` (1-based) for each peer, from the verified inbox of round − 1. */
  protected abstract send(round: number, inbox: Inbox): Map<number, Payload>;
  /** Verifies the last round's inbox and produces the output. */
  protected abstract finish(inbox: Inbox): Output;

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

  /** Round-1 messages. */
  start(): ProtocolMessage[] {
    if (this.round !== 0) throw new Error('session already started');
    return this.guard(() => this.emit(1, new Map()));
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
      if (this.round < this.rounds) return this.emit(this.round + 1, inbox);
      this.result = this.finish(inbox);
      this.round += 1;
      return [];
    });
  }

  /** Stops the session from outside (e.g. a peer was blamed in another session). */
  fail(failure: ProtocolAbort): void {
    this.failure ??= failure;
  }

  private emit(round: number, inbox: Inbox): ProtocolMessage[] {
    const payloads = this.send(round, inbox);
    this.round = round;
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
