/**
 * Load and CPU accounting for bench/tls.ts: parallel `openssl s_time -new` clients (C, full
 * TLS 1.3 handshakes, no verification, no provider), a paced node:tls client for latency, and
 * CPU time of server processes read from /proc.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:tls';

/** Kernel clock ticks per second (utime/stime unit); 100 on Linux x86-64. */
const CLOCK_TICKS = 100;

export interface LoadResult {
  handshakes: number;
  seconds: number;
  /** Clients that stopped early (s_time ends at its first failed connection). */
  failedClients: number;
}

function sTimeOnce(port: number, seconds: number): Promise<{ count: number; ok: boolean }> {
  const env = { ...process.env };
  delete env.OPENSSL_CONF; // the client must not load the quorumkey provider
  return new Promise((resolve) => {
    execFile('openssl', ['s_time', '-connect', `127.0.0.1:${port}`, '-new', '-tls1_3', '-time', String(seconds)], { env }, (err, stdout) => {
      const m = /(\d+) connections in [\d.]+ real seconds/.exec(stdout) ?? /(\d+) connections in [\d.]+s/.exec(stdout);
      resolve({ count: m ? Number(m[1]) : 0, ok: !err && !/ERROR/.test(stdout) });
    });
  });
}

/** `clients` parallel s_time processes for `seconds` each. */
export async function sTimeLoad(port: number, clients: number, seconds: number): Promise<LoadResult> {
  const started = performance.now();
  const runs = await Promise.all(Array.from({ length: clients }, () => sTimeOnce(port, seconds)));
  return {
    handshakes: runs.reduce((n, r) => n + r.count, 0),
    seconds: Math.max(seconds, (performance.now() - started) / 1000),
    failedClients: runs.filter((r) => !r.ok).length,
  };
}

function handshakeMs(port: number, ca: Buffer): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, () => {
      socket.destroy();
      resolve(performance.now() - started);
    });
    socket.once('error', reject);
  });
}

export async function waitForTls(port: number, ca: Buffer): Promise<void> {
  for (let i = 0; i < 150; i++) {
    try {
      await handshakeMs(port, ca);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`no TLS server answers on port ${port}`);
}

export interface Latencies {
  sorted: number[];
  failures: number;
}

/** Open loop: one verified handshake every 1/rate s regardless of completions. */
export async function pacedHandshakes(port: number, ca: Buffer, rate: number, count: number): Promise<Latencies> {
  const latencies: number[] = [];
  let failures = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inflight.push(handshakeMs(port, ca).then((ms) => void latencies.push(ms), () => void failures++));
  }
  await Promise.all(inflight);
  return { sorted: latencies.sort((a, b) => a - b), failures };
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** utime + stime of one process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) pids.push(Number(entry));
    } catch {
      // the process ended while we listed
    }
  }
  return pids;
}

/** CPU seconds of an nginx master's workers (they do the TLS work). */
export function workersCpuSeconds(master: number): number {
  return childrenOf(master).reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}
