/**
 * HAProxy 2.6 (Debian) with `ssl-mode-async` and `nbthread 1` in front of the threshold key: the
 * provider signs inside OpenSSL ASYNC jobs, so one HAProxy thread keeps many handshakes' signatures
 * in flight at once; a connection closed while its signature is pending is cleaned up (ASan build:
 * no report, no descriptor left behind, HAProxy keeps serving).
 *
 * Between the provider and the coordinator sits a test-only gate (sign-gate.ts) on its own socket:
 * the key reference HAProxy loads names it. It records when Sign requests arrive and leave.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { keyReferencePem } from '../../src/keyref/keyref.js';
import { cli, UpProcess } from '../services/cluster-harness.js';
import { ASAN_MODULE, buildProvider, freePort, MODULE, sanitizerPreload, writeConf } from '../provider/openssl.js';
import { SignGate } from './sign-gate.js';
import { assertAllGood, eventually, handshake, waitForPort } from './servers.js';

const CONCURRENT = 32;
/** Long enough that a handshake held at the gate is never ended by the provider's deadline. */
const DEADLINE_MS = 120_000;
const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;

interface Haproxy {
  child: ChildProcess;
  ports: { main: number; short: number };
  log(): string;
  stop(): Promise<number | null>;
}

/**
 * HAProxy in the foreground with one thread and ssl-mode-async. Frontend `main` waits long for a
 * handshake; frontend `short` closes a connection whose handshake is not done within 1 s.
 */
async function startHaproxy(dir: string, name: string, crt: string, opensslConf: string, module: string, env: NodeJS.ProcessEnv = {}): Promise<Haproxy> {
  const ports = { main: await freePort(), short: await freePort() };
  const cfg = join(dir, `${name}.cfg`);
  writeFileSync(
    cfg,
    `global
    nbthread 1
    ssl-mode-async
    insecure-fork-wanted
    ssl-provider-path ${dirname(module)}
    ssl-provider default
    ssl-provider quorumkey
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
    log stderr format short local0 info

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 180s
    timeout server 10s

frontend main
    bind 127.0.0.1:${ports.main} ssl crt ${crt}
    http-request return status 200 content-type text/plain string "quorumkey"

frontend short
    timeout client 1s
    bind 127.0.0.1:${ports.short} ssl crt ${crt}
    http-request return status 200 content-type text/plain string "quorumkey"
`,
  );
  const child = spawn('haproxy', ['-db', '-f', cfg], { env: { ...process.env, OPENSSL_CONF: opensslConf, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await Promise.race([waitForPort(ports.main), exited.then(() => assert.fail(`haproxy exited:\n${log}`))]);
  return {
    child,
    ports,
    log: () => log,
    // SIGUSR1: soft stop; HAProxy frees its state and exits normally, so LeakSanitizer runs.
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGUSR1');
      return exited;
    },
  };
}

const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

describe('HAProxy with ssl-mode-async and nbthread 1: asynchronous signing', function () {
  this.timeout(600_000);
  const up = new UpProcess();
  let gate: SignGate;
  let caCert: string;
  let crt: string;
  let base: string;

  before(async function () {
    buildProvider(false);
    buildProvider(true);
    await up.start(['--signers', '3', '--threshold', '2']);
    const tls = join(up.dir, 'tls');
    caCert = join(tls, 'ca.crt');
    gate = new SignGate(join(up.dir, 'gate.sock'), up.config().coordinator.socket);
    await gate.start();
    const show = cli(up.dir, 'key', 'show', 'tls', '--pem');
    assert.equal(show.status, 0, show.stderr);
    const spki = Buffer.from(show.stdout.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    crt = join(up.dir, 'gated.pem');
    writeFileSync(crt, readFileSync(join(tls, 'tls.crt'), 'utf8') + keyReferencePem({ keyId: 'tls', endpoint: `unix:${gate.socket}`, spki }));
    const conf = cli(up.dir, 'openssl-conf');
    assert.equal(conf.status, 0, conf.stderr);
    base = conf.stdout;
  });

  after(async function () {
    gate?.stop();
    await up.stop();
  });

  it(`keeps ${CONCURRENT} handshakes' signatures in flight at once on one thread, all verified`, async function () {
    const haproxy = await startHaproxy(up.dir, 'overlap', crt, writeConf(join(up.dir, 'overlap.cnf'), base, MODULE, DEADLINE_MS), MODULE);
    try {
      gate.holdUntil(CONCURRENT);
      const first = gate.events.length;
      const results = await Promise.all(Array.from({ length: CONCURRENT }, () => handshake(haproxy.ports.main, caCert)));
      assertAllGood(results, CONCURRENT, haproxy.log);
      // The gate lets requests through only once CONCURRENT wait at once: a server that signs one
      // handshake after the other would never get there. So every request arrived before the first
      // answer left.
      const events = gate.events.slice(first);
      assert.equal(gate.maxInFlight, CONCURRENT);
      assert.deepEqual(events.slice(0, CONCURRENT), Array(CONCURRENT).fill('arrive'));
      assert.equal(events.filter((e) => e === 'answer').length, CONCURRENT);
    } finally {
      gate.release();
      await haproxy.stop();
    }
  });

  it('cleans up connections closed while their signature is pending (ASan build): no report, no descriptor left, still serving', async function () {
    const preload = sanitizerPreload();
    const haproxy = await startHaproxy(up.dir, 'asan', crt, writeConf(join(up.dir, 'asan.cnf'), base, ASAN_MODULE, DEADLINE_MS), ASAN_MODULE, {
      LD_PRELOAD: preload,
      ASAN_OPTIONS: 'detect_leaks=1',
      UBSAN_OPTIONS: 'print_stacktrace=1',
    });
    const pid = haproxy.child.pid!;
    try {
      // The first signature of the process starts gRPC (threads, the channel's socket).
      assertAllGood([await handshake(haproxy.ports.main, caCert)], 1, haproxy.log);
      const baseline = openFds(pid);
      for (let i = 0; i < 3; i++) {
        gate.hold();
        const arrived = gate.arrived;
        const timeouts = (haproxy.log().match(/Timeout during SSL handshake/g) ?? []).length;
        const client = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${haproxy.ports.short}`, '-tls1_3', '-ign_eof'], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
        await gate.waitForArrivals(arrived + 1);
        // The signature is pending: the client goes, and HAProxy drops the connection on its 1 s
        // handshake timeout while the job is still paused.
        process.kill(client.pid!, 'SIGKILL');
        await eventually(async () => (haproxy.log().match(/Timeout during SSL handshake/g) ?? []).length > timeouts, 60_000);
        gate.release();
      }
      // Each pending signature completes; HAProxy then frees the connection and the provider its
      // operation and eventfd.
      await eventually(async () => openFds(pid) <= baseline, 60_000).catch(() => assert.fail(`descriptors: ${openFds(pid)} now, ${baseline} before`));
      assertAllGood([await handshake(haproxy.ports.main, caCert)], 1, haproxy.log);
    } finally {
      gate.release();
      const code = await haproxy.stop();
      assert.doesNotMatch(haproxy.log(), SANITIZER_REPORT, haproxy.log());
      assert.equal(code, 0, haproxy.log());
    }
  });
});
