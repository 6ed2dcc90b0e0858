/**
 * The coordinator in-process against in-process signer stand-ins (real gRPC + mTLS, the real
 * protocol underneath; test/coordinator/fake-signers.ts). Covers what needs fault injection that
 * real signer processes cannot be asked for: corrupted online shares, wrong nonces, blames during
 * presign, readmission, plus the Admin API, policy, statuses, pools and the audit log.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { p256 } from '@noble/curves/nist.js';
import { verifyAuditLog } from '../../src/audit/log.js';
import { paths, writeClusterConfig, type ClusterConfig } from '../../src/cluster/config.js';
import { tls13CertificateVerifyContent } from '../../src/coordinator/classify.js';
import { jsonLogger, silentLogger } from '../../src/coordinator/log.js';
import { Coordinator } from '../../src/coordinator/service.js';
import { ensureClusterPki, signerName } from '../../src/pki/cluster-ca.js';
import {
  expectStatus,
  freePort,
  httpJson,
  socketClient,
  tlsClient,
  unary,
  verifyTbs,
  waitFor,
  type AnyClient,
  type ClusterStatusWire,
  type KeyInfoWire,
  type SignResponseWire,
} from '../coordinator/clients.js';
import { FakeSignerCluster } from '../coordinator/fake-signers.js';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';

const cv = () => Buffer.from(tls13CertificateVerifyContent(randomBytes(32)));

describe('coordinator service with in-process signers', function () {
  this.timeout(300_000);
  let root: string;
  let dir: string;
  let pki: string;
  let fakes: FakeSignerCluster;
  let coordinator: Coordinator;
  let admin: AnyClient;
  let client: AnyClient;
  let tlsKey: KeyInfoWire;
  let signed = 0;

  const sign = async (keyId: string, tbs: Buffer, alg = 'SHA256'): Promise<SignResponseWire> => {
    const res = await unary<SignResponseWire>(client, 'Sign', { key_id: keyId, tbs, digest_alg: alg });
    signed++;
    return res;
  };
  const status = () => unary<ClusterStatusWire>(admin, 'Status', {});

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'qk-coord-'));
    dir = join(root, 'c');
    mkdirSync(dir, { mode: 0o700 });
    pki = paths(dir).pki;
    ensureClusterPki(pki, [1, 2, 3].map(signerName).concat(['coordinator', 'admin', 'provider']));
    const ports = new Map<number, number>();
    for (const i of [1, 2, 3]) ports.set(i, await freePort());
    const config: ClusterConfig = {
      signers: [1, 2, 3].map((index) => ({ index, endpoint: `127.0.0.1:${ports.get(index)}`, http: `127.0.0.1:${0}`, seal: { mode: 'passphrase' as const } })),
      coordinator: { grpc: `127.0.0.1:${await freePort()}`, socket: paths(dir).socket, http: `127.0.0.1:${await freePort()}` },
      pool: { target: 6, batch: 3, refillConcurrency: 2, subsets: 3 },
      sessionTimeoutMs: 10_000,
    };
    writeClusterConfig(dir, config);
    fakes = new FakeSignerCluster(pki, ports);
    await fakes.start();
    // The protocol runs in this process too and blocks it for seconds: generous probe deadlines.
    coordinator = await Coordinator.start({ dir, log: process.env.QK_TEST_LOG ? jsonLogger('coordinator', 'debug') : silentLogger, signers: { healthIntervalMs: 200, healthTimeoutMs: 10_000 } });
    admin = tlsClient('Admin', pki, coordinator.endpoints.grpc, 'admin');
    client = socketClient(coordinator.endpoints.socket);
    await waitFor('signers up', () => coordinator.signers.all().every((s) => s.up));
  });

  after(async () => {
    admin?.close();
    client?.close();
    await coordinator?.stop(2000);
    fakes?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('prints a ready line naming its endpoints, socket mode 0660', () => {
    assert.match(coordinator.readyLine, /^coordinator ready sign=unix:\/\S+ grpc=127\.0\.0\.1:\d+ http=http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(statSync(coordinator.endpoints.socket).mode & 0o777, 0o660);
  });

  it('CreateKey validates its input', async () => {
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'bad id', threshold: 2, signer_count: 3 }), grpc.status.INVALID_ARGUMENT, /key_id/);
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'k', threshold: 1, signer_count: 3 }), grpc.status.INVALID_ARGUMENT, /threshold 1 of 3/);
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'k', threshold: 4, signer_count: 3 }), grpc.status.INVALID_ARGUMENT);
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'k', threshold: 2, signers: [1, 7] }), grpc.status.INVALID_ARGUMENT, /signers \[7\] are not in the cluster/);
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'k', threshold: 2, signers: [1, 1] }), grpc.status.INVALID_ARGUMENT, /twice/);
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'k', threshold: 2, signer_count: 3, policy: ['tls-client'] }), grpc.status.INVALID_ARGUMENT, /unknown policy context/);
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'k', threshold: 2 }), grpc.status.INVALID_ARGUMENT, /signer_count/);
  });

  it('creates a 2-of-3 key by DKG on every holder; a second CreateKey is ALREADY_EXISTS', async () => {
    tlsKey = await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'tls', threshold: 2, signer_count: 3 }, 120_000);
    assert.equal(tlsKey.threshold, 2);
    assert.deepEqual(tlsKey.signers, [1, 2, 3]);
    assert.deepEqual(tlsKey.policy, ['tls-server']);
    assert.equal(tlsKey.public_key.length, 33);
    assert.equal(tlsKey.epoch, 0);
    for (const i of [1, 2, 3]) assert.ok(fakes.signer(i).shares.has('tls'));
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'tls', threshold: 2, signer_count: 3 }), grpc.status.ALREADY_EXISTS, /already exists/);
    const got = await unary<KeyInfoWire>(client, 'GetKey', { key_id: 'tls' });
    assert.deepEqual(got.spki_der, tlsKey.spki_der);
    await expectStatus(unary(client, 'GetKey', { key_id: 'nope' }), grpc.status.NOT_FOUND, /unknown key 'nope'/);
    const list = await unary<{ keys: KeyInfoWire[] }>(admin, 'ListKeys', {});
    assert.deepEqual(list.keys.map((k) => k.key_id), ['tls']);
  });

  it('signs TLS 1.3 CertificateVerify content over the unix socket; signatures verify with OpenSSL', async () => {
    for (let n = 0; n < 12; n++) {
      const tbs = cv();
      const res = await sign('tls', tbs);
      assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der), `signature ${n} verifies`);
      assert.equal(res.context, 'tls-server');
      assert.equal(res.quorum.length, 2);
      assert.deepEqual(res.public_key, tlsKey.public_key);
      assert.equal(res.r.length, 32);
      assert.equal(res.s.length, 32);
      assert.ok(BigInt('0x' + res.s.toString('hex')) <= p256.Point.CURVE().n >> 1n, 'low-s');
      assert.equal(res.audit_seq, signed);
    }
    // SHA-384 transcript hash signed with SHA-384.
    const tbs = Buffer.from(tls13CertificateVerifyContent(randomBytes(48)));
    const res = await sign('tls', tbs, 'SHA384');
    assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der, 'sha384'));
  });

  it('keeps pools at target for the fastest subsets', async () => {
    await waitFor('pools refilled', async () => {
      const s = await status();
      return s.pools.filter((p) => p.key_id === 'tls' && p.depth === 6).length === 3;
    });
    const metrics = await httpJson(`http://${coordinator.endpoints.http}/metrics`);
    assert.match(metrics.text, /quorumkey_pool_depth\{key="tls",subset="1,2"\} 6/);
    assert.match(metrics.text, /quorumkey_presignatures_generated_total\{key="tls"\} \d+/);
  });

  it('refuses what the policy does not allow, and malformed requests, and keeps serving', async () => {
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: Buffer.from('hello') }), grpc.status.PERMISSION_DENIED, /policy refused: key 'tls' allows tls-server, request is unrecognised content/);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: Buffer.from(tls13CertificateVerifyContent(randomBytes(32), 'client')) }), grpc.status.PERMISSION_DENIED);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', digest: randomBytes(32) }), grpc.status.PERMISSION_DENIED, /request is raw-digest/);
    await expectStatus(unary(client, 'Sign', { key_id: 'nope', tbs: cv() }), grpc.status.NOT_FOUND, /unknown key 'nope'/);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls' }), grpc.status.INVALID_ARGUMENT, /exactly one of tbs \/ digest/);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: cv(), digest: randomBytes(32) }), grpc.status.INVALID_ARGUMENT);
    await expectStatus(unary(client, 'Sign', { key_id: '../etc', tbs: cv() }), grpc.status.INVALID_ARGUMENT, /key_id/);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: cv(), digest_alg: 9 }), grpc.status.INVALID_ARGUMENT, /digest_alg/);
    await sign('tls', cv());
  });

  it('a raw-digest key signs digests of the digest algorithm length only', async () => {
    const raw = await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'raw', threshold: 2, signers: [1, 3], policy: ['raw-digest', 'x509-cert'] }, 120_000);
    assert.deepEqual(raw.signers, [1, 3]);
    const digest = createHash('sha256').update('m').digest();
    const res = await unary<SignResponseWire>(client, 'Sign', { key_id: 'raw', digest });
    signed++;
    assert.deepEqual(res.quorum, [1, 3]);
    assert.ok(p256.verify(res.signature_der, digest, raw.public_key, { prehash: false, format: 'der' }));
    await expectStatus(unary(client, 'Sign', { key_id: 'raw', digest: digest.subarray(0, 31) }), grpc.status.INVALID_ARGUMENT, /digest must be 32 bytes for sha256, got 31/);
    await expectStatus(unary(client, 'Sign', { key_id: 'raw', digest, digest_alg: 'SHA384' }), grpc.status.INVALID_ARGUMENT, /48 bytes/);
    const d512 = createHash('sha512').update('m').digest();
    const r512 = await unary<SignResponseWire>(client, 'Sign', { key_id: 'raw', digest: d512, digest_alg: 'SHA512' });
    signed++;
    // FIPS 186-5: the leftmost 256 bits of the digest.
    assert.ok(p256.verify(r512.signature_der, d512.subarray(0, 32), raw.public_key, { prehash: false, format: 'der' }));
  });

  it('an mTLS caller with a certificate may sign; a signer identity may not; Admin wants an admin identity', async () => {
    const provider = tlsClient('Coordinator', pki, coordinator.endpoints.grpc, 'provider');
    const tbs = cv();
    const res = await unary<SignResponseWire>(provider, 'Sign', { key_id: 'tls', tbs });
    signed++;
    assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der));
    provider.close();
    const rogue = tlsClient('Coordinator', pki, coordinator.endpoints.grpc, 'signer-1');
    await expectStatus(unary(rogue, 'Sign', { key_id: 'tls', tbs }), grpc.status.PERMISSION_DENIED, /may not request signatures/);
    rogue.close();
    const notAdmin = tlsClient('Admin', pki, coordinator.endpoints.grpc, 'provider');
    await expectStatus(unary(notAdmin, 'Status', {}), grpc.status.PERMISSION_DENIED, /may not use the Admin service/);
    notAdmin.close();
  });

  it('a corrupted online share never yields a signature: the attempt is retried on another subset', async () => {
    // Corrupt a member of the subset the coordinator prefers right now.
    const bad = coordinator.pools.ranked('tls')[0]![1]!;
    fakes.signer(bad).faults.badShare = true;
    try {
      for (let n = 0; n < 6; n++) {
        const tbs = cv();
        const res = await sign('tls', tbs);
        assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der));
        assert.ok(!res.quorum.includes(bad), 'only the subset without the bad signer can produce a valid signature');
      }
      const metrics = await httpJson(`http://${coordinator.endpoints.http}/metrics`);
      assert.match(metrics.text, /quorumkey_sign_retries_total\{key="tls"\} [1-9]/);
      assert.match(metrics.text, new RegExp(`quorumkey_signer_suspected_total\\{signer="${bad}"\\} [1-9]`));
      assert.equal(coordinator.signers.state(bad).quarantined, false, 'no single culprit: nobody is quarantined');
      // Subsets that produced invalid signatures are ranked last.
      assert.ok(!coordinator.pools.ranked('tls')[0]!.includes(bad));
    } finally {
      fakes.signer(bad).faults.badShare = false;
    }
  });

  it('a signer sending a wrong nonce is named by the combiner and quarantined until readmitted', async () => {
    fakes.signer(3).faults.wrongNonce = true;
    try {
      // Sign until a subset with signer 3 is used (the fastest subset may not include it).
      await waitFor('signer 3 quarantined', async () => {
        const tbs = cv();
        const res = await sign('tls', tbs);
        assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der));
        return coordinator.signers.state(3).quarantined;
      });
    } finally {
      fakes.signer(3).faults.wrongNonce = false;
    }
    const s = await status();
    const s3 = s.signers.find((x) => x.index === 3)!;
    assert.equal(s3.quarantined, true);
    assert.equal(s3.healthy, false);
    assert.match(s3.quarantine_reason, /nonce-inconsistent/);
    // Never selected while quarantined.
    for (let n = 0; n < 4; n++) assert.ok(!(await sign('tls', cv())).quorum.includes(3));
    const after = await unary<ClusterStatusWire>(admin, 'Readmit', { index: 3 });
    assert.equal(after.signers.find((x) => x.index === 3)!.quarantined, false);
    assert.deepEqual(fakes.signer(1).readmitted.slice(-1), [3]);
    assert.deepEqual(fakes.signer(2).readmitted.slice(-1), [3]);
  });

  it('a blame during presign quarantines the culprit; Admin.Quarantine works by hand', async () => {
    fakes.signer(1).faults.blamePeerInPresign = 2;
    try {
      coordinator.pools.dropKey('tls', 'failed-sign');
      await waitFor('signer 2 quarantined by blame', () => coordinator.signers.state(2).quarantined);
    } finally {
      fakes.signer(1).faults.blamePeerInPresign = undefined;
    }
    assert.match(coordinator.signers.state(2).quarantineReason, /blamed by signer 1 during Presign: vole-check-failed/);
    const metrics = await httpJson(`http://${coordinator.endpoints.http}/metrics`);
    assert.match(metrics.text, /quorumkey_blames_total\{signer="2"\} [1-9]/);
    assert.match(metrics.text, /quorumkey_signer_quarantined\{signer="2"\} 1/);
    // Signing goes on with [1,3].
    const res = await sign('tls', cv());
    assert.deepEqual(res.quorum, [1, 3]);
    await unary(admin, 'Readmit', { index: 2 });
    const q = await unary<ClusterStatusWire>(admin, 'Quarantine', { index: 1 });
    assert.equal(q.signers.find((x) => x.index === 1)!.quarantined, true);
    assert.deepEqual((await sign('tls', cv())).quorum, [2, 3]);
    // 'raw' is held by [1,3] only: with 1 quarantined there is no quorum.
    await expectStatus(
      unary(client, 'Sign', { key_id: 'raw', digest: randomBytes(32) }),
      grpc.status.UNAVAILABLE,
      /^quorum insufficient: key 'raw' needs 2 of signers \[1,3\], healthy: \[3\], quarantined: \[1\]$/,
    );
    await unary(admin, 'Readmit', { index: 1 });
    await expectStatus(unary(admin, 'Quarantine', { index: 9 }), grpc.status.NOT_FOUND);
  });

  it('signing continues with one signer down and fails fast without quorum; recovers on restart', async () => {
    fakes.signer(3).stop();
    for (let n = 0; n < 5; n++) {
      const tbs = cv();
      const res = await sign('tls', tbs);
      assert.deepEqual(res.quorum, [1, 2]);
      assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der));
    }
    fakes.signer(2).stop();
    const t0 = Date.now();
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: cv() }), grpc.status.UNAVAILABLE, /^quorum insufficient: key 'tls' needs 2 of signers \[1..3\], healthy: \[1\]/);
    assert.ok(Date.now() - t0 < 5000, 'fails fast');
    const h = await httpJson(`http://${coordinator.endpoints.http}/healthz`);
    assert.equal(h.status, 503);
    assert.equal(h.json.status, 'unavailable');
    const http409 = await httpJson(`http://${coordinator.endpoints.http}/v1/sign`, 'POST', JSON.stringify({ key_id: 'tls', tbs: cv().toString('base64') }));
    assert.equal(http409.status, 409);
    assert.equal(http409.json.error, 'quorum_insufficient');
    const bootBefore = coordinator.signers.bootId(2);
    await fakes.signer(2).restart();
    await fakes.signer(3).restart();
    await waitFor('signers back', () => coordinator.signers.healthy(2) && coordinator.signers.healthy(3) && coordinator.signers.bootId(2) !== bootBefore);
    for (let n = 0; n < 6; n++) {
      const tbs = cv();
      const res = await sign('tls', tbs);
      assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der));
    }
    const metrics = await httpJson(`http://${coordinator.endpoints.http}/metrics`);
    assert.match(metrics.text, /quorumkey_signer_restarts_total\{signer="2"\} 1/);
  });

  it('empty pools: the sign path presigns inline', async () => {
    // Empty every pool of the key and hold the refills back.
    coordinator.pools.suspend('tls', true);
    try {
      coordinator.pools.dropKey('tls', 'failed-sign');
      const count = async () => Number((await httpJson(`http://${coordinator.endpoints.http}/metrics`)).text.match(/quorumkey_sign_inline_presign_total\{key="tls"\} (\d+)/)?.[1] ?? 0);
      const before = await count();
      for (let n = 0; n < 3; n++) {
        const tbs = cv();
        const res = await sign('tls', tbs);
        assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der));
      }
      assert.equal(await count(), before + 3);
      assert.equal(coordinator.pools.totalDepth('tls'), 0);
    } finally {
      coordinator.pools.suspend('tls', false);
    }
  });

  it('HTTP: /healthz, /metrics and POST /v1/sign with its error statuses', async () => {
    const base = `http://${coordinator.endpoints.http}`;
    const h = await httpJson(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(h.json.status, 'ok');
    const tbs = cv();
    const ok = await httpJson(`${base}/v1/sign`, 'POST', JSON.stringify({ key_id: 'tls', tbs: tbs.toString('base64'), context: 'tls-server' }));
    assert.equal(ok.status, 200, ok.text);
    signed++;
    assert.ok(verifyTbs(tlsKey.spki_der, tbs, Buffer.from(ok.json.signature as string, 'hex')));
    assert.equal(ok.json.pubkey, tlsKey.public_key.toString('hex'));
    assert.equal((ok.json.r as string).length, 64);
    assert.equal((ok.json.precompute_id as string).length > 0, true);
    assert.equal(typeof ok.json.timestamp, 'number');
    assert.equal((ok.json.quorum as number[]).length, 2);
    const post = (body: unknown) => httpJson(`${base}/v1/sign`, 'POST', typeof body === 'string' ? body : JSON.stringify(body));
    assert.equal((await post('{not json')).status, 400);
    assert.equal((await post({ key_id: 'tls', hash: 'xyz' })).status, 400);
    assert.equal((await post({ key_id: 'raw', hash: 'ab'.repeat(31) })).status, 400);
    assert.equal((await post({ key_id: 'tls', tbs: tbs.toString('base64'), context: 'x509-cert' })).status, 400);
    const nf = await post({ key_id: 'nope', tbs: tbs.toString('base64') });
    assert.equal(nf.status, 404);
    assert.equal(nf.json.error, 'not_found');
    const pd = await post({ key_id: 'tls', tbs: Buffer.from('hello').toString('base64') });
    assert.equal(pd.status, 403);
    assert.match(pd.json.message as string, /policy refused/);
    const big = await post({ key_id: 'tls', tbs: Buffer.alloc(70_000).toString('base64') });
    assert.equal(big.status, 413);
    assert.equal((await httpJson(`${base}/v1/sign`)).status, 405);
    assert.equal((await httpJson(`${base}/nothing`)).status, 404);
    const digest = createHash('sha256').update('x').digest();
    const raw = await post({ key_id: 'raw', hash: digest.toString('hex') });
    assert.equal(raw.status, 200, raw.text);
    signed++;
    assert.equal(raw.json.context, 'raw-digest');
  });

  it('RefreshKey moves to the next epoch, drops the pools and signing goes on', async () => {
    const k = await unary<KeyInfoWire>(admin, 'RefreshKey', { key_id: 'tls' }, 120_000);
    assert.equal(k.epoch, 1);
    assert.deepEqual(k.public_key, tlsKey.public_key);
    const tbs = cv();
    const res = await sign('tls', tbs);
    assert.ok(verifyTbs(tlsKey.spki_der, tbs, res.signature_der));
    await expectStatus(unary(admin, 'RefreshKey', { key_id: 'nope' }), grpc.status.NOT_FOUND);
  });

  it('exports the documented metrics with help text', async () => {
    const text = (await httpJson(`http://${coordinator.endpoints.http}/metrics`)).text;
    for (const name of [
      'quorumkey_sign_requests_total',
      'quorumkey_sign_duration_seconds',
      'quorumkey_signer_finish_duration_seconds',
      'quorumkey_pool_depth',
      'quorumkey_presign_total',
      'quorumkey_presign_duration_seconds',
      'quorumkey_presignatures_generated_total',
      'quorumkey_signer_up',
      'quorumkey_signer_healthy',
      'quorumkey_signer_quarantined',
      'quorumkey_blames_total',
      'quorumkey_audit_records_total',
      'quorumkey_audit_append_duration_seconds',
    ]) {
      const base = name.replace(/_total$/, '');
      assert.match(text, new RegExp(`^# HELP ${base}(_total)? \\S`, 'm'), name);
    }
    assert.match(text, /quorumkey_sign_requests_total\{key="tls",context="tls-server",result="ok"\} \d+/);
    assert.match(text, /quorumkey_sign_requests_total\{key="\(unknown\)",context="none",result="not_found"\} \d+/);
    assert.match(text, /quorumkey_sign_requests_total\{key="tls",context="unknown",result="policy_refused"\} \d+/);
    assert.match(text, /quorumkey_pool_target\{key="tls",subset="1,2"\} 6/);
    assert.match(text, /quorumkey_key_quorum_available\{key="tls"\} 1/);
  });

  it('passes promtool check metrics (when promtool is installed)', async function () {
    try {
      execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    } catch {
      this.skip();
    }
    const text = (await httpJson(`http://${coordinator.endpoints.http}/metrics`)).text;
    const out = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(out.status, 0, `${out.stdout}${out.stderr}`);
  });

  it('the audit log verifies and holds one record per signature', async () => {
    const file = join(paths(dir).coordinator, 'audit.log');
    const res = await verifyAuditLog(file);
    assert.ok(res.ok, JSON.stringify(res));
    assert.equal(res.records, signed);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });
});
