/**
 * Unmodified servers from Debian's packages serve TLS 1.3 with the threshold key through the
 * provider: openssl s_server (started by `quorumkey up`), nginx with two workers (provider via
 * OPENSSL_CONF) and HAProxy in master-worker mode (ssl-provider). 200 full handshakes each,
 * verified by `openssl s_client -verify_return_error`, ECDSA with SHA-256, one tls-server audit
 * record per handshake; the coordinator stopped makes handshakes fail within the deadline with
 * the reason in the server's log, and its return heals them without restarting the servers.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROVIDER_MODULE } from '../../src/cli/provider-config.js';
import { UpProcess } from '../services/cluster-harness.js';
import { freePort } from '../../src/cli/children.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const COORDINATOR = join(REPO, 'dist/src/coordinator/main.js');
const HANDSHAKES = 200;
/** deadline_ms of the provider configuration `quorumkey up` writes. */
const DEADLINE_MS = 5000;
/** A failed handshake bounded by the deadline, not a hang: several times deadline_ms. */
const HANG_MS = 5 * DEADLINE_MS;


function fill(template: string, values: Record<string, string>): string {
  return readFileSync(join(REPO, 'certs', template), 'utf8').replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    if (!(k in values)) throw new Error(`no value for {{${k}}}`);
    return values[k]!;
  });
}

interface Handshake {
  ok: boolean;
  output: string;
  ms: number;
}

