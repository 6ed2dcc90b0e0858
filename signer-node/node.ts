/**
 * The signer node service: wraps one Party (src/protocol/party.ts) behind the Signer and Peer
 * gRPC services (mutual TLS with the cluster CA) and an HTTP server for /metrics and /healthz.
 *
 * Signer: callable only by the certificate `coordinator`. Peer: only by `signer-<j>`, j a
 * configured signer other than this one (Exchange for protocol rounds, each envelope's `from`
 * being j; RetirePair, with which peer j can retire only the pair (j, this signer)). Enforced by
 * signer-node/access.ts's interceptor before a request is read. PairSetup also needs an
 * operator approval (the admin identity's signature), KeyGen stops at a cap on keys held.
 *
 * Pair retirement (DESIGN §3): a failed OT / VOLE check with peer j retires the pair's OT
 * correlation for that key — at once in memory (Party), then durably (the share file is
 * rewritten without the pair's OT state, before the failing RPC is answered), then j is told
 * (best effort; it refuses nothing it would not refuse anyway). Only PairSetup (the operator's
 * `quorumkey signers reconcile`) or a refresh makes the pair usable again; no readmission, no
 * restart. Every input is validated before it reaches the Party;
 *
 * Two-phase key dealing (DESIGN §7): a KeyGen or Refresh seals its new share as the key's
 * *pending* share and answers; nothing signs with it. The coordinator, once every holder
 * answered, sends CommitShare (the pending file is renamed over the share: atomic) — or
 * DiscardShare when any holder failed. A restarted signer keeps its pending share and lists it
 * in Health; the coordinator decides from its registry (committed there: commit; else: discard).
 * EraseKey removes every file of a key, with the operator's approval of {op: delete-key, key}.
 * a handler never throws out of grpc-js (bad input is answered, and the service keeps serving).
 *
 * Statuses (details always a readable sentence):
 *   INVALID_ARGUMENT     malformed field (key id, session id, index lists, count, digest, seed…)
 *   NOT_FOUND            unknown key
 *   FAILED_PRECONDITION  (also) CommitShare of a pending share this signer does not hold
 *   ALREADY_EXISTS       KeyGen of a key this signer already holds
 *   FAILED_PRECONDITION  "presignature unknown or already used"; a key generation/refresh of the
 *                        key is already running; key refreshed while a presign ran
 *   ABORTED              a ProtocolAbort: trailing metadata qk-abort-reason, qk-culprit (when
 *                        known), qk-blame: 1 (for a blame)
 *   RESOURCE_EXHAUSTED   too many sessions or presignatures in memory; KeyGen past the key limit
 *                        (qk-refusal: key-limit)
 *   PERMISSION_DENIED    wrong caller certificate (signer-node/access.ts, before the request is
 *                        read); PairSetup without a valid operator approval (qk-refusal: the
 *                        approval-* reason)
 *   UNAVAILABLE          shutting down
 *   INTERNAL             sealing failed, or a bug (logged)
 */
import * as grpc from '@grpc/grpc-js';
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signerCompute, type ClusterConfig } from '../src/cluster/config.js';
import type { TlsIdentity } from '../src/pki/cluster-ca.js';
import type { OperatorApproval } from '../src/pki/operator-approval.js';
import { ProtocolAbort } from '../src/protocol/errors.js';
import type { KeyShare } from '../src/protocol/keyshare.js';
import { MAX_PARTIES } from '../src/protocol/keyshare.js';
import { SESSION_ID_BYTES, toHex } from '../src/protocol/message.js';
import { TWEAK_SEED_BYTES } from '../src/protocol/online.js';
import { Party } from '../src/protocol/party.js';
import type { PairState } from '../src/protocol/pair-setup.js';
import type { Presignature } from '../src/protocol/presign.js';
import { wipe } from '../src/protocol/math/secret-scalar.js';
import { SealError } from '../src/storage/seal.js';
import { ABORT_METADATA, COORDINATOR_GENERATION_BYTES, digestAlgFromWire, REFUSAL_METADATA, services, toEnvelope, type ProtocolEnvelope } from '../src/transport/proto.js';
import type { AuditLog } from '../src/audit/log.js';
import { decodeKeyPolicy, keyPolicyDigest, PolicyError } from '../src/policy/key-policy.js';
import { FinishRefused, SignGate } from './sign-gate.js';
import { callerName, serverCredentials } from '../src/transport/tls.js';
import type { Logger } from './log.js';
import { AccessError, COORDINATOR_IDENTITY, SignerAccess } from './access.js';
import { SignerMetrics } from './metrics.js';
import { exchangeHandler, MAX_PEER_MESSAGE_BYTES, PeerTransport, retirePairHandler, sendRetirePair, type PeerAddress, type RetirePairNotice } from './peers.js';
import { pairSetupSpec, presignSpec, refreshSpec, type KeyGenSpec } from './compute/specs.js';
import type { ComputeOptions } from './compute/thread.js';
import { SessionDriver, ShuttingDown } from './sessions.js';
import { KEY_ID_PATTERN, type ShareStore } from './shares.js';

export { COORDINATOR_IDENTITY };
export const MIN_DIGEST_BYTES = 20;
export const MAX_DIGEST_BYTES = 64;
/** Largest content a Finish may carry (as the coordinator's limit). */
export const MAX_TBS_BYTES = 1024 * 1024;
const MAX_CALLER_CHARS = 256;
/** Running protocol sessions at once; more are refused with RESOURCE_EXHAUSTED. */
export const MAX_RUNNING_SESSIONS = 128;
/** Presignatures kept in memory per key; a presign that would exceed it is refused. */
export const MAX_PRESIGNATURES_PER_KEY = 65_536;
export const DEFAULT_SESSION_TIMEOUT_MS = 30_000;
/** How long a signer keeps a presignature no Finish asked for. */
export const DEFAULT_PRESIGNATURE_TTL_MS = 3_600_000;

