/**
 * Full TLS 1.3 handshakes (no resumption) against two nginx instances on this machine, one with
 * an ordinary local P-256 key and one with the threshold key through the provider, measured with
 * the same load tool (node:tls clients) in the same run. Printed, never asserted.
 *   npm run bench:tls
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/cli/children.js';
import { UpProcess } from '../test/services/cluster-harness.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SEQUENTIAL = 300;
const CONCURRENCY = 16;
const SECONDS = 15;

function handshake(port: number, ca: Buffer): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, () => {
      const ms = performance.now() - started;
      socket.destroy();
      resolve(ms);
    });
    socket.once('error', reject);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(label: string, port: number, ca: Buffer): Promise<{ p50: number; p99: number; rate: number }> {
  for (let i = 0; i < 20; i++) await handshake(port, ca); // warm-up
  const latencies: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) latencies.push(await handshake(port, ca));
  latencies.sort((a, b) => a - b);
  let done = 0;
  let failed = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) await handshake(port, ca).then(() => done++, () => failed++);
    }),
  );
  const result = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rate: done / SECONDS };
  console.log(
    `${label.padEnd(26)} sequential p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms; ` +
      `${CONCURRENCY} concurrent clients: ${result.rate.toFixed(1)} handshakes/s${failed ? ` (${failed} failed)` : ''}`,
  );
  return result;
}

function startNginx(prefix: string, port: number, cert: string, key: string, opensslConf: string): ChildProcess {
  const template = readFileSync(join(REPO, 'certs/nginx.conf.template'), 'utf8');
  const values: Record<string, string> = { USER: 'root root', PREFIX: prefix, PORT: String(port), CERT: cert, KEY_REF: key };
  writeFileSync(join(prefix, 'nginx.conf'), template.replace(/\{\{(\w+)\}\}/g, (_, k: string) => values[k]!));
  return spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { env: { ...process.env, OPENSSL_CONF: opensslConf }, stdio: 'ignore' });
}

async function waitForTls(port: number, ca: Buffer): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await handshake(port, ca);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`nginx on ${port} does not answer`);
}

async function main(): Promise<void> {
  const up = new UpProcess();
  console.log(`quorumkey TLS benchmark — nginx 2 workers, 3-of-5 embedded cluster, node ${process.version}`);
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
    nginxes.push(startNginx(local, localPort, join(local, 'cert.pem'), join(local, 'key.pem'), opensslConf));
    nginxes.push(startNginx(threshold, thresholdPort, join(tls, 'tls.crt'), join(tls, 'tls.key.pem'), opensslConf));
    const localCa = readFileSync(join(local, 'cert.pem'));
    const thresholdCa = readFileSync(join(tls, 'ca.crt'));
    await waitForTls(localPort, localCa);
    await waitForTls(thresholdPort, thresholdCa);
    const a = await measure('nginx, local P-256 key', localPort, localCa);
    const b = await measure('nginx, threshold key', thresholdPort, thresholdCa);
    console.log(`added latency per handshake: p50 ${(b.p50 - a.p50).toFixed(2)} ms, p99 ${(b.p99 - a.p99).toFixed(2)} ms`);
  } finally {
    for (const n of nginxes) n.kill('SIGTERM');
    await up.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
