/**
 * Drives protocol sessions of the Party over the peer transport: the routing half of session
 * handling. The session checks every message; compute/host.ts advances it; this file routes
 * messages, in order, at the right time, and decides how a session ends.
 *
 * - Where a session computes: every session (presign, key generation, refresh, pair re-setup)
 *   runs on the compute thread (compute/thread.ts, `compute(spec)`), so the main thread, which
 *   answers Finish and Health, never waits behind it.
 * - Incoming messages are routed by session id. A message for a session that has not started
 *   here yet (the coordinator calls the signers concurrently) waits in a bounded buffer (per
 *   peer and in total, at most two per session and peer) and expires after the session timeout.
 * - A message from a party that is not a peer of the session is dropped, not delivered: a third
 *   signer must not be able to abort a session it has no part in.
 * - A session that has not finished within the timeout is advanced anyway, which aborts it with
 *   'missing-message' naming the silent peer.
 * - A blame retires the pair (the Party, durably through `onPairRetired`) and stops every other
 *   presign of the key with the culprit, wherever it computes.
 */
import { ProtocolAbort } from '../src/protocol/errors.js';
import type { KeyShare } from '../src/protocol/keyshare.js';
import type { Party } from '../src/protocol/party.js';
import { SESSION_ID_BYTES, toHex, type ProtocolMessage, type ProtocolName } from '../src/protocol/message.js';
import { fromEnvelope, type ProtocolEnvelope } from '../src/transport/proto.js';
import { decodeError, decodeOutput, discardOutput, specRoute, type Output, type SessionSpec } from './compute/specs.js';
import { ComputeThread, type ComputeOptions } from './compute/thread.js';
import type { Logger } from './log.js';
import type { SignerMetrics } from './metrics.js';
import type { PeerTransport, SessionStreams } from './peers.js';

export interface BufferLimits {
  perPeerMessages: number;
  perPeerBytes: number;
  totalMessages: number;
  totalBytes: number;
  /** Messages for one (session, peer) before the session starts; honest peers send one. */
  perSessionPeerMessages: number;
}

export const DEFAULT_BUFFER_LIMITS: BufferLimits = {
  perPeerMessages: 256,
  perPeerBytes: 256 * 1024 * 1024,
  totalMessages: 1024,
  totalBytes: 512 * 1024 * 1024,
  perSessionPeerMessages: 2,
};

interface Buffered {
  sender: number;
  message: ProtocolMessage;
  bytes: number;
}

type BufferResult = 'buffered' | 'dropped-peer-limit' | 'dropped-total-limit' | 'dropped-session-limit';

/** Messages for sessions that do not exist here yet. */
export class PendingBuffer {
  private readonly sessions = new Map<string, { expires: number; items: Buffered[] }>();
  private readonly perPeer = new Map<number, { count: number; bytes: number }>();
  private count = 0;
  private bytes = 0;

  constructor(
    private readonly limits: BufferLimits,
    private readonly ttlMs: number,
  ) {}

  get size(): number {
    return this.count;
  }

  add(hex: string, sender: number, message: ProtocolMessage, bytes: number, now = Date.now()): BufferResult {
    this.sweep(now);
    const peer = this.perPeer.get(sender) ?? { count: 0, bytes: 0 };
    if (peer.count + 1 > this.limits.perPeerMessages || peer.bytes + bytes > this.limits.perPeerBytes) return 'dropped-peer-limit';
    if (this.count + 1 > this.limits.totalMessages || this.bytes + bytes > this.limits.totalBytes) return 'dropped-total-limit';
    let entry = this.sessions.get(hex);
    if (entry && entry.items.filter((i) => i.sender === sender).length >= this.limits.perSessionPeerMessages) return 'dropped-session-limit';
    if (!entry) {
      entry = { expires: now + this.ttlMs, items: [] };
      this.sessions.set(hex, entry);
    }
    entry.items.push({ sender, message, bytes });
    peer.count += 1;
    peer.bytes += bytes;
    this.perPeer.set(sender, peer);
    this.count += 1;
    this.bytes += bytes;
    return 'buffered';
  }

  /** Removes and returns what was buffered for a session. */
  take(hex: string): Buffered[] {
    const entry = this.sessions.get(hex);
    if (!entry) return [];
    this.sessions.delete(hex);
    for (const item of entry.items) this.release(item);
    return entry.items;
  }

  /** Drops expired sessions; returns how many messages were dropped. */
  sweep(now = Date.now()): number {
    let dropped = 0;
    for (const [hex, entry] of this.sessions) {
      if (entry.expires > now) continue;
      this.sessions.delete(hex);
      for (const item of entry.items) this.release(item);
      dropped += entry.items.length;
    }
    return dropped;
  }

  private release(item: Buffered): void {
    const peer = this.perPeer.get(item.sender);
    if (peer) {
      peer.count -= 1;
      peer.bytes -= item.bytes;
      if (peer.count === 0) this.perPeer.delete(item.sender);
    }
    this.count -= 1;
    this.bytes -= item.bytes;
  }
}

