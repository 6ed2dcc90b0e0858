/**
 * gRPC front ends.
 *
 * - Unix socket (insecure credentials; the file system is the access control: socket.ts — 0600
 *   for the coordinator's user, or 0660 for a configured socket group): Coordinator only. Caller
 *   identity "unix".
 * - TCP with mutual TLS (client certificate from the cluster CA required): Coordinator and Admin.
 *   Caller identity = the CN of the client certificate the TLS handshake verified, read on every
 *   call (never from metadata). Admin requires CN "admin" or "admin-*" (the `provider` identity
 *   gets PERMISSION_DENIED); signer identities ("signer-*") may not call Coordinator either.
 *
 * Sign statuses: INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE ("quorum
 * insufficient: …"), RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, INTERNAL (see proto/quorumkey.proto).
 * Every status the coordinator answers carries COORDINATOR_STATUS_METADATA: the provider retries
 * and opens its circuit only on failures without it (the transport's).
 */
import * as grpc from '@grpc/grpc-js';
import { canonicalJson } from '../audit/canonical.js';
import { publicKeySpki } from '../protocol/ecdsa.js';
import type { OperatorApproval } from '../pki/operator-approval.js';
import { callerName } from '../transport/tls.js';
import { COORDINATOR_STATUS_METADATA, digestAlgFromWire, services } from '../transport/proto.js';
import type { AdminService, ClusterStatusView } from './admin.js';
import { asCoordinatorError, CoordinatorError, errorName, grpcStatus } from './errors.js';
import type { KeyRecord, KeyStore } from './keys.js';
import type { Logger } from './log.js';
import { KEY_ID_PATTERN } from './policy.js';
import type { SignService } from './sign.js';

/** Deadline applied when the client sets none. */
export const DEFAULT_SIGN_DEADLINE_MS = 30_000;

export function keyInfo(k: KeyRecord) {
  return {
    key_id: k.id,
    threshold: k.threshold,
    signers: k.signers,
    public_key: Buffer.from(k.publicKey),
    spki_der: Buffer.from(publicKeySpki(k.publicKey)),
    policy: k.policy.contexts,
    epoch: k.epoch,
    created_ms: k.created,
    policy_json: canonicalJson(k.policy),
    clients: k.clients,
    trusts_coordinator: k.policy.contexts.includes('raw-digest'),
    policy_sealed: k.policySealed,
  };
}

export function clusterStatus(s: ClusterStatusView) {
  return {
    signers: s.signers.map((x) => ({
      index: x.index,
      endpoint: x.endpoint,
      up: x.up,
      healthy: x.up && !x.quarantined,
      quarantined: x.quarantined,
      boot_id: x.bootId,
      latency_ms: x.latencyMs ?? 0,
      last_error: x.lastError,
      quarantine_reason: x.quarantineReason,
      epochs: x.epochs.map((e) => ({ key_id: e.keyId, epoch: e.epoch })),
      pending: x.pending.map((e) => ({ key_id: e.keyId, epoch: e.epoch })),
    })),
    pools: s.pools.map((p) => ({ key_id: p.keyId, subset: p.subset, depth: p.depth, target: p.target })),
    conflicts: s.conflicts.map((c) => ({ key_id: c.keyId, a: c.a, b: c.b, reported_by: c.reportedBy, reason: c.reason })),
    subsets: s.subsets.map((k) => ({ key_id: k.keyId, total: k.total, usable: k.usable.map((signers) => ({ signers })) })),
  };
}


function toServiceError(e: unknown): Partial<grpc.ServiceError> {
  const err = asCoordinatorError(e);
  const metadata = new grpc.Metadata();
  metadata.set(COORDINATOR_STATUS_METADATA, errorName(err.kind));
  return { code: grpcStatus(err.kind), details: err.message, message: err.message, metadata };
}

export interface GrpcDeps {
  sign: SignService;
  admin: AdminService;
  keys: KeyStore;
  log: Logger;
}

type Call<Req> = grpc.ServerUnaryCall<Req, unknown>;
type Cb = grpc.sendUnaryData<unknown>;

