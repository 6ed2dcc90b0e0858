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
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureClusterPki, loadIdentity } from '../../src/pki/cluster-ca.js';
import { services } from '../../src/transport/proto.js';
import { channelOptions, clientCredentials } from '../../src/transport/tls.js';
import { certificateVerifyTbs, cli, pool, SIGNER, signOverGrpc, signOverHttp, UpProcess } from './cluster-harness.js';

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

  it('with three signers down, requests fail fast with UNAVAILABLE / 409 naming the missing quorum', async function () {
    process.kill(up.pid('signer-4'), 'SIGKILL');
    process.kill(up.pid('signer-5'), 'SIGKILL');
    let failure: Awaited<ReturnType<typeof signOverGrpc>> | undefined;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const result = await signOverGrpc(coordinator, 'tls', certificateVerifyTbs());
      if (result.ok) {
        assert.fail('signed with only two of five signers alive');
      }
      if (result.code === grpc.status.UNAVAILABLE && /quorum insufficient/.test(result.details ?? '')) {
        failure = result;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(failure, 'never answered UNAVAILABLE: quorum insufficient');
    assert.ok(failure.ms < 2000, `failing took ${failure.ms} ms`);
    assert.match(failure.details!, /needs 3 of signers/);
    const res = await signOverHttp(up.config().coordinator.http, { key_id: 'tls', tbs: certificateVerifyTbs().toString('base64') }, token);
    assert.equal(res.status, 409);
    assert.match(String(res.json.message), /quorum insufficient/);
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
    const status = JSON.parse(cli(up.dir, 'status', '--json').stdout) as { signers: { index: number; up: boolean; quarantined: boolean }[] };
    await new Promise((r) => setTimeout(r, 2000));
    const again = JSON.parse(cli(up.dir, 'status', '--json').stdout) as typeof status;
    assert.ok(again.signers.every((s) => s.up && !s.quarantined), JSON.stringify(again.signers));
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

  it('every mTLS port refuses a client without a certificate or with one from another CA', async function () {
    const config = up.config();
    const foreign = mkdtempSync(join(tmpdir(), 'qk-foreign-ca-'));
    ensureClusterPki(foreign, ['coordinator', 'admin']);
    const clusterCa = loadIdentity(join(up.dir, 'pki'), 'admin').ca;
    const noCert = grpc.credentials.createSsl(clusterCa);
    const otherCa = clientCredentials({ ...loadIdentity(foreign, 'admin'), ca: clusterCa });
    const targets: [string, string, grpc.ServiceClientConstructor, string][] = [
      ...config.signers.map((s) => [s.endpoint, `signer-${s.index}`, services.Signer, 'Health'] as [string, string, grpc.ServiceClientConstructor, string]),
      [config.coordinator.grpc, 'coordinator', services.Admin, 'ListKeys'],
    ];
    for (const [endpoint, name, Service, method] of targets) {
      for (const [label, creds] of [['no client certificate', noCert], ['certificate from another CA', otherCa]] as const) {
        const client = new Service(endpoint, creds, channelOptions(name));
        const err = await new Promise<grpc.ServiceError | null>((resolve) =>
          (client as unknown as Record<string, Function>)[method]!({}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e: grpc.ServiceError | null) => resolve(e)),
        );
        client.close();
        assert.ok(err, `${name} at ${endpoint} answered a client with ${label}`);
      }
    }
  });

  it('stops cleanly on SIGINT, and a second up reuses the key (without --http-sign: HTTP signing off)', async function () {
    const pids = ['signer-1', 'signer-3', 'coordinator', 'tls-server'].map((n) => up.pid(n));
    for (const child of restarted) child.kill('SIGTERM');
    assert.equal(await up.stop(), 0);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'a child process survived');
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
