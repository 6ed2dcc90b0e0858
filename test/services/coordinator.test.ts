/**
 * The coordinator as a real process in front of three real signer processes: Admin input
 * validation, a 2-of-3 key made by DKG over Admin (mTLS, identity `admin`) and a raw-digest key
 * on two of the signers, signatures over the unix socket, over mTLS and POST /v1/sign (bearer
 * token; the doors' access control itself: doors.test.ts) verified by
 * OpenSSL against GetKey's SubjectPublicKeyInfo, pools at target, policy and input errors, HTTP
 * statuses, the documented metrics (promtool-clean), kill -9 of one signer (signing goes on) and
 * of a second ("quorum insufficient" without contacting a signer), recovery after the restarts
 * without operator action (a quorum of the restarted signers alone signs),
 * refresh, coordinator restart, SIGTERM, and the audit log (one record per signature).
 * Misbehaving signers: coordinator-faults.test.ts and malicious-signer.test.ts.
 */
import { derChildren } from '../der.js';
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { p256 } from '@noble/curves/nist.js';
import { verifyAuditLog } from '../../src/audit/log.js';
import { paths, writeClusterConfig } from '../../src/cluster/config.js';
import { tls13CertificateVerifyContent } from '../../src/policy/classify.js';
import { ensureClusterPki } from '../../src/pki/cluster-ca.js';
import {
  expectStatus,
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
import { assertPromtoolClean, signerRpcs, signingWork } from './processes.js';
import { createTestCluster, httpGet, startSigner, type SignerProcess, type TestCluster } from './signer-cluster.js';

const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));
const READY = /^coordinator ready sign=unix:(\S+) grpc=(\S+) http=http:\/\/(\S+)$/;

