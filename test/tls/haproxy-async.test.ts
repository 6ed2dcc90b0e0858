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
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { keyReferencePem } from '../../src/keyref/keyref.js';
import { cli, UpProcess } from '../services/cluster-harness.js';
import { ASAN_MODULE, buildProvider, freePort, MODULE, sanitizerPreload, SServer, writeConf } from '../provider/openssl.js';
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
  // ASan with full unwinding starts slowly on a busy machine.
  await Promise.race([waitForPort(ports.main, 180_000), exited.then(() => assert.fail(`haproxy exited:\n${log}`))]);
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

/** HAProxy's open sockets and eventfds (the provider's wait fds; gRPC's wakeup fds are constant). */
function descriptors(pid: number): { sockets: number; eventfds: number } {
  const targets = readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
  return { sockets: targets.filter((t) => t.startsWith('socket:')).length, eventfds: targets.filter((t) => t === 'anon_inode:[eventfd]').length };
}

/** TCP sockets a process holds on local `port` other than the listener (/proc/net/tcp: state 0A listens; inode 0: no owner). */
function connections(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9 && f[1]!.endsWith(`:${hex}`) && f[3] !== '0A' && f[9] !== '0').length;
}

/**
 * OpenSSL 3.0's SSL_free does not free an ASYNC job that is still paused (ssl_lib.c frees the wait
 * context, not s->job), and HAProxy frees a connection closed during a pending signature without
 * resuming its job: that job and its stack are OpenSSL's leak, suppressed here. What the paused
 * job's stack still points to is hidden from LeakSanitizer with it, so the provider's cleanup is
 * shown by the descriptors: each operation holds its connection's eventfd until it is freed.
 */
const LSAN_SUPPRESSIONS = 'leak:ASYNC_start_job\n';

describe('HAProxy with ssl-mode-async and nbthread 1: asynchronous signing', function () {
  this.timeout(600_000);
  const up = new UpProcess();
  let gate: SignGate;
  let caCert: string;
  let crt: string;
  let gatedKey: string;
  let base: string;

  before(async function () {
    buildProvider(false);
    buildProvider(true);
    await up.start(['--signers', '3', '--threshold', '2']);
    // The TLS material (CA, certificate of key 'tls') is ready once up prints the s_client line.
    await up.line(/openssl s_client -connect/);
    const tls = join(up.dir, 'tls');
    caCert = join(tls, 'ca.crt');
    gate = new SignGate(join(up.dir, 'gate.sock'), up.config().coordinator.socket);
    await gate.start();
    const show = cli(up.dir, 'key', 'show', 'tls', '--pem');
    assert.equal(show.status, 0, show.stderr);
    const spki = Buffer.from(show.stdout.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    gatedKey = join(up.dir, 'gated.key.pem');
    writeFileSync(gatedKey, keyReferencePem({ keyId: 'tls', endpoint: `unix:${gate.socket}`, spki }));
    crt = join(up.dir, 'gated.pem');
    writeFileSync(crt, readFileSync(join(tls, 'tls.crt'), 'utf8') + readFileSync(gatedKey, 'utf8'));
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
      const arrivedBefore = gate.arrived;
      const pending = Promise.all(Array.from({ length: CONCURRENT }, () => handshake(haproxy.ports.main, caCert)));
      // A server signing one handshake at a time never gets CONCURRENT requests to the gate: fail
      // then instead of waiting for every deadline.
      await gate.waitForArrivals(arrivedBefore + CONCURRENT, 180_000);
      const results = await pending;
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

  it('signs in openssl s_server -async too (its handshakes run in ASYNC jobs)', async function () {
    const port = await freePort();
    const server = new SServer(port, ['-async', '-tls1_3', '-cert', join(up.dir, 'tls', 'tls.crt'), '-key', gatedKey, '-www'], writeConf(join(up.dir, 'sserver.cnf'), base, MODULE, DEADLINE_MS), up.dir);
    await server.start();
    try {
      const arrived = gate.arrived;
      assertAllGood([await handshake(port, caCert), await handshake(port, caCert), await handshake(port, caCert)], 3, () => server.stderr);
      assert.equal(gate.arrived - arrived, 3);
    } finally {
      await server.stop();
    }
  });

  it('cleans up connections closed while their signature is pending (ASan build): no report, no descriptor left, still serving', async function () {
    const suppressions = join(up.dir, 'lsan.supp');
    writeFileSync(suppressions, LSAN_SUPPRESSIONS);
    const haproxy = await startHaproxy(up.dir, 'asan', crt, writeConf(join(up.dir, 'asan.cnf'), base, ASAN_MODULE, DEADLINE_MS), ASAN_MODULE, {
      LD_PRELOAD: sanitizerPreload(),
      // Full unwinding, so that the suppression sees ASYNC_start_job in the job's allocations.
      ASAN_OPTIONS: `detect_leaks=1:fast_unwind_on_malloc=0:print_suppressions=1`,
      LSAN_OPTIONS: `suppressions=${suppressions}`,
      UBSAN_OPTIONS: 'print_stacktrace=1',
    });
    const pid = haproxy.child.pid!;
    const TORN_DOWN = 3;
    try {
      // The first signature of the process starts gRPC (threads, the channel's socket).
      assertAllGood([await handshake(haproxy.ports.main, caCert)], 1, haproxy.log);
      await eventually(async () => connections(haproxy.ports.main) === 0, 60_000);
      const baseline = descriptors(pid);
      for (let i = 0; i < TORN_DOWN; i++) {
        gate.hold();
        const arrived = gate.arrived;
        const client = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${haproxy.ports.short}`, '-tls1_3', '-ign_eof'], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
        await gate.waitForArrivals(arrived + 1);
        // The signature is pending (the job paused on its eventfd). The client goes; HAProxy drops
        // the connection on its 1 s handshake timeout: the socket is closed, the eventfd kept.
        process.kill(client.pid!, 'SIGKILL');
        await eventually(async () => {
          const now = descriptors(pid);
          return connections(haproxy.ports.short) === 0 && now.sockets === baseline.sockets && now.eventfds === baseline.eventfds + i + 1;
        }, 60_000).catch(() => assert.fail(`connection ${i + 1} not closed while pending: ${JSON.stringify(descriptors(pid))}, before ${JSON.stringify(baseline)}\n${haproxy.log()}`));
      }
      // Each pending signature completes; HAProxy frees the connection (SSL_free, its job still
      // paused) and the provider its operations and eventfds.
      gate.release();
      await eventually(async () => descriptors(pid).eventfds === baseline.eventfds, 60_000).catch(() =>
        assert.fail(`descriptors left: ${JSON.stringify(descriptors(pid))}, before ${JSON.stringify(baseline)}`),
      );
      assertAllGood([await handshake(haproxy.ports.main, caCert)], 1, haproxy.log);
      assert.deepEqual(descriptors(pid), baseline);
    } finally {
      gate.release();
      const code = await haproxy.stop();
      assert.doesNotMatch(haproxy.log(), SANITIZER_REPORT, haproxy.log());
      assert.equal(code, 0, haproxy.log());
    }
    // LeakSanitizer ran at exit and matched OpenSSL's paused jobs, nothing else.
    assert.match(haproxy.log(), /Suppressions used:[\s\S]*ASYNC_start_job/, haproxy.log());
  });
});
