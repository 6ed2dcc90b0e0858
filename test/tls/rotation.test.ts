/**
 * Key rotation with zero downtime against real processes: `quorumkey up` (key `tls`), nginx and
 * HAProxy (master-worker) serving it under a continuous load of Node TLS 1.3 clients that verify
 * every handshake against the CA root; `quorumkey rotate tls` makes tls-r1 and its certificate;
 * `nginx -s reload` and SIGUSR2 to the HAProxy master switch with no failed handshake and the new
 * public key served afterwards (a first rotate SIGKILLed mid-way is finished by the next, with the
 * same new key); `key retire` is refused until the rotation is confirmed, then
 * deletes the old key while the servers keep serving.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { CLI, cli, UpProcess } from '../services/cluster-harness.js';
import { eventually, fillTemplate, startHaproxy, startNginx, type RunningServer, type ServerMaterial } from './servers.js';

interface Result {
  /** The order in which the handshake started. */
  seq: number;
  ok: boolean;
  /** The served certificate's public key (SPKI DER, base64), or the error. */
  detail: string;
}

/** One full TLS 1.3 handshake, the chain and the name verified against `ca`. */
function tlsHandshake(port: number, ca: Buffer): Promise<Omit<Result, 'seq'>> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, minVersion: 'TLSv1.3', rejectUnauthorized: true }, () => {
      const cert = new X509Certificate(socket.getPeerCertificate().raw);
      socket.destroy();
      resolve({ ok: true, detail: cert.publicKey.export({ type: 'spki', format: 'der' }).toString('base64') });
    });
    socket.setTimeout(60_000, () => socket.destroy(new Error('no handshake in 60 s')));
    socket.once('error', (e) => resolve({ ok: false, detail: e.message }));
  });
}

