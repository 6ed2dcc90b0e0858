/**
 * Who may knock on a signer's doors, decided before anything is read.
 *
 * A grpc-js server interceptor looks at the caller's verified certificate when the call's
 * headers arrive (onReceiveMetadata), before the request message is read from the stream or
 * decoded (grpc-js keeps the stream paused until the handler asks for a message). A refused
 * call is ended at once with PERMISSION_DENIED; its request bytes are never decoded and no
 * handler runs.
 *
 *   quorumkey.v1.Signer/*   only the certificate `coordinator`
 *   quorumkey.v1.Peer/*     only `signer-<j>`, j a configured signer other than this one
 *   anything else           nobody
 *
 * On an admitted Peer.Exchange stream every envelope must name the certificate's signer as its
 * `from`: the first one that does not ends the stream with PERMISSION_DENIED (nothing after it
 * is decoded or delivered). The session layer checks `from` again; this only stops one peer
 * speaking as another on the wire.
 *
 * Dangerous operations need more than the coordinator's certificate: `checkApproval` verifies an
 * operator approval (src/pki/operator-approval.ts) against the cluster CA with this signer's own
 * replay cache. `admitNewKey` caps the number of keys a signer holds (KeyGen).
 *
 * Metrics (in the node's registry): quorumkey_signer_access_refused_total{service, method,
 * reason} and quorumkey_signer_peer_streams_open (admitted incoming Exchange streams).
 */
import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ApprovalError, ReplayCache, verifyApproval, type ApprovalFields, type OperatorApproval } from '../src/pki/operator-approval.js';
import { REFUSAL_METADATA } from '../src/transport/proto.js';
import { callerName } from '../src/transport/tls.js';
import type { Logger } from './log.js';

export const COORDINATOR_IDENTITY = 'coordinator';
export const SIGNER_SERVICE = 'quorumkey.v1.Signer';
export const PEER_SERVICE = 'quorumkey.v1.Peer';
/** Keys one signer holds at most, unless the cluster configuration says otherwise. */
export const DEFAULT_MAX_KEYS = 256;

/** A refusal with its gRPC status (node.ts answers it as is). */
export class AccessError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly reason: string,
  ) {
    super(message);
    this.name = 'AccessError';
  }

  get metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(REFUSAL_METADATA, this.reason);
    return md;
  }
}

export interface SignerAccessOptions {
  self: number;
  /** Every configured signer index (this one included). */
  signers: Iterable<number>;
  /** PEM of the cluster CA: approvals must chain to it. */
  caPem: string | Buffer;
  log: Logger;
  registry: Registry;
  maxKeys?: number;
}

interface EnvelopeFrom {
  from?: unknown;
}

export class SignerAccess {
  readonly self: number;
  readonly maxKeys: number;
  private readonly peers: ReadonlySet<number>;
  private readonly caPem: string | Buffer;
  private readonly log: Logger;
  private readonly replay = new ReplayCache();
  private readonly refused: Counter<'service' | 'method' | 'reason'>;
  private readonly openStreams: Gauge;

  constructor(options: SignerAccessOptions) {
    this.self = options.self;
    this.peers = new Set([...options.signers].filter((i) => i !== options.self));
    this.caPem = options.caPem;
    this.log = options.log;
    const max = options.maxKeys;
    this.maxKeys = Number.isInteger(max) && max! > 0 ? max! : DEFAULT_MAX_KEYS;
    const registers = [options.registry];
    this.refused = new Counter({
      name: 'quorumkey_signer_access_refused_total',
      help: 'Calls refused by the access rules, by service, method and reason (wrong-identity, wrong-sender, approval-*, key-limit).',
      labelNames: ['service', 'method', 'reason'],
      registers,
    });
    this.openStreams = new Gauge({
      name: 'quorumkey_signer_peer_streams_open',
      help: 'Incoming Peer.Exchange streams admitted and not ended yet.',
      registers,
    });
  }

  /** The peer index of a certificate name `signer-<j>` (j configured, not this signer), or undefined. */
  peerIndex(name: string | undefined): number | undefined {
    const m = name === undefined ? null : /^signer-([1-9][0-9]{0,3})$/.exec(name);
    if (!m) return undefined;
    const index = Number(m[1]);
    return this.peers.has(index) ? index : undefined;
  }

