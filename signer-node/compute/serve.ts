/**
 * The compute thread's side of the signer (a node:worker_threads Worker; compute/thread.ts starts
 * it): runs protocol sessions on a SessionHost, one operation at a time, in the order the main
 * thread posted them, and answers each with one step.
 *
 * It starts by checking, in this thread's own module instances, that every secret-handling kernel
 * is the native one (DESIGN §3; the addon is context-aware, so each thread loads it), and by
 * lowering its own scheduling priority (Linux nice values are per thread: the main thread, which
 * answers Finish and Health, keeps its own), then says ready, or refuses with the reason.
 *
 * Nothing here logs: what a session did travels back in its step (public values only, as
 * everywhere in the signer).
 */
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { ProtocolMessage } from '../../src/protocol/message.js';
import { nativeKernelsProblem } from '../../src/protocol/math/kernels.js';
// Every module with a secret-handling kernel, so that each has registered before the check.
import '../../src/protocol/math/curve.js';
import '../../src/protocol/math/secret-scalar.js';
import '../../src/protocol/ot/bits.js';
import '../../src/protocol/ot/native-hasher.js';
import '../../src/protocol/vole.js';
import { SessionHost, type Step } from './host.js';
import { encodeError, encodeOutput, wipeSpec, type ErrorWire, type OutputWire, type SessionFactory, type SessionSpec } from './specs.js';

/** Main thread → compute thread. */
export type ComputeOp =
  | { op: 'open'; hex: string; spec: SessionSpec }
  | { op: 'deliver'; hex: string; sender: number; message: ProtocolMessage }
  | { op: 'timeout'; hex: string; timeoutMs: number }
  | { op: 'close'; hex: string };

/** Compute thread → main thread. */
export type ComputeReply =
  | { op: 'ready'; nice: number }
  | { op: 'refused'; problem: string }
  | { op: 'step'; hex: string; messages: ProtocolMessage[]; end?: { ok: true; output: OutputWire } | { ok: false; error: ErrorWire }; seconds: number };

/** What the main thread passes as workerData. */
export interface ComputeThreadData {
  /** Added to the thread's nice value (capped at 19). */
  niceIncrement: number;
  /** Anything a test's own compute entry needs (the product's entry reads nothing else). */
  extra?: unknown;
}

function lowerPriority(increment: number): number {
  const current = getPriority(0);
  const target = Math.min(19, current + increment);
  if (target !== current) setPriority(0, target); // 0: this thread (Linux)
  return getPriority(0);
}

/** Serves the main thread with sessions built by `factory`. Call once, from a worker's entry module. */
export function serveCompute(factory: SessionFactory): void {
  const port = parentPort;
  if (!port) throw new Error('serveCompute runs in a worker thread');
  const post = (reply: ComputeReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);
  const problem = nativeKernelsProblem();
  if (problem) return post({ op: 'refused', problem });
  let nice: number;
  try {
    nice = lowerPriority((workerData as ComputeThreadData).niceIncrement);
  } catch (e) {
    return post({ op: 'refused', problem: `cannot lower the compute thread's priority: ${(e as Error).message}` });
  }
  const host = new SessionHost();
  const answer = (hex: string, started: number, step: Step) => {
    const seconds = (performance.now() - started) / 1000;
    if (!step.end) return post({ op: 'step', hex, messages: step.messages, seconds });
    if (!step.end.ok) return post({ op: 'step', hex, messages: step.messages, end: { ok: false, error: encodeError(step.end.error) }, seconds });
    const { wire, transfer, wipeOriginal } = encodeOutput(step.end.protocol, step.end.output);
    post({ op: 'step', hex, messages: step.messages, end: { ok: true, output: wire }, seconds }, transfer);
    wipeOriginal(); // postMessage cloned it synchronously
  };
  port.on('message', (op: ComputeOp) => {
    const started = performance.now();
    switch (op.op) {
      case 'open': {
        let session;
        try {
          session = factory(op.spec);
        } catch (error) {
          wipeSpec(op.spec);
          return answer(op.hex, started, { messages: [], end: { ok: false, error } });
        }
        return answer(op.hex, started, host.open(op.hex, session, () => wipeSpec(op.spec)));
      }
      case 'deliver':
        return answer(op.hex, started, host.deliver(op.hex, op.sender, op.message));
      case 'timeout':
        return answer(op.hex, started, host.timeout(op.hex, op.timeoutMs));
      case 'close':
        return host.close(op.hex);
    }
  });
  post({ op: 'ready', nice });
}
