/**
 * The coordinator's view of its signers: one mTLS client per signer (the server certificate
 * must name `signer-<i>`), health polling, latency EWMA, boot ids and quarantine.
 *
 * - up: the last health probe succeeded and no call since failed with UNAVAILABLE. A refused
 *   connection marks a signer down at once; probe deadlines only after two in a row (a signer busy
 *   with a presign batch may answer a probe late).
 * - healthy = up ∧ ¬quarantined: only healthy signers are selected for anything.
 * - quarantined: the coordinator's own exclusion of a signer from scheduling, set by an operator
 *   (Admin.Quarantine) or by the combiner's own proof against it (an online share whose echoed
 *   nonce is provably wrong); lifted by Admin.Readmit. Never set from what another signer says.
 * - pair conflicts (conflicts.ts): a signer's report about a peer — a Presign answered ABORTED
 *   with qk-blame=1 / qk-culprit=j, or j in the retired_peers of its Health answer for a key —
 *   only keeps that pair apart for that key. Each Health answer is stamped when its probe
 *   started, each Presign blame when it was observed, so that a stale answer cannot clear it.
 * - epochs: each Health answer's key epochs and pending shares are kept (status shows them); a
 *   pending share is announced ('pending' event) for the coordinator to commit or discard.
 * - boot id: a change means the signer restarted and lost its presignatures; listeners drop
 *   every pooled presignature involving it.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { ClusterConfig, SignerConfig } from '../cluster/config.js';
import { signerName, type TlsIdentity } from '../pki/cluster-ca.js';
import { channelOptions, clientCredentials } from '../transport/tls.js';
import { ABORT_METADATA, REFUSAL_METADATA, services, type ProtocolEnvelope } from '../transport/proto.js';
import type { OperatorApproval } from '../pki/operator-approval.js';
import type { ConflictGraph } from './conflicts.js';
import type { Logger } from './log.js';
import type { CoordinatorMetrics } from './metrics.js';

// Wire shapes (keepCase field names, as loaded by src/transport/proto.ts).
export interface KeySummary {
  key_id: string;
  epoch: number;
  public_key: Uint8Array;
  presignatures: number;
  /** Peers whose OT correlation with this signer is retired for this key. */
  retired_peers: number[];
  /** The policy sealed with this signer's share (canonical bytes; empty: none). */
  policy: Uint8Array;
}
/** A share a signer sealed by KeyGen / Refresh and holds neither committed nor discarded. */
export interface PendingShare {
  key_id: string;
  epoch: number;
  public_key: Uint8Array;
  public_shares_digest: Uint8Array;
}
export interface HealthResponse {
  index: number;
  boot_id: string;
  keys: KeySummary[];
  pending?: PendingShare[];
}
export interface CommitShareRequest {
  key_id: string;
  epoch: number;
  public_shares_digest: Uint8Array;
}
export interface PairSetupRequest {
  key_id: string;
  session_id: Uint8Array;
  peer: number;
}
export interface KeyGenRequest {
  key_id: string;
  session_id: Uint8Array;
  parties: number[];
  threshold: number;
  /** Canonical KeyPolicy bytes. */
  policy: Uint8Array;
}
export interface KeyGenResponse {
  public_key: Uint8Array;
  epoch: number;
  public_shares_digest: Uint8Array;
}
export interface PresignRequest {
  key_id: string;
  session_id: Uint8Array;
  subset: number[];
  count: number;
  /** The committed epoch: a signer on another one refuses (qk-refusal: cross-epoch). */
  epoch: number;
  coordinator_generation: Uint8Array;
}
export interface PresignResponse {
  boot_id: string;
  presignatures: { id: Uint8Array; nonce: Uint8Array }[];
}
export interface FinishRequest {
  key_id: string;
  presignature_id: Uint8Array;
  digest: Uint8Array;
  tweak_seed: Uint8Array;
  tbs: Uint8Array;
  digest_alg: string;
  caller: string;
  deadline_unix_ms: number;
}
export interface FinishResponse {
  share: ProtocolEnvelope | null;
}
export interface RefreshRequest {
  key_id: string;
  session_id: Uint8Array;
}