/** The earlier of the call's gRPC deadline (or the default) and the client's own absolute one. */
function deadlineOf(call: grpc.ServerUnaryCall<unknown, unknown>, clientDeadline: unknown): number {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : typeof d === 'number' ? d : Number.POSITIVE_INFINITY;
  const grpcDeadline = Number.isFinite(ms) ? ms : Date.now() + DEFAULT_SIGN_DEADLINE_MS;
  const own = Number(clientDeadline);
  return Number.isSafeInteger(own) && own > 0 ? Math.min(grpcDeadline, own) : grpcDeadline;
}

interface SignWire {
  key_id: string;
  tbs: Buffer;
  digest: Buffer;
  digest_alg: string | number;
  deadline_unix_ms: number;
}

/** Caller identity of the unix socket. */
export const UNIX_CALLER = 'unix';

/**
 * The CN of the verified client certificate of this call's connection. grpc-js reports a peer
 * certificate only for an authorized TLS socket; a CN that is missing or not a single string
 * (several CN attributes) is no identity.
 */
export function verifiedCaller(call: grpc.ServerUnaryCall<unknown, unknown>): string | undefined {
  const auth = call.getAuthContext?.();
  if (!auth || auth.transportSecurityType !== 'ssl' || !auth.sslPeerCertificate) return undefined;
  const cn = callerName(call);
  return cn && cn.length > 0 ? cn : undefined;
}

/** Handlers of the Coordinator service; `secure` says whether callers come with a certificate. */
export function coordinatorHandlers(d: GrpcDeps, secure: boolean): grpc.UntypedServiceImplementation {
  const identify = (call: Call<unknown>): string => {
    if (!secure) return UNIX_CALLER;
    const cn = verifiedCaller(call);
    if (!cn) throw new CoordinatorError('forbidden', 'a client certificate is required');
    if (cn.startsWith('signer-')) throw new CoordinatorError('forbidden', `identity '${cn}' may not request signatures`);
    return cn;
  };
  return {
    Sign: (call: Call<SignWire>, cb: Cb) => {
      void (async () => {
        try {
          const caller = identify(call);
          const req = call.request;
          const alg = digestAlgFromWire(req.digest_alg);
          if (!alg) throw new CoordinatorError('invalid', `unknown digest_alg ${String(req.digest_alg)}`);
          const out = await d.sign.sign({
            keyId: req.key_id,
            tbs: req.tbs?.length ? new Uint8Array(req.tbs) : undefined,
            digest: req.digest?.length ? new Uint8Array(req.digest) : undefined,
            digestAlg: alg,
            caller,
            deadline: deadlineOf(call, req.deadline_unix_ms),
          });
          cb(null, {
            signature_der: Buffer.from(out.signatureDer),
            r: Buffer.from(out.r),
            s: Buffer.from(out.s),
            public_key: Buffer.from(out.publicKey),
            quorum: out.quorum,
            presignature_id: Buffer.from(out.presignatureId),
            context: out.context,
            audit_seq: out.auditSeq,
            timestamp_ms: out.timestampMs,
          });
        } catch (e) {
          cb(toServiceError(e));
        }
      })();
    },
    GetKey: (call: Call<{ key_id: string }>, cb: Cb) => {
      try {
        identify(call);
        const id = call.request.key_id;
        if (typeof id !== 'string' || !KEY_ID_PATTERN.test(id)) throw new CoordinatorError('invalid', 'key_id must match ^[A-Za-z0-9._-]{1,64}$');
        const key = d.keys.get(id);
        if (!key) throw new CoordinatorError('not-found', `unknown key '${id}'`);
        cb(null, keyInfo(key));
      } catch (e) {
        cb(toServiceError(e));
      }
    },
  };
}

export function isAdminIdentity(cn: string | undefined): boolean {
  return cn === 'admin' || (!!cn && cn.startsWith('admin-'));
}

