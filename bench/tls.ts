/**
 * Full TLS 1.3 handshakes (no resumption) against nginx and HAProxy on this machine, one nginx
 * with an ordinary local P-256 key and one with the threshold key through the provider, in the
 * same run, driven by a C load tool (parallel `openssl s_time -new`). Printed, never asserted:
 *   - handshakes/s local key vs threshold key and their ratio (BENCH_CLIENTS, default 16);
 *   - the nginx workers' CPU time per handshake (utime + stime from /proc), local vs threshold;
 *   - added latency p50/p99/p99.9 at a fixed rate (BENCH_RATE, default 100/s) while pools refill;
 *   - HAProxy nbthread 1, synchronous vs ssl-mode-async, 64 concurrent clients;
 *   - sustained handshakes/s against the threshold nginx (BENCH_SUSTAINED_S, default 60).
 * BENCH_SECONDS (default 15) is the length of each throughput run, BENCH_LATENCY_S (default 10)
 * of each latency run.
 *   npm run bench:tls          BENCH_SECONDS=5 BENCH_SUSTAINED_S=10 npm run bench:tls
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/cli/children.js';
import { cli, UpProcess } from '../test/services/cluster-harness.js';
import { cpuSeconds, pacedHandshakes, percentile, sTimeLoad, waitForTls, workersCpuSeconds, type LoadResult } from './tls-load.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PROVIDER_DIR = join(REPO, 'build-provider');
const envNumber = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const SECONDS = envNumber('BENCH_SECONDS', 15);
const CLIENTS = envNumber('BENCH_CLIENTS', 16);
const RATE = envNumber('BENCH_RATE', 100);
const LATENCY_SECONDS = envNumber('BENCH_LATENCY_S', 10);
const SUSTAINED_SECONDS = envNumber('BENCH_SUSTAINED_S', 60);
const HAPROXY_CLIENTS = 64;

function startNginx(prefix: string, port: number, cert: string, key: string, opensslConf: string): ChildProcess {
  const template = readFileSync(join(REPO, 'certs/nginx.conf.template'), 'utf8');
  const values: Record<string, string> = { USER: 'root root', PREFIX: prefix, PORT: String(port), CERT: cert, KEY_REF: key, SERVER_EXTRA: '' };
  writeFileSync(join(prefix, 'nginx.conf'), template.replace(/\{\{(\w+)\}\}/g, (_, k: string) => values[k]!));
  return spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { env: { ...process.env, OPENSSL_CONF: opensslConf }, stdio: 'ignore' });
}

/** HAProxy in the foreground (-db: one process, which is the one doing TLS), one thread. */
function startHaproxy(prefix: string, port: number, crt: string, opensslConf: string, async: boolean): ChildProcess {
  const cfg = join(prefix, `haproxy-${async ? 'async' : 'sync'}.cfg`);
  writeFileSync(
    cfg,
    `global
    nbthread 1
    ${async ? 'ssl-mode-async' : ''}
    maxconn 1024
    insecure-fork-wanted
    ssl-provider-path ${PROVIDER_DIR}
    ssl-provider default
    ssl-provider quorumkey
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 10s

frontend tls
    bind 127.0.0.1:${port} ssl crt ${crt}
    http-request return status 200 content-type text/plain string "quorumkey"
`,
  );
  return spawn('haproxy', ['-db', '-f', cfg], { env: { ...process.env, OPENSSL_CONF: opensslConf }, stdio: 'ignore' });
}

const rate = (r: LoadResult): number => r.handshakes / r.seconds;
const failed = (r: LoadResult): string => (r.failedClients ? ` (${r.failedClients} clients stopped on a failed handshake)` : '');

async function throughput(label: string, port: number, master: number): Promise<{ rate: number; cpuMs: number }> {
  const cpuBefore = workersCpuSeconds(master);
  const load = await sTimeLoad(port, CLIENTS, SECONDS);
  const cpuMs = ((workersCpuSeconds(master) - cpuBefore) * 1000) / Math.max(1, load.handshakes);
  const busy = ((workersCpuSeconds(master) - cpuBefore) / load.seconds) * 100;
  console.log(
    `${label.padEnd(24)} ${CLIENTS} s_time clients, ${SECONDS} s: ${rate(load).toFixed(1)} handshakes/s; ` +
      `nginx workers ${cpuMs.toFixed(3)} ms CPU per handshake, ${busy.toFixed(0)} % of one core${failed(load)}`,
  );
  return { rate: rate(load), cpuMs };
}

function poolDepth(dir: string): number {
  const status = JSON.parse(cli(dir, 'status', '--json').stdout) as { pools: { depth: number }[] };
  return status.pools.reduce((n, p) => n + p.depth, 0);
}

function latencyLine(label: string, l: { sorted: number[]; failures: number }): string {
  const [p50, p99, p999] = [50, 99, 99.9].map((p) => percentile(l.sorted, p).toFixed(2));
  return `${label.padEnd(24)} ${RATE}/s × ${LATENCY_SECONDS} s: p50 ${p50} ms, p99 ${p99} ms, p99.9 ${p999} ms${l.failures ? `, ${l.failures} failed` : ''}`;
}

