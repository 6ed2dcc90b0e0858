/**
 * The cluster description every process reads from <dir>/cluster.json, and the layout of the
 * cluster directory:
 *
 *   <dir>/cluster.json            this file's ClusterConfig
 *   <dir>/pki/                    cluster CA and identities (signer-<i>, coordinator, admin, provider)
 *   <dir>/signer-<i>/             a signer's data: sealed shares, its seal secret in dev mode
 *   <dir>/coordinator/            keys.json (public key data, policies), audit.log
 *   <dir>/socket/coordinator.sock the provider-facing Coordinator endpoint (unix socket); the
 *                                 socket/ directory holds nothing else (see coordinator/socket.ts)
 *   <dir>/http-sign.token         `quorumkey up --http-sign token`: the bearer token (mode 0600)
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export type SealConfig =
  /** Development: a random passphrase kept in <signer dir>/seal.passphrase (mode 0600). */
  | { mode: 'passphrase'; passphraseFile?: string }
  | { mode: 'pkcs11'; module: string; tokenLabel: string; keyLabel: string; pinFile: string };

export interface SignerConfig {
  index: number;
  /** host:port of its gRPC server (Signer and Peer services, mTLS). */
  endpoint: string;
  /** host:port of its HTTP server (/metrics, /healthz). */
  http: string;
  seal: SealConfig;
}

export interface PoolConfig {
  /**
   * High-water mark: a refill fills a pool (key, subset), for the fastest healthy subsets, up to
   * this many presignatures.
   */
  target: number;
  /**
   * Low-water mark: a pool is refilled only once it holds fewer than this (then up to `target`),
   * so that a warm pool serves a burst without competing with its own refill. Default: half of
   * `target`, rounded up.
   */
  lowWater?: number;
  /**
   * Refill yields to online work: no new presign batch starts while sign requests are in flight
   * or for this many ms after the last one ended, except for a pool below half its low-water mark
   * (it would otherwise run dry). Default 20.
   */
  refillQuietMs?: number;
  /** Presignatures per presign session. */
  batch: number;
  /** Presign sessions in flight at once. */
  refillConcurrency: number;
  /** How many subsets per key are kept filled. */
  subsets: number;
}

/**
 * HTTP signing:
 * - `off`: POST /v1/sign answers 404;
 * - `token`: a bearer token, read once at start from `tokenFile` (absolute, or relative to the
 *   cluster directory), which must be a regular file of the coordinator's user with mode 0600;
 *   caller identity `http-token`;
 * - `mtls`: the listener speaks HTTPS and POST /v1/sign needs a client certificate of the
 *   cluster CA; caller identity = its CN.
 */
export type HttpSignConfig = { mode: 'off' } | { mode: 'token'; tokenFile: string } | { mode: 'mtls' };

export interface ClusterConfig {
  signers: SignerConfig[];
  coordinator: {
    /** host:port, mTLS: Admin service, and Coordinator for TCP clients with a certificate. */
    grpc: string;
    /** Path of the unix socket serving Coordinator to local clients (the provider). */
    socket: string;
    /** host:port of HTTP: /metrics, /healthz, POST /v1/sign. */
    http: string;
    /**
     * Group (name or numeric gid) allowed to connect to the unix socket: the socket becomes 0660
     * and its directory 0750, both of that group. Absent: the socket is 0600, its directory 0700.
     */
    socketGroup?: string;
    /** POST /v1/sign on the HTTP listener. Absent: off. */
    httpSign?: HttpSignConfig;
    /**
     * Host names (optionally name:port) accepted in the Host header of POST /v1/sign besides the
     * listener's own 127.0.0.1:<port> and localhost:<port>.
     */
    httpHosts?: string[];
  };
  pool: PoolConfig;
  /** Milliseconds a protocol session may wait for its peers. */
  sessionTimeoutMs: number;
  /** Keys each signer holds at most (KeyGen past it: RESOURCE_EXHAUSTED); default 256. */
  maxKeysPerSigner?: number;
  /** A presignature a signer holds unused for longer is destroyed; default one hour. */
  presignatureTtlMs?: number;
  /** The signers' compute thread (docs/signer-threads.md); defaults: DEFAULT_SIGNER_COMPUTE. */
  signerCompute?: Partial<SignerComputeConfig>;
  /**
   * Audit logs (the coordinator's and each signer's) rotate once the active file reaches this
   * many bytes, the chain continuing in the next file (src/audit/log.ts); 0: never. Default 64 MiB.
   */
  auditRotateBytes?: number;
}

export interface SignerComputeConfig {
  /** Added to the compute thread's nice value (0–19): refill yields the CPU to Finish and Health. */
  niceIncrement: number;
  /** Largest presign batch a signer accepts (1–256): bounds the length of one compute step. */
  maxPresignBatch: number;
}

export const DEFAULT_SIGNER_COMPUTE: SignerComputeConfig = { niceIncrement: 10, maxPresignBatch: 64 };

/** The signers' compute settings with defaults filled in; throws naming a bad value. */
export function signerCompute(config: ClusterConfig): SignerComputeConfig {
  const out = { ...DEFAULT_SIGNER_COMPUTE, ...config.signerCompute };
  const check = (name: keyof SignerComputeConfig, min: number, max: number) => {
    const v = out[name];
    if (!Number.isInteger(v) || v < min || v > max) throw new Error(`cluster.json: signerCompute.${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  };
  check('niceIncrement', 0, 19);
  check('maxPresignBatch', 1, 256);
  return out;
}

export const DEFAULT_POOL: PoolConfig = { target: 64, batch: 16, refillConcurrency: 2, subsets: 4 };
export const DEFAULT_REFILL_QUIET_MS = 20;
export const DEFAULT_AUDIT_ROTATE_BYTES = 64 * 1024 * 1024;

/** The audit rotation size in effect (bytes, 0: never); a clear error for a bad value. */
export function auditRotateBytes(config: ClusterConfig): number {
  const v = config.auditRotateBytes ?? DEFAULT_AUDIT_ROTATE_BYTES;
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`cluster.json: auditRotateBytes must be a non-negative integer (bytes, 0 for never), got ${JSON.stringify(v)}`);
  return v;
}

/** The low-water mark in effect: pool.lowWater, else half the target rounded up. */
export const lowWaterOf = (pool: PoolConfig): number => pool.lowWater ?? Math.ceil(pool.target / 2);

export const paths = (dir: string) => {
  const root = resolve(dir);
  return {
    root,
    config: join(root, 'cluster.json'),
    pki: join(root, 'pki'),
    signer: (index: number) => join(root, `signer-${index}`),
    /** A signer's own audit log of every Finish it answered (signer-node/sign-gate.ts). */
    signerAudit: (index: number) => join(root, `signer-${index}`, 'audit.log'),
    coordinator: join(root, 'coordinator'),
    socketDir: join(root, 'socket'),
    socket: join(root, 'socket', 'coordinator.sock'),
    httpToken: join(root, 'http-sign.token'),
  };
};

export function readClusterConfig(dir: string): ClusterConfig {
  const file = paths(dir).config;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`no cluster at ${paths(dir).root}: ${file} is missing (run 'quorumkey up --dir ${dir}' first)`);
  }
  return JSON.parse(text) as ClusterConfig;
}

export function writeClusterConfig(dir: string, config: ClusterConfig): void {
  const file = paths(dir).config;
  writeFileSync(`${file}.tmp`, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function signerConfig(config: ClusterConfig, index: number): SignerConfig {
  const signer = config.signers.find((s) => s.index === index);
  if (!signer) throw new Error(`signer ${index} is not in the cluster configuration`);
  return signer;
}