/** A failed call to one signer, with the ProtocolAbort metadata when the signer sent it. */
export class SignerCallError extends Error {
  constructor(
    readonly signer: number,
    readonly method: string,
    readonly code: grpc.status,
    readonly details: string,
    readonly abortReason: string | undefined,
    readonly culprit: number | undefined,
    readonly blame: boolean,
    /** Finish refused under the key's sealed policy: the signer's reason (qk-refusal). */
    readonly refusal?: string,
  ) {
    super(`signer ${signer} ${method}: ${grpc.status[code] ?? code}${abortReason ? ` (${abortReason}${culprit !== undefined ? `, culprit ${culprit}` : ''})` : ''}: ${details}`);
    this.name = 'SignerCallError';
  }
  /** The signer could not be reached (as opposed to answering with an error). */
  get unreachable(): boolean {
    return this.code === grpc.status.UNAVAILABLE;
  }
  get timedOut(): boolean {
    return this.code === grpc.status.DEADLINE_EXCEEDED;
  }
  /** Label for metrics: abort reason or status name. */
  get reasonLabel(): string {
    return this.refusal ?? this.abortReason ?? (grpc.status[this.code] ?? String(this.code)).toLowerCase();
  }
}

function metadataString(md: grpc.Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.toString('utf8');
}

export function toSignerCallError(signer: number, method: string, err: grpc.ServiceError): SignerCallError {
  const md = err.metadata;
  const reason = metadataString(md, ABORT_METADATA.reason);
  const culpritText = metadataString(md, ABORT_METADATA.culprit);
  const culprit = culpritText !== undefined && /^\d{1,3}$/.test(culpritText) ? Number(culpritText) : undefined;
  const blame = metadataString(md, ABORT_METADATA.blame) === '1';
  const refusal = metadataString(md, REFUSAL_METADATA);
  const refused = refusal !== undefined && /^[a-z-]{1,48}$/.test(refusal) ? refusal : undefined;
  return new SignerCallError(signer, method, err.code ?? grpc.status.UNKNOWN, err.details ?? err.message, reason, culprit, blame, refused);
}

export interface SignerState {
  index: number;
  endpoint: string;
  up: boolean;
  quarantined: boolean;
  quarantineReason: string;
  bootId: string;
  /** EWMA of round trips, ms; undefined until the first success. */
  latencyMs: number | undefined;
  lastError: string;
  /** Consecutive probe deadlines. */
  probeTimeouts: number;
  /** Times this signer went down: a probe asked before the latest fall cannot bring it back up. */
  falls: number;
  /** The epoch of each key this signer holds, and its pending shares, as its last Health said. */
  epochs: { keyId: string; epoch: number }[];
  pending: { keyId: string; epoch: number }[];
}

export interface SignerRegistryOptions {
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  /** Weight of a new sample in the latency EWMA. */
  ewmaAlpha?: number;
}

type Client = grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>;

/**
 * Events: 'boot-changed' (index, oldBootId, newBootId), 'change' (index) whenever up /
 * quarantined changes, 'quarantined' (index, reason), 'readmitted' (index), 'pending' (index,
 * PendingShare[]) after each Health answer that lists pending shares.
 */
export class SignerRegistry extends EventEmitter {
  private readonly clients = new Map<number, Client>();
  private readonly states = new Map<number, SignerState>();
  private readonly polling = new Map<number, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly alpha: number;