/** An answer with a specific gRPC status. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly metadata?: grpc.Metadata,
  ) {
    super(message);
  }
}

const invalid = (message: string) => new RpcError(grpc.status.INVALID_ARGUMENT, message);

/** Calls `each` with every key id of `keyIds` and how often it occurs. */
function countPerKey(keyIds: readonly string[], each: (keyId: string, n: number) => void): void {
  const byKey = new Map<string, number>();
  for (const keyId of keyIds) byKey.set(keyId, (byKey.get(keyId) ?? 0) + 1);
  for (const [keyId, n] of byKey) each(keyId, n);
}

export function abortMetadata(err: ProtocolAbort): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(ABORT_METADATA.reason, err.reason);
  if (err.culprit !== undefined) md.set(ABORT_METADATA.culprit, String(err.culprit));
  if (err.isBlame) md.set(ABORT_METADATA.blame, '1');
  return md;
}

// --- wire shapes (proto-loader, keepCase, defaults) -------------------------------------------

interface KeyGenRequest {
  key_id: string;
  session_id: Buffer;
  parties: number[];
  threshold: number;
  policy: Buffer;
}
interface PresignRequest {
  key_id: string;
  session_id: Buffer;
  subset: number[];
  count: number;
  epoch: number;
  coordinator_generation: Buffer;
}
interface FinishRequest {
  key_id: string;
  presignature_id: Buffer;
  digest: Buffer;
  tweak_seed: Buffer;
  tbs: Buffer;
  digest_alg: string;
  caller: string;
  deadline_unix_ms: number;
}
interface RefreshRequest {
  key_id: string;
  session_id: Buffer;
}
interface PairSetupRequest {
  key_id: string;
  session_id: Buffer;
  peer: number;
  approval: OperatorApproval | null;
}
interface CommitShareRequest {
  key_id: string;
  epoch: number;
  public_shares_digest: Buffer;
}
interface DiscardShareRequest {
  key_id: string;
  epoch: number;
}
interface EraseKeyRequest {
  key_id: string;
  approval: OperatorApproval | null;
}
interface PendingShare {
  key_id: string;
  epoch: number;
  public_key: Uint8Array;
  public_shares_digest: Uint8Array;
}
interface SetPolicyRequest {
  key_id: string;
  policy: Buffer;
  approval: OperatorApproval | null;
}
interface KeySummary {
  key_id: string;
  epoch: number;
  public_key: Uint8Array;
  presignatures: number;
  retired_peers: number[];
  policy: Uint8Array;
}
interface HealthResponse {
  index: number;
  boot_id: string;
  keys: KeySummary[];
  pending: PendingShare[];
}
interface KeyGenResponse {
  public_key: Uint8Array;
  epoch: number;
  public_shares_digest: Uint8Array;
}
interface PresignResponse {
  boot_id: string;
  presignatures: { id: Uint8Array; nonce: Uint8Array }[];
}
interface FinishResponse {
  share: ProtocolEnvelope;
}

export interface SignerNodeOptions {
  index: number;
  config: ClusterConfig;
  identity: TlsIdentity;
  store: ShareStore;
  /** This signer's own audit log: every Finish it answered or refused. */
  audit: AuditLog;
  log: Logger;
  bootId?: string;
  /**
   * Builds the signer↔signer transport; default: `new PeerTransport(...)`. Ordinary dependency
   * injection, the seam through which a test harness decorates the transport from the outside
   * (test/services/malicious-signer.ts). main.ts never sets it, and no flag, environment
   * variable or configuration of the product reaches it.
   */
  createPeerTransport?: PeerTransportFactory;
  /**
   * The compute thread's entry module and its data; default: the product's (compute/worker.ts).
   * The same kind of seam, for a test harness's own sessions (test/services/malicious-compute.ts).
   */
  compute?: ComputeOptions;
}

export type PeerTransportFactory = (identity: TlsIdentity, self: number, peers: readonly PeerAddress[], log: Logger) => PeerTransport;

export interface Addresses {
  grpc: string;
  http: string;
}

/** SHA-256 over the public shares in party order (every holder must report the same). */
export function publicSharesDigest(share: KeyShare): Uint8Array {
  const h = createHash('sha256');
  for (const p of share.parties) h.update(share.publicShares.get(p)!);
  return new Uint8Array(h.digest());
}

