/**
 * The main thread's handle on the signer's compute thread (compute/serve.ts): posts session
 * operations, hands every step that comes back to the driver, and keeps the thread alive.
 *
 * - Ready: `ready()` settles once the thread has checked its native kernels and lowered its
 *   priority (it rejects with the thread's reason otherwise: the signer does not start).
 * - A thread that dies (a crash, an out-of-memory kill) ends every session it was running with an
 *   error (their presignatures never existed anywhere else) and is started anew for the next one.
 *   A thread that refuses (its kernels are not native) is not restarted: every session fails with
 *   its reason.
 * - Incoming peer messages are moved, not copied, where their payload buffers are their own
 *   (signer-node/sessions.ts decodes each into fresh buffers).
 */
import { Worker } from 'node:worker_threads';
import type { ProtocolMessage } from '../../src/protocol/message.js';
import type { Logger } from '../log.js';
import type { ComputeOp, ComputeReply, ComputeThreadData } from './serve.js';
import type { SessionSpec } from './specs.js';

export const COMPUTE_ENTRY = new URL('./worker.js', import.meta.url);

export interface ComputeOptions {
  /** The thread's entry module (default COMPUTE_ENTRY); a test harness passes its own. */
  entry?: URL;
  /** Passed to that entry as workerData.extra. */
  extra?: unknown;
}

type StepReply = Extract<ComputeReply, { op: 'step' }>;

/** Payload buffers a message owns outright (so moving them leaves no one without data). */
function ownBuffers(message: ProtocolMessage): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const v of Object.values(message.payload)) {
    const buffer = v.buffer;
    if (buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === buffer.byteLength) out.add(buffer);
  }
  return [...out];
}

export class ComputeThread {
  private worker: Worker | undefined;
  private readiness: Promise<number> | undefined;
  private refused: string | undefined;
  private stopped = false;
  /** Sessions open on the thread. */
  private readonly open = new Set<string>();
  private posted = 0;

  constructor(
    private readonly niceIncrement: number,
    private readonly options: ComputeOptions,
    private readonly log: Logger,
    private readonly onStep: (hex: string, step: StepReply) => void,
  ) {}

  /** Operations posted and not answered yet: how far the thread is behind. */
  get backlog(): number {
    return this.posted;
  }

  /** Starts the thread if needed; resolves with its nice value once it is ready. */
  ready(): Promise<number> {
    if (this.refused) return Promise.reject(new Error(this.refused));
    if (!this.worker) this.spawn();
    return this.readiness!;
  }

  start(hex: string, spec: SessionSpec): void {
    this.open.add(hex);
    this.post({ op: 'open', hex, spec });
  }

  deliver(hex: string, sender: number, message: ProtocolMessage): void {
    if (this.open.has(hex)) this.post({ op: 'deliver', hex, sender, message }, ownBuffers(message));
  }

  timeout(hex: string, timeoutMs: number): void {
    if (this.open.has(hex)) this.post({ op: 'timeout', hex, timeoutMs });
  }

  close(hex: string): void {
    if (!this.open.delete(hex) || !this.worker) return;
    this.worker.postMessage({ op: 'close', hex } satisfies ComputeOp);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private post(op: ComputeOp, transfer: ArrayBuffer[] = []): void {
    if (this.refused || this.stopped) return this.fail(op.hex, this.refused ?? 'the signer is shutting down');
    if (!this.worker) this.spawn();
    this.posted += 1;
    this.worker!.postMessage(op, transfer);
  }

  private spawn(): void {
    const data: ComputeThreadData = { niceIncrement: this.niceIncrement, extra: this.options.extra };
    const worker = new Worker(this.options.entry ?? COMPUTE_ENTRY, { workerData: data });
    worker.unref(); // the gRPC server keeps the process alive, not this thread
    this.worker = worker;
    this.posted = 0;
    this.readiness = new Promise<number>((resolve, reject) => {
      worker.on('message', (reply: ComputeReply) => {
        if (reply.op === 'ready') {
          this.log.info('compute thread ready', { nice: reply.nice });
          resolve(reply.nice);
        } else if (reply.op === 'refused') {
          this.refused = `compute thread refused to start: ${reply.problem}`;
          this.log.error(this.refused);
          reject(new Error(this.refused));
          void worker.terminate();
        } else {
          this.posted -= 1;
          if (reply.end) this.open.delete(reply.hex);
          this.onStep(reply.hex, reply);
        }
      });
      worker.on('error', (e) => this.log.error('compute thread failed', { error: e.message }));
      worker.on('exit', (code) => {
        reject(new Error(`compute thread exited (code ${code}) before it was ready`));
        if (this.worker !== worker) return;
        this.worker = undefined;
        if (this.stopped || this.refused) return;
        this.log.error('compute thread exited; its sessions failed, the next session starts a new one', { code, sessions: this.open.size });
        for (const hex of [...this.open]) this.fail(hex, `the compute thread exited (code ${code})`);
      });
    });
    this.readiness.catch(() => undefined);
  }

  private fail(hex: string, reason: string): void {
    this.open.delete(hex);
    this.onStep(hex, { op: 'step', hex, messages: [], end: { ok: false, error: { message: reason } }, seconds: 0 });
  }
}
