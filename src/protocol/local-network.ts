/**
 * In-memory message passing between sessions of one protocol run, in lock step. The same
 * sessions run over gRPC in the services; here tests and benchmarks drive them directly.
 * An interceptor sees every message with its authenticated sender and may rewrite it, replace
 * it or drop it: that is how the adversarial tests play a malicious peer.
 */
import { ProtocolAbort } from './errors.js';
import type { ProtocolMessage } from './message.js';
import type { Session } from './session.js';

export type Interceptor = (message: ProtocolMessage) => ProtocolMessage | undefined;

export interface RunResult<T> {
  outputs: Map<number, T>;
  aborts: Map<number, ProtocolAbort>;
  /** Every message sent, in order (for transcripts and byte counts). */
  transcript: ProtocolMessage[];
}

export function runSessions<T>(sessions: ReadonlyMap<number, Session<T>>, intercept?: Interceptor): RunResult<T> {
  const aborts = new Map<number, ProtocolAbort>();
  const transcript: ProtocolMessage[] = [];
  const attempt = (party: number, step: () => ProtocolMessage[]): ProtocolMessage[] => {
    if (aborts.has(party)) return [];
    try {
      return step();
    } catch (err) {
      if (!(err instanceof ProtocolAbort)) throw err;
      aborts.set(party, err);
      return [];
    }
  };
  let pending = [...sessions].flatMap(([party, session]) => attempt(party, () => session.start()));
  while (pending.length > 0) {
    transcript.push(...pending);
    for (const original of pending) {
      const message = intercept ? intercept(original) : original;
      if (!message) continue;
      // Delivery follows the channel (original sender → original receiver), not the header:
      // a header naming another receiver or sender is the sender's fault, caught by the session.
      const session = sessions.get(original.to);
      if (session) attempt(original.to, () => (session.receive(message, original.from), []));
    }
    pending = [...sessions].flatMap(([party, session]) => attempt(party, () => session.advance()));
  }
  const outputs = new Map<number, T>();
  for (const [party, session] of sessions) if (session.done && !aborts.has(party)) outputs.set(party, session.output);
  return { outputs, aborts, transcript };
}
