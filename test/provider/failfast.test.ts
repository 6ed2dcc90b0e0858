/**
 * How the provider fails, against a real `quorumkey up` cluster (3 signers, 2-of-3) and real
 * servers (nginx with two workers, openssl s_server):
 * - coordinator killed: each worker's first handshake finds it unreachable, the later ones fail at
 *   once with "coordinator unavailable (circuit open)" in nginx's error log; restarted, handshakes
 *   succeed again without restarting nginx;
 * - a coordinator-sent UNAVAILABLE (no usable signer subset) is neither retried nor opens the
 *   circuit: one Sign request per handshake, each answered "quorum insufficient";
 * - the "signing failed" log line is about availability only: a policy refusal does not print it;
 * - a TLS 1.2 ServerKeyExchange is refused locally: no Sign request, the server's log names the
 *   nginx and HAProxy settings.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { keyReferencePem } from '../../src/keyref/keyref.js';
import { cli, UpProcess } from '../services/cluster-harness.js';
import { sample } from '../services/processes.js';
import { eventually, handshake, startNginx, tlsServerRecords, type RunningServer } from '../tls/servers.js';
import { exited, freePort, openssl, SServer } from './openssl.js';

const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));

/** nginx error-log lines of failed handshakes since `from`, as [worker pid, line]. */
function failedHandshakes(log: string, from: number): [string, string][] {
  return log
    .slice(from)
    .split('\n')
    .filter((l) => /SSL_do_handshake\(\) failed/.test(l))
    .map((l) => [/\[\w+\] (\d+)#/.exec(l)?.[1] ?? '?', l]);
}

describe('provider failure modes: fail fast, no retry of answers, availability-only log, TLS 1.2 refused', function () {
  this.timeout(600_000);
  const up = new UpProcess();
  const children: ChildProcess[] = [];
  let tls: string;
  let caCert: string;
  let opensslConf: string;
  let nginx: RunningServer;

  const q = (...args: string[]) => {
    const r = cli(up.dir, ...args);
    assert.equal(r.status, 0, `quorumkey ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const metrics = async () => (await fetch(`http://${up.config().coordinator.http}/metrics`)).text();
  const signRequests = async (result = '') => sample(await metrics(), 'quorumkey_sign_requests_total', `key="tls"${result ? `,result="${result}"` : ''}`);

  before(async function () {
    await up.start(['--signers', '3', '--threshold', '2']);
    // The TLS material (CA, certificate of key 'tls') is ready once up prints the s_client line.
    await up.line(/openssl s_client -connect/);
    tls = join(up.dir, 'tls');
    caCert = join(tls, 'ca.crt');
    opensslConf = join(tls, 'openssl.cnf');
    nginx = await startNginx({ opensslConf, serverCert: join(tls, 'tls.crt'), keyRef: join(tls, 'tls.key.pem') }, 'root root');
    children.push(nginx.process);
    assert.ok((await handshake(nginx.port, caCert)).ok, 'a first handshake');
  });

  after(async function () {
    await nginx?.stop();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await up.stop();
  });

  it('with the coordinator killed, later handshakes fail at once ("circuit open" in the log); restarted, they succeed without restarting nginx', async function () {
    const pid = up.pid('coordinator');
    process.kill(pid, 'SIGKILL');
    await eventually(async () => exited(pid));
    const from = nginx.log().length;
    for (let i = 0; i < 6; i++) assert.ok(!(await handshake(nginx.port, caCert)).ok, 'a handshake without a coordinator');

    const failures = failedHandshakes(nginx.log(), from);
    assert.equal(failures.length, 6, nginx.log().slice(from));
    const byWorker = new Map<string, string[]>();
    for (const [worker, line] of failures) byWorker.set(worker, [...(byWorker.get(worker) ?? []), line]);
    for (const [worker, lines] of byWorker) {
      // A worker's first failure: the transport's reason. Every later one: the circuit, no call made.
      assert.match(lines[0]!, /quorumkey:[^\n]*coordinator unreachable:[^\n]*coordinator\.sock/, `worker ${worker}`);
      for (const line of lines.slice(1)) assert.match(line, /quorumkey:[^\n]*coordinator unavailable \(circuit open\):[^\n]*coordinator\.sock \(key 'tls'\) unreachable for \d+ ms/, `worker ${worker}`);
    }
    assert.ok(failures.length - byWorker.size >= 4);

    const child = spawn(process.execPath, [COORDINATOR_MAIN, '--dir', up.dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => line.startsWith('coordinator ready') && resolve());
      child.once('exit', (code) => reject(new Error(`restarted coordinator exited with ${code}`)));
    });
    writeFileSync(join(up.dir, 'run', 'coordinator.pid'), `${child.pid}\n`);
    const recovered = nginx.log().length;
    // gRPC reconnects in the background; the first handshake on a READY channel closes the circuit.
    await eventually(async () => (await handshake(nginx.port, caCert)).ok);
    for (let i = 0; i < 4; i++) assert.ok((await handshake(nginx.port, caCert)).ok);
    assert.match(nginx.log().slice(recovered), /quorumkey provider\[\d+\]: signing works again: key 'tls'/);
  });

  it('does not retry a coordinator-sent UNAVAILABLE (no usable signer subset) and opens no circuit for it', async function () {
    q('signers', 'quarantine', '2');
    q('signers', 'quarantine', '3');
    try {
      const from = nginx.log().length;
      const before = await signRequests('quorum_insufficient');
      for (let i = 0; i < 4; i++) assert.ok(!(await handshake(nginx.port, caCert)).ok, 'a handshake without a quorum');
      const failures = failedHandshakes(nginx.log(), from);
      assert.equal(failures.length, 4, nginx.log().slice(from));
      for (const [, line] of failures) assert.match(line, /quorumkey:[^\n]*quorum insufficient/);
      // One request per handshake: the answer was not retried.
      assert.equal((await signRequests('quorum_insufficient')) - before, 4);
    } finally {
      q('signers', 'readmit', '2');
      q('signers', 'readmit', '3');
    }
    await eventually(async () => (await handshake(nginx.port, caCert)).ok);
  });

  it('logs "signing failed" for an unreachable coordinator, not for a policy refusal', function () {
    const work = up.dir;
    writeFileSync(join(work, 'data.txt'), 'not a structure the tls key may sign\n');
    const refused = openssl(['dgst', '-sha256', '-sign', join(tls, 'tls.key.pem'), '-out', join(work, 'data.sig'), join(work, 'data.txt')], { conf: opensslConf, cwd: work });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /quorumkey:[^\n]*policy refused/);
    assert.doesNotMatch(refused.stderr, /signing failed|works again/);

    const spki = Buffer.from(q('key', 'show', 'tls', '--pem').replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    writeFileSync(join(work, 'nowhere.pem'), keyReferencePem({ keyId: 'tls', endpoint: `unix:${join(work, 'no-such.sock')}`, spki }));
    const unreachable = openssl(['dgst', '-sha256', '-sign', join(work, 'nowhere.pem'), '-out', join(work, 'data.sig'), join(work, 'data.txt')], { conf: opensslConf, cwd: work });
    assert.notEqual(unreachable.status, 0);
    assert.match(unreachable.stderr, /quorumkey provider\[\d+\]: signing failed [^\n]*no-such\.sock/);
  });

  it('refuses a TLS 1.2 ServerKeyExchange locally, naming the nginx and HAProxy settings', async function () {
    const port = await freePort();
    // No -tls1_3: this s_server accepts TLS 1.2 as well.
    const server = new SServer(port, ['-cert', join(tls, 'tls.crt'), '-key', join(tls, 'tls.key.pem'), '-www'], opensslConf, up.dir);
    await server.start();
    try {
      const requests = await signRequests();
      const records = tlsServerRecords(up.dir);
      const r = openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2', '-CAfile', caCert], { conf: '/dev/null', cwd: up.dir, input: '' });
      assert.notEqual(r.status, 0, 'a TLS 1.2 handshake succeeded');
      const log = await server.logged(/TLS 1\.2 ServerKeyExchange refused/);
      assert.match(log, /quorumkey:[^\n]*TLS 1\.2 ServerKeyExchange refused: allow only TLS 1\.3:[^\n]*nginx 'ssl_protocols TLSv1\.3;'[^\n]*HAProxy 'ssl-min-ver TLSv1\.3'/);
      assert.doesNotMatch(log, /signing failed/);
      // Refused before any round trip.
      assert.equal(await signRequests(), requests);
      assert.equal(tlsServerRecords(up.dir), records);
      // The same server signs TLS 1.3 (and that is counted).
      const ok = openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_3', '-CAfile', caCert, '-verify_return_error'], { conf: '/dev/null', cwd: up.dir, input: '' });
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      assert.equal(await signRequests(), requests + 1);
    } finally {
      await server.stop();
    }
  });
});