  constructor(
    config: ClusterConfig,
    identity: TlsIdentity,
    private readonly metrics: CoordinatorMetrics,
    private readonly log: Logger,
    private readonly conflicts: ConflictGraph,
    options: SignerRegistryOptions = {},
  ) {
    super();
    this.intervalMs = options.healthIntervalMs ?? 1000;
    this.timeoutMs = options.healthTimeoutMs ?? 1500;
    this.alpha = options.ewmaAlpha ?? 0.2;
    const creds = clientCredentials(identity);
    for (const s of [...config.signers].sort((a, b) => a.index - b.index)) {
      this.clients.set(s.index, this.makeClient(s, creds));
      this.states.set(s.index, {
        index: s.index,
        endpoint: s.endpoint,
        up: false,
        quarantined: false,
        quarantineReason: '',
        bootId: '',
        latencyMs: undefined,
        lastError: 'not probed yet',
        probeTimeouts: 0,
        falls: 0,
        epochs: [],
        pending: [],
      });
      this.updateGauges(s.index);
    }
  }

  private makeClient(s: SignerConfig, creds: grpc.ChannelCredentials): Client {
    return new services.Signer(s.endpoint, creds, {
      ...channelOptions(signerName(s.index)),
      // Reconnect quickly to a restarted signer (grpc's default backoff grows to 120 s).
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.min_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.keepalive_time_ms': 10_000,
      // A signer busy with a key generation or refresh on its main thread can answer a ping late
      // on a loaded machine: a short timeout dropped its connection, failing the whole dealing
      // ("Connection dropped"). A dead signer is still seen at once (connection refused / reset).
      'grpc.keepalive_timeout_ms': 30_000,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    }) as unknown as Client;
  }

  get indices(): number[] {
    return [...this.states.keys()];
  }
  has(index: number): boolean {
    return this.states.has(index);
  }
  state(index: number): SignerState {
    const s = this.states.get(index);
    if (!s) throw new Error(`unknown signer ${index}`);
    return s;
  }
  all(): SignerState[] {
    return [...this.states.values()];
  }
  healthy(index: number): boolean {
    const s = this.states.get(index);
    return !!s && s.up && !s.quarantined;
  }
  latencyMs(index: number): number {
    return this.states.get(index)?.latencyMs ?? Number.POSITIVE_INFINITY;
  }
  bootId(index: number): string {
    return this.states.get(index)?.bootId ?? '';
  }

