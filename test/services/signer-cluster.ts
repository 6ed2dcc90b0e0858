/**
 * Test helpers for signer nodes as real processes: a temporary cluster directory (PKI made with
 * openssl, cluster.json with ports found at run time, dev passphrases, optionally a SoftHSM2
 * token), spawning `dist/signer-node/main.js`, and gRPC clients with any identity.
 */
import * as grpc from '@grpc/grpc-js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_POOL, paths, writeClusterConfig, type ClusterConfig, type SealConfig } from '../../src/cluster/config.js';
import { ensureClusterPki, loadIdentity, signerName, type TlsIdentity } from '../../src/pki/cluster-ca.js';
import { findSoftHsm2Module } from '../../src/storage/seal.js';
import { services } from '../../src/transport/proto.js';
import { channelOptions, clientCredentials } from '../../src/transport/tls.js';
import { ensureDevPassphrase } from '../../signer-node/shares.js';
import { freePort } from '../../src/cli/children.js';
import { encodeKeyPolicy, normaliseKeyPolicy } from '../../src/policy/key-policy.js';
export { freePort } from '../../src/cli/children.js';

export const SIGNER_MAIN = fileURLToPath(new URL('../../signer-node/main.js', import.meta.url));


/**
 * The canonical policy bytes a KeyGen carries. Tests that drive the Signer service directly
 * sign digests they make themselves, so their keys are raw-digest keys.
 */
export function policyBytes(contexts: string[] = ['raw-digest']): Buffer {
  return Buffer.from(encodeKeyPolicy(normaliseKeyPolicy({ contexts })));
}

export interface SoftHsm {
  conf: string;
  module: string;
  tokenLabel: string;
  pinFile: string;
  userPin: string;
}

const NO_SOFTHSM = 'SoftHSM2 is not installed: the PKCS#11 signers need a real token. Install it with `apt-get install -y softhsm2` (bash .ci/run does).';

/** A fresh SoftHSM2 token in its own directory; throws when SoftHSM2 is not installed (never falls back). */
export function createSoftHsmToken(root: string, tokenLabel: string): SoftHsm {
  const module = findSoftHsm2Module();
  if (!module) throw new Error(NO_SOFTHSM);
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(NO_SOFTHSM);
  }
  const hsmDir = join(root, 'softhsm');
  const tokens = join(hsmDir, 'tokens');
  mkdirSync(tokens, { recursive: true, mode: 0o700 });
  const conf = join(hsmDir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const userPin = '246810';
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', tokenLabel, '--so-pin', '13579', '--pin', userPin], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const pinFile = join(hsmDir, 'user.pin');
  writeFileSync(pinFile, userPin + '\n', { mode: 0o600 });
  return { conf, module, tokenLabel, pinFile, userPin };
}

export interface TestCluster {
  root: string;
  dir: string;
  pki: string;
  /** A second, unrelated CA with an identity `outsider`. */
  otherPki: string;
  config: ClusterConfig;
  /** The token of the PKCS#11 signers (present exactly when some were asked for). */
  hsm: SoftHsm | undefined;
  env: NodeJS.ProcessEnv;
}

export async function createTestCluster(options: { signers: number[]; pkcs11Signers?: number[]; sessionTimeoutMs: number }): Promise<TestCluster> {
  const root = mkdtempSync(join(tmpdir(), 'qk-signers-'));
  const dir = join(root, 'cluster');
  mkdirSync(dir, { mode: 0o700 });
  const pki = paths(dir).pki;
  ensureClusterPki(pki, [...options.signers.map(signerName), 'coordinator']);
  const otherPki = join(root, 'other-ca');
  ensureClusterPki(otherPki, ['outsider']);
  const hsm = options.pkcs11Signers?.length ? createSoftHsmToken(root, 'qk-test-signers') : undefined;
  const signers = [];
  for (const index of options.signers) {
    let seal: SealConfig = { mode: 'passphrase' };
    if (hsm && options.pkcs11Signers!.includes(index)) {
      seal = { mode: 'pkcs11', module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: `quorumkey-signer-${index}`, pinFile: hsm.pinFile };
    } else {
      ensureDevPassphrase(dir, index);
    }
    signers.push({ index, endpoint: `127.0.0.1:${await freePort()}`, http: `127.0.0.1:${await freePort()}`, seal });
  }
  const config: ClusterConfig = {
    signers,
    coordinator: { grpc: `127.0.0.1:${await freePort()}`, socket: paths(dir).socket, http: `127.0.0.1:${await freePort()}` },
    pool: DEFAULT_POOL,
    sessionTimeoutMs: options.sessionTimeoutMs,
  };
  writeClusterConfig(dir, config);
  const env: NodeJS.ProcessEnv = { ...process.env, QUORUMKEY_LOG_LEVEL: 'debug' };
  if (hsm) env.SOFTHSM2_CONF = hsm.conf;
  return { root, dir, pki, otherPki, config, hsm, env };
}

