/**
 * gRPC clients the CLI uses: Admin over mTLS with the `admin` identity, Coordinator over the unix
 * socket; and the operator approvals the CLI signs with the same identity.
 */
import * as grpc from '@grpc/grpc-js';
import { paths, readClusterConfig } from '../cluster/config.js';
import { loadIdentity } from '../pki/cluster-ca.js';
import { createApproval, type OperatorApproval } from '../pki/operator-approval.js';
import { keyPolicyDigest } from '../policy/key-policy.js';
import { services } from '../transport/proto.js';
import { channelOptions, clientCredentials } from '../transport/tls.js';

type Callback<T> = (err: grpc.ServiceError | null, value: T) => void;
type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback<unknown>) => void;

/** Calls a unary method with a deadline and returns a promise. */
export function unary<T>(client: grpc.Client, method: string, request: unknown, timeoutMs = 30_000): Promise<T> {
  const fn = (client as unknown as Record<string, UnaryMethod>)[method];
  if (!fn) throw new Error(`unknown RPC ${method}`);
  return new Promise((resolve, reject) =>
    fn.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, value) => (err ? reject(err) : resolve(value as T))),
  );
}

export function adminClient(dir: string): grpc.Client {
  const config = readClusterConfig(dir);
  const identity = loadIdentity(paths(dir).pki, 'admin');
  return new services.Admin(config.coordinator.grpc, clientCredentials(identity), channelOptions('coordinator'));
}

/**
 * The operator's approval of a pair re-setup of signers a < b for key `keyId`, signed with the
 * admin identity (<dir>/pki/admin.key): the signers accept PairSetup only with it.
 */
export function pairSetupApproval(dir: string, keyId: string, a: number, b: number): OperatorApproval {
  const identity = loadIdentity(paths(dir).pki, 'admin');
  return createApproval(identity, 'pair-setup', { key: keyId, a: Math.min(a, b), b: Math.max(a, b) });
}

/** The operator's approval of sealing exactly `policy` (canonical bytes) into key `keyId`'s shares. */
export function adoptPolicyApproval(dir: string, keyId: string, policy: Uint8Array): OperatorApproval {
  const identity = loadIdentity(paths(dir).pki, 'admin');
  return createApproval(identity, 'adopt-policy', { key: keyId, policy_digest: Buffer.from(keyPolicyDigest(policy)).toString('hex') });
}

/** The operator's approval of erasing every share of key `keyId` (each holder checks it). */
export function deleteKeyApproval(dir: string, keyId: string): OperatorApproval {
  return createApproval(loadIdentity(paths(dir).pki, 'admin'), 'delete-key', { key: keyId });
}

export function coordinatorClient(dir: string): grpc.Client {
  const config = readClusterConfig(dir);
  return new services.Coordinator(`unix:${config.coordinator.socket}`, grpc.credentials.createInsecure());
}

/** A one-line description of a gRPC failure for the terminal. */
export function describeError(err: unknown): string {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code === 'number') return `${grpc.status[e.code]}: ${e.details ?? e.message}`;
  return (err as Error).message ?? String(err);
}