async function haproxyRun(dir: string, crt: string, opensslConf: string, ca: Buffer, async: boolean): Promise<void> {
  const port = await freePort();
  const haproxy = startHaproxy(dir, port, crt, opensslConf, async);
  try {
    await waitForTls(port, ca);
    const cpuBefore = cpuSeconds(haproxy.pid!);
    const load = await sTimeLoad(port, HAPROXY_CLIENTS, SECONDS);
    const cpuMs = ((cpuSeconds(haproxy.pid!) - cpuBefore) * 1000) / Math.max(1, load.handshakes);
    console.log(
      `HAProxy nbthread 1, ${(async ? 'ssl-mode-async' : 'synchronous').padEnd(14)} ${HAPROXY_CLIENTS} s_time clients, ${SECONDS} s: ` +
        `${rate(load).toFixed(1)} handshakes/s, ${cpuMs.toFixed(3)} ms CPU per handshake${failed(load)}`,
    );
  } finally {
    haproxy.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const up = new UpProcess();
  console.log(`quorumkey TLS benchmark — nginx 2 workers, 3-of-5 \`quorumkey up\` on the same machine, node ${process.version}, ${execFileSync('nproc').toString().trim()} cores`);
  await up.start();
  await up.line(/openssl s_client -connect/); // the certificate exists once s_server runs
  const tls = join(up.dir, 'tls');
  const opensslConf = join(tls, 'openssl.cnf');
  const nginxes: ChildProcess[] = [];
  try {
    const local = mkdtempSync(join(tmpdir(), 'qk-bench-local-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(local, 'key.pem'), '-out', join(local, 'cert.pem'),
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1'], { stdio: 'ignore' });
    const threshold = mkdtempSync(join(tmpdir(), 'qk-bench-threshold-'));
    const [localPort, thresholdPort] = [await freePort(), await freePort()];
    const localNginx = startNginx(local, localPort, join(local, 'cert.pem'), join(local, 'key.pem'), opensslConf);
    const thresholdNginx = startNginx(threshold, thresholdPort, join(tls, 'tls.crt'), join(tls, 'tls.key.pem'), opensslConf);
    nginxes.push(localNginx, thresholdNginx);
    const localCa = readFileSync(join(local, 'cert.pem'));
    const thresholdCa = readFileSync(join(tls, 'ca.crt'));
    await waitForTls(localPort, localCa);
    await waitForTls(thresholdPort, thresholdCa);

    const a = await throughput('nginx, local P-256 key', localPort, localNginx.pid!);
    const b = await throughput('nginx, threshold key', thresholdPort, thresholdNginx.pid!);
    console.log(`threshold / local handshakes/s: ${((b.rate / a.rate) * 100).toFixed(0)} %; nginx CPU per handshake threshold / local: ${(b.cpuMs / a.cpuMs).toFixed(2)}×`);

    // The throughput run drained the pools: the latency runs see refill working.
    console.log(`presignatures in the pools before the latency runs: ${poolDepth(up.dir)}`);
    const count = RATE * LATENCY_SECONDS;
    const la = await pacedHandshakes(localPort, localCa, RATE, count);
    console.log(latencyLine('nginx, local P-256 key', la));
    const lb = await pacedHandshakes(thresholdPort, thresholdCa, RATE, count);
    console.log(latencyLine('nginx, threshold key', lb));
    const added = [50, 99, 99.9].map((p) => (percentile(lb.sorted, p) - percentile(la.sorted, p)).toFixed(2));
    console.log(`added latency per handshake at ${RATE}/s: p50 ${added[0]} ms, p99 ${added[1]} ms, p99.9 ${added[2]} ms (pools now ${poolDepth(up.dir)})`);

    const crt = join(threshold, 'haproxy.pem');
    writeFileSync(crt, readFileSync(join(tls, 'tls.crt'), 'utf8') + readFileSync(join(tls, 'tls.key.pem'), 'utf8'));
    await haproxyRun(threshold, crt, opensslConf, thresholdCa, false);
    await haproxyRun(threshold, crt, opensslConf, thresholdCa, true);

    const cpuBefore = workersCpuSeconds(thresholdNginx.pid!);
    const load = await sTimeLoad(thresholdPort, CLIENTS, SUSTAINED_SECONDS);
    const cpuMs = ((workersCpuSeconds(thresholdNginx.pid!) - cpuBefore) * 1000) / Math.max(1, load.handshakes);
    console.log(`sustained, nginx threshold key, ${CLIENTS} clients, ${SUSTAINED_SECONDS} s with refill: ${rate(load).toFixed(1)} handshakes/s, ${cpuMs.toFixed(3)} ms nginx CPU per handshake${failed(load)}`);
  } finally {
    for (const n of nginxes) n.kill('SIGTERM');
    await up.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