interface CoordinatorProcess {
  proc: ChildProcess;
  pid: number;
  stdout: string[];
  stderr: string[];
  socket: string;
  grpc: string;
  http: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startCoordinator(cluster: TestCluster, timeoutMs = 30_000): Promise<CoordinatorProcess> {
  const proc = spawn(process.execPath, [COORDINATOR_MAIN, '--dir', cluster.dir], { env: cluster.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  createInterface({ input: proc.stderr! }).on('line', (l) => {
    // QK_TEST_LOG=<file>: keep the coordinator's structured log for inspection.
    if (process.env.QK_TEST_LOG) appendFileSync(process.env.QK_TEST_LOG, l + '\n');
    stderr.push(l);
    if (stderr.length > 2000) stderr.shift();
  });
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coordinator not ready after ${timeoutMs} ms:\n${stderr.slice(-20).join('\n')}`)), timeoutMs);
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      stdout.push(l);
      const m = READY.exec(l);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`coordinator exited (code ${code}, signal ${signal}) before it was ready:\n${stderr.slice(-20).join('\n')}`));
    });
  });
  return { proc, pid: proc.pid!, stdout, stderr, socket: match[1]!, grpc: match[2]!, http: match[3]!, exited };
}

function kill9(p: { pid: number; proc: ChildProcess }): Promise<void> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return Promise.resolve();
  const done = new Promise<void>((resolve) => p.proc.once('exit', () => resolve()));
  try {
    process.kill(p.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  return done;
}

/** The TBSCertificate of a real certificate: the first element of its outer SEQUENCE. */
const tbsOf = (certPem: Buffer): Buffer => derChildren(Buffer.from(new X509Certificate(certPem).raw))[0]!;

const cv = () => Buffer.from(tls13CertificateVerifyContent(randomBytes(32)));

describe('coordinator process with real signer processes', function () {
  this.timeout(600_000);
  let cluster: TestCluster;
  const signers = new Map<number, SignerProcess & { http: string }>();
  const spawned: { pid: number; proc: ChildProcess }[] = [];
  let coordinator: CoordinatorProcess;
  let admin: AnyClient;
  let client: AnyClient;
  let key: KeyInfoWire;
  let raw: KeyInfoWire;
  let signatures = 0;

  const signSocket = async (tbs: Buffer): Promise<SignResponseWire> => {
    const res = await unary<SignResponseWire>(client, 'Sign', { key_id: 'tls', tbs }, 20_000);
    signatures++;
    assert.ok(verifyTbs(key.spki_der, tbs, res.signature_der), 'signature verifies with OpenSSL');
    return res;
  };
  /** HTTP signing is on with a bearer token (off by default). */
  const token = randomBytes(32).toString('base64url');
  const post = (body: unknown) =>
    httpJson(`http://${coordinator.http}/v1/sign`, 'POST', typeof body === 'string' ? body : JSON.stringify(body), { authorization: `Bearer ${token}` });
  /** The caller identities of the three doors: every key names them (the client ACL). */
  const clients = ['unix', 'http-token', 'provider'];
  const launchSigner = async (i: number) => {
    const sp = await startSigner(cluster, i);
    signers.set(i, sp);
    spawned.push(sp);
  };

  before(async () => {
    cluster = await createTestCluster({ signers: [1, 2, 3], sessionTimeoutMs: 20_000 });
    ensureClusterPki(cluster.pki, ['admin', 'provider']);
    // Low mark = target: every signature is replaced, so the pools are back at target after use.
    cluster.config.pool = { target: 8, lowWater: 8, batch: 4, refillConcurrency: 2, subsets: 3 };
    const tokenFile = join(cluster.root, 'http-sign.token');
    writeFileSync(tokenFile, token + '\n', { mode: 0o600 });
    cluster.config.coordinator.httpSign = { mode: 'token', tokenFile };
    writeClusterConfig(cluster.dir, cluster.config);
    for (const i of [1, 2, 3]) await launchSigner(i);
    coordinator = await startCoordinator(cluster);
    spawned.push(coordinator);
    admin = tlsClient('Admin', cluster.pki, coordinator.grpc, 'admin');
    client = socketClient(coordinator.socket);
    await waitFor('signers up at the coordinator', async () => {
      const s = await unary<ClusterStatusWire>(admin, 'Status', {});
      return s.signers.length === 3 && s.signers.every((x) => x.up);
    });
  });

  after(async () => {
    admin?.close();
    client?.close();
    await Promise.all(spawned.map(kill9));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  it('prints the ready line with the configured endpoints', () => {
    assert.equal(coordinator.stdout.length, 1);
    assert.equal(coordinator.socket, paths(cluster.dir).socket);
    assert.equal(coordinator.grpc, cluster.config.coordinator.grpc);
    assert.equal(coordinator.http, cluster.config.coordinator.http);
    // Structured logs on stderr.
    assert.ok(coordinator.stderr.length > 0 && coordinator.stderr.every((l) => JSON.parse(l).component === 'coordinator'));
    // No socket group configured: the coordinator's user only.
    assert.equal(statSync(coordinator.socket).mode & 0o777, 0o600);
    assert.equal(statSync(dirname(coordinator.socket)).mode & 0o777, 0o700);
  });

  it('CreateKey validates its input (key id, threshold, signer list, policy)', async () => {
    const create = (req: Record<string, unknown>) => unary(admin, 'CreateKey', req);
    await expectStatus(create({ key_id: 'bad id', threshold: 2, signer_count: 3 }), grpc.status.INVALID_ARGUMENT, /key_id/);
    await expectStatus(create({ key_id: 'k', threshold: 1, signer_count: 3 }), grpc.status.INVALID_ARGUMENT, /threshold 1 of 3/);
    await expectStatus(create({ key_id: 'k', threshold: 4, signer_count: 3 }), grpc.status.INVALID_ARGUMENT, /threshold 4 of 3/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signer_count: 4 }), grpc.status.INVALID_ARGUMENT, /signer_count 4 exceeds the 3 configured signers/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signers: [1, 7] }), grpc.status.INVALID_ARGUMENT, /signers \[7\] are not in the cluster/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signers: [1, 1] }), grpc.status.INVALID_ARGUMENT, /twice/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signers: [1, 2], signer_count: 3 }), grpc.status.INVALID_ARGUMENT, /does not match/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signer_count: 3, policy: ['tls-client'] }), grpc.status.INVALID_ARGUMENT, /unknown context "tls-client"/);
    await expectStatus(create({ key_id: 'k', threshold: 2 }), grpc.status.INVALID_ARGUMENT, /signer_count/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signer_count: 3, policy_json: '{"contexts":["x509-cert"]}' }), grpc.status.INVALID_ARGUMENT, /policy x509: an x509-cert key needs its constraints/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signer_count: 3, policy_json: '{"rate":{"perSecond":0}}' }), grpc.status.INVALID_ARGUMENT, /policy rate.perSecond: must be an integer from 1/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signer_count: 3, policy_json: 'nope' }), grpc.status.INVALID_ARGUMENT, /policy_json is not JSON/);
    await expectStatus(create({ key_id: 'k', threshold: 2, signer_count: 3, clients: ['a b'] }), grpc.status.INVALID_ARGUMENT, /client identity "a b" must match/);
    await expectStatus(unary(admin, 'RefreshKey', { key_id: 'nope' }), grpc.status.NOT_FOUND, /unknown key 'nope'/);
    assert.deepEqual((await unary<{ keys: KeyInfoWire[] }>(admin, 'ListKeys', {})).keys, []);
  });

  it('creates a 2-of-3 key by DKG across the signer processes', async () => {
    key = await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'tls', threshold: 2, signer_count: 3, clients }, 180_000);
    assert.deepEqual(key.signers, [1, 2, 3]);
    assert.equal(key.threshold, 2);
    assert.deepEqual(key.policy, ['tls-server']);
    assert.equal(key.public_key.length, 33);
    assert.equal(key.epoch, 0);
    const got = await unary<KeyInfoWire>(client, 'GetKey', { key_id: 'tls' });
    assert.deepEqual(got.spki_der, key.spki_der);
    await expectStatus(unary(admin, 'CreateKey', { key_id: 'tls', threshold: 2, signer_count: 3 }), grpc.status.ALREADY_EXISTS, /key 'tls' already exists/);
    await expectStatus(unary(client, 'GetKey', { key_id: 'nope' }), grpc.status.NOT_FOUND, /unknown key 'nope'/);
    assert.deepEqual((await unary<{ keys: KeyInfoWire[] }>(admin, 'ListKeys', {})).keys.map((k) => k.key_id), ['tls']);
    // Every holder has its share of the same key.
    for (const i of [1, 2, 3]) {
      const h = JSON.parse((await httpGet(signers.get(i)!.http, '/healthz')).body) as { keys: { key_id: string; epoch: number; public_key: string }[] };
      assert.deepEqual(
        h.keys.map((k) => [k.key_id, k.epoch, k.public_key]),
        [['tls', 0, key.public_key.toString('hex')]],
        `signer ${i} holds a share of 'tls'`,
      );
    }
  });

  it('answers with r, s (low-s), the public key, the quorum and the audit sequence; SHA-384 too', async () => {
    for (let n = 0; n < 4; n++) {
      const res = await signSocket(cv());
      assert.equal(res.r.length, 32);
      assert.equal(res.s.length, 32);
      assert.ok(BigInt('0x' + res.s.toString('hex')) <= p256.Point.CURVE().n >> 1n, 'low-s');
      assert.deepEqual(res.public_key, key.public_key);
      assert.equal(res.quorum.length, 2);
      assert.equal(res.audit_seq, signatures, 'one audit record per signature so far');
      assert.ok(res.presignature_id.length > 0);
    }
    // A SHA-384 transcript hash, signed with SHA-384.
    const tbs = Buffer.from(tls13CertificateVerifyContent(randomBytes(48)));
    const res = await unary<SignResponseWire>(client, 'Sign', { key_id: 'tls', tbs, digest_alg: 'SHA384' });
    signatures++;
    assert.ok(verifyTbs(key.spki_der, tbs, res.signature_der, 'sha384'));
  });

  it('signs 50 times over the unix socket', async () => {
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all(Array.from({ length: 5 }, () => signSocket(cv())));
      for (const r of results) {
        assert.equal(r.context, 'tls-server');
        assert.equal(r.quorum.length, 2);
      }
    }
  });

  it('signs 20 times over POST /v1/sign', async () => {
    for (let n = 0; n < 20; n++) {
      const tbs = cv();
      const res = await post({ key_id: 'tls', tbs: tbs.toString('base64') });
      assert.equal(res.status, 200, res.text);
      signatures++;
      assert.ok(verifyTbs(key.spki_der, tbs, Buffer.from(res.json.signature as string, 'hex')));
      assert.equal(res.json.pubkey, key.public_key.toString('hex'));
      assert.equal(res.json.context, 'tls-server');
    }
  });

  it('keeps the pools of the fastest subsets at target', async () => {
    await waitFor('pools at target', async () => (await unary<ClusterStatusWire>(admin, 'Status', {})).pools.filter((p) => p.key_id === 'tls' && p.depth === 8).length === 3, 30_000);
    const metrics = (await httpJson(`http://${coordinator.http}/metrics`)).text;
    assert.match(metrics, /^quorumkey_pool_depth\{key="tls",subset="1,2"\} 8$/m);
    assert.match(metrics, /^quorumkey_pool_target\{key="tls",subset="1,2"\} 8$/m);
    assert.match(metrics, /^quorumkey_presignatures_generated_total\{key="tls"\} [1-9]\d*$/m);
  });

  it('refuses a TBSCertificate with a TLS key (PERMISSION_DENIED / 403) and unknown keys (NOT_FOUND / 404)', async () => {
    const tbs = tbsOf(readFileSync(join(cluster.pki, 'coordinator.crt')));
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs }), grpc.status.PERMISSION_DENIED, /^policy refused \(context-not-allowed\) for key 'tls': the content is a TBSCertificate or TBSCertList \(x509-cert\); this key signs tls-server$/);
    const r403 = await post({ key_id: 'tls', tbs: tbs.toString('base64') });
    assert.equal(r403.status, 403);
    assert.equal(r403.json.error, 'policy_refused');
    await expectStatus(unary(client, 'Sign', { key_id: 'other', tbs: cv() }), grpc.status.NOT_FOUND, /unknown key 'other'/);
    const r404 = await post({ key_id: 'other', tbs: cv().toString('base64') });
    assert.equal(r404.status, 404);
  });

  it('answers 400 / 413 / INVALID_ARGUMENT to malformed input', async () => {
    const digest = createHash('sha256').update('x').digest();
    assert.equal((await post({ key_id: 'tls', hash: 'zz$' })).status, 400);
    const short = await post({ key_id: 'tls', hash: digest.subarray(0, 20).toString('hex') });
    assert.equal(short.status, 400);
    assert.match(short.json.message as string, /32 bytes/);
    assert.equal((await post('{"key_id":')).status, 400);
    assert.equal((await post({ key_id: 'tls', tbs: randomBytes(80_000).toString('base64') })).status, 413);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', digest: digest.subarray(0, 31) }), grpc.status.INVALID_ARGUMENT, /digest must be 32 bytes/);
    // What the TLS key's policy refuses, and malformed requests.
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: Buffer.from('hello') }), grpc.status.PERMISSION_DENIED, /^policy refused \(unrecognised-content\) for key 'tls': /);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: Buffer.from(tls13CertificateVerifyContent(randomBytes(32), 'client')) }), grpc.status.PERMISSION_DENIED);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', digest }), grpc.status.PERMISSION_DENIED, /policy refused \(raw-digest-not-allowed\) for key 'tls'/);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls' }), grpc.status.INVALID_ARGUMENT, /exactly one of tbs \/ digest/);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: cv(), digest }), grpc.status.INVALID_ARGUMENT, /exactly one of tbs \/ digest/);
    await expectStatus(unary(client, 'Sign', { key_id: '../etc', tbs: cv() }), grpc.status.INVALID_ARGUMENT, /key_id/);
    await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: cv(), digest_alg: 9 }), grpc.status.INVALID_ARGUMENT, /digest_alg/);
    // Still serving.
    await signSocket(cv());
  });

  it('a raw-digest key on signers [1,3] signs digests of the digest algorithm length only', async () => {
    raw = await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'raw', threshold: 2, signers: [1, 3], policy: ['raw-digest'], clients }, 180_000);
    assert.deepEqual(raw.signers, [1, 3]);
    assert.deepEqual(raw.policy, ['raw-digest']);
    const digest = createHash('sha256').update('m').digest();
    const res = await unary<SignResponseWire>(client, 'Sign', { key_id: 'raw', digest }, 30_000);
    signatures++;
    assert.deepEqual(res.quorum, [1, 3]);
    assert.equal(res.context, 'raw-digest');
    assert.ok(p256.verify(res.signature_der, digest, raw.public_key, { prehash: false, format: 'der' }));
    await expectStatus(unary(client, 'Sign', { key_id: 'raw', digest: digest.subarray(0, 31) }), grpc.status.INVALID_ARGUMENT, /digest must be 32 bytes for sha256, got 31/);
    await expectStatus(unary(client, 'Sign', { key_id: 'raw', digest, digest_alg: 'SHA384' }), grpc.status.INVALID_ARGUMENT, /48 bytes/);
    const d512 = createHash('sha512').update('m').digest();
    const r512 = await unary<SignResponseWire>(client, 'Sign', { key_id: 'raw', digest: d512, digest_alg: 'SHA512' }, 30_000);
    signatures++;
    // FIPS 186-5: the leftmost 256 bits of the digest.
    assert.ok(p256.verify(r512.signature_der, d512.subarray(0, 32), raw.public_key, { prehash: false, format: 'der' }));
    // A raw-digest key is sent digests: content it cannot check is refused, even a TBSCertificate.
    const tbs = tbsOf(readFileSync(join(cluster.pki, 'coordinator.crt')));
    await expectStatus(unary(client, 'Sign', { key_id: 'raw', tbs }), grpc.status.PERMISSION_DENIED, /policy refused \(context-not-allowed\) for key 'raw'/);
  });

  it('over mTLS: a client certificate may sign, a signer identity may not; Admin wants an admin identity', async () => {
    const provider = tlsClient('Coordinator', cluster.pki, coordinator.grpc, 'provider');
    try {
      const tbs = cv();
      const res = await unary<SignResponseWire>(provider, 'Sign', { key_id: 'tls', tbs });
      signatures++;
      assert.ok(verifyTbs(key.spki_der, tbs, res.signature_der));
    } finally {
      provider.close();
    }
    const rogue = tlsClient('Coordinator', cluster.pki, coordinator.grpc, 'signer-1');
    await expectStatus(unary(rogue, 'Sign', { key_id: 'tls', tbs: cv() }), grpc.status.PERMISSION_DENIED, /may not request signatures/).finally(() => rogue.close());
    const notAdmin = tlsClient('Admin', cluster.pki, coordinator.grpc, 'provider');
    await expectStatus(unary(notAdmin, 'Status', {}), grpc.status.PERMISSION_DENIED, /may not use the Admin service/).finally(() => notAdmin.close());
  });

  it('HTTP: /healthz, the fields of POST /v1/sign, and its error statuses', async () => {
    const base = `http://${coordinator.http}`;
    const h = await httpJson(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(h.json.status, 'ok');
    // No pair conflict: every subset of the 2-of-3 key is usable and available.
    assert.deepEqual(h.json.conflicts, []);
    const tlsHealth = (h.json.keys as Record<string, { quorum: boolean; conflicts: unknown[]; subsets: { total: number; usable: number; available: number } }>).tls!;
    assert.equal(tlsHealth.quorum, true);
    assert.deepEqual(tlsHealth.conflicts, []);
    assert.deepEqual(tlsHealth.subsets, { total: 3, usable: 3, available: 3 });
    const tbs = cv();
    const ok = await post({ key_id: 'tls', tbs: tbs.toString('base64'), context: 'tls-server' });
    assert.equal(ok.status, 200, ok.text);
    signatures++;
    assert.ok(verifyTbs(key.spki_der, tbs, Buffer.from(ok.json.signature as string, 'hex')));
    assert.equal((ok.json.r as string).length, 64);
    assert.equal((ok.json.s as string).length, 64);
    assert.ok((ok.json.precompute_id as string).length > 0);
    assert.equal(typeof ok.json.timestamp, 'number');
    assert.equal((ok.json.quorum as number[]).length, 2);
    assert.equal(ok.json.audit_seq, signatures);
    // The claimed context must be what the content is.
    const mismatch = await post({ key_id: 'tls', tbs: tbs.toString('base64'), context: 'x509-cert' });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.json.error, 'invalid_input');
    assert.equal((await post({ key_id: 'raw', hash: 'ab'.repeat(31) })).status, 400);
    const nf = await post({ key_id: 'nope', tbs: tbs.toString('base64') });
    assert.equal(nf.status, 404);
    assert.equal(nf.json.error, 'not_found');
    assert.equal((await httpJson(`${base}/v1/sign`)).status, 405);
    assert.equal((await httpJson(`${base}/metrics`, 'POST', '{}')).status, 405);
    assert.equal((await httpJson(`${base}/nothing`)).status, 404);
    const digest = createHash('sha256').update('x').digest();
    const rawSig = await post({ key_id: 'raw', hash: digest.toString('hex') });
    assert.equal(rawSig.status, 200, rawSig.text);
    signatures++;
    assert.equal(rawSig.json.context, 'raw-digest');
    assert.ok(p256.verify(Buffer.from(rawSig.json.signature as string, 'hex'), digest, raw.public_key, { prehash: false, format: 'der' }));
  });

  it('exports the documented metrics with help text, and passes promtool check metrics', async () => {
    const text = (await httpJson(`http://${coordinator.http}/metrics`)).text;
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
      'quorumkey_pair_conflict',
      'quorumkey_usable_subsets',
      'quorumkey_audit_records_total',
      'quorumkey_audit_append_duration_seconds',
    ]) {
      const base = name.replace(/_total$/, '');
      assert.match(text, new RegExp(`^# HELP ${base}(_total)? \\S`, 'm'), name);
    }
    assert.match(text, /quorumkey_sign_requests_total\{key="tls",context="tls-server",result="ok"\} \d+/);
    assert.match(text, /quorumkey_sign_requests_total\{key="\(unknown\)",context="none",result="not_found"\} \d+/);
    assert.match(text, /quorumkey_sign_requests_total\{key="tls",context="unknown",result="policy_refused"\} \d+/);
    assert.match(text, /quorumkey_key_quorum_available\{key="tls"\} 1/);
    assert.match(text, /quorumkey_key_quorum_available\{key="raw"\} 1/);
    assert.match(text, /^quorumkey_usable_subsets\{key="tls"\} 3$/m);
    assert.doesNotMatch(text, /^quorumkey_pair_conflict\{/m, 'no pair conflict among honest signers');
    assertPromtoolClean(text, 'coordinator /metrics');
  });

  it('kill -9 of one signer: signing continues on the other subset', async () => {
    await kill9(signers.get(3)!);
    for (let n = 0; n < 10; n++) {
      const res = await signSocket(cv());
      assert.deepEqual(res.quorum, [1, 2]);
    }
  });

  it('kill -9 of a second signer: UNAVAILABLE "quorum insufficient" / 409 without contacting a signer', async () => {
    await kill9(signers.get(2)!);
    // Once the coordinator sees signer 2 down, it must refuse before any Finish or presign.
    await waitFor('signer 2 down at the coordinator', async () => !(await unary<ClusterStatusWire>(admin, 'Status', {})).signers.find((x) => x.index === 2)!.up, 30_000);
    const coordinatorMetrics = async () => (await httpJson(`http://${coordinator.http}/metrics`)).text;
    const work = signingWork(await coordinatorMetrics());
    const finishes = await signerRpcs(signers.get(1)!.http, 'Finish');
    await expectStatus(
      unary(client, 'Sign', { key_id: 'tls', tbs: cv() }, 20_000),
      grpc.status.UNAVAILABLE,
      /^quorum insufficient: key 'tls' needs 2 of signers \[1..3\], healthy: \[1\]$/,
    );
    const r = await post({ key_id: 'tls', tbs: cv().toString('base64') });
    assert.equal(r.status, 409);
    assert.equal(r.json.error, 'quorum_insufficient');
    assert.deepEqual(signingWork(await coordinatorMetrics()), work, 'no Finish call, inline presign or retry for the refused requests');
    assert.equal(await signerRpcs(signers.get(1)!.http, 'Finish'), finishes, 'signer 1 was asked for no online share');
    const h = await httpJson(`http://${coordinator.http}/healthz`);
    assert.equal(h.status, 503);
    assert.equal(h.json.status, 'unavailable');
  });

  it('recovers without operator action when the signers come back; a quorum of the restarted signers alone signs', async () => {
    await launchSigner(2);
    await launchSigner(3);
    await waitFor(
      'signing works again',
      async () => {
        try {
          await signSocket(cv());
          return true;
        } catch {
          return false;
        }
      },
      60_000,
      250,
    );
    await waitFor('all signers healthy', async () => (await unary<ClusterStatusWire>(admin, 'Status', {})).signers.every((x) => x.up && x.healthy && !x.quarantined), 60_000);
    // The pools refill on every subset, including those with the restarted signers.
    await waitFor('pools refilled', async () => (await unary<ClusterStatusWire>(admin, 'Status', {})).pools.every((p) => p.depth > 0), 60_000);
    // With signer 1 set aside, [2,3] (both restarted) is the only subset: it must sign.
    await unary<ClusterStatusWire>(admin, 'Quarantine', { index: 1 });
    try {
      for (let n = 0; n < 3; n++) assert.deepEqual((await signSocket(cv())).quorum, [2, 3]);
    } finally {
      await unary<ClusterStatusWire>(admin, 'Readmit', { index: 1 });
    }
    const h = await httpJson(`http://${coordinator.http}/healthz`);
    assert.equal(h.status, 200);
    const metrics = (await httpJson(`http://${coordinator.http}/metrics`)).text;
    assert.match(metrics, /quorumkey_signer_restarts_total\{signer="2"\} 1/);
    assert.match(metrics, /quorumkey_sign_requests_total\{key="tls",context="tls-server",result="ok"\} \d+/);
  });

  it('RefreshKey across the signer processes: next epoch, same public key, signing goes on', async () => {
    const k = await unary<KeyInfoWire>(admin, 'RefreshKey', { key_id: 'tls' }, 180_000);
    assert.equal(k.epoch, 1);
    assert.deepEqual(k.public_key, key.public_key);
    for (let n = 0; n < 5; n++) await signSocket(cv());
  });

  it('after kill -9 the coordinator restarts over its stale socket, with its key registry and no pools', async () => {
    await kill9(coordinator);
    assert.ok(existsSync(coordinator.socket), 'kill -9 leaves the socket file behind');
    client.close();
    admin.close();
    coordinator = await startCoordinator(cluster);
    spawned.push(coordinator);
    admin = tlsClient('Admin', cluster.pki, coordinator.grpc, 'admin');
    client = socketClient(coordinator.socket);
    const got = await unary<KeyInfoWire>(client, 'GetKey', { key_id: 'tls' });
    assert.equal(got.epoch, 1);
    assert.deepEqual(got.spki_der, key.spki_der);
    await waitFor('signers up at the new coordinator', async () => (await unary<ClusterStatusWire>(admin, 'Status', {})).signers.every((x) => x.up));
    for (let n = 0; n < 5; n++) await signSocket(cv());
    // A second coordinator on the same directory refuses to take the live socket over.
    await assert.rejects(startCoordinator(cluster), /another process is serving on/);
    await signSocket(cv());
  });

  it('a request whose own deadline passed while the coordinator was stalled is not signed, and nothing is recorded as signed', async () => {
    const auditSigned = () =>
      readFileSync(join(paths(cluster.dir).coordinator, 'audit.log'), 'utf8').trim().split('\n').filter((l) => JSON.parse(l).record.event === 'sign').length;
    const before = auditSigned();
    // Stalled before it reads the requests: their gRPC deadlines (relative) would restart on
    // reading, their own absolute deadlines do not.
    process.kill(coordinator.pid, 'SIGSTOP');
    let answers: PromiseSettledResult<unknown>[];
    try {
      const deadline = Date.now() + 1500;
      const pending = Array.from({ length: 3 }, () => unary(client, 'Sign', { key_id: 'tls', tbs: cv(), deadline_unix_ms: deadline }, 60_000));
      await new Promise((r) => setTimeout(r, 3000));
      process.kill(coordinator.pid, 'SIGCONT');
      answers = await Promise.allSettled(pending);
    } finally {
      process.kill(coordinator.pid, 'SIGCONT');
    }
    for (const a of answers) {
      assert.equal(a.status, 'rejected');
      assert.equal((a as PromiseRejectedResult).reason.code, grpc.status.DEADLINE_EXCEEDED, (a as PromiseRejectedResult).reason.details);
    }
    assert.equal(auditSigned(), before, 'no signature recorded for the expired requests');
    // Still serving, with deadlines in the future.
    await signSocket(cv());
  });

  it('/healthz exports the audit head, and fails while the audit log cannot be written (nothing is signed meanwhile)', async () => {
    const file = join(paths(cluster.dir).coordinator, 'audit.log');
    const health = async () => httpJson(`http://${coordinator.http}/healthz`);
    await signSocket(cv());
    const ok = await health();
    assert.equal(ok.status, 200);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const last = JSON.parse(lines[lines.length - 1]!);
    assert.deepEqual(ok.json.audit, { head: { seq: last.seq, hash: last.hash }, writable: true });
    // Immutable (root ignores file modes; ext4 refuses even root's writes to an immutable file).
    execFileSync('chattr', ['+i', file]);
    try {
      await expectStatus(unary(client, 'Sign', { key_id: 'tls', tbs: cv() }), grpc.status.INTERNAL, /audit log unavailable: signature withheld/);
      const down = await health();
      assert.equal(down.status, 503);
      assert.equal(down.json.status, 'unavailable');
      const audit = down.json.audit as { writable: boolean; problem: string; head: unknown };
      assert.equal(audit.writable, false);
      assert.match(audit.problem, /cannot append to .*audit\.log: EPERM/);
      assert.deepEqual(audit.head, { seq: last.seq, hash: last.hash }, 'the head did not move');
    } finally {
      execFileSync('chattr', ['-i', file]);
    }
    await signSocket(cv());
    assert.equal((await health()).status, 200, 'healthy again after the next durable append');
  });

  it('drains on SIGTERM, exits 0, and the audit log verifies with one record per signature', async () => {
    process.kill(coordinator.pid, 'SIGTERM');
    const { code } = await coordinator.exited;
    assert.equal(code, 0);
    const res = await verifyAuditLog(join(paths(cluster.dir).coordinator, 'audit.log'));
    assert.ok(res.ok, JSON.stringify(res));
    assert.equal(statSync(join(paths(cluster.dir).coordinator, 'audit.log')).mode & 0o777, 0o600);
    const records = readFileSync(join(paths(cluster.dir).coordinator, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).record);
    // One record per signature, and one per attempt whose shares were asked for but not released.
    const signed = records.filter((r) => r.event === 'sign');
    assert.equal(signed.length, signatures);
    for (const r of records.filter((r) => r.event !== 'sign')) assert.deepEqual([r.event, typeof r.presignature_id, typeof r.reason], ['sign-failed', 'string', 'string']);
    const first = signed[0]!;
    assert.equal(first.context, 'tls-server');
    assert.equal(first.key_id, 'tls');
    assert.equal(first.caller, 'unix');
    assert.match(first.signature, /^30[0-9a-f]+$/);
    const callers = new Set(signed.map((r) => r.caller as string));
    assert.deepEqual([...callers].sort(), ['http-token', 'provider', 'unix']);
  });
});