export interface SignerProcess {
  index: number;
  proc: ChildProcess;
  pid: number;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function launch(cluster: TestCluster, index: number, extraArgs: string[] = []): SignerProcess {
  const proc = spawn(process.execPath, [SIGNER_MAIN, '--dir', cluster.dir, '--index', String(index), ...extraArgs], {
    env: cluster.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const sp: SignerProcess = {
    index,
    proc,
    pid: proc.pid!,
    stdout: [],
    stderr: [],
    exited: new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal }))),
  };
  const collect = (stream: NodeJS.ReadableStream, into: string[]) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      into.push(...parts);
      proc.emit('qk-line');
    });
    stream.on('end', () => {
      if (partial) into.push(partial);
      proc.emit('qk-line');
    });
  };
  collect(proc.stdout!, sp.stdout);
  collect(proc.stderr!, sp.stderr);
  return sp;
}

const READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;

/** Starts a signer and waits for its ready line. */
export async function startSigner(cluster: TestCluster, index: number, timeoutMs = 30_000): Promise<SignerProcess & { grpc: string; http: string }> {
  const sp = launch(cluster, index);
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`signer ${index} not ready after ${timeoutMs} ms; stderr:\n${sp.stderr.join('\n')}`)), timeoutMs);
    const check = () => {
      const m = sp.stdout.map((l) => READY.exec(l)).find((x) => x);
      if (m) {
        clearTimeout(timer);
        sp.proc.off('qk-line', check);
        resolve(m);
      }
    };
    sp.proc.on('qk-line', check);
    void sp.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`signer ${index} exited (code ${code}, signal ${signal}) before it was ready; stderr:\n${sp.stderr.join('\n')}`));
    });
    check();
  });
  return { ...sp, grpc: ready[2]!, http: ready[3]! };
}

/** Runs a signer expected to fail at start; returns its exit code and output. */
export async function runSignerToExit(cluster: TestCluster, index: number, extraArgs: string[] = [], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string[]; stderr: string[] }> {
  const sp = launch(cluster, index, extraArgs);
  const timer = setTimeout(() => sp.proc.kill('SIGKILL'), timeoutMs);
  const { code } = await sp.exited;
  clearTimeout(timer);
  // Let the pipes drain.
  await new Promise((r) => setImmediate(r));
  return { code, stdout: sp.stdout, stderr: sp.stderr };
}

export async function stopSigner(sp: SignerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (sp.proc.exitCode !== null || sp.proc.signalCode !== null) return sp.exited;
  try {
    process.kill(sp.pid, signal);
  } catch {
    /* already gone */
  }
  return sp.exited;
}

export type Stub = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export function identity(cluster: TestCluster, name: string): TlsIdentity {
  return loadIdentity(cluster.pki, name);
}

/** A client of `service` at `endpoint`, checking the server certificate name `serverName`. */
export function client(
  service: 'Signer' | 'Peer',
  endpoint: string,
  serverName: string,
  credentials: grpc.ChannelCredentials,
): Stub {
  return new services[service](endpoint, credentials, { ...channelOptions(serverName), 'grpc.max_receive_message_length': 64 * 1024 * 1024 }) as unknown as Stub;
}

export function mtls(id: TlsIdentity): grpc.ChannelCredentials {
  return clientCredentials(id);
}

export interface CallResult<T> {
  value?: T;
  error?: grpc.ServiceError;
}

/** A unary call as a promise that never rejects: { value } or { error } (with code and metadata). */
export function call<T>(stub: Stub, method: string, request: object, deadlineMs = 60_000): Promise<CallResult<T>> {
  return new Promise((resolve) => {
    const fn = stub[method]!.bind(stub) as (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, value?: T) => void) => void;
    fn(request, { deadline: new Date(Date.now() + deadlineMs) }, (err, value) => resolve(err ? { error: err } : { value: value as T }));
  });
}

/** Same, throwing a readable error on failure. */
export async function ok<T>(stub: Stub, method: string, request: object, deadlineMs?: number): Promise<T> {
  const r = await call<T>(stub, method, request, deadlineMs);
  if (r.error) throw new Error(`${method} failed: ${grpc.status[r.error.code]} ${r.error.details}`);
  return r.value!;
}

export async function httpGet(hostPort: string, path: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`http://${hostPort}${path}`);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

/**
 * Phase two of a KeyGen / Refresh the test drove itself: CommitShare at each stub with the epoch
 * and public-shares digest the signers answered (the coordinator does this in the product).
 */
export async function commitShares(stubs: readonly Stub[], keyId: string, answer: { epoch: number; public_shares_digest: Uint8Array }): Promise<void> {
  await Promise.all(stubs.map((s) => ok(s, 'CommitShare', { key_id: keyId, epoch: answer.epoch, public_shares_digest: answer.public_shares_digest })));
}
