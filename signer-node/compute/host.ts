/**
 * Runs protocol sessions step by step, with no I/O and no clock: the computation half of the
 * signer's session handling (signer-node/sessions.ts is the routing half: buffers, timeouts,
 * streams). It serves the compute worker thread (compute/worker.ts).
 *
 * Every call returns a Step: the messages to send (in order) and, once the session is over, its
 * end. An ended session is forgotten at once; calls for an unknown session return an empty step.
 *
 * Ordering (as the driver always did): a peer may be one round ahead (it got everybody's messages
 * before we got the last one); its next-round message is held until this session reaches that
 * round. Which senders may take part is the driver's check, made before a message gets here.
 */
import { ProtocolAbort } from '../../src/protocol/errors.js';
import type { ProtocolMessage, ProtocolName } from '../../src/protocol/message.js';
import type { Session } from '../../src/protocol/session.js';

export type StepEnd = { ok: true; protocol: ProtocolName; output: unknown } | { ok: false; error: unknown };

export interface Step {
  messages: ProtocolMessage[];
  end?: StepEnd;
}

interface Hosted {
  session: Session<unknown>;
  /** Messages of the next round, by sender, that arrived before this session got there. */
  held: Map<number, ProtocolMessage>;
  /** Called when the session ends here for any reason (wipes what only the host held). */
  release: () => void;
}

export class SessionHost {
  private readonly sessions = new Map<string, Hosted>();

  get size(): number {
    return this.sessions.size;
  }

  /** Starts a session (not started yet) under `hex`; `release` runs once it ends or is closed. */
  open(hex: string, session: Session<unknown>, release: () => void = () => undefined): Step {
    if (this.sessions.has(hex)) return { messages: [], end: { ok: false, error: new ProtocolAbort('session-reused', `session ${hex.slice(0, 16)}… is already running`) } };
    const hosted: Hosted = { session, held: new Map(), release };
    this.sessions.set(hex, hosted);
    return this.step(hex, hosted, (out) => out.push(...session.start()));
  }

  deliver(hex: string, sender: number, message: ProtocolMessage): Step {
    const hosted = this.sessions.get(hex);
    if (!hosted) return { messages: [] };
    return this.step(hex, hosted, (out) => {
      const { session, held } = hosted;
      if (message.round === session.currentRound + 1 && !held.has(sender)) {
        held.set(sender, message);
        return;
      }
      session.receive(message, sender);
      this.pump(hosted, out);
    });
  }

  /** The session's time is up: advancing an incomplete round aborts naming the silent peer. */
  timeout(hex: string, timeoutMs: number): Step {
    const hosted = this.sessions.get(hex);
    if (!hosted) return { messages: [] };
    return this.step(hex, hosted, (out) => {
      out.push(...hosted.session.advance());
      this.pump(hosted, out);
      if (!hosted.session.done) throw new ProtocolAbort('missing-message', `session did not finish within ${timeoutMs} ms`);
    });
  }

  /** Forgets a session the driver ended (shutdown, a peer stream failed, its pair was retired). */
  close(hex: string): void {
    const hosted = this.sessions.get(hex);
    if (!hosted) return;
    this.sessions.delete(hex);
    hosted.held.clear();
    hosted.release();
  }

  /** Advances the session as long as its round is complete. */
  private pump(hosted: Hosted, out: ProtocolMessage[]): void {
    const { session, held } = hosted;
    while (session.ready) {
      out.push(...session.advance());
      if (session.done) return;
      for (const [sender, message] of [...held]) {
        if (message.round !== session.currentRound) continue;
        held.delete(sender);
        session.receive(message, sender);
      }
    }
    if (session.aborted) throw session.aborted;
  }

  private step(hex: string, hosted: Hosted, fn: (out: ProtocolMessage[]) => void): Step {
    const messages: ProtocolMessage[] = [];
    let end: StepEnd | undefined;
    try {
      fn(messages);
      if (hosted.session.done) end = { ok: true, protocol: hosted.session.protocol, output: hosted.session.output };
    } catch (error) {
      end = { ok: false, error };
    }
    if (end) this.close(hex);
    return end ? { messages, end } : { messages };
  }
}