/** Two clients handshaking back to back until stopped; every result in order of completion. */
class Load {
  readonly results: Result[] = [];
  started = 0;
  private running = true;
  private readonly done: Promise<void[]>;
  constructor(port: number, ca: Buffer) {
    this.done = Promise.all(
      [0, 1].map(async () => {
        while (this.running) {
          const seq = this.started++;
          this.results.push({ seq, ...(await tlsHandshake(port, ca)) });
        }
      }),
    );
  }
  /** Resolves when a handshake started from now on served `spki`. */
  async served(spki: string): Promise<void> {
    const from = this.started;
    while (!this.results.some((r) => r.seq >= from && r.detail === spki)) {
      if (!this.running) throw new Error('load stopped');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  async stop(): Promise<Result[]> {
    this.running = false;
    await this.done;
    return this.results;
  }
}

/** `quorumkey` as a child process, without blocking the event loop (the load keeps running). */
function cliAsync(dir: string, ...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The worker processes of a server's master (children by PID). */
function workers(master: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(master)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim()).map(Number);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * After a reload: once every worker of before the reload has exited, each handshake started
 * afterwards must be served by a new worker with the new key (and some are).
 */
async function assertSwitched(load: Load, oldWorkers: number[], newSpki: string): Promise<void> {
  assert.ok(oldWorkers.length > 0, 'the server had workers before the reload');
  await eventually(async () => oldWorkers.every((pid) => !alive(pid)), 120_000);
  const boundary = load.started;
  await load.served(newSpki);
  await load.served(newSpki);
  const after = load.results.filter((r) => r.seq >= boundary);
  assert.ok(after.length >= 2);
  assert.ok(after.every((r) => r.detail === newSpki), `an old worker served after it had exited: ${after.map((r) => r.detail.slice(-12)).join(' ')}`);
}

function assertNoFailure(results: Result[], server: RunningServer): void {
  const failed = results.filter((r) => !r.ok);
  assert.equal(failed.length, 0, `${failed.length}/${results.length} handshakes failed: ${failed[0]?.detail}\n${server.log().split('\n').slice(-30).join('\n')}`);
}

describe('rotate: a new key and certificate, nginx and HAProxy reloaded under load with zero failed handshakes', function () {
  this.timeout(1_200_000);
  const up = new UpProcess();
  const servers: RunningServer[] = [];
  let tls: string;
  let ca: Buffer;
  let material: ServerMaterial;
  let nginx: RunningServer;
  let haproxy: RunningServer;
  let nginxLoad: Load;
  let haproxyLoad: Load;
  let oldSpki: string;
  let newSpki: string;

  const spkiOf = (id: string) => {
    const shown = cli(up.dir, 'key', 'show', id, '--pem');
    assert.equal(shown.status, 0, shown.stderr);
    return createPublicKey(shown.stdout).export({ type: 'spki', format: 'der' }).toString('base64');
  };

  before(async function () {
    await up.start(['--signers', '3', '--threshold', '2']);
    await up.line(/openssl s_client -connect/);
    tls = join(up.dir, 'tls');
    ca = readFileSync(join(up.dir, 'ca', 'root.crt'));
    material = { opensslConf: join(tls, 'openssl.cnf'), serverCert: join(tls, 'tls.crt'), keyRef: join(tls, 'tls.key.pem') };
    nginx = await startNginx(material, 'root root');
    haproxy = await startHaproxy(material, 'root', 'root');
    servers.push(nginx, haproxy);
    oldSpki = spkiOf('tls');
    nginxLoad = new Load(nginx.port, ca);
    haproxyLoad = new Load(haproxy.port, ca);
    await Promise.all([nginxLoad.served(oldSpki), haproxyLoad.served(oldSpki)]);
  });

  after(async function () {
    await nginxLoad?.stop();
    await haproxyLoad?.stop();
    for (const s of servers) await s.stop();
    await up.stop();
  });

  it('rotate tls under load: key tls-r1 with the same policy and clients, its certificate for the same names beside the old one, the rotation recorded', async function () {
    const before = nginxLoad.results.length + haproxyLoad.results.length;
    // A rotate SIGKILLed once it recorded the rotation (before or during the key generation)…
    const record = join(up.dir, 'rotations.json');
    const first = spawn(process.execPath, [CLI, 'rotate', 'tls', '--dir', up.dir], { stdio: 'ignore' });
    await eventually(async () => existsSync(record), 120_000);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    // …is finished by the next one, with the same new key (a generation still running is named).
    let r = await cliAsync(up.dir, 'rotate', 'tls');
    while (r.status !== 0 && /is still running: run 'quorumkey rotate tls' again/.test(r.stderr)) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      r = await cliAsync(up.dir, 'rotate', 'tls');
    }
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(cli(up.dir, 'key', 'list').stdout, /^tls-r2 /m);
    assert.ok(nginxLoad.results.length + haproxyLoad.results.length > before, 'the load kept running during the rotation');
    assert.match(r.stdout, /key 'tls' rotated to 'tls-r1'/);
    assert.match(r.stdout, /nginx -s reload/);
    assert.match(r.stdout, /kill -USR2/);
    newSpki = spkiOf('tls-r1');
    assert.notEqual(newSpki, oldSpki);
    const list = cli(up.dir, 'key', 'list').stdout;
    const policyOf = (id: string) => new RegExp(`^${id} [^\\n]*\\n  clients: ([^\\n]*)\\n  sealed policy: ([^\\n]*)`, 'm').exec(list)!.slice(1);
    assert.deepEqual(policyOf('tls-r1'), policyOf('tls'));
    const [oldCert, newCert] = ['tls.crt', 'tls-r1.crt'].map((f) => new X509Certificate(readFileSync(join(tls, f))));
    assert.ok(newCert!.verify(new X509Certificate(ca).publicKey), 'the CA issued the new certificate');
    assert.equal(newCert!.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), newSpki);
    assert.equal(newCert!.subject, oldCert!.subject);
    assert.equal(newCert!.subjectAltName, oldCert!.subjectAltName);
    assert.match(readFileSync(join(tls, 'tls-r1.key.pem'), 'utf8'), /BEGIN QUORUMKEY KEY/);
    const log = JSON.parse(readFileSync(join(up.dir, 'rotations.json'), 'utf8'));
    assert.deepEqual(log.rotations.map((x: { from: string; to: string; state: string }) => [x.from, x.to, x.state]), [['tls', 'tls-r1', 'issued']]);
    // The old key still serves until the reload, and confirm checks what the server serves.
    assert.equal(nginxLoad.results.slice(-1)[0]!.detail, oldSpki);
    const early = cli(up.dir, 'rotate', 'confirm', 'tls', '--connect', `127.0.0.1:${nginx.port}`);
    assert.equal(early.status, 2);
    assert.match(early.stderr, new RegExp(`127\\.0\\.0\\.1:${nginx.port} still serves another key than 'tls-r1'`));
  });

  it('bad input gets a named refusal: an unknown key, no rotation to confirm, a malformed --connect, a certificate directory without the key\'s certificate', function () {
    const cases: [string[], RegExp][] = [
      [['rotate', 'nosuch'], /unknown key 'nosuch'/],
      [['rotate', 'confirm', 'nosuch'], /no rotation of key 'nosuch' to confirm/],
      [['rotate', 'confirm', 'tls', '--connect', 'not a target'], /--connect must be HOST:PORT, got 'not a target'/],
      [['rotate', 'embedded-ocsp', '--out', tls], /no certificate .*embedded-ocsp\.crt of key 'embedded-ocsp': name its directory with --out DIR/],
      [['key', 'retire', 'nosuch', '--yes'], /key 'nosuch' is the current key \(no rotation replaced it\)/],
    ];
    for (const [args, message] of cases) {
      const r = cli(up.dir, ...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, message);
    }
    // None of them changed the record.
    assert.equal(JSON.parse(readFileSync(join(up.dir, 'rotations.json'), 'utf8')).rotations.length, 1);
  });

  it('nginx -s reload with the new files: zero failed handshakes, the new public key served afterwards', async function () {
    const conf = join(nginx.prefix, 'nginx.conf');
    const port = String(nginx.port);
    writeFileSync(conf, fillTemplate('nginx.conf.template', { PREFIX: nginx.prefix, PORT: port, CERT: join(tls, 'tls-r1.crt'), KEY_REF: join(tls, 'tls-r1.key.pem'), USER: 'root root', SERVER_EXTRA: '' }));
    const env = { ...process.env, OPENSSL_CONF: material.opensslConf };
    const oldWorkers = workers(Number(readFileSync(join(nginx.prefix, 'nginx.pid'), 'utf8')));
    const reload = spawnSync('nginx', ['-p', nginx.prefix, '-c', conf, '-s', 'reload'], { env, encoding: 'utf8' });
    assert.equal(reload.status, 0, reload.stderr);
    await assertSwitched(nginxLoad, oldWorkers, newSpki);
    const results = await nginxLoad.stop();
    assertNoFailure(results, nginx);
    assert.ok(results.some((r) => r.detail === oldSpki), 'the old key was served before the reload');
  });

  it('HAProxy master-worker reload (SIGUSR2 to the master) with the new crt file: zero failed handshakes, the new public key served afterwards', async function () {
    const crt = join(haproxy.prefix, 'server.pem');
    writeFileSync(`${crt}.new`, readFileSync(join(tls, 'tls-r1.crt'), 'utf8') + readFileSync(join(tls, 'tls-r1.key.pem'), 'utf8'));
    renameSync(`${crt}.new`, crt);
    const oldWorkers = workers(haproxy.process.pid!);
    process.kill(haproxy.process.pid!, 'SIGUSR2');
    await assertSwitched(haproxyLoad, oldWorkers, newSpki);
    const results = await haproxyLoad.stop();
    assertNoFailure(results, haproxy);
    assert.ok(results.some((r) => r.detail === oldSpki), 'the old key was served before the reload');
  });

  it('key retire: refused before the rotation is confirmed and for the current key; after confirm (both servers serve tls-r1) it deletes tls, the servers keep serving', async function () {
    const early = cli(up.dir, 'key', 'retire', 'tls', '--yes');
    assert.equal(early.status, 2);
    assert.match(early.stderr, /still the current key of its rotation to 'tls-r1', not confirmed/);
    const current = cli(up.dir, 'key', 'retire', 'tls-r1', '--yes');
    assert.equal(current.status, 2);
    assert.match(current.stderr, /key 'tls-r1' is the current key/);
    const confirm = cli(up.dir, 'rotate', 'confirm', 'tls', '--connect', `127.0.0.1:${nginx.port}`, '--connect', `127.0.0.1:${haproxy.port}`);
    assert.equal(confirm.status, 0, confirm.stderr);
    const noYes = cli(up.dir, 'key', 'retire', 'tls');
    assert.equal(noYes.status, 2);
    assert.match(noYes.stderr, /would erase every share of key 'tls' \(replaced by 'tls-r1'\); run again with --yes/);
    assert.match(cli(up.dir, 'key', 'list').stdout, /^tls /m);
    const retire = cli(up.dir, 'key', 'retire', 'tls', '--yes');
    assert.equal(retire.status, 0, retire.stderr);
    assert.match(retire.stdout, /key 'tls' retired \(replaced by 'tls-r1'\)/);
    assert.doesNotMatch(cli(up.dir, 'key', 'list').stdout, /^tls /m);
    for (const server of [nginx, haproxy]) {
      const load = new Load(server.port, ca);
      await load.served(newSpki);
      await load.served(newSpki);
      assertNoFailure(await load.stop(), server);
    }
    const log = JSON.parse(readFileSync(join(up.dir, 'rotations.json'), 'utf8'));
    assert.equal(log.rotations[0].state, 'retired');
  });
});