  /** Why `caller` may not call `service`, or undefined when it may. */
  private refusal(service: string, method: string, caller: string | undefined): string | undefined {
    const who = caller === undefined ? 'an unauthenticated caller' : `'${caller}'`;
    if (service === SIGNER_SERVICE) return caller === COORDINATOR_IDENTITY ? undefined : `Signer.${method}: caller ${who} is not the coordinator`;
    if (service === PEER_SERVICE) return this.peerIndex(caller) !== undefined ? undefined : `Peer.${method}: ${who} is not a peer signer of signer ${this.self}`;
    return `${service}.${method}: no such service here`;
  }

  private refuse(service: string, method: string, reason: string, detail: string, caller: string | undefined): void {
    this.refused.inc({ service: service.replace(/^quorumkey\.v1\./, ''), method, reason });
    this.log.warn('call refused', { service, method, caller: caller ?? null, reason, detail });
  }

  /** The interceptor for `new grpc.Server({ interceptors: [access.interceptor] })`. */
  readonly interceptor: grpc.ServerInterceptor = (descriptor, call) => {
    const m = /^\/([^/]+)\/([^/]+)$/.exec(descriptor.path);
    const service = m?.[1] ?? '';
    const method = m?.[2] ?? descriptor.path;
    const exchange = service === PEER_SERVICE && method === 'Exchange';
    let sender: number | undefined;
    let open = false;
    const closed = () => {
      if (!open) return;
      open = false;
      this.openStreams.dec();
    };
    const intercepting: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const caller = callerName(call);
            const why = this.refusal(service, method, caller);
            if (why !== undefined) {
              this.refuse(service, method, 'wrong-identity', why, caller);
              // Not passed on: the handler never starts, the request is never read.
              intercepting.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: why });
              return;
            }
            if (exchange) {
              sender = this.peerIndex(caller);
              open = true;
              this.openStreams.inc();
            }
            nextMetadata(metadata);
          },
          onReceiveMessage: (message: unknown, nextMessage) => {
            if (exchange) {
              const from = (message as EnvelopeFrom | null)?.from;
              if (from !== sender) {
                const why = `Peer.Exchange: signer-${sender} sent a message as signer ${String(from)}`;
                this.refuse(service, method, 'wrong-sender', why, `signer-${sender}`);
                intercepting.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: why });
                return;
              }
            }
            nextMessage(message);
          },
          onCancel: closed,
        });
      },
      sendStatus: (status, nextStatus) => {
        closed();
        nextStatus(status);
      },
    });
    return intercepting;
  };

  /**
   * Verifies an operator approval of `expect` (this signer's replay cache, the cluster CA);
   * throws AccessError PERMISSION_DENIED naming the reason.
   */
  checkApproval(method: string, approval: OperatorApproval | null | undefined, expect: { op: string } & ApprovalFields): void {
    try {
      verifyApproval(approval, { caPem: this.caPem, expect, seen: this.replay });
    } catch (e) {
      if (!(e instanceof ApprovalError)) throw e;
      this.refuse(SIGNER_SERVICE, method, e.reason, e.message, COORDINATOR_IDENTITY);
      throw new AccessError(grpc.status.PERMISSION_DENIED, `signer ${this.self}: ${e.message}`, e.reason);
    }
    this.log.info('operator approval accepted', { method, ...expect });
  }

  /**
   * KeyGen of a new key: refused (RESOURCE_EXHAUSTED) when the keys held plus the new keys being
   * generated reach the cap.
   */
  admitNewKey(held: ReadonlySet<string>, dealing: ReadonlySet<string>): void {
    let count = held.size;
    for (const k of dealing) if (!held.has(k)) count++;
    if (count >= this.maxKeys) {
      const detail = `signer ${this.self} holds or is generating ${count} keys, its limit (maxKeysPerSigner in cluster.json: ${this.maxKeys})`;
      this.refuse(SIGNER_SERVICE, 'KeyGen', 'key-limit', detail, COORDINATOR_IDENTITY);
      throw new AccessError(grpc.status.RESOURCE_EXHAUSTED, detail, 'key-limit');
    }
  }
}
