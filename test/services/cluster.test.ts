/**
 * The embedded default, end to end, with real processes: `quorumkey up` (5 signers, coordinator,
 * key 'tls' 3-of-5), signatures over gRPC and HTTP verified by OpenSSL against `key show --pem`,
 * signer crashes under load, loss of quorum, recovery, the audit log, mTLS on every port, and a
 * clean stop followed by a second `up` that reuses the key.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureClusterPki, loadIdentity } from '../../src/pki/cluster-ca.js';
import { services } from '../../src/transport/proto.js';
import { channelOptions, clientCredentials } from '../../src/transport/tls.js';
import { waitFor } from '../coordinator/clients.js';
import { certificateVerifyTbs, cli, pool, SIGNER, signOverGrpc, signOverHttp, UpProcess } from './cluster-harness.js';
import { sample, signingWork } from './processes.js';

/**
 * A TLS connection (ALPN h2, as gRPC makes it) to an mTLS port, with or without a client
 * certificate: the TLS alert the server sent, if any, and whether the server then spoke HTTP/2
 * (its SETTINGS frame), which it does only to an accepted client.
 */
function tlsOutcome(endpoint: string, serverName: string, ca: Buffer, client?: { cert: Buffer; key: Buffer }): Promise<{ alert?: string; http2: boolean }> {
  const [host, port] = [endpoint.slice(0, endpoint.lastIndexOf(':')), Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host, port, ca, servername: serverName, ALPNProtocols: ['h2'], ...(client ? { cert: client.cert, key: client.key } : {}) });
    let alert: string | undefined;
    // Only against a hang: an accepted client hears the server at once, a refused one is closed.
    const timer = setTimeout(() => (socket.destroy(), reject(new Error(`${serverName}: neither answered nor closed`))), 20_000);
    socket.once('data', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ http2: true });
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (alert ??= e.code));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ http2: false, ...(alert?.startsWith('ERR_SSL_') ? { alert } : {}) });
    });
  });
}

