/** Runs `quorumkey up` as a real child process and gives tests clients to the cluster it starts. */
import * as grpc from '@grpc/grpc-js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { readClusterConfig, type ClusterConfig } from '../../src/cluster/config.js';
import { services } from '../../src/transport/proto.js';
import type { Attack, AttackResult } from './malicious-coordinator.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const SIGNER = fileURLToPath(new URL('../../signer-node/main.js', import.meta.url));
const MALICIOUS_COORDINATOR = fileURLToPath(new URL('./malicious-coordinator.js', import.meta.url));

/** Runs the test-only malicious coordinator (malicious-coordinator.ts) on a cluster with `plan`. */
export function runMaliciousCoordinator(dir: string, plan: Attack[]): AttackResult[] {
  const file = join(dir, `attack-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify(plan));
  try {
    const r = spawnSync(process.execPath, [MALICIOUS_COORDINATOR, '--dir', dir, '--plan', file], { encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0) throw new Error(`malicious coordinator failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as AttackResult[];
  } finally {
    rmSync(file, { force: true });
  }
}

/** TLS 1.3 server CertificateVerify content (RFC 8446 §4.4.3) over a random transcript hash. */
export function certificateVerifyTbs(): Buffer {
  return Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify'), Buffer.from([0]), randomBytes(32)]);
}

export function cli(dir: string, ...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args, '--dir', dir], { encoding: 'utf8', timeout: 200_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export class UpProcess {
  readonly dir: string;
  child: ChildProcess | undefined;
  readyLine = '';
  readonly lines: string[] = [];
  private readonly lineWaiters: (() => void)[] = [];
  private stderr = '';

  constructor(dir?: string) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'qk-up-'));
  }

  async start(extra: string[] = [], timeoutMs = 240_000): Promise<void> {
    const child = spawn(process.execPath, [CLI, 'up', '--dir', this.dir, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (c: Buffer) => (this.stderr = (this.stderr + c.toString()).slice(-20_000)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`quorumkey up not ready in time:\n${this.stderr}`)), timeoutMs);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        this.lines.push(line);
        for (const wake of this.lineWaiters.splice(0)) wake();
        if (line.startsWith('quorumkey ready:')) {
          clearTimeout(timer);
          this.readyLine = line;
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`quorumkey up exited with ${code}:\n${this.stderr}`));
      });
    });
  }

  /** The first stdout line matching `pattern`, waiting for it if need be. */
  async line(pattern: RegExp, timeoutMs = 120_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find((l) => pattern.test(l));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`quorumkey up printed no line matching ${pattern}:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.lineWaiters.push(resolve);
        setTimeout(resolve, 1000);
      });
    }
  }

  config(): ClusterConfig {
    return readClusterConfig(this.dir);
  }

  pid(name: string): number {
    return Number(readFileSync(join(this.dir, 'run', `${name}.pid`), 'utf8'));
  }

  /** SIGINT and wait; resolves with the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    return exited;
  }

  coordinator(): grpc.Client {
    return new services.Coordinator(`unix:${this.config().coordinator.socket}`, grpc.credentials.createInsecure());
  }
}

export interface SignResult {
  ok: boolean;
  code?: grpc.status;
  details?: string;
  der?: Buffer;
  quorum?: number[];
  ms: number;
}

export function signOverGrpc(client: grpc.Client, keyId: string, tbs: Buffer, timeoutMs = 15_000): Promise<SignResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    (client as unknown as Record<string, Function>).Sign!(
      { key_id: keyId, tbs },
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err: grpc.ServiceError | null, res: { signature_der: Buffer; quorum: number[] }) =>
        resolve(err ? { ok: false, code: err.code, details: err.details, ms: Date.now() - started } : { ok: true, der: res.signature_der, quorum: res.quorum, ms: Date.now() - started }),
    );
  });
}

/** POST /v1/sign; `token`: the bearer token (`up --http-sign token`). */
export async function signOverHttp(httpEndpoint: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`http://${httpEndpoint}/v1/sign`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** Runs `count` tasks with at most `concurrency` in flight. */
export async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}