function handshake(port: number, caCert: string): Promise<Handshake> {
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

async function handshakes(port: number, caCert: string, count: number): Promise<Handshake[]> {
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

function tlsServerRecords(dir: string): number {
  return readFileSync(join(dir, 'coordinator', 'audit.log'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"context":"tls-server"')).length;
}

function assertAllGood(results: Handshake[]): void {
  assert.equal(results.length, HANDSHAKES);
  const failed = results.filter((r) => !r.ok);
  assert.equal(failed.length, 0, `${failed.length}/${results.length} handshakes failed, e.g. after ${failed[0]?.ms} ms:\n${failed[0]?.output}`);
  for (const r of results) {
    assert.ok(r.ok, `handshake failed:\n${r.output}`);
    assert.match(r.output, /Protocol version: TLSv1\.3/);
    // s_client -brief: the server's CertificateVerify algorithm.
    assert.match(r.output, /^Signature type: ECDSA$/m);
    assert.match(r.output, /^Hash used: SHA256$/m);
  }
}

describe('TLS 1.3 servers with the threshold key', function () {
  this.timeout(600_000);
  const up = new UpProcess();
  const children: ChildProcess[] = [];
  let tlsDir: string;
  let caCert: string;
  let keyRef: string;
  let serverCert: string;
  let opensslConf: string;

  before(async function () {
    await up.start(['--signers', '3', '--threshold', '2']);
    tlsDir = join(up.dir, 'tls');
    caCert = join(tlsDir, 'ca.crt');
    keyRef = join(tlsDir, 'tls.key.pem');
    serverCert = join(tlsDir, 'tls.crt');
    opensslConf = join(tlsDir, 'openssl.cnf');
  });

  after(async function () {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await up.stop();
  });

  it(`openssl s_server (started by quorumkey up): ${HANDSHAKES} full handshakes, one audit record each`, async function () {
    const port = Number(/-connect 127\.0\.0\.1:(\d+)/.exec(await up.line(/openssl s_client -connect/))![1]);
    const before = tlsServerRecords(up.dir);
    assertAllGood(await handshakes(port, caCert, HANDSHAKES));
    assert.equal(tlsServerRecords(up.dir) - before, HANDSHAKES);
  });

  describe('nginx, 2 workers, provider through OPENSSL_CONF', function () {
    let port: number;
    let prefix: string;
    before(async function () {
      prefix = mkdtempSync(join(tmpdir(), 'qk-nginx-'));
      port = await freePort();
      writeFileSync(join(prefix, 'nginx.conf'), fill('nginx.conf.template', { PREFIX: prefix, PORT: String(port), CERT: serverCert, KEY_REF: keyRef, USER: 'root root' }));
      const check = spawnSync('nginx', ['-t', '-p', prefix, '-c', join(prefix, 'nginx.conf')], { env: { ...process.env, OPENSSL_CONF: opensslConf }, encoding: 'utf8' });
      assert.equal(check.status, 0, check.stderr);
      const nginx = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { env: { ...process.env, OPENSSL_CONF: opensslConf }, stdio: 'ignore' });
      children.push(nginx);
      await waitForPort(port);
    });
    after(function () {
      try {
        process.kill(Number(readFileSync(join(prefix, 'nginx.pid'), 'utf8')), 'SIGTERM');
      } catch {
        // already stopped
      }
    });

    it(`${HANDSHAKES} full handshakes, one audit record each`, async function () {
      const before = tlsServerRecords(up.dir);
      assertAllGood(await handshakes(port, caCert, HANDSHAKES));
      assert.equal(tlsServerRecords(up.dir) - before, HANDSHAKES);
    });

    it('with the coordinator stopped, handshakes fail within the deadline and nginx logs why; it recovers without a restart', async function () {
      await coordinatorOutage(up, children, async () => {
        const failed = await handshake(port, caCert);
        assert.ok(!failed.ok, 'a handshake succeeded without the coordinator');
        assert.ok(failed.ms < HANG_MS, `failing took ${failed.ms} ms: a hang?`);
        // The mechanism: the provider found no coordinator at once, the deadline did not end the call.
        const log = readFileSync(join(prefix, 'error.log'), 'utf8');
        assert.match(log, /SSL_do_handshake\(\) failed .*quorumkey.*coordinator unreachable/);
        assert.doesNotMatch(log, /deadline exceeded/);
      });
      await eventually(async () => (await handshake(port, caCert)).ok);
    });
  });

  describe('HAProxy 2.6 in master-worker mode with ssl-provider', function () {
    let port: number;
    let prefix: string;
    let haproxy: ChildProcess;
    let log = '';
    before(async function () {
      prefix = mkdtempSync(join(tmpdir(), 'qk-haproxy-'));
      port = await freePort();
      const crt = join(prefix, 'server.pem');
      writeFileSync(crt, readFileSync(serverCert, 'utf8') + readFileSync(keyRef, 'utf8'));
      writeFileSync(join(prefix, 'haproxy.cfg'), fill('haproxy.cfg.template', { PREFIX: prefix, PORT: String(port), CRT: crt, PROVIDER_DIR: dirname(PROVIDER_MODULE) }));
      const check = spawnSync('haproxy', ['-c', '-f', join(prefix, 'haproxy.cfg')], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stdout + check.stderr);
      haproxy = spawn('haproxy', ['-W', '-f', join(prefix, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] });
      haproxy.stdout!.on('data', (c: Buffer) => (log += c.toString()));
      haproxy.stderr!.on('data', (c: Buffer) => (log += c.toString()));
      children.push(haproxy);
      await waitForPort(port);
    });

    it(`${HANDSHAKES} full handshakes, one audit record each`, async function () {
      const before = tlsServerRecords(up.dir);
      assertAllGood(await handshakes(port, caCert, HANDSHAKES));
      assert.equal(tlsServerRecords(up.dir) - before, HANDSHAKES);
    });

    it('with the coordinator stopped, handshakes fail within the deadline; it recovers without a restart', async function () {
      await coordinatorOutage(up, children, async () => {
        const failed = await handshake(port, caCert);
        assert.ok(!failed.ok);
        assert.ok(failed.ms < HANG_MS, `failing took ${failed.ms} ms: a hang?`);
        // The worker's stderr reaches us through a pipe. The mechanism: the coordinator's socket was
        // unreachable (the line names it), not a deadline ("no signature … within deadline_ms").
        const reason = /quorumkey provider\[\d+\]: signing failed[^\n]*coordinator\.sock \(key '[^']+';[^\n]*/;
        await eventually(async () => reason.test(log)).catch(() =>
          assert.fail(`HAProxy's log does not say why signing failed:\n${log.split('\n').filter((l) => !l.includes('Connect from')).join('\n')}`),
        );
        assert.doesNotMatch(log, /within deadline_ms/);
      });
      await eventually(async () => (await handshake(port, caCert)).ok);
      assert.ok(haproxy.exitCode === null, `haproxy exited:\n${log}`);
    });
  });
});

async function waitForPort(port: number): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 20_000;
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

async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not so after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Stops the coordinator (SIGTERM), runs `during`, then starts a new coordinator on the same directory. */
async function coordinatorOutage(up: UpProcess, children: ChildProcess[], during: () => Promise<void>): Promise<void> {
  const pid = up.pid('coordinator');
  process.kill(pid, 'SIGTERM');
  // Gone, not merely told to go (it drains first).
  await eventually(async () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  });
  await during();
  const child = spawn(process.execPath, [COORDINATOR, '--dir', up.dir], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => c.toString().includes('coordinator ready') && resolve());
    child.once('exit', (code) => reject(new Error(`coordinator exited ${code}`)));
  });
  mkdirSync(join(up.dir, 'run'), { recursive: true });
  writeFileSync(join(up.dir, 'run', 'coordinator.pid'), `${child.pid}\n`);
}
