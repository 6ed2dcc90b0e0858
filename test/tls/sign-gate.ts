/**
 * A test-only front of the coordinator's Sign on its own unix socket: forwards each request to the
 * real coordinator, but holds it at a gate first, and records the order in which requests arrive
 * and answers leave. A key reference naming this socket puts it between a TLS server's provider
 * and the coordinator, so a test can see how many signatures a server has in flight at once.
 */
import * as grpc from '@grpc/grpc-js';
import { services } from '../../src/transport/proto.js';

export type GateEvent = 'arrive' | 'answer';

export class SignGate {
  readonly events: GateEvent[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private readonly server = new grpc.Server();
  private readonly upstream: grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>;
  private held: (() => void)[] = [];
  private openWhen = 0;
  private openAll = true;

  constructor(
    readonly socket: string,
    coordinatorSocket: string,
  ) {
    this.upstream = new services.Coordinator(`unix:${coordinatorSocket}`, grpc.credentials.createInsecure()) as never;
  }

  get arrived(): number {
    return this.events.filter((e) => e === 'arrive').length;
  }

  async start(): Promise<void> {
    this.server.addService(services.Coordinator.service, {
      Sign: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.events.push('arrive');
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        const forward = () => {
          const deadline = call.getDeadline();
          this.upstream.Sign(call.request, { deadline }, (err: grpc.ServiceError | null, res: unknown) => {
            this.events.push('answer');
            this.inFlight--;
            cb(err ? { code: err.code, details: err.details, metadata: err.metadata } : null, res);
          });
        };
        if (this.openAll || (this.openWhen > 0 && this.inFlight >= this.openWhen)) {
          this.openWhen = 0;
          this.openAll = true;
          const waiting = this.held.splice(0);
          forward();
          for (const release of waiting) release();
        } else this.held.push(forward);
      },
    });
    await new Promise<void>((resolve, reject) =>
      this.server.bindAsync(`unix:${this.socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Holds every request until `count` are waiting at once (then lets them all through). */
  holdUntil(count: number): void {
    this.openAll = false;
    this.openWhen = count;
  }

  /** Holds every request until release(). */
  hold(): void {
    this.openAll = false;
    this.openWhen = 0;
  }

  release(): void {
    this.openAll = true;
    for (const forward of this.held.splice(0)) forward();
  }

  async waitForArrivals(count: number, timeoutMs = 120_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.arrived < count) {
      if (Date.now() > end) throw new Error(`only ${this.arrived} of ${count} Sign requests arrived`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stop(): void {
    this.release();
    this.server.forceShutdown();
    this.upstream.close();
  }
}
