/**
 * Test helpers for real TLS servers with the threshold key: nginx and HAProxy from the certs/
 * templates with the provider, `openssl s_client` handshakes and their checks, the audit count.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/cli/children.js';
import { PROVIDER_MODULE } from '../../src/cli/provider-config.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** A certs/ template with every {{NAME}} replaced (an unknown name is an error). */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return readFileSync(join(REPO, 'certs', template), 'utf8').replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    if (!(k in values)) throw new Error(`no value for {{${k}}}`);
    return values[k]!;
  });
}

export interface Handshake {
  ok: boolean;
  output: string;
  ms: number;
}

/** One full TLS 1.3 handshake (no ticket) with `openssl s_client -verify_return_error`. */
export function handshake(port: number, caCert: string): Promise<Handshake> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', caCert, '-verify_return_error', '-tls1_3', '-no_ticket', '-brief', '-ign_eof'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, OPENSSL_CONF: '/dev/null' },
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.stdin.end('GET / HTTP/1.0\r\n\r\n');
    child.on('close', (code, signal) =>
      resolve({ ok: code === 0 && /Verification: OK/.test(output), output: `${output}[s_client exit ${signal ?? code}]`, ms: Date.now() - started }),
    );
  });
}

/** `count` handshakes, four at a time. */
export async function handshakes(port: number, caCert: string, count: number): Promise<Handshake[]> {
  const out: Handshake[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < count) {
        next++;
        out.push(await handshake(port, caCert));
      }
    }),
  );
  return out;
}

/** Audit records of TLS 1.3 server CertificateVerify signatures so far. */
export function tlsServerRecords(dir: string): number {
  return readFileSync(join(dir, 'coordinator', 'audit.log'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"context":"tls-server"')).length;
}

/**
 * Every handshake verified, TLS 1.3, ECDSA with SHA-256 in the server's CertificateVerify.
 * `serverLog` (the server's log) is added to the message when some failed.
 */
export function assertAllGood(results: Handshake[], count: number, serverLog?: () => string): void {
  assert.equal(results.length, count);
  const failed = results.filter((r) => !r.ok);
  const log = () => (serverLog ? `\nserver log (last 40 lines):\n${serverLog().split('\n').slice(-40).join('\n')}` : '');
  assert.equal(failed.length, 0, `${failed.length}/${results.length} handshakes failed, e.g. after ${failed[0]?.ms} ms:\n${failed[0]?.output}${failed.length ? log() : ''}`);
  for (const r of results) {
    assert.ok(r.ok, `handshake failed:\n${r.output}`);
    assert.match(r.output, /Protocol version: TLSv1\.3/);
    // s_client -brief: the server's CertificateVerify algorithm.
    assert.match(r.output, /^Signature type: ECDSA$/m);
    assert.match(r.output, /^Hash used: SHA256$/m);
  }
}

export async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('did not recover in time');
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** What `quorumkey up` leaves in <dir>/tls for a server. */
export interface ServerMaterial {
  /** openssl.cnf activating default + quorumkey. */
  opensslConf: string;
  serverCert: string;
  keyRef: string;
}

export interface RunningServer {
  port: number;
  prefix: string;
  process: ChildProcess;
  /** Everything the server wrote to its error log (nginx) or stderr/stdout (HAProxy) so far. */
  log(): string;
  /** SIGTERM to the master by PID; resolves when it exited. */
  stop(): Promise<void>;
}

function stopper(child: ChildProcess, pid: () => number): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      process.kill(pid(), 'SIGTERM');
    } catch {
      return;
    }
    await exited;
  };
}

/**
 * nginx from certs/nginx.conf.template, 2 workers, `user` as given (e.g. "root root" or
 * "nobody quorumkey"), the provider through OPENSSL_CONF; `serverDirectives` are added to the
 * server block after the key (e.g. "ssl_conf_command ServerInfoFile F;").
 */
export async function startNginx(m: ServerMaterial, user: string, serverExtra = ''): Promise<RunningServer> {
  const prefix = mkdtempSync(join(tmpdir(), 'qk-nginx-'));
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, fillTemplate('nginx.conf.template', { PREFIX: prefix, PORT: String(port), CERT: m.serverCert, KEY_REF: m.keyRef, USER: user, SERVER_EXTRA: serverExtra }));
  const env = { ...process.env, OPENSSL_CONF: m.opensslConf };
  const check = spawnSync('nginx', ['-t', '-p', prefix, '-c', conf], { env, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  const child = spawn('nginx', ['-p', prefix, '-c', conf], { env, stdio: 'ignore' });
  await waitForPort(port);
  return {
    port,
    prefix,
    process: child,
    log: () => readFileSync(join(prefix, 'error.log'), 'utf8'),
    stop: stopper(child, () => Number(readFileSync(join(prefix, 'nginx.pid'), 'utf8'))),
  };
}

/**
 * HAProxy 2.6 from certs/haproxy.cfg.template in master-worker mode, workers as `user`:`group`;
 * `stapling`: the DER OCSP response and its issuer, installed as <crt>.ocsp and <crt>.issuer.
 */
export async function startHaproxy(m: ServerMaterial, user: string, group: string, stapling?: { ocsp: string; issuer: string }): Promise<RunningServer> {
  const prefix = mkdtempSync(join(tmpdir(), 'qk-haproxy-'));
  const port = await freePort();
  const crt = join(prefix, 'server.pem');
  writeFileSync(crt, readFileSync(m.serverCert, 'utf8') + readFileSync(m.keyRef, 'utf8'));
  if (stapling) {
    writeFileSync(`${crt}.ocsp`, readFileSync(stapling.ocsp));
    writeFileSync(`${crt}.issuer`, readFileSync(stapling.issuer));
  }
  const cfg = join(prefix, 'haproxy.cfg');
  writeFileSync(cfg, fillTemplate('haproxy.cfg.template', { PREFIX: prefix, PORT: String(port), CRT: crt, PROVIDER_DIR: dirname(PROVIDER_MODULE), USER: user, GROUP: group }));
  const check = spawnSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  const child = spawn('haproxy', ['-W', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await waitForPort(port);
  return { port, prefix, process: child, log: () => log, stop: stopper(child, () => child.pid!) };
}
