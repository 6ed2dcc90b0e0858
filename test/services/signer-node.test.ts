/**
 * Signer nodes as real processes over real sockets with real mutual TLS: three signers
 * (signers 1 and 2 sealing with a dev passphrase, signer 3 with a SoftHSM2 token), driven by this
 * test acting as the coordinator (certificate `coordinator`), and as a cheating peer.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { SecretScan } from '../secret-scan.js';
import { spawn } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { paths, readClusterConfig, writeClusterConfig, type ClusterConfig } from '../../src/cluster/config.js';
import { ensureClusterPki, loadIdentity } from '../../src/pki/cluster-ca.js';
import { createApproval } from '../../src/pki/operator-approval.js';
import { publicKeySpki } from '../../src/protocol/ecdsa.js';
import { decodeKeyShare } from '../../src/protocol/keyshare-codec.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { scalarToBytes } from '../../src/protocol/math/scalar.js';
import type { ProtocolMessage } from '../../src/protocol/message.js';
import { combineSignature, type Signature } from '../../src/protocol/online.js';
import { Party } from '../../src/protocol/party.js';
import { PassphraseKek, Pkcs11Kek, readSealedFile } from '../../src/storage/seal.js';
import { fromEnvelope, services, toEnvelope, type ProtocolEnvelope } from '../../src/transport/proto.js';
import { clientCredentials, serverCredentials } from '../../src/transport/tls.js';
import {
  call,
  commitShares,
  client,
  createTestCluster,
  httpGet,
  identity,
  mtls,
  ok,
  policyBytes,
  runSignerToExit,
  SIGNER_MAIN,
  startSigner,
  stopSigner,
  type SignerProcess,
  type Stub,
  type TestCluster,
} from './signer-cluster.js';

const KEY = 'tls-main';
const SESSION_TIMEOUT_MS = 8000;

interface Health {
  index: number;
  boot_id: string;
  keys: { key_id: string; epoch: number; public_key: Buffer; presignatures: number; retired_peers: number[] }[];
}
const retiredPeers = (h: Health, keyId: string): number[] => h.keys.find((k) => k.key_id === keyId)!.retired_peers;
interface KeyGenResponse {
  public_key: Buffer;
  epoch: number;
  public_shares_digest: Buffer;
}
interface PresignResponse {
  boot_id: string;
  presignatures: { id: Buffer; nonce: Buffer }[];
}
interface FinishResponse {
  share: ProtocolEnvelope;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const sha256 = (b: Uint8Array | string) => new Uint8Array(createHash('sha256').update(b).digest());

function verifyWithNodeCrypto(publicKey: Uint8Array, message: Uint8Array, der: Uint8Array): boolean {
  const key = createPublicKey({ key: Buffer.from(publicKeySpki(publicKey)), format: 'der', type: 'spki' });
  return verify('sha256', message, key, der);
}

function expectStatus(r: { error?: grpc.ServiceError; value?: unknown }, code: grpc.status, detail?: RegExp): grpc.ServiceError {
  assert.ok(r.error, `expected ${grpc.status[code]}, the call succeeded: ${JSON.stringify(r.value)?.slice(0, 200)}`);
  assert.equal(grpc.status[r.error.code], grpc.status[code], `expected ${grpc.status[code]}, got ${grpc.status[r.error.code]}: ${r.error.details}`);
  if (detail) assert.match(r.error.details, detail);
  return r.error;
}

function walk(dir: string): { path: string; dir: boolean }[] {
  const out: { path: string; dir: boolean }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push({ path: p, dir: e.isDirectory() });
    if (e.isDirectory()) out.push(...walk(p));
  }
  return out;
}

describe('signer node: real processes, sockets and mTLS', function () {
  this.timeout(120_000);

  let cluster: TestCluster;
  const procs = new Map<number, SignerProcess & { grpc: string; http: string }>();
  const everyProcess: SignerProcess[] = [];
  /** Short-lived processes expected to exit by themselves (killed too if they did not). */
  const otherPids: number[] = [];
  const stubs = new Map<number, Stub>();
  let coordinatorCreds: grpc.ChannelCredentials;
  let publicKey: Buffer;
  let keyGenSession: Buffer;
  const bootIds = new Map<number, string>();
  /** Secret shares seen over the test (all epochs), to look for in files and logs. */
  const secrets: Uint8Array[] = [];
  const secretScan = new SecretScan();

  const stub = (i: number) => stubs.get(i)!;
  const endpoint = (i: number) => cluster.config.signers.find((s) => s.index === i)!.endpoint;

  async function boot(i: number) {
    const sp = await startSigner(cluster, i);
    procs.set(i, sp);
    everyProcess.push(sp);
    return sp;
  }

  /** The key's committed epoch: every Presign names it. */
  let epoch = 0;

  async function presign(subset: number[], count: number): Promise<PresignResponse[]> {
    const sid = randomBytes(32);
    return Promise.all(subset.map((i) => ok<PresignResponse>(stub(i), 'Presign', { key_id: KEY, session_id: sid, subset, count, epoch })));
  }

  async function sign(subset: number[], presignature: { id: Buffer; nonce: Buffer }, message: Uint8Array): Promise<Signature> {
    const digest = sha256(message);
    const tweakSeed = randomBytes(32);
    const answers = await Promise.all(
      subset.map((i) => ok<FinishResponse>(stub(i), 'Finish', { key_id: KEY, presignature_id: presignature.id, digest, tweak_seed: tweakSeed })),
    );
    const shares = new Map<number, ProtocolMessage>(subset.map((i, k) => [i, fromEnvelope(answers[k]!.share)!]));
    return combineSignature({ keyId: KEY, publicKey, presignatureId: presignature.id, nonce: presignature.nonce, subset, shares, digest, tweakSeed });
  }

  async function unsealShare(i: number): Promise<KeyShare> {
    const file = join(paths(cluster.dir).signer(i), 'shares', `${KEY}.share`);
    const aad = `quorumkey/share/v1/signer-${i}/${KEY}`;
    const seal = cluster.config.signers.find((s) => s.index === i)!.seal;
    let plain: Buffer;
    if (seal.mode === 'pkcs11') {
      const saved = process.env.SOFTHSM2_CONF;
      process.env.SOFTHSM2_CONF = cluster.hsm!.conf;
      try {
        plain = await readSealedFile(file, new Pkcs11Kek({ modulePath: seal.module, tokenLabel: seal.tokenLabel, keyLabel: seal.keyLabel, pin: cluster.hsm!.userPin }), aad);
      } finally {
        if (saved === undefined) delete process.env.SOFTHSM2_CONF;
        else process.env.SOFTHSM2_CONF = saved;
      }
    } else {
      const pass = readFileSync(join(paths(cluster.dir).signer(i), 'seal.passphrase'), 'utf8').trim();
      plain = await readSealedFile(file, new PassphraseKek(pass), aad);
    }
    const bytes = new Uint8Array(plain);
    plain.fill(0);
    const share = decodeKeyShare(bytes);
    bytes.fill(0);
    return share;
  }

  before(async function () {
    cluster = await createTestCluster({ signers: [1, 2, 3], pkcs11Signers: [3], sessionTimeoutMs: SESSION_TIMEOUT_MS });
    ensureClusterPki(cluster.pki, ['admin']);
    coordinatorCreds = mtls(identity(cluster, 'coordinator'));
    for (const i of [1, 2, 3]) stubs.set(i, client('Signer', endpoint(i), `signer-${i}`, coordinatorCreds));
  });

  after(async function () {
    for (const s of stubs.values()) s.close();
    for (const sp of everyProcess) {
      if (sp.proc.exitCode === null && sp.proc.signalCode === null) {
        try {
          process.kill(sp.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const pid of otherPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already exited */
      }
    }
    await Promise.all(everyProcess.map((sp) => sp.exited));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  it('three signers start, print one ready line each and answer Health', async () => {
    const started = await Promise.all([1, 2, 3].map((i) => boot(i)));
    for (const sp of started) {
      assert.deepEqual(sp.stdout, [`signer ${sp.index} ready grpc=${sp.grpc} http=${sp.http}`]);
      assert.equal(sp.grpc, endpoint(sp.index));
      for (const line of sp.stderr) assert.doesNotThrow(() => JSON.parse(line), `stderr line is not JSON: ${line}`);
      const h = await ok<Health>(stub(sp.index), 'Health', {});
      assert.equal(h.index, sp.index);
      assert.match(h.boot_id, /^[0-9a-f-]{36}$/);
      assert.deepEqual(h.keys, []);
      bootIds.set(sp.index, h.boot_id);
    }
    const mode = (p: string) => statSync(p).mode & 0o777;
    for (const i of [1, 2, 3]) assert.equal(mode(paths(cluster.dir).signer(i)), 0o700);
  });

  it('KeyGen 2-of-3 on all three concurrently → one public key, one public-shares digest, sealed as pending before the answer; CommitShare makes it the share', async () => {
    keyGenSession = randomBytes(32);
    const answers = await Promise.all(
      [1, 2, 3].map((i) => ok<KeyGenResponse>(stub(i), 'KeyGen', { key_id: KEY, session_id: keyGenSession, parties: [1, 2, 3], threshold: 2, policy: policyBytes() })),
    );
    publicKey = answers[0]!.public_key;
    assert.equal(publicKey.length, 33);
    for (const a of answers) {
      assert.equal(hex(a.public_key), hex(publicKey));
      assert.equal(hex(a.public_shares_digest), hex(answers[0]!.public_shares_digest));
      assert.equal(a.public_shares_digest.length, 32);
      assert.equal(a.epoch, 0);
    }
    const sharesDir = (i: number) => join(paths(cluster.dir).signer(i), 'shares');
    for (const i of [1, 2, 3]) {
      assert.deepEqual(readdirSync(sharesDir(i)), [`${KEY}.pending`], `signer ${i}: pending, not committed`);
      const h = await ok<Health & { pending: { key_id: string; epoch: number; public_shares_digest: Buffer }[] }>(stub(i), 'Health', {});
      assert.deepEqual(h.keys, [], 'a pending key is not a key yet');
      assert.deepEqual(h.pending.map((p) => [p.key_id, p.epoch, hex(p.public_shares_digest)]), [[KEY, 0, hex(answers[0]!.public_shares_digest)]]);
    }
    const wrong = await call(stub(1), 'CommitShare', { key_id: KEY, epoch: 0, public_shares_digest: randomBytes(32) });
    expectStatus(wrong, grpc.status.FAILED_PRECONDITION, /other public shares than the ones committed/);
    await commitShares([1, 2, 3].map(stub), KEY, answers[0]!);
    for (const i of [1, 2, 3]) {
      assert.deepEqual(readdirSync(sharesDir(i)), [`${KEY}.share`], `signer ${i}: committed`);
      const file = join(paths(cluster.dir).signer(i), 'shares', `${KEY}.share`);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const share = await unsealShare(i);
      assert.equal(share.self, i);
      assert.equal(hex(share.publicKey), hex(publicKey));
      secrets.push(scalarToBytes(share.secretShare));
      secretScan.add(`signer ${i} key share, epoch 0`, share.secretShare);
    }
    // A second KeyGen of the same key id.
    const again = await call(stub(1), 'KeyGen', { key_id: KEY, session_id: randomBytes(32), parties: [1, 2, 3], threshold: 2, policy: policyBytes() });
    expectStatus(again, grpc.status.ALREADY_EXISTS, /already exists/);
  });

  let batches: { subset: number[]; answers: PresignResponse[] }[] = [];

  it('Presign [1,2]×8 and [2,3]×4 concurrently → the same ids and nonces at every member', async () => {
    const [a, b] = await Promise.all([presign([1, 2], 8), presign([2, 3], 4)]);
    batches = [
      { subset: [1, 2], answers: a },
      { subset: [2, 3], answers: b },
    ];
    for (const { subset, answers } of batches) {
      answers.forEach((ans, k) => assert.equal(ans.boot_id, bootIds.get(subset[k]!)));
      const ids = answers.map((ans) => ans.presignatures.map((p) => hex(p.id) + ':' + hex(p.nonce)).join(','));
      assert.equal(new Set(ids).size, 1, 'members disagree on presignatures');
      for (const p of answers[0]!.presignatures) {
        assert.equal(p.id.length, 32);
        assert.equal(p.nonce.length, 33);
      }
    }
    assert.equal(a[0]!.presignatures.length, 8);
    assert.equal(b[0]!.presignatures.length, 4);
    const counts = await Promise.all([1, 2, 3].map((i) => ok<Health>(stub(i), 'Health', {})));
    assert.deepEqual(
      counts.map((h) => h.keys[0]!.presignatures),
      [8, 12, 4],
    );
  });

  it('Finish at both signers → combined signature verifies with node:crypto; a second Finish → FAILED_PRECONDITION', async () => {
    let n = 0;
    for (const { subset, answers } of batches) {
      for (const p of answers[0]!.presignatures) {
        const message = Buffer.from(`message ${n++} for ${subset.join(',')}`);
        const sig = await sign(subset, p, message);
        assert.ok(verifyWithNodeCrypto(publicKey, message, sig.der), 'signature does not verify');
        for (const i of subset) {
          const again = await call(stub(i), 'Finish', { key_id: KEY, presignature_id: p.id, digest: sha256(message), tweak_seed: randomBytes(32) });
          expectStatus(again, grpc.status.FAILED_PRECONDITION, /^presignature unknown or already used$/);
        }
      }
    }
    const counts = await Promise.all([1, 2, 3].map((i) => ok<Health>(stub(i), 'Health', {})));
    assert.deepEqual(
      counts.map((h) => h.keys[0]!.presignatures),
      [0, 0, 0],
    );
  });

  it('kill -9 signer 2 and restart → new boot id, no presignatures, key unsealed; presign and sign work again', async () => {
    const [p] = await presign([1, 2], 2);
    const old = procs.get(2)!;
    const exit = await stopSigner(old, 'SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');
    await boot(2);
    const h = await ok<Health>(stub(2), 'Health', {});
    assert.notEqual(h.boot_id, bootIds.get(2));
    bootIds.set(2, h.boot_id);
    assert.equal(h.keys.length, 1);
    assert.equal(h.keys[0]!.key_id, KEY);
    assert.equal(hex(h.keys[0]!.public_key), hex(publicKey));
    assert.equal(h.keys[0]!.presignatures, 0);
    // What signer 1 still lists for the old boot cannot be finished at signer 2 any more.
    const stale = await call(stub(2), 'Finish', { key_id: KEY, presignature_id: p!.presignatures[0]!.id, digest: sha256('x'), tweak_seed: randomBytes(32) });
    expectStatus(stale, grpc.status.FAILED_PRECONDITION, /presignature unknown or already used/);
    const [fresh] = await presign([1, 2], 2);
    assert.equal(fresh!.boot_id, bootIds.get(1));
    const message = Buffer.from('after the restart');
    const sig = await sign([1, 2], fresh!.presignatures[0]!, message);
    assert.ok(verifyWithNodeCrypto(publicKey, message, sig.der));
  });

  it('Refresh → same public key, epoch 1, new sealed shares, old presignatures destroyed; signing works', async () => {
    const [left] = await presign([2, 3], 1);
    const sid = randomBytes(32);
    const answers = await Promise.all([1, 2, 3].map((i) => ok<KeyGenResponse>(stub(i), 'Refresh', { key_id: KEY, session_id: sid })));
    for (const a of answers) {
      assert.equal(hex(a.public_key), hex(publicKey));
      assert.equal(a.epoch, 1);
      assert.equal(hex(a.public_shares_digest), hex(answers[0]!.public_shares_digest));
    }
    for (const i of [1, 2, 3]) assert.equal((await ok<Health>(stub(i), 'Health', {})).keys[0]!.epoch, 0, `signer ${i}: epoch 0 stays active until the commit`);
    await commitShares([1, 2, 3].map(stub), KEY, answers[0]!);
    // A presign for the old epoch is refused as cross-epoch, before anything runs: not a blame.
    const old = await call(stub(1), 'Presign', { key_id: KEY, session_id: randomBytes(32), subset: [1, 2], count: 1, epoch: 0 });
    expectStatus(old, grpc.status.FAILED_PRECONDITION, /^cross-epoch: signer 1 holds key '.+' at epoch 1, asked for epoch 0$/);
    assert.equal(old.error!.metadata.get('qk-refusal')[0], 'cross-epoch');
    assert.deepEqual(old.error!.metadata.get('qk-blame'), []);
    epoch = 1;
    for (const i of [1, 2, 3]) {
      const share = await unsealShare(i);
      assert.equal(share.epoch, 1);
      const secret = scalarToBytes(share.secretShare);
      assert.ok(!secrets.some((s) => hex(s) === hex(secret)), 'refresh kept the old share');
      secrets.push(secret);
      secretScan.add(`signer ${share.self} key share, epoch ${share.epoch}`, share.secretShare);
      const h = await ok<Health>(stub(i), 'Health', {});
      assert.equal(h.keys[0]!.epoch, 1);
      assert.equal(h.keys[0]!.presignatures, 0, `signer ${i} kept presignatures of epoch 0`);
    }
    const stale = await call(stub(2), 'Finish', { key_id: KEY, presignature_id: left!.presignatures[0]!.id, digest: sha256('x'), tweak_seed: randomBytes(32) });
    expectStatus(stale, grpc.status.FAILED_PRECONDITION);
    const [fresh] = await presign([1, 3], 1);
    const message = Buffer.from('after the refresh');
    const sig = await sign([1, 3], fresh!.presignatures[0]!, message);
    assert.ok(verifyWithNodeCrypto(publicKey, message, sig.der));
  });

  it('no plaintext share in any data directory or log; files 0600, directories 0700', async () => {
    assert.equal(secrets.length, 6);
    assert.equal(secretScan.size, 6);
    let files = 0;
    for (const i of [1, 2, 3]) {
      for (const entry of walk(paths(cluster.dir).signer(i))) {
        const mode = statSync(entry.path).mode & 0o777;
        if (entry.dir) {
          assert.equal(mode, 0o700, `${entry.path} has mode ${mode.toString(8)}`);
          continue;
        }
        files++;
        assert.equal(mode, 0o600, `${entry.path} has mode ${mode.toString(8)}`);
        // Raw bytes, hex (either case, padded or not), decimal, base64.
        const found = secretScan.inBytes(readFileSync(entry.path));
        assert.equal(found, undefined, `${entry.path} contains ${found}`);
      }
    }
    assert.ok(files >= 7, `only ${files} files found`); // 3 shares, 3 canaries, 2 passphrases
    const logs = everyProcess.flatMap((sp) => [...sp.stdout, ...sp.stderr]).join('\n');
    const inLogs = secretScan.inText(logs);
    assert.equal(inLogs, undefined, `a log line contains ${inLogs}`);
    for (const i of [1, 2]) {
      const pass = readFileSync(join(paths(cluster.dir).signer(i), 'seal.passphrase'), 'utf8').trim();
      assert.ok(!logs.includes(pass), 'a log line contains the passphrase');
    }
  });

  it('bad input to every Signer RPC → the right status and a clear message; the service keeps serving', async () => {
    // Runs meanwhile: a presign whose peer is never asked to join → missing-message naming it.
    const silent = call(stub(1), 'Presign', { key_id: KEY, session_id: randomBytes(32), subset: [1, 3], count: 1, epoch }, 30_000);
    const s = stub(1);
    const sid = () => randomBytes(32);
    const keyGen = (r: object) => call(s, 'KeyGen', { key_id: 'k2', session_id: sid(), parties: [1, 2, 3], threshold: 2, policy: policyBytes(), ...r });
    const INVALID = grpc.status.INVALID_ARGUMENT;
    expectStatus(await call(s, 'KeyGen', {}), INVALID, /key_id must match/);
    expectStatus(await keyGen({ key_id: 'bad/id' }), INVALID, /key_id must match/);
    expectStatus(await keyGen({ key_id: 'x'.repeat(65) }), INVALID, /key_id must match/);
    expectStatus(await keyGen({ session_id: randomBytes(31) }), INVALID, /session_id must be 32 bytes, got 31/);
    expectStatus(await keyGen({ session_id: Buffer.alloc(0) }), INVALID, /session_id must be 32 bytes, got 0/);
    expectStatus(await keyGen({ parties: [] }), INVALID, /parties must list 2 to 16 signer indices, got 0/);
    expectStatus(await keyGen({ parties: [2, 1, 3] }), INVALID, /sorted ascending/);
    expectStatus(await keyGen({ policy: Buffer.alloc(0) }), INVALID, /policy encoding: must be 1 to 16384 bytes, got 0/);
    expectStatus(await keyGen({ policy: Buffer.from('not json') }), INVALID, /policy encoding: is not UTF-8 JSON/);
    expectStatus(await keyGen({ policy: Buffer.from('{}') }), INVALID, /policy encoding: is not canonical/);
    expectStatus(await keyGen({ policy: Buffer.from('{"contexts":["x509-cert"]}') }), INVALID, /policy x509: an x509-cert key needs its constraints/);
    expectStatus(await keyGen({ parties: [1, 1, 2] }), INVALID, /sorted ascending without repetition/);
    expectStatus(await keyGen({ parties: [2, 3] }), INVALID, /does not include this signer \(1\)/);
    expectStatus(await keyGen({ parties: [1, 9] }), INVALID, /9 is not a configured signer/);
    expectStatus(await keyGen({ parties: [0, 1] }), INVALID, /0 is not a configured signer/);
    expectStatus(await keyGen({ threshold: 1 }), INVALID, /threshold must be between 2 and the number of parties \(3\), got 1/);
    expectStatus(await keyGen({ threshold: 4 }), INVALID, /threshold/);
    expectStatus(await keyGen({ key_id: KEY }), grpc.status.ALREADY_EXISTS, /already exists/);
    // A label seen before is no error: freshness comes from every party's session nonce.

    const pre = (r: object) => call(s, 'Presign', { key_id: KEY, session_id: sid(), subset: [1, 2], count: 1, epoch, ...r });
    expectStatus(await pre({ key_id: 'nope' }), grpc.status.NOT_FOUND, /no share of key 'nope'/);
    expectStatus(await pre({ key_id: '' }), INVALID, /key_id/);
    expectStatus(await pre({ subset: [2, 3] }), INVALID, /does not include this signer/);
    expectStatus(await pre({ subset: [1, 2, 3] }), INVALID, /exactly 2 signers/);
    expectStatus(await pre({ subset: [] }), INVALID, /subset must list/);
    expectStatus(await pre({ count: 0 }), INVALID, /count must be between 1 and 64, got 0/);
    expectStatus(await pre({ count: 65 }), INVALID, /count must be between 1 and 64, got 65 \(cluster.json signerCompute.maxPresignBatch\)/);
    expectStatus(await pre({ session_id: Buffer.from('short') }), INVALID, /session_id must be 32 bytes/);

    const fin = (r: object) => call(s, 'Finish', { key_id: KEY, presignature_id: randomBytes(32), digest: randomBytes(32), tweak_seed: randomBytes(32), ...r });
    expectStatus(await fin({ key_id: 'nope' }), grpc.status.NOT_FOUND, /no share of key 'nope'/);
    expectStatus(await fin({ presignature_id: randomBytes(31) }), INVALID, /presignature_id must be 32 bytes, got 31/);
    expectStatus(await fin({ presignature_id: Buffer.alloc(0) }), INVALID, /presignature_id must be 32 bytes, got 0/);
    expectStatus(await fin({ digest: randomBytes(19) }), INVALID, /digest must be 20 to 64 bytes, got 19/);
    expectStatus(await fin({ digest: randomBytes(65) }), INVALID, /digest must be 20 to 64 bytes, got 65/);
    expectStatus(await fin({ tweak_seed: randomBytes(33) }), INVALID, /tweak_seed must be 32 bytes, got 33/);
    expectStatus(await fin({ tbs: randomBytes(40) }), INVALID, /exactly one of tbs \/ digest must be set/);
    expectStatus(await fin({ digest_alg: 9 }), INVALID, /unknown digest_alg 9/);
    // Well-formed but outside the key's sealed policy (raw-digest, SHA-256): refused by name.
    const short = await fin({ digest: randomBytes(20) });
    expectStatus(short, grpc.status.PERMISSION_DENIED, /signer 1 refused: .*32/);
    assert.equal(short.error!.metadata.get('qk-refusal')[0], 'bad-digest');
    expectStatus(await fin({ deadline_unix_ms: Date.now() - 1000 }), grpc.status.DEADLINE_EXCEEDED, /signer 1: the request's deadline passed \d+ ms ago; not signed/);
    expectStatus(await fin({}), grpc.status.FAILED_PRECONDITION, /^presignature unknown or already used$/);
    expectStatus(await call(s, 'Finish', {}), INVALID, /key_id/);

    expectStatus(await call(s, 'Refresh', { key_id: 'nope', session_id: sid() }), grpc.status.NOT_FOUND);
    expectStatus(await call(s, 'Refresh', { key_id: KEY, session_id: randomBytes(8) }), INVALID, /session_id/);
    expectStatus(await call(s, 'Refresh', {}), INVALID, /key_id/);

    // Each with the admin's approval of exactly what it asks for, so that the input checks speak.
    const pair = (r: { key_id?: string; peer?: number; session_id?: Buffer }) => {
      const req = { key_id: KEY, session_id: sid(), peer: 2, ...r };
      const approval = createApproval(identity(cluster, 'admin'), 'pair-setup', { key: req.key_id, a: Math.min(1, req.peer), b: Math.max(1, req.peer) });
      return call(s, 'PairSetup', { ...req, approval });
    };
    expectStatus(await call(s, 'PairSetup', { key_id: KEY, session_id: sid(), peer: 2 }), grpc.status.PERMISSION_DENIED, /^signer 1: approval-missing: /);
    expectStatus(await pair({ peer: 1 }), INVALID, /peer must be another holder/);
    expectStatus(await pair({ peer: 0 }), INVALID, /peer must be another holder/);
    expectStatus(await pair({ peer: 77 }), INVALID, /peer must be another holder/);
    expectStatus(await pair({ key_id: 'nope' }), grpc.status.NOT_FOUND, /no share of key 'nope'/);
    expectStatus(await pair({ session_id: Buffer.from('short') }), INVALID, /session_id must be 32 bytes/);

    // Garbage bytes where a request message belongs: grpc-js refuses them before any handler.
    const raw = new grpc.Client(endpoint(1), coordinatorCreds, { 'grpc.ssl_target_name_override': 'signer-1', 'grpc.default_authority': 'signer-1' });
    for (const method of ['KeyGen', 'Presign', 'Finish', 'Refresh', 'Health', 'PairSetup']) {
      const garbage = await new Promise<grpc.ServiceError | null>((resolve) => {
        raw.makeUnaryRequest(`/quorumkey.v1.Signer/${method}`, (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99]), (err) => resolve(err));
      });
      assert.ok(garbage && garbage.code !== grpc.status.OK, `${method} accepted garbage`);
    }
    raw.close();

    const h = await ok<Health>(s, 'Health', {});
    assert.equal(h.index, 1);

    const r = await silent;
    const err = expectStatus(r, grpc.status.ABORTED, /missing-message \(party 3\)/);
    assert.equal(err.metadata.get('qk-abort-reason')[0], 'missing-message');
    assert.equal(err.metadata.get('qk-culprit')[0], '3');
    assert.deepEqual(err.metadata.get('qk-blame'), []);
    assert.deepEqual(retiredPeers(await ok<Health>(s, 'Health', {}), KEY), []);
  });

  it('mTLS: no certificate or another CA is refused; signer cert on Signer and coordinator cert on Peer → PERMISSION_DENIED', async () => {
    const ca = identity(cluster, 'coordinator').ca;
    const noCert = client('Signer', endpoint(1), 'signer-1', grpc.credentials.createSsl(ca));
    const r1 = await call(noCert, 'Health', {}, 10_000);
    assert.ok(r1.error, 'a client without certificate was served');
    assert.equal(grpc.status[r1.error.code], 'UNAVAILABLE', r1.error.details);
    noCert.close();

    const outsider = loadIdentity(cluster.otherPki, 'outsider');
    const foreign = client('Signer', endpoint(1), 'signer-1', grpc.credentials.createSsl(ca, outsider.key, outsider.cert));
    const r2 = await call(foreign, 'Health', {}, 10_000);
    assert.ok(r2.error, 'a client with a certificate from another CA was served');
    assert.equal(grpc.status[r2.error.code], 'UNAVAILABLE', r2.error.details);
    foreign.close();

    const asSigner3 = client('Signer', endpoint(1), 'signer-1', mtls(identity(cluster, 'signer-3')));
    expectStatus(await call(asSigner3, 'Health', {}), grpc.status.PERMISSION_DENIED, /'signer-3' is not the coordinator/);
    expectStatus(await call(asSigner3, 'Finish', { key_id: KEY, presignature_id: randomBytes(32), digest: randomBytes(32), tweak_seed: randomBytes(32) }), grpc.status.PERMISSION_DENIED);
    asSigner3.close();

    const exchange = (creds: grpc.ChannelCredentials, envelopes: ProtocolEnvelope[]) =>
      new Promise<grpc.ServiceError | null>((resolve) => {
        const peer = client('Peer', endpoint(1), 'signer-1', creds);
        const stream = (peer.Exchange as (cb: (e: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<ProtocolEnvelope>)((e) => {
          peer.close();
          resolve(e);
        });
        for (const e of envelopes) stream.write(e);
        stream.end();
      });
    const envelope: ProtocolEnvelope = { protocol: 'presign', key_id: KEY, session_id: randomBytes(32), round: 1, from: 2, to: 1, payload: { x: randomBytes(4) } };
    const asCoordinator = await exchange(coordinatorCreds, [envelope]);
    assert.equal(asCoordinator && grpc.status[asCoordinator.code], 'PERMISSION_DENIED');
    assert.match(asCoordinator!.details, /'coordinator' is not a peer signer/);
    const asSelf = await exchange(mtls(identity(cluster, 'signer-1')), [envelope]);
    assert.equal(asSelf && grpc.status[asSelf.code], 'PERMISSION_DENIED');
    // A real peer sending malformed envelopes: dropped, stream acknowledged, nothing breaks.
    const junk = await exchange(mtls(identity(cluster, 'signer-3')), [
      { ...envelope, from: 3, protocol: 'nonsense' },
      { ...envelope, from: 3, session_id: randomBytes(5) },
    ]);
    assert.equal(junk, null);
    // One speaking as another signer: the stream is refused (signer-access.test.ts has the details).
    const forged = await exchange(mtls(identity(cluster, 'signer-3')), [{ ...envelope, from: 1 }]);
    assert.equal(forged && grpc.status[forged.code], 'PERMISSION_DENIED');
    assert.match(forged!.details, /signer-3 sent a message as signer 1/);
    assert.equal((await ok<Health>(stub(1), 'Health', {})).index, 1);
  });

  it('a peer that cheats in the VOLE is blamed: ABORTED with qk-blame; the pair is retired through a kill -9 and restart until PairSetup', async () => {
    // Signer 1 stops; this test takes its place with its own share and certificate.
    assert.equal((await stopSigner(procs.get(1)!)).code, 0, 'SIGTERM must exit 0');
    const share1 = await unsealShare(1);
    const me = loadIdentity(cluster.pki, 'signer-1');
    const inbox: ProtocolMessage[] = [];
    let notify = () => undefined as void;
    const server = new grpc.Server();
    server.addService(services.Peer.service, {
      Exchange: (c: grpc.ServerReadableStream<ProtocolEnvelope, object>, cb: grpc.sendUnaryData<object>) => {
        c.on('data', (e: ProtocolEnvelope) => {
          inbox.push(fromEnvelope(e)!);
          notify();
        });
        c.on('end', () => cb(null, {}));
      },
    });
    await new Promise<number>((res, rej) => server.bindAsync(endpoint(1), serverCredentials(me), (e, port) => (e ? rej(e) : res(port))));
    try {
      const party = new Party(1);
      party.installShare(share1);
      const sid = randomBytes(32);
      const session = party.startPresign(KEY, sid, [1, 2], 1);
      const honest = call(stub(2), 'Presign', { key_id: KEY, session_id: sid, subset: [1, 2], count: 1, epoch });
      const peer = client('Peer', endpoint(2), 'signer-2', clientCredentials(me));
      const stream = (peer.Exchange as (cb: (e: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<ProtocolEnvelope>)(() => undefined);
      const exchange = async () => {
        while (inbox.length === 0) await new Promise<void>((r) => (notify = r));
        session.receive(inbox.shift()!, 2);
        return session.advance();
      };
      for (const m of session.start()) stream.write(toEnvelope(m)); // the nonce round
      for (const m of await exchange()) stream.write(toEnvelope(m)); // presign round 1 (Bob's OT extension)
      for (const m of await exchange()) {
        const check = Buffer.from(m.payload.check!);
        check[0]! ^= 1;
        stream.write(toEnvelope({ ...m, payload: { ...m.payload, check } }));
      }
      stream.end();
      const err = expectStatus(await honest, grpc.status.ABORTED, /vole-check-failed \(party 1\)/);
      assert.equal(err.metadata.get('qk-abort-reason')[0], 'vole-check-failed');
      assert.equal(err.metadata.get('qk-culprit')[0], '1');
      assert.equal(err.metadata.get('qk-blame')[0], '1');
      // Sealed before the failing call was answered: the share file on disk already has the pair retired.
      assert.deepEqual([...(await unsealShare(2)).retiredPeers], [1]);
      peer.close();

      assert.deepEqual(retiredPeers(await ok<Health>(stub(2), 'Health', {}), KEY), [1]);
      const refusedPresign = async () => {
        const refused = await call(stub(2), 'Presign', { key_id: KEY, session_id: randomBytes(32), subset: [1, 2], count: 1, epoch });
        const e2 = expectStatus(refused, grpc.status.ABORTED, /pair-retired/);
        assert.equal(e2.metadata.get('qk-abort-reason')[0], 'pair-retired');
        assert.equal(e2.metadata.get('qk-culprit')[0], '1');
        assert.equal(e2.metadata.get('qk-blame')[0], undefined, 'a refusal is not a new blame');
      };
      await refusedPresign();
      peer.close();
    } finally {
      await new Promise<void>((r) => server.tryShutdown(() => r()));
    }

  });

  it('startup problems → exit 2 with one clear line on stderr, no secret', async () => {
    const dataDir = paths(cluster.dir).signer(1);
    const passFile = join(dataDir, 'seal.passphrase');
    const right = readFileSync(passFile);
    const wrong = randomBytes(32).toString('base64');
    writeFileSync(passFile, wrong + '\n', { mode: 0o600 });
    try {
      const r = await runSignerToExit(cluster, 1);
      assert.equal(r.code, 2);
      assert.deepEqual(r.stdout, []);
      assert.equal(r.stderr.length, 1, r.stderr.join('\n'));
      assert.match(r.stderr[0]!, /^quorumkey signer: signer 1: .*wrong passphrase/);
      assert.ok(!r.stderr[0]!.includes(wrong) && !r.stderr[0]!.includes(right.toString().trim()));
    } finally {
      writeFileSync(passFile, right, { mode: 0o600 });
    }

    renameSync(passFile, passFile + '.away');
    try {
      const r = await runSignerToExit(cluster, 1);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.length, 1);
      assert.match(r.stderr[0]!, /seal passphrase file .*seal\.passphrase does not exist; create it with 32 random bytes/);
    } finally {
      renameSync(passFile + '.away', passFile);
    }

    const bogus = join(dataDir, 'shares', 'bogus.share');
    writeFileSync(bogus, 'not a sealed file', { mode: 0o600 });
    try {
      const r = await runSignerToExit(cluster, 1);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.length, 1);
      assert.match(r.stderr[0]!, /cannot unseal share file .*bogus\.share: not-sealed/);
    } finally {
      rmSync(bogus);
    }

    const configured: ClusterConfig = readClusterConfig(cluster.dir);
    writeClusterConfig(cluster.dir, { ...configured, signerCompute: { niceIncrement: 25 } });
    try {
      const r = await runSignerToExit(cluster, 1);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.length, 1, r.stderr.join('\n'));
      assert.match(r.stderr[0]!, /signerCompute\.niceIncrement must be an integer in \[0, 19\], got 25/);
    } finally {
      writeClusterConfig(cluster.dir, configured);
    }

    const runArgs = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [SIGNER_MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        otherPids.push(p.pid!);
        let stderr = '';
        p.stderr!.on('data', (d) => (stderr += d));
        p.on('close', (code) => resolve({ code, stderr }));
      });
    const empty = join(cluster.root, 'empty-cluster');
    mkdirSync(empty, { recursive: true });
    for (const [args, pattern] of [
      [['--dir', cluster.dir, '--index', '7'], /signer 7 is not in the cluster configuration/],
      [['--dir', cluster.dir, '--index', 'abc'], /--index must be a positive integer/],
      [['--dir', cluster.dir], /--index is required/],
      [['--index', '1'], /--dir is required/],
      [['--dir', join(cluster.root, 'nope'), '--index', '1'], /cluster directory .* does not exist/],
      [['--dir', empty, '--index', '1'], /cluster\.json is missing/],
      [['--frobnicate'], /unknown argument/],
    ] as const) {
      const r = await runArgs([...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }

    await boot(1);
    const h = await ok<Health>(stub(1), 'Health', {});
    assert.equal(h.keys[0]!.epoch, 1, 'signer 1 did not unseal its share after the restart');
  });

  it('PKCS#11 (SoftHSM2): signer 3 sealed with a token key; missing token or wrong PIN → exit 2; restart unseals from the token', async function () {
    assert.ok(
      cluster.hsm,
      'SoftHSM2 is not installed: this test needs a real SoftHSM2 token. Install it with `apt-get install -y softhsm2` (provides softhsm2-util and libsofthsm2.so).',
    );
    const seal = cluster.config.signers.find((s) => s.index === 3)!.seal;
    assert.equal(seal.mode, 'pkcs11');
    assert.equal((await stopSigner(procs.get(3)!)).code, 0);
    const original: ClusterConfig = readClusterConfig(cluster.dir);
    const withSeal = (patch: object) => {
      const c = structuredClone(original);
      Object.assign(c.signers.find((s) => s.index === 3)!.seal, patch);
      writeClusterConfig(cluster.dir, c);
    };
    try {
      withSeal({ tokenLabel: 'no-such-token' });
      let r = await runSignerToExit(cluster, 3);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.length, 1, r.stderr.join('\n'));
      assert.match(r.stderr[0]!, /token-not-found: no token labelled 'no-such-token'/);

      const wrongPin = join(cluster.root, 'wrong.pin');
      writeFileSync(wrongPin, '999999\n', { mode: 0o600 });
      withSeal({ pinFile: wrongPin });
      r = await runSignerToExit(cluster, 3);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.length, 1, r.stderr.join('\n'));
      assert.match(r.stderr[0]!, /wrong-pin: token 'qk-test-signers' rejected the user PIN/);
      assert.ok(!r.stderr[0]!.includes('999999') && !r.stderr[0]!.includes(cluster.hsm!.userPin));

      withSeal({ keyLabel: 'another-key' });
      r = await runSignerToExit(cluster, 3);
      assert.equal(r.code, 2);
      assert.match(r.stderr[0]!, /kek-mismatch/);
    } finally {
      writeClusterConfig(cluster.dir, original);
    }
    await boot(3);
    const h = await ok<Health>(stub(3), 'Health', {});
    assert.equal(h.keys[0]!.epoch, 1);
    const [fresh] = await presign([2, 3], 1);
    const message = Buffer.from('signed with a token-sealed share');
    const sig = await sign([2, 3], fresh!.presignatures[0]!, message);
    assert.ok(verifyWithNodeCrypto(publicKey, message, sig.der));
  });

  it('HTTP: /metrics has quorumkey_signer_* series, /healthz answers, anything else 404', async () => {
    const http = procs.get(2)!.http;
    const m = await httpGet(http, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.type ?? '', /^text\/plain/);
    const value = (name: string, labels: Record<string, string>): number | undefined => {
      for (const line of m.body.split('\n')) {
        const match = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        if (!match || match[1] !== name) continue;
        const have = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
        if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
      }
      return undefined;
    };
    const expectSeries = (name: string, labels: Record<string, string>, check: (v: number) => boolean = (v) => v >= 0) => {
      const v = value(name, { signer: '2', ...labels });
      assert.ok(v !== undefined, `no series ${name}${JSON.stringify(labels)}`);
      assert.ok(check(v), `${name}${JSON.stringify(labels)} = ${v}`);
    };
    expectSeries('quorumkey_signer_sessions_total', { protocol: 'presign', result: 'ok' }, (v) => v >= 3);
    expectSeries('quorumkey_signer_sessions_total', { protocol: 'refresh', result: 'ok' }, (v) => v === 1);
    expectSeries('quorumkey_signer_sessions_total', { protocol: 'presign', result: 'aborted' }, (v) => v >= 1);
    expectSeries('quorumkey_signer_session_aborts_total', { protocol: 'presign', reason: 'vole-check-failed' }, (v) => v === 1);
    expectSeries('quorumkey_signer_session_duration_seconds_bucket', { protocol: 'presign', le: '+Inf' }, (v) => v >= 4);
    expectSeries('quorumkey_signer_session_duration_seconds_count', { protocol: 'refresh' }, (v) => v === 1);
    expectSeries('quorumkey_signer_presignatures', { key: KEY });
    expectSeries('quorumkey_signer_blames_total', { peer: '1' }, (v) => v === 1);
    expectSeries('quorumkey_signer_finish_duration_seconds_count', {}, (v) => v >= 2);
    expectSeries('quorumkey_signer_finish_total', { result: 'ok' }, (v) => v >= 2);
    expectSeries('quorumkey_signer_start_time_seconds', {}, (v) => Math.abs(v - Date.now() / 1000) < 600);
    expectSeries('quorumkey_signer_boot_info', { boot_id: bootIds.get(2)! }, (v) => v === 1);
    expectSeries('quorumkey_signer_key_epoch', { key: KEY }, (v) => v === 1);
    expectSeries('quorumkey_signer_keys', {}, (v) => v === 1);
    expectSeries('quorumkey_signer_rpc_requests_total', { method: 'Presign', code: 'OK' }, (v) => v >= 3);
    expectSeries('quorumkey_signer_rpc_requests_total', { method: 'Presign', code: 'ABORTED' }, (v) => v >= 2);
    expectSeries('quorumkey_signer_process_cpu_seconds_total', {});
    for (const line of m.body.split('\n')) {
      if (line && !line.startsWith('#')) assert.match(line, /^quorumkey_signer_/, `series outside the quorumkey_signer_ namespace: ${line}`);
    }
    const h = await httpGet(http, '/healthz');
    assert.equal(h.status, 200);
    const body = JSON.parse(h.body) as { index: number; boot_id: string; keys: { key_id: string; epoch: number; public_key: string }[]; pending: unknown[] };
    assert.equal(body.index, 2);
    assert.deepEqual(body.pending, [], 'nothing pending after the commits');
    assert.equal(body.boot_id, bootIds.get(2));
    assert.equal(body.keys[0]!.key_id, KEY);
    assert.equal(body.keys[0]!.public_key, hex(publicKey));
    assert.equal((await httpGet(http, '/nope')).status, 404);
    assert.equal((await httpGet(http, '/')).status, 404);
  });

  it('the retired pair survives a kill -9 and restart of the accuser; PairSetup on both ends it and they sign again', async () => {
    // kill -9 of the accuser and a restart: the retirement was sealed with its share.
    await stopSigner(procs.get(2)!, 'SIGKILL');
    await boot(2);
    assert.deepEqual(retiredPeers(await ok<Health>(stub(2), 'Health', {}), KEY), [1]);
    const refusedAfterRestart = await call(stub(2), 'Presign', { key_id: KEY, session_id: randomBytes(32), subset: [1, 2], count: 1, epoch });
    expectStatus(refusedAfterRestart, grpc.status.ABORTED, /pair-retired/);

    // Signer 1 (honest again, restarted by the startup test): the pair re-setup is the only way
    // the two presign together.
    const label = randomBytes(32);
    const approval = createApproval(identity(cluster, 'admin'), 'pair-setup', { key: KEY, a: 1, b: 2 });
    const summaries = await Promise.all([
      ok<Health['keys'][number]>(stub(1), 'PairSetup', { key_id: KEY, session_id: label, peer: 2, approval }),
      ok<Health['keys'][number]>(stub(2), 'PairSetup', { key_id: KEY, session_id: label, peer: 1, approval }),
    ]);
    for (const k of summaries) assert.deepEqual(k.retired_peers, []);
    const fresh = await presign([1, 2], 1);
    const message = Buffer.from('after the pair re-setup');
    const signature = await sign([1, 2], fresh[0]!.presignatures[0]!, message);
    assert.ok(verifyWithNodeCrypto(publicKey, message, signature.der));
  });
});