function splitHostPort(endpoint: string, what: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(endpoint ?? '');
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`${what} '${endpoint}' is not host:port`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

const peerStatus = (code: grpc.status, details: string): grpc.ServerErrorResponse => ({ name: 'PeerError', message: details, code, details });

const formatHostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

export class SignerNode {
  readonly index: number;
  readonly bootId: string;
  readonly party: Party;
  readonly metrics: SignerMetrics;
  private readonly config: ClusterConfig;
  private readonly identity: TlsIdentity;
  private readonly store: ShareStore;
  private readonly log: Logger;
  private readonly signerIndices: ReadonlySet<number>;
  private readonly keys = new Set<string>();
  /** Shares dealt and sealed as pending, not committed yet (never used to sign), by key. */
  private readonly pending = new Map<string, KeyShare>();
  private readonly audit: AuditLog;
  /** Keys with a key generation or refresh running here. */
  private readonly dealing = new Set<string>();
  /** The latest share write of each key (persist() chains the next one behind it). */
  private readonly saving = new Map<string, Promise<void>>();
  private readonly transport: PeerTransport;
  private readonly access: SignerAccess;
  private readonly driver: SessionDriver;
  private readonly gate: SignGate;
  private readonly server: grpc.Server;
  private http: HttpServer | undefined;
  private stopping = false;
  private readonly expiry: NodeJS.Timeout;
  /** Largest presign batch accepted (cluster.json signerCompute.maxPresignBatch). */
  private readonly maxPresignBatch: number;
  /** Generation (hex) of the coordinator that presigned last: only its presignatures are kept. */
  private coordinatorGeneration: string | undefined;

  constructor(options: SignerNodeOptions) {
    this.index = options.index;
    this.config = options.config;
    this.identity = options.identity;
    this.store = options.store;
    this.log = options.log;
    this.audit = options.audit;
    this.bootId = options.bootId ?? randomUUID();
    this.party = new Party(this.index);
    this.signerIndices = new Set(this.config.signers.map((s) => s.index));
    const timeout = this.config.sessionTimeoutMs;
    const timeoutMs = Number.isInteger(timeout) && timeout > 0 ? timeout : DEFAULT_SESSION_TIMEOUT_MS;
    this.metrics = new SignerMetrics(this.index, this.bootId, {
      keys: () => this.keySummaries().map((k) => ({ keyId: k.key_id, epoch: k.epoch, presignatures: k.presignatures })),
      retiredPairs: () => this.keySummaries().flatMap((k) => k.retired_peers.map((peer) => ({ keyId: k.key_id, peer }))),
      pendingMessages: () => this.driver.pending.size,
      runningSessions: () => this.driver.runningCount,
      computeBacklog: () => this.driver.computeBacklog,
    });
    const createTransport: PeerTransportFactory = options.createPeerTransport ?? ((id, self, peers, log) => new PeerTransport(id, self, peers, log));
    this.transport = createTransport(this.identity, this.index, this.config.signers, this.log);
    this.gate = new SignGate(options.audit, (keyId, reason) => this.metrics.refusals.inc({ key: keyId, reason }));
    const compute = signerCompute(this.config);
    this.maxPresignBatch = compute.maxPresignBatch;
    this.driver = new SessionDriver(this.party, this.transport, timeoutMs, this.log, this.metrics, (share, peer, reason) => this.pairRetired(share, peer, reason), {
      niceIncrement: compute.niceIncrement,
      options: options.compute ?? {},
    });
    const ttl = this.config.presignatureTtlMs;
    const ttlMs = Number.isInteger(ttl) && ttl! > 0 ? ttl! : DEFAULT_PRESIGNATURE_TTL_MS;
    this.expiry = setInterval(() => this.expirePresignatures(ttlMs), Math.min(60_000, Math.max(100, Math.floor(ttlMs / 4))));
    this.expiry.unref();
    this.access = new SignerAccess({
      self: this.index,
      signers: this.signerIndices,
      caPem: this.identity.ca,
      log: this.log,
      registry: this.metrics.registry,
      maxKeys: this.config.maxKeysPerSigner,
    });
    // The interceptor refuses a wrong certificate before the (up to 64 MB) request is read.
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': MAX_PEER_MESSAGE_BYTES,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
      interceptors: [this.access.interceptor],
    });
    this.server.addService(services.Signer.service, {
      Health: this.unary('Health', () => this.health()),
      KeyGen: this.unary('KeyGen', (r: KeyGenRequest) => this.keyGen(r)),
      Presign: this.unary('Presign', (r: PresignRequest) => this.presign(r)),
      Finish: this.unary('Finish', (r: FinishRequest) => this.finish(r)),
      Refresh: this.unary('Refresh', (r: RefreshRequest) => this.refresh(r)),
      PairSetup: this.unary('PairSetup', (r: PairSetupRequest) => this.pairSetup(r)),
      SetPolicy: this.unary('SetPolicy', (r: SetPolicyRequest) => this.setPolicy(r)),
      CommitShare: this.unary('CommitShare', (r: CommitShareRequest) => this.commitShare(r)),
      DiscardShare: this.unary('DiscardShare', (r: DiscardShareRequest) => this.discardShare(r)),
      EraseKey: this.unary('EraseKey', (r: EraseKeyRequest) => this.eraseKey(r)),
    });
    this.server.addService(services.Peer.service, {
      Exchange: exchangeHandler(this.transport, (sender, envelope) => this.driver.deliver(sender, envelope)),
      RetirePair: retirePairHandler(this.transport, (sender, notice) => this.peerRetiredPair(sender, notice)),
    });
  }

  /**
   * Installs shares loaded from sealed storage, and the pending ones (kept aside until the
   * coordinator commits or discards them). A pending share that could never be committed (not
   * the next epoch of the installed one, or epoch 0 beside one) is removed now.
   */
  async installShares(shares: readonly KeyShare[], pending: readonly KeyShare[] = []): Promise<void> {
    for (const share of shares) {
      this.party.installShare(share);
      this.keys.add(share.keyId);
    }
    for (const share of pending) {
      const current = this.keys.has(share.keyId) ? this.party.share(share.keyId).epoch : -1;
      if (share.epoch === current + 1) {
        this.pending.set(share.keyId, share);
        this.log.warn('pending share found: waiting for the coordinator to commit or discard it', { key: share.keyId, epoch: share.epoch });
      } else {
        await this.store.discardPending(share.keyId);
        this.log.warn('stale pending share removed', { key: share.keyId, epoch: share.epoch, installed_epoch: current });
      }
    }
  }

  /** Binds gRPC (config endpoint) and HTTP (config http); returns the bound addresses. */
  async listen(): Promise<Addresses> {
    await this.driver.ready(); // a compute thread without native kernels stops the start here
    const me = this.config.signers.find((s) => s.index === this.index)!;
    const g = splitHostPort(me.endpoint, `signer ${this.index} endpoint`);
    const h = splitHostPort(me.http, `signer ${this.index} http`);
    const grpcPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(me.endpoint, serverCredentials(this.identity), (err, port) => {
        if (err) reject(new Error(`cannot listen for gRPC on ${me.endpoint}: ${err.message}`));
        else resolve(port);
      });
    });
    const http = createServer((req, res) => void this.serveHttp(req, res));
    this.http = http;
    const httpPort = await new Promise<number>((resolve, reject) => {
      http.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`cannot listen for HTTP on ${me.http}: ${e.code ?? e.message}`)));
      http.listen(h.port, h.host, () => resolve((http.address() as AddressInfo).port));
    });
    http.on('error', (e) => this.log.error('http server error', { error: e.message }));
    return { grpc: formatHostPort(g.host, grpcPort), http: formatHostPort(h.host, httpPort) };
  }

  /** Stops accepting, stops running sessions, closes everything. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.expiry);
    await Promise.all([
      this.driver.close(),
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          this.server.forceShutdown();
          resolve();
        }, graceMs);
        this.server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
      new Promise<void>((resolve) => {
        if (!this.http) return resolve();
        this.http.close(() => resolve());
        this.http.closeAllConnections();
      }),
    ]);
    this.transport.close();
  }

  // --- RPC plumbing -------------------------------------------------------------------------

  private unary<Req, Res>(method: string, fn: (request: Req) => Promise<Res> | Res): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const respond = (err: grpc.ServerErrorResponse | null, value?: Res) => {
        this.metrics.rpcs.inc({ method, code: grpc.status[err ? (err.code ?? grpc.status.UNKNOWN) : grpc.status.OK] ?? 'UNKNOWN' });
        try {
          if (err) callback(err);
          else callback(null, value);
        } catch (e) {
          this.log.error('grpc callback failed', { method, error: (e as Error)?.message });
        }
      };
      const caller = callerName(call);
      if (caller !== COORDINATOR_IDENTITY) {
        this.log.warn('signer call refused', { method, caller: caller ?? null });
        respond(this.toStatus(method, new RpcError(grpc.status.PERMISSION_DENIED, `Signer.${method}: caller '${caller ?? 'unauthenticated'}' is not the coordinator`)));
        return;
      }
      let result: Promise<Res>;
      try {
        if (this.stopping) throw new ShuttingDown();
        result = Promise.resolve(fn(call.request));
      } catch (e) {
        result = Promise.reject(e);
      }
      result.then(
        (value) => respond(null, value),
        (e) => respond(this.toStatus(method, e)),
      );
    };
  }

  private toStatus(method: string, e: unknown): grpc.ServerErrorResponse {
    if (e instanceof RpcError) {
      if (e.code === grpc.status.INVALID_ARGUMENT) this.log.info('invalid request', { method, detail: e.message });
      return { name: 'RpcError', message: e.message, code: e.code, details: e.message, ...(e.metadata ? { metadata: e.metadata } : {}) };
    }
    if (e instanceof ProtocolAbort) {
      return { name: 'ProtocolAbort', message: e.message, code: grpc.status.ABORTED, details: e.message, metadata: abortMetadata(e) };
    }
    if (e instanceof AccessError) return { name: 'AccessError', message: e.message, code: e.code, details: e.message, metadata: e.metadata };
    if (e instanceof ShuttingDown) return { name: 'Unavailable', message: e.message, code: grpc.status.UNAVAILABLE, details: e.message };
    if (e instanceof SealError) {
      this.log.error('sealing failed', { method, error: e.message });
      return { name: 'SealError', message: e.message, code: grpc.status.INTERNAL, details: `signer ${this.index} could not seal the share: ${e.message}` };
    }
    this.log.error('internal error', { method, error: (e as Error)?.message ?? String(e), stack: (e as Error)?.stack });
    return { name: 'Internal', message: 'internal error', code: grpc.status.INTERNAL, details: `signer ${this.index}: internal error in ${method} (see its log)` };
  }

  // --- validation -----------------------------------------------------------------------------

  private keyId(value: unknown): string {
    if (typeof value !== 'string' || !KEY_ID_PATTERN.test(value)) {
      throw invalid(`key_id must match ${KEY_ID_PATTERN.source}, got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : 'nothing'}`);
    }
    return value;
  }

  private knownKey(value: unknown): string {
    const keyId = this.keyId(value);
    if (!this.keys.has(keyId)) throw new RpcError(grpc.status.NOT_FOUND, `signer ${this.index} holds no share of key '${keyId}'`);
    return keyId;
  }

  private bytes(value: unknown, name: string, min: number, max = min): Uint8Array {
    const b = value instanceof Uint8Array ? value : undefined;
    const len = b?.length ?? 0;
    if (!b || len < min || len > max) {
      const want = min === max ? `${min} bytes` : `${min} to ${max} bytes`;
      throw invalid(`${name} must be ${want}, got ${len}`);
    }
    return new Uint8Array(b);
  }

  private sessionId(value: unknown): Uint8Array {
    return this.bytes(value, 'session_id', SESSION_ID_BYTES);
  }

  /** A sorted list of distinct configured signer indices that contains this signer. */
  private indices(value: unknown, name: string, min: number, max: number): number[] {
    const list = Array.isArray(value) ? (value as unknown[]) : [];
    if (list.length < min || list.length > max) throw invalid(`${name} must list ${min} to ${max} signer indices, got ${list.length}`);
    const out: number[] = [];
    for (const v of list) {
      if (typeof v !== 'number' || !Number.isInteger(v) || !this.signerIndices.has(v)) {
        throw invalid(`${name}: ${String(v)} is not a configured signer (signers: ${[...this.signerIndices].sort((a, b) => a - b).join(',')})`);
      }
      if (out.length > 0 && v <= out[out.length - 1]!) throw invalid(`${name} must be sorted ascending without repetition, got ${list.join(',')}`);
      out.push(v);
    }
    if (!out.includes(this.index)) throw invalid(`${name} ${out.join(',')} does not include this signer (${this.index})`);
    return out;
  }

  private checkCapacity(): void {
    if (this.driver.runningCount >= MAX_RUNNING_SESSIONS) {
      throw new RpcError(grpc.status.RESOURCE_EXHAUSTED, `signer ${this.index} already runs ${MAX_RUNNING_SESSIONS} sessions`);
    }
  }

  /** Creates a session on the Party; its refusals become statuses. */
  private create<S>(sessionId: Uint8Array, make: () => S): S {
    try {
      return make();
    } catch (e) {
      this.driver.discard(sessionId);
      if (!(e instanceof ProtocolAbort)) throw e;
      if (e.reason === 'session-reused') throw invalid(`session_id ${toHex(sessionId).slice(0, 16)}… is already running here`);
      if (e.reason === 'bad-parameters') throw invalid(e.message);
      throw e; // pair-retired → ABORTED with metadata (reason, culprit)
    }
  }

  // --- Signer service -----------------------------------------------------------------------

  private keySummary(keyId: string): KeySummary {
    const share = this.party.share(keyId);
    return {
      key_id: keyId,
      epoch: share.epoch,
      public_key: share.publicKey,
      presignatures: this.party.presignatureCount(keyId),
      retired_peers: [...share.retiredPeers].sort((a, b) => a - b),
      policy: share.policy,
    };
  }

  private keySummaries(): KeySummary[] {
    return [...this.keys].sort().map((keyId) => this.keySummary(keyId));
  }

  private health(): HealthResponse {
    const pending = [...this.pending.values()]
      .sort((a, b) => (a.keyId < b.keyId ? -1 : 1))
      .map((p) => ({ key_id: p.keyId, epoch: p.epoch, public_key: p.publicKey, public_shares_digest: publicSharesDigest(p) }));
    return { index: this.index, boot_id: this.bootId, keys: this.keySummaries(), pending };
  }

  private async keyGen(req: KeyGenRequest): Promise<KeyGenResponse> {
    this.access.admitNewKey(new Set([...this.keys, ...this.pending.keys()]), this.dealing);
    const keyId = this.keyId(req.key_id);
    const sessionId = this.sessionId(req.session_id);
    const parties = this.indices(req.parties, 'parties', 2, MAX_PARTIES);
    const threshold = req.threshold;
    if (!Number.isInteger(threshold) || threshold < 2 || threshold > parties.length) {
      throw invalid(`threshold must be between 2 and the number of parties (${parties.length}), got ${threshold}`);
    }
    const policy = this.policy(req.policy);
    if (this.keys.has(keyId)) throw new RpcError(grpc.status.ALREADY_EXISTS, `key '${keyId}' already exists on signer ${this.index}`);
    if (this.dealing.has(keyId)) throw new RpcError(grpc.status.FAILED_PRECONDITION, `a key generation or refresh of key '${keyId}' is already running on signer ${this.index}`);
    this.checkCapacity();
    const spec: KeyGenSpec = { protocol: 'dkg', keyId, sessionId, self: this.index, parties, threshold, policy };
    this.dealing.add(keyId);
    try {
      this.log.info('key generation started', { key: keyId, session: toHex(sessionId).slice(0, 16), parties, threshold, policy: new TextDecoder().decode(policy) });
      // Computed on the compute thread, as every protocol session: Finish and Health go on meanwhile.
      const share = await this.sealPending((await this.driver.compute(spec)) as KeyShare);
      this.log.info('key generated and sealed as pending', { key: keyId, epoch: share.epoch, public_key: toHex(share.publicKey) });
      return { public_key: share.publicKey, epoch: share.epoch, public_shares_digest: publicSharesDigest(share) };
    } finally {
      this.dealing.delete(keyId);
    }
  }

  private async refresh(req: RefreshRequest): Promise<KeyGenResponse> {
    const keyId = this.knownKey(req.key_id);
    const sessionId = this.sessionId(req.session_id);
    if (this.dealing.has(keyId)) throw new RpcError(grpc.status.FAILED_PRECONDITION, `a key generation or refresh of key '${keyId}' is already running on signer ${this.index}`);
    this.checkCapacity();
    const spec = refreshSpec(this.party.share(keyId), sessionId);
    this.dealing.add(keyId);
    try {
      this.log.info('refresh started', { key: keyId, session: toHex(sessionId).slice(0, 16), epoch: this.party.share(keyId).epoch });
      const share = await this.sealPending((await this.driver.compute(spec)) as KeyShare);
      this.log.info('key refreshed: the next epoch is sealed as pending', { key: keyId, epoch: share.epoch });
      return { public_key: share.publicKey, epoch: share.epoch, public_shares_digest: publicSharesDigest(share) };
    } finally {
      this.dealing.delete(keyId);
    }
  }

  /**
   * Seals a finished key-dealing session's share as the key's pending share (replacing an older
   * pending one: an attempt the coordinator never committed). Nothing signs with it until
   * CommitShare.
   */
  private async sealPending(share: KeyShare): Promise<KeyShare> {
    this.pending.delete(share.keyId);
    await this.store.savePending(share);
    this.pending.set(share.keyId, share);
    return share;
  }

  /**
   * Phase two: the pending share of `epoch` becomes the key's share (rename over the old file,
   * then installed: the older epoch's presignatures are destroyed). Answered as done when that
   * epoch is already installed with the same public shares (a repeated commit).
   */
  private async commitShare(req: CommitShareRequest): Promise<KeySummary> {
    const keyId = this.keyId(req.key_id);
    const digest = this.bytes(req.public_shares_digest, 'public_shares_digest', 32);
    const pending = this.pending.get(keyId);
    const installed = this.keys.has(keyId) ? this.party.share(keyId) : undefined;
    if (!pending || pending.epoch !== req.epoch) {
      if (installed?.epoch === req.epoch && Buffer.from(publicSharesDigest(installed)).equals(digest)) return this.keySummary(keyId);
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `signer ${this.index} holds no pending share of '${keyId}' at epoch ${req.epoch}${pending ? ` (pending: epoch ${pending.epoch})` : ''}`);
    }
    if (!Buffer.from(publicSharesDigest(pending)).equals(digest)) {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `signer ${this.index}: the pending share of '${keyId}' at epoch ${req.epoch} has other public shares than the ones committed`);
    }
    if (this.dealing.has(keyId)) throw new RpcError(grpc.status.FAILED_PRECONDITION, `a key generation or refresh of key '${keyId}' is running on signer ${this.index}`);
    await this.store.commitPending(keyId);
    this.pending.delete(keyId);
    this.party.installShare(pending);
    this.keys.add(keyId);
    this.log.info('pending share committed; older presignatures destroyed', { key: keyId, epoch: pending.epoch });
    return this.keySummary(keyId);
  }

  /** Removes the key's pending share of `epoch` (the dealing did not complete everywhere). */
  private async discardShare(req: DiscardShareRequest): Promise<KeySummary> {
    const keyId = this.keyId(req.key_id);
    const pending = this.pending.get(keyId);
    if (pending && pending.epoch === req.epoch && !this.dealing.has(keyId)) {
      await this.store.discardPending(keyId);
      this.pending.delete(keyId);
      this.log.warn('pending share discarded', { key: keyId, epoch: req.epoch });
    }
    return this.keys.has(keyId) ? this.keySummary(keyId) : { key_id: keyId, epoch: 0, public_key: new Uint8Array(0), presignatures: 0, retired_peers: [], policy: new Uint8Array(0) };
  }

  /**
   * Erases every file of a key (share and pending) and forgets it, with the operator's approval
   * of {op: delete-key, key}; recorded in this signer's audit log first.
   */
  private async eraseKey(req: EraseKeyRequest): Promise<KeySummary> {
    const keyId = this.keyId(req.key_id);
    this.access.checkApproval('EraseKey', req.approval, { op: 'delete-key', key: keyId });
    if (!this.keys.has(keyId) && !this.pending.has(keyId)) throw new RpcError(grpc.status.NOT_FOUND, `signer ${this.index} holds no share of key '${keyId}'`);
    if (this.dealing.has(keyId)) throw new RpcError(grpc.status.FAILED_PRECONDITION, `a key generation, refresh or pair re-setup of key '${keyId}' is running on signer ${this.index}`);
    const epoch = this.keys.has(keyId) ? this.party.share(keyId).epoch : this.pending.get(keyId)!.epoch;
    await this.audit.append({ event: 'key-erased', key_id: keyId, epoch, time: new Date().toISOString() });
    await (this.saving.get(keyId) ?? Promise.resolve());
    await this.store.erase(keyId);
    this.keys.delete(keyId);
    this.pending.delete(keyId);
    this.party.removeShare(keyId);
    this.log.warn('key erased (operator approval)', { key: keyId, epoch });
    return { key_id: keyId, epoch, public_key: new Uint8Array(0), presignatures: 0, retired_peers: [], policy: new Uint8Array(0) };
  }

  private async presign(req: PresignRequest): Promise<PresignResponse> {
    const keyId = this.knownKey(req.key_id);
    const sessionId = this.sessionId(req.session_id);
    const subset = this.indices(req.subset, 'subset', 2, MAX_PARTIES);
    const count = req.count;
    if (!Number.isInteger(count) || count < 1 || count > this.maxPresignBatch) throw invalid(`count must be between 1 and ${this.maxPresignBatch}, got ${count} (cluster.json signerCompute.maxPresignBatch)`);
    const share = this.party.share(keyId);
    if (req.epoch !== share.epoch) throw this.crossEpoch(keyId, req.epoch, share.epoch);
    if (subset.length !== share.threshold) throw invalid(`subset must have exactly ${share.threshold} signers (the threshold of '${keyId}'), got ${subset.length}`);
    const outsider = subset.find((p) => !share.parties.includes(p));
    if (outsider !== undefined) throw invalid(`subset: signer ${outsider} holds no share of '${keyId}' (holders: ${share.parties.join(',')})`);
    const generation = this.generation(req.coordinator_generation);
    this.adoptGeneration(generation);
    if (this.party.presignatureCount(keyId) + count > MAX_PRESIGNATURES_PER_KEY) {
      throw new RpcError(grpc.status.RESOURCE_EXHAUSTED, `signer ${this.index} already holds ${this.party.presignatureCount(keyId)} presignatures of '${keyId}' (limit ${MAX_PRESIGNATURES_PER_KEY})`);
    }
    this.checkCapacity();
    // Computed on the compute thread: this thread goes on answering Finish and Health meanwhile.
    const spec = this.create(sessionId, () => presignSpec(this.party.presignParams(keyId, sessionId, subset, count)));
    const output = (await this.driver.compute(spec)) as Presignature[];
    return this.completePresign(keyId, output, generation);
  }

  /**
   * The coordinator asked for another epoch than the one installed here (a refresh not
   * committed here yet, or a share restored from an old backup): refused before anything is
   * computed, named as such — never a blame.
   */
  private crossEpoch(keyId: string, asked: number, installed: number): RpcError {
    const md = new grpc.Metadata();
    md.set(REFUSAL_METADATA, 'cross-epoch');
    const hint = installed < asked ? (this.pending.get(keyId)?.epoch === asked ? ' (that epoch is pending here, not committed yet)' : ' (an older share: restored from a backup? this signer needs a resharing)') : '';
    return new RpcError(grpc.status.FAILED_PRECONDITION, `cross-epoch: signer ${this.index} holds key '${keyId}' at epoch ${installed}, asked for epoch ${asked}${hint}`, md);
  }

  /** A Presign's coordinator generation (hex), or undefined when it claims none. */
  private generation(value: unknown): string | undefined {
    if (value === undefined || (value instanceof Uint8Array && value.length === 0)) return undefined;
    return toHex(this.bytes(value, 'coordinator_generation', COORDINATOR_GENERATION_BYTES));
  }

  /**
   * A Presign under a coordinator generation other than the last one seen: that coordinator
   * restarted and will never ask for the presignatures it pooled, so every stored one is wiped.
   */
  private adoptGeneration(generation: string | undefined): void {
    if (generation === undefined || generation === this.coordinatorGeneration) return;
    const previous = this.coordinatorGeneration;
    this.coordinatorGeneration = generation;
    const wiped = this.party.expirePresignatures(Number.POSITIVE_INFINITY);
    countPerKey(wiped, (keyId, n) => this.metrics.presignaturesSuperseded.inc({ key: keyId }, n));
    this.log.info('new coordinator generation: presignatures of earlier generations wiped', { generation, previous, wiped: wiped.length });
  }

  /** Destroys presignatures unused for `ttlMs` (a restarted coordinator never asks for its old pools). */
  private expirePresignatures(ttlMs: number): void {
    const expired = this.party.expirePresignatures(Date.now() - ttlMs);
    if (expired.length === 0) return;
    countPerKey(expired, (keyId, n) => this.metrics.presignaturesExpired.inc({ key: keyId }, n));
    this.log.info('unused presignatures expired', { expired: expired.length, ttl_ms: ttlMs });
  }

  private completePresign(keyId: string, output: Presignature[], generation: string | undefined): PresignResponse {
    if (generation !== undefined && generation !== this.coordinatorGeneration) {
      // A newer coordinator presigned while this ran: nobody will ask for these.
      for (const p of output) wipe(p.phi, p.u, p.v);
      this.metrics.presignaturesSuperseded.inc({ key: keyId }, output.length);
      throw new RpcError(grpc.status.FAILED_PRECONDITION, 'a newer coordinator generation presigned while this presign ran; its presignatures were discarded');
    }
    const current = this.keys.has(keyId) ? this.party.share(keyId).epoch : undefined;
    if (output.some((p) => p.epoch !== current)) {
      for (const p of output) wipe(p.phi, p.u, p.v);
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `key '${keyId}' was refreshed or removed while this presign ran; its presignatures were discarded`);
    }
    this.party.storePresignatures(output, Date.now());
    this.metrics.presignaturesCreated.inc({ key: keyId }, output.length);
    return { boot_id: this.bootId, presignatures: output.map((p) => ({ id: p.id, nonce: p.nonce })) };
  }

  /** A KeyGen's policy: canonical KeyPolicy bytes (what the echo agrees on), checked here. */
  private policy(value: unknown): Uint8Array {
    const bytes = value instanceof Uint8Array ? new Uint8Array(value) : new Uint8Array(0);
    try {
      decodeKeyPolicy(bytes);
    } catch (e) {
      throw invalid(e instanceof PolicyError ? e.message : 'policy is not a canonical key policy');
    }
    return bytes;
  }

  /**
   * The online round behind this signer's own policy gate: classify and check the content,
   * then (presignature removed first) compute the share, record it, answer.
   */
  private async finish(req: FinishRequest): Promise<FinishResponse> {
    const keyId = this.knownKey(req.key_id);
    const presignatureId = this.bytes(req.presignature_id, 'presignature_id', 32);
    const tweakSeed = this.bytes(req.tweak_seed, 'tweak_seed', TWEAK_SEED_BYTES);
    const digestAlg = digestAlgFromWire(req.digest_alg);
    if (!digestAlg) throw invalid(`unknown digest_alg ${String(req.digest_alg).slice(0, 32)}`);
    const hasTbs = req.tbs instanceof Uint8Array && req.tbs.length > 0;
    const hasDigest = req.digest instanceof Uint8Array && req.digest.length > 0;
    if (hasTbs === hasDigest) throw invalid('exactly one of tbs / digest must be set (a digest only for raw-digest keys)');
    const content = hasTbs
      ? { tbs: this.bytes(req.tbs, 'tbs', 1, MAX_TBS_BYTES) }
      : { digest: this.bytes(req.digest, 'digest', MIN_DIGEST_BYTES, MAX_DIGEST_BYTES) };
    const caller = typeof req.caller === 'string' ? req.caller.slice(0, MAX_CALLER_CHARS) : '';
    const deadline = Number(req.deadline_unix_ms);
    if (Number.isSafeInteger(deadline) && deadline > 0 && Date.now() > deadline) {
      // Expired work is dropped, and the presignature kept: nothing was computed with it.
      this.metrics.finishes.inc({ result: 'expired' });
      throw new RpcError(grpc.status.DEADLINE_EXCEEDED, `signer ${this.index}: the request's deadline passed ${Date.now() - deadline} ms ago; not signed`);
    }
    const started = performance.now();
    let admitted;
    try {
      admitted = await this.gate.admit(this.party.share(keyId), { ...content, digestAlg, presignatureId, caller });
    } catch (e) {
      if (!(e instanceof FinishRefused)) throw e;
      this.party.discardPresignature(keyId, presignatureId);
      this.metrics.finishes.inc({ result: 'refused' });
      this.log.warn('finish refused by the key policy', { key: keyId, reason: e.reason, caller, presignature: toHex(presignatureId).slice(0, 16) });
      throw new RpcError(e.code, `signer ${this.index} refused: ${e.message}`, e.metadata());
    }
    let message;
    try {
      message = this.party.sign(keyId, presignatureId, { digest: admitted.digest, tweakSeed });
    } catch (e) {
      if (e instanceof ProtocolAbort && e.reason === 'presignature-used') {
        this.metrics.finishes.inc({ result: 'unknown-presignature' });
        throw new RpcError(grpc.status.FAILED_PRECONDITION, 'presignature unknown or already used');
      }
      this.metrics.finishes.inc({ result: 'error' });
      if (e instanceof ProtocolAbort && e.reason === 'bad-parameters') throw invalid(e.message);
      throw e;
    }
    // The share leaves only once its record is durable; a failed append answers nothing (the
    // presignature is gone either way, so nothing can be signed unrecorded).
    await admitted.record();
    this.metrics.finishDuration.observe((performance.now() - started) / 1000);
    this.metrics.finishes.inc({ result: 'ok' });
    this.log.debug('online share computed', { key: keyId, presignature: toHex(presignatureId).slice(0, 16) });
    return { share: toEnvelope(message) };
  }

  /**
   * Pairwise re-setup with `peer` (both signers are called with the same label): fresh base OTs
   * in both directions for this key; persisted before it is answered. Only with the operator's
   * approval of {op: pair-setup, key, a: min(self, peer), b: max(self, peer)}.
   */
  /**
   * Seals a policy into a share sealed before policies (the operator's `key adopt-policy`): only
   * with the operator's approval of exactly this policy, only where there is none (the same
   * policy again is answered as done), durable before it is answered.
   */
  private async setPolicy(req: SetPolicyRequest): Promise<KeySummary> {
    const keyId = this.knownKey(req.key_id);
    const policy = this.policy(req.policy);
    this.access.checkApproval('SetPolicy', req.approval, { op: 'adopt-policy', key: keyId, policy_digest: toHex(keyPolicyDigest(policy)) });
    const sealed = this.party.share(keyId).policy;
    if (sealed.length > 0) {
      if (Buffer.from(sealed).equals(policy)) return this.keySummary(keyId);
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `key '${keyId}' already has a sealed policy on signer ${this.index}; a sealed policy never changes`);
    }
    this.party.adoptPolicy(keyId, policy);
    await this.persist(keyId);
    this.log.warn('policy adopted and sealed with the share (operator approval)', { key: keyId, policy: new TextDecoder().decode(policy) });
    return this.keySummary(keyId);
  }

  private async pairSetup(req: PairSetupRequest): Promise<KeySummary> {
    // The operator's approval of exactly this pair and key comes first: the coordinator's word is not enough.
    this.access.checkApproval('PairSetup', req.approval, { op: 'pair-setup', key: req.key_id, a: Math.min(this.index, req.peer), b: Math.max(this.index, req.peer) });
    const keyId = this.knownKey(req.key_id);
    const sessionId = this.sessionId(req.session_id);
    const share = this.party.share(keyId);
    const peer = req.peer;
    if (!Number.isInteger(peer) || peer === this.index || !share.parties.includes(peer)) {
      throw invalid(`peer must be another holder of '${keyId}' (holders: ${share.parties.join(',')}), got ${peer}`);
    }
    if (this.dealing.has(keyId)) throw new RpcError(grpc.status.FAILED_PRECONDITION, `a key generation, refresh or pair re-setup of key '${keyId}' is already running on signer ${this.index}`);
    this.checkCapacity();
    const spec = pairSetupSpec(share, sessionId, peer);
    this.dealing.add(keyId);
    try {
      this.log.info('pair re-setup started', { key: keyId, peer, session: toHex(sessionId).slice(0, 16), epoch: share.epoch });
      const state = (await this.driver.compute(spec)) as PairState;
      if (this.party.share(keyId).epoch !== share.epoch) throw new RpcError(grpc.status.FAILED_PRECONDITION, `key '${keyId}' changed epoch during the pair re-setup; run it again`);
      this.party.installPairState(state);
      try {
        await this.persist(keyId);
      } catch (e) {
        // Not durable: keep the pair retired rather than run on state a restart would lose.
        this.party.retirePair(keyId, peer);
        throw e;
      }
      this.log.info('pair re-setup sealed: fresh OT correlation with the peer', { key: keyId, peer, epoch: share.epoch });
      return this.keySummary(keyId);
    } finally {
      this.dealing.delete(keyId);
    }
  }

  /**
   * A blame retired a pair here: seals it (the returned promise settles then; the failing RPC
   * waits for it), then tells the peer in the background.
   */
  private async pairRetired(share: KeyShare, peer: number, reason: string): Promise<void> {
    this.log.error('pair retired after a failed check: no presign with the peer for this key until `quorumkey signers reconcile` or a refresh', {
      key: share.keyId,
      peer,
      reason,
    });
    try {
      await this.persist(share.keyId);
    } catch {
      return; // persist() logged it and retries
    }
    void this.notifyRetired(share, peer, reason);
  }

  private async notifyRetired(share: KeyShare, peer: number, reason: string): Promise<void> {
    const notice: RetirePairNotice = { key_id: share.keyId, epoch: share.epoch, reason };
    for (let attempt = 0; attempt < 3 && !this.stopping; attempt++) {
      try {
        await sendRetirePair(this.transport, peer, notice, 5000);
        return;
      } catch (e) {
        this.log.warn('could not tell the peer that the pair is retired (it refuses nothing we would not refuse)', { key: share.keyId, peer, error: (e as Error)?.message });
      }
    }
  }

  /** Peer `sender` retired our pair for a key: retire our side too (only that pair). */
  private async peerRetiredPair(sender: number, notice: RetirePairNotice): Promise<grpc.ServerErrorResponse | null> {
    const keyId = typeof notice?.key_id === 'string' && KEY_ID_PATTERN.test(notice.key_id) ? notice.key_id : undefined;
    if (!keyId || !this.keys.has(keyId)) return peerStatus(grpc.status.NOT_FOUND, `signer ${this.index} holds no share of that key`);
    const share = this.party.share(keyId);
    if (notice.epoch !== share.epoch) return peerStatus(grpc.status.FAILED_PRECONDITION, `key '${keyId}' is at epoch ${share.epoch} here, not ${notice.epoch}`);
    const updated = this.party.retirePair(keyId, sender);
    this.driver.pairRetired(keyId, sender);
    if (updated) {
      this.log.error('peer retired our pair after a failed check; retired here too', { key: keyId, peer: sender, reason: String(notice.reason ?? '').slice(0, 64) });
      await this.persist(keyId);
    }
    return null;
  }

  /**
   * Seals the Party's current share of a key. Writes of one key are serialised and each writes
   * the latest in-memory state, so a later write never resurrects what an earlier change
   * removed. A failed write is retried until it succeeds (a retirement must become durable).
   */
  private persist(keyId: string): Promise<void> {
    const write = async () => {
      if (this.keys.has(keyId)) await this.store.save(this.party.share(keyId)); // erased meanwhile: nothing to write
    };
    const next = (this.saving.get(keyId) ?? Promise.resolve()).then(write, write);
    this.saving.set(keyId, next.catch(() => undefined));
    next.catch((e) => {
      this.log.error('could not seal the changed share; retrying in 5 s', { key: keyId, error: (e as Error)?.message });
      const retry = setTimeout(() => void this.persist(keyId).catch(() => undefined), 5000);
      retry.unref();
    });
    return next;
  }

  // --- HTTP -----------------------------------------------------------------------------------

  private async serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if ((req.method === 'GET' || req.method === 'HEAD') && path === '/metrics') {
        const body = await this.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      if ((req.method === 'GET' || req.method === 'HEAD') && path === '/healthz') {
        const h = this.health();
        const body = JSON.stringify({
          index: h.index,
          boot_id: h.boot_id,
          keys: h.keys.map((k) => ({ key_id: k.key_id, epoch: k.epoch, public_key: toHex(k.public_key), presignatures: k.presignatures, retired_peers: k.retired_peers })),
          retired_pairs: h.keys.filter((k) => k.retired_peers.length > 0).map((k) => ({ key_id: k.key_id, peers: k.retired_peers })),
          pending: h.pending.map((p) => ({ key_id: p.key_id, epoch: p.epoch })),
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    } catch (e) {
      this.log.error('http handler failed', { error: (e as Error)?.message });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    }
  }
}