export function adminHandlers(d: GrpcDeps): grpc.UntypedServiceImplementation {
  const guard = (call: Call<unknown>): string => {
    const cn = verifiedCaller(call);
    if (!isAdminIdentity(cn)) throw new CoordinatorError('forbidden', `identity '${cn ?? '(none)'}' may not use the Admin service`);
    return cn!;
  };
  const unary =
    <Req>(name: string, fn: (req: Req, who: string) => Promise<unknown> | unknown) =>
    (call: Call<Req>, cb: Cb) => {
      void (async () => {
        try {
          const who = guard(call);
          const res = await fn(call.request, who);
          cb(null, res);
        } catch (e) {
          const err = asCoordinatorError(e);
          d.log.warn('admin request failed', { method: name, status: grpc.status[grpcStatus(err.kind)], message: err.message });
          cb(toServiceError(err));
        }
      })();
    };
  return {
    CreateKey: unary('CreateKey', async (req: { key_id: string; threshold: number; signers: number[]; signer_count: number; policy: string[]; policy_json: string; clients: string[] }, who) => {
      d.log.info('admin: create key', { caller: who, key: req.key_id });
      const k = await d.admin.createKey({
        keyId: req.key_id ?? '',
        threshold: req.threshold ?? 0,
        signers: req.signers ?? [],
        signerCount: req.signer_count ?? 0,
        policy: req.policy ?? [],
        policyJson: req.policy_json ?? '',
        clients: req.clients ?? [],
      });
      return keyInfo(k);
    }),
    DeleteKey: unary('DeleteKey', async (req: { key_id: string; approval: OperatorApproval | null }, who) => {
      d.log.warn('admin: delete key', { caller: who, key: req.key_id });
      const r = await d.admin.deleteKey(req.key_id ?? '', req.approval, who);
      return { key_id: r.keyId, erased: r.erased, remaining: r.remaining };
    }),
    AdoptPolicy: unary('AdoptPolicy', async (req: { key_id: string; approval: OperatorApproval | null }, who) => {
      d.log.warn('admin: adopt policy', { caller: who, key: req.key_id });
      return keyInfo(await d.admin.adoptPolicy(req.key_id ?? '', req.approval, who));
    }),
    GrantClient: unary('GrantClient', async (req: { key_id: string; client: string }, who) => {
      d.log.warn('admin: grant client', { caller: who, key: req.key_id, client: req.client });
      return keyInfo(await d.admin.setClient(req.key_id ?? '', req.client ?? '', true, who));
    }),
    RevokeClient: unary('RevokeClient', async (req: { key_id: string; client: string }, who) => {
      d.log.warn('admin: revoke client', { caller: who, key: req.key_id, client: req.client });
      return keyInfo(await d.admin.setClient(req.key_id ?? '', req.client ?? '', false, who));
    }),
    RefreshKey: unary('RefreshKey', async (req: { key_id: string }, who) => {
      d.log.info('admin: refresh key', { caller: who, key: req.key_id });
      if (!KEY_ID_PATTERN.test(req.key_id ?? '')) throw new CoordinatorError('invalid', 'key_id must match ^[A-Za-z0-9._-]{1,64}$');
      return keyInfo(await d.admin.refreshKey(req.key_id));
    }),
    ListKeys: unary('ListKeys', () => ({ keys: d.keys.list().map(keyInfo) })),
    Status: unary('Status', () => clusterStatus(d.admin.status())),
    Quarantine: unary('Quarantine', (req: { index: number }, who) => {
      d.log.warn('admin: quarantine', { caller: who, signer: req.index });
      return clusterStatus(d.admin.quarantine(req.index));
    }),
    Readmit: unary('Readmit', (req: { index: number }, who) => {
      d.log.warn('admin: readmit', { caller: who, signer: req.index });
      return clusterStatus(d.admin.readmit(req.index));
    }),
    ReconcilePair: unary('ReconcilePair', async (req: { key_id: string; a: number; b: number; approval: OperatorApproval | null }, who) => {
      d.log.warn('admin: reconcile pair', { caller: who, key: req.key_id, a: req.a, b: req.b, approval: !!req.approval });
      // The operator's approval goes to both signers as it came: each of them checks it.
      return clusterStatus(await d.admin.reconcilePair(req.key_id ?? '', req.a ?? 0, req.b ?? 0, req.approval));
    }),
  };
}

const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': 2 * 1024 * 1024,
};

export function bindServer(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

export function newSocketServer(d: GrpcDeps): grpc.Server {
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(services.Coordinator.service, coordinatorHandlers(d, false));
  return server;
}

export function newTlsServer(d: GrpcDeps): grpc.Server {
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(services.Coordinator.service, coordinatorHandlers(d, true));
  server.addService(services.Admin.service, adminHandlers(d));
  return server;
}

/** Graceful shutdown with a bound: in-flight calls get `graceMs`, then the server is forced down. */
export function shutdownServer(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}