/** One step of a session, as it came back from the compute thread. */
interface Step {
  messages: ProtocolMessage[];
  end?: { ok: true; output: Output } | { ok: false; error: Error };
}

interface Run {
  hex: string;
  label: string;
  protocol: ProtocolName;
  keyId: string;
  peers: readonly number[];
  streams: SessionStreams;
  timer: NodeJS.Timeout | undefined;
  started: number;
  settled: boolean;
  resolve: (output: Output) => void;
  reject: (err: unknown) => void;
}

/** Raised for sessions stopped because the node shuts down. */
export class ShuttingDown extends Error {
  constructor() {
    super('signer is shutting down');
  }
}

function messageBytes(m: ProtocolMessage): number {
  let n = 128 + m.keyId.length + m.sessionId.length;
  for (const [k, v] of Object.entries(m.payload)) n += k.length + v.length;
  return n;
}

export interface ComputeSettings {
  /** Added to the compute thread's nice value. */
  niceIncrement: number;
  options: ComputeOptions;
}

export class SessionDriver {
  private readonly running = new Map<string, Run>();
  /** Session ids that ended here recently: late messages for them are dropped, not buffered. */
  private readonly finished = new Map<string, number>();
  readonly pending: PendingBuffer;
  private readonly sweeper: NodeJS.Timeout;
  private readonly lastDropLog = new Map<string, number>();
  private readonly thread: ComputeThread;
  private closed = false;