describe('quorumkey up: the embedded 3-of-5 cluster', function () {
  this.timeout(600_000);
  const up = new UpProcess();
  const restarted: ChildProcess[] = [];
  let publicKeyPem: string;
  let coordinator: grpc.Client;

  const verifies = (tbs: Buffer, der: Buffer) => verify('sha256', tbs, createPublicKey(publicKeyPem), der);

  let token: string;

  before(async function () {
    await up.start(['--http-sign', 'token']);
    coordinator = up.coordinator();
    token = readFileSync(join(up.dir, 'http-sign.token'), 'utf8').trim();
  });

  after(async function () {
    coordinator?.close();
    for (const child of restarted) if (child.exitCode === null) child.kill('SIGKILL');
    await up.stop();
  });

  it('prints one ready line naming the sign socket and the HTTP endpoint', function () {
    assert.match(up.readyLine, /^quorumkey ready: sign=unix:\/.+coordinator\.sock http=http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('key show --pem gives the SubjectPublicKeyInfo of key tls', function () {
    const show = cli(up.dir, 'key', 'show', 'tls', '--pem');
    assert.equal(show.status, 0, show.stderr);
    publicKeyPem = show.stdout;
    const key = createPublicKey(publicKeyPem);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const list = cli(up.dir, 'key', 'list');
    assert.match(list.stdout, /^tls +3-of-5 signers \[1,2,3,4,5\]/m);
  });

  it('300 signatures over gRPC (unix socket), each verified by OpenSSL', async function () {
    const results = await pool(300, 8, async () => {
      const tbs = certificateVerifyTbs();
      return { tbs, result: await signOverGrpc(coordinator, 'tls', tbs) };
    });
    for (const { tbs, result } of results) {
      assert.ok(result.ok, `sign failed: ${result.details}`);
      assert.ok(verifies(tbs, result.der!), 'OpenSSL rejects a signature');
      assert.equal(result.quorum!.length, 3);
    }
  });

  it('100 signatures over POST /v1/sign, each verified by OpenSSL', async function () {
    const http = up.config().coordinator.http;
    const results = await pool(100, 4, async () => {
      const tbs = certificateVerifyTbs();
      return { tbs, res: await signOverHttp(http, { key_id: 'tls', tbs: tbs.toString('base64') }, token) };
    });
    for (const { tbs, res } of results) {
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal(res.json.context, 'tls-server');
      assert.ok(verifies(tbs, Buffer.from(res.json.signature as string, 'hex')));
    }
  });

  it('a signer killed with SIGKILL during load: no invalid signature, at least 99% succeed', async function () {
    const victim = up.pid('signer-2');
    let done = 0;
    const results = await pool(200, 8, async () => {
      const tbs = certificateVerifyTbs();
      const result = await signOverGrpc(coordinator, 'tls', tbs);
      if (++done === 40) process.kill(victim, 'SIGKILL');
      return { tbs, result };
    });
    const ok = results.filter((r) => r.result.ok);
    for (const { tbs, result } of ok) assert.ok(verifies(tbs, result.der!), 'an invalid signature left the coordinator');
    assert.ok(ok.length >= 198, `only ${ok.length}/200 succeeded: ${results.find((r) => !r.result.ok)?.result.details}`);
  });

  it('with three signers down, requests fail with UNAVAILABLE / 409 naming the missing quorum, without contacting a signer', async function () {
    process.kill(up.pid('signer-4'), 'SIGKILL');
    process.kill(up.pid('signer-5'), 'SIGKILL');
    const metrics = async () => (await fetch(`http://${up.config().coordinator.http}/metrics`)).text();
    // Once the coordinator sees them down (signer 2 died in the test before), it refuses before asking any signer.
    await waitFor('signers 2, 4 and 5 down at the coordinator', async () => {
      const text = await metrics();
      return [2, 4, 5].every((i) => sample(text, 'quorumkey_signer_up', `signer="${i}"`) === 0);
    }, 30_000, 200);
    const work = signingWork(await metrics());
    const failure = await signOverGrpc(coordinator, 'tls', certificateVerifyTbs());
    assert.ok(!failure.ok, 'signed with only two of five signers alive');
    assert.equal(failure.code, grpc.status.UNAVAILABLE, failure.details);
    assert.match(failure.details!, /^quorum insufficient: key 'tls' needs 3 of signers \[1\.\.5\], healthy: \[1,3\]$/);
    const res = await signOverHttp(up.config().coordinator.http, { key_id: 'tls', tbs: certificateVerifyTbs().toString('base64') }, token);
    assert.equal(res.status, 409);
    assert.match(String(res.json.message), /quorum insufficient/);
    assert.deepEqual(signingWork(await metrics()), work, 'the refused requests cost the signers nothing');
  });

  it('restarted signers bring the service back without operator action', async function () {
    for (const index of [2, 4, 5]) {
      restarted.push(spawn(process.execPath, [SIGNER, '--dir', up.dir, '--index', String(index)], { stdio: 'ignore' }));
    }
    const deadline = Date.now() + 60_000;
    let ok = 0;
    while (Date.now() < deadline && ok < 20) {
      const tbs = certificateVerifyTbs();
      const result = await signOverGrpc(coordinator, 'tls', tbs);
      if (result.ok) {
        assert.ok(verifies(tbs, result.der!));
        ok++;
      } else await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(ok, 20, 'service did not recover');
    type Status = { signers: { index: number; up: boolean; quarantined: boolean }[] };
    await waitFor('every signer up and not quarantined', () => (JSON.parse(cli(up.dir, 'status', '--json').stdout) as Status).signers.every((s) => s.up && !s.quarantined), 60_000, 500);
  });

  it('audit verify passes on the real log and fails on an edited or a deleted record', function () {
    const good = cli(up.dir, 'audit', 'verify');
    assert.equal(good.status, 0, good.stderr);
    const records = Number(/(\d+) records/.exec(good.stdout)![1]);
    assert.ok(records >= 300 + 100 + 198 + 20, `only ${records} audit records`);
    const lines = readFileSync(join(up.dir, 'coordinator', 'audit.log'), 'utf8').trimEnd().split('\n');
    const tamperedDir = (name: string, content: string) => {
      const dir = mkdtempSync(join(tmpdir(), `qk-audit-${name}-`));
      mkdirSync(join(dir, 'coordinator'));
      writeFileSync(join(dir, 'coordinator', 'audit.log'), content);
      copyFileSync(join(up.dir, 'cluster.json'), join(dir, 'cluster.json'));
      return dir;
    };
    // The certificate records of the TLS endpoint interleave with the signatures: edit a tls-server one.
    const target = lines.findIndex((l, i) => i >= 10 && l.includes('"context":"tls-server"'));
    const edited = [...lines];
    edited[target] = edited[target]!.replace('"context":"tls-server"', '"context":"x509-cert"');
    assert.notEqual(edited[target], lines[target]);
    const editedRun = cli(tamperedDir('edit', edited.join('\n') + '\n'), 'audit', 'verify');
    assert.notEqual(editedRun.status, 0);
    assert.match(editedRun.stderr, new RegExp(`line ${target + 1}\\b`));
    const deleted = lines.filter((_, i) => i !== 20);
    const deletedRun = cli(tamperedDir('delete', deleted.join('\n') + '\n'), 'audit', 'verify');
    assert.notEqual(deletedRun.status, 0);
    assert.match(deletedRun.stderr, /line 21/);
  });

  it('every mTLS port refuses a client without a certificate or with one from another CA in the TLS handshake, and answers a valid identity', async function () {
    const config = up.config();
    const pki = join(up.dir, 'pki');
    const foreign = mkdtempSync(join(tmpdir(), 'qk-foreign-ca-'));
    ensureClusterPki(foreign, ['coordinator', 'admin']);
    const clusterCa = loadIdentity(pki, 'admin').ca;
    const outsider = loadIdentity(foreign, 'admin');
    // Each port with the identity that may call it: signers answer the coordinator, Admin answers admin.
    const targets: [string, string, grpc.ServiceClientConstructor, string, string][] = [
      ...config.signers.map((s) => [s.endpoint, `signer-${s.index}`, services.Signer, 'Health', 'coordinator'] as [string, string, grpc.ServiceClientConstructor, string, string]),
      [config.coordinator.grpc, 'coordinator', services.Admin, 'ListKeys', 'admin'],
    ];
    const call = (endpoint: string, name: string, Service: grpc.ServiceClientConstructor, method: string, creds: grpc.ChannelCredentials) => {
      const client = new Service(endpoint, creds, channelOptions(name));
      return new Promise<grpc.ServiceError | null>((resolve) =>
        (client as unknown as Record<string, Function>)[method]!({}, new grpc.Metadata(), { deadline: Date.now() + 20_000 }, (e: grpc.ServiceError | null) => resolve(e)),
      ).finally(() => client.close());
    };
    for (const [endpoint, name, Service, method, identity] of targets) {
      const valid = loadIdentity(pki, identity);
      // The TLS layer itself: no certificate gets the TLS 1.3 alert; a certificate of another CA
      // gets the connection closed right after the handshake; neither hears the server's HTTP/2.
      const none = await tlsOutcome(endpoint, name, clusterCa);
      assert.equal(none.alert, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', `${name} without a client certificate`);
      assert.equal(none.http2, false, `${name} spoke HTTP/2 to a client without a certificate`);
      const foreignCa = await tlsOutcome(endpoint, name, clusterCa, outsider);
      assert.equal(foreignCa.http2, false, `${name} spoke HTTP/2 to a client of another CA`);
      // Positive control: the same connection with a valid identity hears the server's HTTP/2 settings.
      assert.deepEqual(await tlsOutcome(endpoint, name, clusterCa, valid), { http2: true }, `${name} with '${identity}'`);
      // And over gRPC: refused without reaching the service, answered with the valid identity.
      for (const [label, creds] of [['no client certificate', grpc.credentials.createSsl(clusterCa)], ['certificate from another CA', clientCredentials({ ...outsider, ca: clusterCa })]] as const) {
        const err = await call(endpoint, name, Service, method, creds);
        assert.ok(err, `${name} at ${endpoint} answered a client with ${label}`);
        assert.equal(err.code, grpc.status.UNAVAILABLE, `${name}, ${label}: no connection, so no status from the service (${err.details})`);
      }
      const answered = await call(endpoint, name, Service, method, clientCredentials(valid));
      assert.equal(answered, null, `${name} at ${endpoint} refused '${identity}': ${answered?.details}`);
    }
  });

  it('stops cleanly on SIGINT, and a second up reuses the key (without --http-sign: HTTP signing off)', async function () {
    const pids = ['signer-1', 'signer-3', 'coordinator', 'tls-server'].map((n) => up.pid(n));
    for (const child of restarted) child.kill('SIGTERM');
    assert.equal(await up.stop(), 0);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), (e: NodeJS.ErrnoException) => e.code === 'ESRCH', `process ${pid} survived`);
    const before = publicKeyPem;
    const second = new UpProcess(up.dir);
    await second.start();
    try {
      assert.equal(cli(up.dir, 'key', 'show', 'tls', '--pem').stdout, before);
      const client = second.coordinator();
      const tbs = certificateVerifyTbs();
      const result = await signOverGrpc(client, 'tls', tbs);
      client.close();
      assert.ok(result.ok && verifies(tbs, result.der!), result.details);
      const off = await signOverHttp(second.config().coordinator.http, { key_id: 'tls', tbs: certificateVerifyTbs().toString('base64') }, token);
      assert.equal(off.status, 404);
      assert.match(String(off.json.message), /HTTP signing is off/);
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });
});