  start(): void {
    if (this.timer) return;
    for (const i of this.indices) void this.probe(i);
    this.timer = setInterval(() => {
      for (const i of this.indices) void this.probe(i);
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const c of this.clients.values()) c.close();
  }

  /**
   * One health probe (joins the one in flight, if any; `fresh`: waits for that one and then
   * probes again, so that the answer was asked for after this call). Resolves when done; never
   * rejects.
   */
  probe(index: number, fresh = false): Promise<void> {
    const running = this.polling.get(index);
    if (running && !fresh) return running;
    if (running) return running.then(() => this.probe(index, true));
    const p = this.runProbe(index).finally(() => this.polling.delete(index));
    this.polling.set(index, p);
    return p;
  }

  /** Probes every signer once (bounded by the probe deadline). */
  async probeAll(): Promise<void> {
    await Promise.all(this.indices.map((i) => this.probe(i)));
  }

  private async runProbe(index: number): Promise<void> {
    const started = Date.now();
    // Taken before asking: this answer cannot clear a conflict reported after this point.
    const stamp = this.conflicts.stamp();
    const fallsBefore = this.state(index).falls;
    try {
      const res = await this.call<HealthResponse>(index, 'Health', {}, this.timeoutMs, false);
      const s = this.state(index);
      // Answered before a failure that came after the question (e.g. a kill -9 meanwhile): stale.
      if (s.falls !== fallsBefore) return;
      if (res.index !== index) {
        this.setDown(index, `endpoint ${s.endpoint} answers as signer ${res.index}`);
        return;
      }
      s.probeTimeouts = 0;
      this.observeLatency(index, Date.now() - started);
      this.observeBootId(index, res.boot_id);
      if (!s.up) {
        s.up = true;
        s.lastError = '';
        this.log.info('signer up', { signer: index, boot_id: res.boot_id });
        this.changed(index);
      }
      s.epochs = (res.keys ?? []).map((k) => ({ keyId: k.key_id, epoch: k.epoch }));
      s.pending = (res.pending ?? []).map((p) => ({ keyId: p.key_id, epoch: p.epoch }));
      if (res.pending?.length) this.emit('pending', index, res.pending);
      this.conflicts.reportHealth(
        index,
        stamp,
        (res.keys ?? []).map((k) => ({ keyId: k.key_id, retiredPeers: k.retired_peers ?? [] })),
      );
    } catch (e) {
      const err = e as SignerCallError;
      const s = this.state(index);
      if (err.timedOut) {
        s.probeTimeouts++;
        if (s.probeTimeouts >= 2) this.setDown(index, err.message);
        else s.lastError = err.message;
      } else {
        this.setDown(index, err.message);
      }
    }
  }

  /** Records a boot id seen in a health or presign answer. */
  observeBootId(index: number, bootId: string): void {
    const s = this.state(index);
    if (!bootId || s.bootId === bootId) return;
    const old = s.bootId;
    s.bootId = bootId;
    if (old) {
      this.metrics.signerRestarts.inc({ signer: String(index) });
      this.log.warn('signer restarted: dropping its presignatures', { signer: index, old_boot_id: old, boot_id: bootId });
      this.emit('boot-changed', index, old, bootId);
    }
  }

  private observeLatency(index: number, ms: number): void {
    const s = this.state(index);
    s.latencyMs = s.latencyMs === undefined ? ms : s.latencyMs + this.alpha * (ms - s.latencyMs);
    this.metrics.signerLatency.set({ signer: String(index) }, s.latencyMs / 1000);
  }

  private setDown(index: number, why: string): void {
    const s = this.state(index);
    s.lastError = why;
    if (s.up) {
      s.up = false;
      s.falls++;
      this.log.warn('signer down', { signer: index, error: why });
      this.changed(index);
    }
  }

  /** Called by users of the RPCs when a call failed: an unreachable signer is down at once. */
  noteFailure(err: SignerCallError): void {
    this.metrics.signerFailures.inc({ signer: String(err.signer), method: err.method, reason: err.reasonLabel });
    const s = this.states.get(err.signer);
    if (!s) return;
    if (err.unreachable) this.setDown(err.signer, err.message);
    else s.lastError = err.message;
    // A blame names a peer: that is the reporter's side of a pair conflict (recorded by presign()
    // for the key), never a reason to exclude the peer, nor the reporter.
    // Unreachable, slow, or answering for presignatures it no longer has (restarted?): probe now.
    if (err.timedOut || err.unreachable || err.abortReason === 'presignature-used') void this.probe(err.signer);
  }

  /** Excludes a signer from scheduling (an operator, or the combiner's own proof against it). */
  quarantine(index: number, reason: string): void {
    const s = this.state(index);
    if (s.quarantined) return;
    s.quarantined = true;
    s.quarantineReason = reason;
    this.log.warn('signer quarantined', { signer: index, reason });
    this.changed(index);
    this.emit('quarantined', index, reason);
  }

  /** Lifts a quarantine (operator). Pair conflicts are not affected: see Admin.ReconcilePair. */
  readmit(index: number): void {
    const s = this.state(index);
    if (!s.quarantined) return;
    s.quarantined = false;
    s.quarantineReason = '';
    this.log.info('signer readmitted', { signer: index });
    this.changed(index);
    this.emit('readmitted', index);
  }

  private changed(index: number): void {
    this.updateGauges(index);
    this.emit('change', index);
  }

  private updateGauges(index: number): void {
    const s = this.state(index);
    const label = { signer: String(index) };
    this.metrics.signerUp.set(label, s.up ? 1 : 0);
    this.metrics.signerHealthy.set(label, s.up && !s.quarantined ? 1 : 0);
    this.metrics.signerQuarantined.set(label, s.quarantined ? 1 : 0);
  }

  // -------------------------------------------------------------------------------------------
  // RPCs. Each rejects with a SignerCallError; Finish and Health update the latency EWMA.

  call<Res>(index: number, method: string, request: unknown, timeoutMs: number, noteFailures = true): Promise<Res> {
    const client = this.clients.get(index);
    if (!client) return Promise.reject(new SignerCallError(index, method, grpc.status.NOT_FOUND, `signer ${index} is not configured`, undefined, undefined, false));
    return new Promise<Res>((resolve, reject) => {
      const deadline = new Date(Date.now() + Math.max(1, timeoutMs));
      client[method]!(request, new grpc.Metadata(), { deadline }, (err: grpc.ServiceError | null, res: Res) => {
        if (err) {
          const e = toSignerCallError(index, method, err);
          if (noteFailures) this.noteFailure(e);
          reject(e);
        } else {
          resolve(res);
        }
      });
    });
  }

  keyGen(index: number, req: KeyGenRequest, timeoutMs: number): Promise<KeyGenResponse> {
    return this.call(index, 'KeyGen', req, timeoutMs);
  }
  refresh(index: number, req: RefreshRequest, timeoutMs: number): Promise<KeyGenResponse> {
    return this.call(index, 'Refresh', req, timeoutMs);
  }
  /**
   * Presign at one member. An ABORTED answer with qk-blame=1 / qk-culprit=c is signer `index`'s
   * report of a failed check with c: the pair conflict {index, c} for the key (ignored when c is
   * `index` itself or not a holder of the key).
   */
  presign(index: number, req: PresignRequest, timeoutMs: number): Promise<PresignResponse> {
    return this.call<PresignResponse>(index, 'Presign', req, timeoutMs).catch((e: unknown) => {
      if (e instanceof SignerCallError && e.code === grpc.status.ABORTED && e.blame && e.culprit !== undefined) {
        const stamp = this.conflicts.stamp();
        if (this.conflicts.reportCallError(req.key_id, index, e.culprit, e.abortReason ?? 'blame', stamp)) {
          this.log.warn('pair conflict reported by a signer', { key: req.key_id, reporter: index, peer: e.culprit, reason: e.abortReason ?? 'blame' });
        }
      }
      throw e;
    });
  }
  async finish(index: number, req: FinishRequest, timeoutMs: number): Promise<FinishResponse> {
    const started = process.hrtime.bigint();
    const res = await this.call<FinishResponse>(index, 'Finish', req, timeoutMs);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.metrics.finishDuration.observe({ signer: String(index) }, seconds);
    this.observeLatency(index, seconds * 1000);
    return res;
  }
  /** Pairwise re-setup of the key's OT correlation between signer `index` and `req.peer`. */
  pairSetup(index: number, req: PairSetupRequest, timeoutMs: number): Promise<KeySummary> {
    return this.call(index, 'PairSetup', req, timeoutMs);
  }
  /** Phase two of a key generation or refresh: the signer's pending share becomes its share. */
  commitShare(index: number, req: CommitShareRequest, timeoutMs: number): Promise<KeySummary> {
    return this.call(index, 'CommitShare', req, timeoutMs);
  }
  /** The dealing failed somewhere: the signer removes its pending share of that epoch. */
  discardShare(index: number, req: { key_id: string; epoch: number }, timeoutMs: number): Promise<KeySummary> {
    return this.call(index, 'DiscardShare', req, timeoutMs);
  }
  /** Erases every file of the key at the signer (the operator's approval rides along). */
  eraseKey(index: number, req: { key_id: string; approval: OperatorApproval }, timeoutMs: number): Promise<KeySummary> {
    return this.call(index, 'EraseKey', req, timeoutMs);
  }
  /** Seals a policy into a share from before policies (the operator's approval rides along). */
  setPolicy(index: number, req: { key_id: string; policy: Uint8Array; approval: OperatorApproval }, timeoutMs: number): Promise<KeySummary> {
    return this.call(index, 'SetPolicy', req, timeoutMs);
  }
}
