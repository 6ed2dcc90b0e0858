/**
 * Key lifecycle tests' cluster: real signer processes (started, stopped, SIGKILLed by PID), an
 * in-process coordinator (or none, when a test runs it as a process), the CLI with the admin
 * identity, a scan of the signers' data directories and signatures verified by OpenSSL.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { paths, writeClusterConfig } from '../../src/cluster/config.js';
import { jsonLogger } from '../../src/coordinator/log.js';
import { Coordinator } from '../../src/coordinator/service.js';
import { ensureClusterPki } from '../../src/pki/cluster-ca.js';
import { publicKeySpki } from '../../src/protocol/ecdsa.js';
import { verifyTbs, waitFor } from '../coordinator/clients.js';
import { certificateVerifyTbs, CLI } from './cluster-harness.js';
import { MALICIOUS_DELAY_ENV, MALICIOUS_MODE_ENV } from './malicious-signer.js';
import { launch, running, stop, type Proc } from './processes.js';
import { createTestCluster, SIGNER_MAIN, type TestCluster } from './signer-cluster.js';

export const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const MALICIOUS_MAIN = fileURLToPath(new URL('./malicious-signer.js', import.meta.url));

/** A test wrapper mode of test/services/malicious-signer.ts, with its delay (ms). */
export interface WrapperMode {
  mode: string;
  delayMs?: number;
}

export class LifecycleCluster {
  coordinator: Coordinator | undefined;
  readonly signers = new Map<number, Proc>();
  /** The in-process coordinator's structured log. */
  readonly log: Record<string, unknown>[] = [];

  private constructor(readonly cluster: TestCluster) {}

  static async create(indices: number[], sessionTimeoutMs = 15_000): Promise<LifecycleCluster> {
    const cluster = await createTestCluster({ signers: indices, sessionTimeoutMs });
    ensureClusterPki(cluster.pki, ['admin']);
    // Nothing pooled ahead: each signature presigns inline, so a test sees every step.
    cluster.config.pool = { target: 0, batch: 1, refillConcurrency: 1, subsets: 10 };
    writeClusterConfig(cluster.dir, cluster.config);
    const c = new LifecycleCluster(cluster);
    await Promise.all(indices.map((i) => c.startSigner(i)));
    return c;
  }

  get dir(): string {
    return this.cluster.dir;
  }

  /** Starts signer `index` (the real signer, or the test wrapper in `wrapper` mode). */
  async startSigner(index: number, wrapper?: WrapperMode): Promise<Proc> {
    const args = ['--dir', this.cluster.dir, '--index', String(index)];
    const env = { ...this.cluster.env, QUORUMKEY_LOG_LEVEL: 'info' };
    const p = wrapper
      ? await launch(`signer ${index} (wrapper: ${wrapper.mode})`, MALICIOUS_MAIN, args, { ...env, [MALICIOUS_MODE_ENV]: wrapper.mode, [MALICIOUS_DELAY_ENV]: String(wrapper.delayMs ?? 6000) }, SIGNER_READY)
      : await launch(`signer ${index}`, SIGNER_MAIN, args, env, SIGNER_READY);
    this.signers.set(index, p);
    return p;
  }

  /** SIGKILL by PID; resolves once it is gone. */
  async killSigner(index: number): Promise<void> {
    const p = this.signers.get(index)!;
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await p.exited;
  }

  async startCoordinator(): Promise<Coordinator> {
    this.coordinator = await Coordinator.start({ dir: this.cluster.dir, log: jsonLogger('coordinator', 'info', (line) => void this.log.push(JSON.parse(line) as Record<string, unknown>)) });
    const all = this.cluster.config.signers.map((s) => s.index).filter((i) => this.signers.get(i)?.proc.exitCode === null && this.signers.get(i)?.proc.signalCode === null);
    await waitFor('the running signers healthy at the coordinator', () => all.every((i) => this.coordinator!.signers.healthy(i)), 30_000);
    return this.coordinator;
  }

  /** The CLI as a child process, without blocking this process (the coordinator runs in it). */
  cli(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args, '--dir', this.cluster.dir], { timeout: 200_000 }, (err, stdout, stderr) => {
        const status = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ status, stdout, stderr });
      });
    });
  }

  get admin() {
    return this.coordinator!.admin;
  }

  /** Creates a tls-server key for the unix client. */
  createKey(keyId: string, threshold: number, signers: number[]) {
    return this.admin.createKey({ keyId, threshold, signers, signerCount: 0, policy: ['tls-server'], clients: ['unix'] });
  }

  /** Signs a TLS 1.3 CertificateVerify content and verifies the signature with OpenSSL. */
  async signAndVerify(keyId: string): Promise<number[]> {
    const key = this.coordinator!.keys.get(keyId);
    assert.ok(key, `key '${keyId}' is in the registry`);
    const tbs = certificateVerifyTbs();
    const out = await this.coordinator!.signService.sign({ keyId, tbs, digestAlg: 'sha256', caller: 'unix', deadline: Date.now() + 120_000 });
    assert.ok(verifyTbs(publicKeySpki(key.publicKey), tbs, out.signatureDer), `OpenSSL verifies the signature of '${keyId}'`);
    return out.quorum;
  }

  /** Every file of `keyId` in every signer's shares directory: `signer-<i>/<name>`. */
  keyFiles(keyId: string): string[] {
    return this.cluster.config.signers.flatMap((s) => {
      const dir = join(paths(this.cluster.dir).signer(s.index), 'shares');
      if (!existsSync(dir)) return [];
      return readdirSync(dir)
        .filter((name) => name.startsWith(`${keyId}.`) || name.startsWith(`.${keyId}.`))
        .map((name) => `signer-${s.index}/${name}`);
    });
  }

  sharesDir(index: number): string {
    return join(paths(this.cluster.dir).signer(index), 'shares');
  }

  /** The audit records (parsed) of the coordinator, or of signer `index`. */
  auditRecords(index?: number): Record<string, unknown>[] {
    const file = index === undefined ? join(paths(this.cluster.dir).coordinator, 'audit.log') : paths(this.cluster.dir).signerAudit(index);
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** The epoch of `keyId` each signer reported in its last Health answer (after a fresh probe). */
  async epochs(keyId: string): Promise<Record<number, number | undefined>> {
    await this.coordinator!.signers.probeAll();
    const out: Record<number, number | undefined> = {};
    for (const s of this.coordinator!.signers.all()) out[s.index] = s.epochs.find((e) => e.keyId === keyId)?.epoch;
    return out;
  }

  logged(msg: string): Record<string, unknown>[] {
    return this.log.filter((l) => l.msg === msg);
  }

  async close(): Promise<void> {
    await this.coordinator?.stop();
    await Promise.all([...running].map((p) => stop(p)));
    rmSync(this.cluster.root, { recursive: true, force: true });
  }
}

/** The record field of an audit entry, whatever the log's envelope (flat or under `record`). */
export function auditEvent(r: Record<string, unknown>): Record<string, unknown> {
  return (r.record as Record<string, unknown> | undefined) ?? r;
}