  constructor(
    private readonly party: Party,
    private readonly transport: PeerTransport,
    readonly timeoutMs: number,
    private readonly log: Logger,
    private readonly metrics: SignerMetrics,
    /**
     * Called when a blame retired a pair; settles when the changed share is sealed (or its write
     * failed and is being retried). The failing session is answered only then.
     */
    private readonly onPairRetired: (share: KeyShare, peer: number, reason: string) => Promise<void>,
    compute: ComputeSettings,
    limits: BufferLimits = DEFAULT_BUFFER_LIMITS,
  ) {
    this.pending = new PendingBuffer(limits, timeoutMs);
    this.thread = new ComputeThread(compute.niceIncrement, compute.options, log, (hex, reply) => {
      const run = this.running.get(hex);
      if (!run) {
        if (reply.end?.ok) discardOutput(reply.end.output);
        return;
      }
      this.metrics.computeStepDuration.observe({ protocol: run.protocol }, reply.seconds);
      const end = reply.end && (reply.end.ok ? { ok: true as const, output: decodeOutput(reply.end.output) } : { ok: false as const, error: decodeError(reply.end.error) });
      this.onStep(hex, end ? { messages: reply.messages, end } : { messages: reply.messages });
    });
    this.sweeper = setInterval(() => this.sweep(), Math.max(250, Math.min(5000, Math.floor(timeoutMs / 4))));
    this.sweeper.unref();
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** Operations waiting for the compute thread. */
  get computeBacklog(): number {
    return this.thread.backlog;
  }

  /** Resolves with the compute thread's nice value once it is ready; rejects with its refusal. */
  ready(): Promise<number> {
    return this.thread.ready();
  }

  /**
   * Runs the session `spec` describes on the compute thread; resolves with its output. Rejects
   * with the ProtocolAbort (a blame retired the pair durably first) or another Error; never
   * leaves the session running.
   */
  compute(spec: SessionSpec): Promise<Output> {
    const { protocol, keyId, peers } = specRoute(spec);
    const hex = toHex(spec.sessionId);
    const label = hex.slice(0, 16);
    return new Promise<Output>((resolve, reject) => {
      if (this.closed) return reject(new ShuttingDown());
      if (this.running.has(hex)) return reject(new ProtocolAbort('session-reused', `session ${label}… is already running`));
      const run: Run = {
        hex,
        label,
        protocol,
        keyId,
        peers,
        streams: this.transport.streams(label, new Date(Date.now() + this.timeoutMs + 5000), (peer, detail) =>
          this.settle(run, new ProtocolAbort('missing-message', `cannot deliver to party ${peer} (${detail})`, peer)),
        ),
        timer: undefined,
        started: performance.now(),
        settled: false,
        resolve,
        reject,
      };
      this.running.set(hex, run);
      this.finished.delete(hex);
      run.timer = setTimeout(() => this.onTimeout(run), this.timeoutMs);
      this.log.debug('session started', { protocol, key: keyId, session: label, peers: [...peers] });
      this.thread.start(hex, spec);
      for (const item of this.pending.take(hex)) {
        if (run.settled) break;
        this.accept(run, item.sender, item.message);
      }
    });
  }

  /** An envelope from the Peer service, with the sender index from the peer's certificate. */
  deliver(sender: number, envelope: ProtocolEnvelope): void {
    const message = fromEnvelope(envelope);
    if (!message || message.sessionId.length !== SESSION_ID_BYTES) {
      this.drop('dropped-malformed', sender, message ? 'session id is not 32 bytes' : `unknown protocol '${String(envelope?.protocol)}'`);
      return;
    }
    const hex = toHex(message.sessionId);
    const run = this.running.get(hex);
    if (run) {
      this.metrics.peerMessages.inc({ result: 'delivered' });
      this.accept(run, sender, message);
      return;
    }
    if (this.finished.has(hex)) {
      this.metrics.peerMessages.inc({ result: 'dropped-finished' });
      this.log.debug('message for a finished session dropped', { peer: sender, session: hex.slice(0, 16) });
      return;
    }
    const result = this.pending.add(hex, sender, message, messageBytes(message));
    if (result === 'buffered') this.metrics.peerMessages.inc({ result });
    else this.drop(result, sender, 'buffer for sessions not started yet is full');
  }

  /** Forgets buffered messages of a session that will not start here (its RPC was refused). */
  discard(sessionId: Uint8Array): void {
    this.pending.take(toHex(sessionId));
  }

  /** The pair (key, peer) was retired (here or by the peer): stops every presign of the key with the peer. */
  pairRetired(keyId: string, peer: number): void {
    for (const other of [...this.running.values()]) {
      if (other.protocol === 'presign' && other.keyId === keyId && other.peers.includes(peer)) {
        this.settle(other, new ProtocolAbort('pair-retired', 'session stopped: the OT correlation with the peer was retired', peer));
      }
    }
  }

  /** Stops every running session and the compute thread (shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const run of [...this.running.values()]) this.settle(run, new ShuttingDown());
    await this.thread.stop();
  }

  private accept(run: Run, sender: number, message: ProtocolMessage): void {
    if (run.settled) return;
    if (!run.peers.includes(sender)) {
      this.drop('dropped-not-a-peer', sender, `party ${sender} is not a peer of session ${run.label}…`);
      return;
    }
    this.thread.deliver(run.hex, sender, message);
  }

  private onStep(hex: string, step: Step): void {
    const run = this.running.get(hex);
    if (!run || run.settled) return;
    run.streams.send(step.messages);
    if (!step.end) return;
    if (step.end.ok) this.settle(run, undefined, step.end.output);
    else this.settle(run, step.end.error ?? new Error('session failed'));
  }

  private onTimeout(run: Run): void {
    run.timer = undefined;
    if (!run.settled) this.thread.timeout(run.hex, this.timeoutMs);
  }

  private settle(run: Run, err?: unknown, output?: Output): void {
    if (run.settled) return;
    run.settled = true;
    if (run.timer) clearTimeout(run.timer);
    this.thread.close(run.hex);
    run.streams.end();
    this.running.delete(run.hex);
    this.finished.set(run.hex, Date.now() + 2 * this.timeoutMs);
    const { protocol, keyId } = run;
    const seconds = (performance.now() - run.started) / 1000;
    this.metrics.sessionDuration.observe({ protocol }, seconds);
    const context = { protocol, key: keyId, session: run.label, seconds: Number(seconds.toFixed(3)) };
    if (err === undefined) {
      this.metrics.sessions.inc({ protocol, result: 'ok' });
      this.log.info('session finished', context);
      run.resolve(output!);
      return;
    }
    if (err instanceof ProtocolAbort) {
      const blamed = err.isBlame ? err.culprit : undefined;
      const retired = blamed !== undefined ? this.party.retirePair(keyId, blamed) : undefined;
      this.metrics.sessions.inc({ protocol, result: 'aborted' });
      this.metrics.sessionAborts.inc({ protocol, reason: err.reason });
      if (blamed !== undefined) this.metrics.blames.inc({ peer: String(blamed) });
      const durable = retired && err.culprit !== undefined ? this.onPairRetired(retired, err.culprit, err.reason) : Promise.resolve();
      this.log.warn('session aborted', { ...context, reason: err.reason, culprit: err.culprit, detail: err.message });
      void durable.finally(() => run.reject(err));
      // A blame retires the pair: every other presign of the key with the culprit stops too.
      if (blamed !== undefined) this.pairRetired(keyId, blamed);
      return;
    }
    this.metrics.sessions.inc({ protocol, result: 'error' });
    if (err instanceof ShuttingDown) this.log.info('session stopped: shutting down', context);
    else this.log.error('session failed', { ...context, error: (err as Error)?.message ?? String(err) });
    run.reject(err);
  }

  private sweep(): void {
    const dropped = this.pending.sweep();
    if (dropped > 0) {
      this.metrics.peerMessages.inc({ result: 'dropped-expired' }, dropped);
      this.log.warn('buffered peer messages expired: their session never started here', { messages: dropped });
    }
    const now = Date.now();
    for (const [hex, until] of this.finished) if (until <= now) this.finished.delete(hex);
  }

  private drop(result: string, sender: number, detail: string): void {
    this.metrics.peerMessages.inc({ result });
    const key = `${result}/${sender}`;
    const now = Date.now();
    if ((this.lastDropLog.get(key) ?? 0) + 1000 > now) return;
    this.lastDropLog.set(key, now);
    this.log.warn('peer message dropped', { peer: sender, result, detail });
  }
}
