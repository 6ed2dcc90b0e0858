/**
 * Online signing through the coordinator (printed, never asserted), on the embedded 3-of-5
 * cluster started by `quorumkey up` in a temporary directory:
 *   - latency p50/p99/p99.9 at a fixed arrival rate (100 and 300 requests/s) with warm pools;
 *   - sustained signatures/s over a longer closed-loop run, pool refill included;
 *   - the same with one signer down.
 *   npm run bench:sign
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { writeClusterConfig, type ClusterConfig } from '../src/cluster/config.js';
import { certificateVerifyTbs, cli, signOverGrpc, UpProcess } from '../test/services/cluster-harness.js';

const WARM_TARGET = 200;
const SUBSETS = 4;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Presignatures usable now: pools whose subset avoids every signer in `down`. */
async function poolDepth(dir: string, down: readonly number[]): Promise<number> {
  const status = JSON.parse(cli(dir, 'status', '--json').stdout) as { pools: { depth: number; subset: number[] }[] };
  return status.pools.filter((p) => !p.subset.some((i) => down.includes(i))).reduce((n, p) => n + p.depth, 0);
}

async function waitForWarmPools(dir: string, depth: number, down: readonly number[] = []): Promise<void> {
  const deadline = Date.now() + 600_000;
  while ((await poolDepth(dir, down)) < depth) {
    if (Date.now() > deadline) throw new Error('pools did not fill in 10 minutes');
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Open loop: one request every 1/rate seconds regardless of completions. */
async function fixedRate(client: grpc.Client, rate: number, count: number): Promise<string> {
  const latencies: number[] = [];
  let failures = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inflight.push(
      signOverGrpc(client, 'tls', certificateVerifyTbs()).then((r) => {
        if (r.ok) latencies.push(r.ms);
        else failures++;
      }),
    );
  }
  await Promise.all(inflight);
  latencies.sort((a, b) => a - b);
  return `${rate} req/s × ${count}: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, p99.9 ${percentile(latencies, 99.9).toFixed(1)} ms, failures ${failures}`;
}

/** Closed loop with `concurrency` clients for `seconds`: sustained rate, refill included. */
async function sustained(client: grpc.Client, seconds: number, concurrency: number): Promise<string> {
  let ok = 0;
  let failed = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) (await signOverGrpc(client, 'tls', certificateVerifyTbs())).ok ? ok++ : failed++;
    }),
  );
  return `sustained over ${seconds} s, ${concurrency} clients: ${(ok / seconds).toFixed(1)} signatures/s (${failed} failed)`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qk-bench-sign-'));
  mkdirSync(dir, { recursive: true });
  // Pre-seed the pool configuration; `up` keeps it and fills in endpoints.
  const seed: ClusterConfig = {
    signers: [1, 2, 3, 4, 5].map((index) => ({ index, endpoint: '', http: '', seal: { mode: 'passphrase' } })),
    coordinator: { grpc: '', socket: '', http: '' },
    pool: { target: WARM_TARGET, batch: 32, refillConcurrency: 2, subsets: SUBSETS },
    sessionTimeoutMs: 30_000,
  };
  writeClusterConfig(dir, seed);
  const up = new UpProcess(dir);
  console.log(`quorumkey sign benchmark — 3-of-5 embedded cluster in ${dir}, node ${process.version}`);
  await up.start();
  const client = up.coordinator();
  try {
    console.log('warming pools…');
    await waitForWarmPools(dir, WARM_TARGET * SUBSETS * 0.9);
    console.log(`[5 signers] ${await fixedRate(client, 100, 500)}`);
    await waitForWarmPools(dir, WARM_TARGET * SUBSETS * 0.9);
    console.log(`[5 signers] ${await fixedRate(client, 300, 600)}`);
    console.log(`[5 signers] ${await sustained(client, 30, 16)}`);

    process.kill(up.pid('signer-5'), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 3000));
    console.log('signer 5 killed; warming the pools of the remaining subsets…');
    await waitForWarmPools(dir, WARM_TARGET * SUBSETS * 0.9, [5]);
    console.log(`[4 signers] ${await fixedRate(client, 100, 500)}`);
    await waitForWarmPools(dir, WARM_TARGET * SUBSETS * 0.9, [5]);
    console.log(`[4 signers] ${await fixedRate(client, 300, 600)}`);
    console.log(`[4 signers] ${await sustained(client, 30, 16)}`);
  } finally {
    client.close();
    await up.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
