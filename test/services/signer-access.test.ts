/**
 * Access control on the signers' doors, with real processes over real mTLS: three signer nodes
 * (`dist/signer-node/main.js`, maxKeysPerSigner 3) and the real coordinator, one 2-of-3 key
 * 'tls' created over Admin. The test calls the signers directly with the certificates of the
 * cluster CA (coordinator, admin, provider, signer-<i>) and of another CA.
 *
 *  - Signer.*: only `coordinator`; `provider` and `admin` are refused by the interceptor, before
 *    the request is read (garbage bytes are refused, not failed to decode; a 60 MB request is
 *    refused with PERMISSION_DENIED; no handler runs: the signer's rpc metric does not move)
 *  - Peer.Exchange: a wrong certificate, or a peer writing an envelope as another peer, ends the
 *    stream at once with PERMISSION_DENIED while the client is still writing
 *  - PairSetup: needs the admin's approval of exactly this key and pair, fresh, never replayed;
 *    `quorumkey signers reconcile` makes one; Admin.ReconcilePair only carries it
 *  - KeyGen: at most maxKeysPerSigner keys held or being generated per signer
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { writeClusterConfig } from '../../src/cluster/config.js';
import { ensureClusterPki, loadIdentity } from '../../src/pki/cluster-ca.js';
import { createApproval, type OperatorApproval } from '../../src/pki/operator-approval.js';
import { encodeKeyPolicy, normaliseKeyPolicy } from '../../src/policy/key-policy.js';
import { services, type ProtocolEnvelope } from '../../src/transport/proto.js';
import { sleep, tlsClient, unary, type AnyClient, type ClusterStatusWire, type KeyInfoWire } from '../coordinator/clients.js';
import { cli } from './cluster-harness.js';
import { launch, running, sample, stop, type Proc } from './processes.js';
import { call, client, commitShares, createTestCluster, httpGet, identity, mtls, SIGNER_MAIN, type CallResult, type Stub, type TestCluster } from './signer-cluster.js';

const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));
const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const COORDINATOR_READY = /^coordinator ready sign=unix:(\S+) grpc=(\S+) http=http:\/\/(\S+)$/;
const ALL = [1, 2, 3];
const MAX_KEYS = 3;
const BIG = 60 * 1024 * 1024;

interface KeySummary {
  key_id: string;
  epoch: number;
  public_key: Buffer;
  presignatures: number;
  retired_peers: number[];
}

/** Polls until `check` is truthy (the mocha timeout is the only bound). */
async function until<T>(check: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  for (;;) {
    const v = await check();
    if (v) return v;
    await sleep(50);
  }
}

function expectCode<T>(r: CallResult<T>, code: grpc.status, detail?: RegExp): grpc.ServiceError {
  assert.ok(r.error, `expected ${grpc.status[code]}, the call succeeded`);
  assert.equal(grpc.status[r.error.code], grpc.status[code], `expected ${grpc.status[code]}, got ${grpc.status[r.error.code]}: ${r.error.details}`);
  if (detail) assert.match(r.error.details, detail);
  return r.error;
}

describe('signer access control: certificates, operator approvals, key limit (real processes)', function () {
  this.timeout(240_000);
  let cluster: TestCluster;
  const signers = new Map<number, Proc>();
  let coordinator: Proc;
  let admin: AnyClient;
  const stubs: Stub[] = [];

  const endpoint = (i: number) => cluster.config.signers.find((s) => s.index === i)!.endpoint;
  const httpOf = (i: number) => signers.get(i)!.ready[3]!;
  const metrics = async (i: number) => (await httpGet(httpOf(i), '/metrics')).body;
  const stub = (i: number, who: string) => {
    const s = client('Signer', endpoint(i), `signer-${i}`, mtls(who === 'outsider' ? loadIdentity(cluster.otherPki, who) : identity(cluster, who)));
    stubs.push(s);
    return s;
  };
  const refusedCount = (text: string, service: string, method: string, reason: string) => sample(text, 'quorumkey_signer_access_refused_total', `service="${service}",method="${method}",reason="${reason}"`);
  const rpcCount = (text: string, method: string) => sample(text, 'quorumkey_signer_rpc_requests_total', `method="${method}"`);
  const ids = () => ({ admin: identity(cluster, 'admin'), coordinator: identity(cluster, 'coordinator'), foreign: loadIdentity(cluster.otherPki, 'admin') });
  const pairApproval = (who: { cert: Buffer; key: Buffer }, fields: Record<string, string | number>, now?: number): OperatorApproval => createApproval(who, 'pair-setup', fields, now);
  const policy = () => Buffer.from(encodeKeyPolicy(normaliseKeyPolicy({ contexts: ['tls-server'] })));
  const env = () => ({ ...cluster.env, QUORUMKEY_LOG_LEVEL: 'info' });
  const startCoordinator = async () => {
    coordinator = await launch('coordinator', COORDINATOR_MAIN, ['--dir', cluster.dir], env(), COORDINATOR_READY);
    admin = tlsClient('Admin', cluster.pki, coordinator.ready[2]!, 'admin');
    await until(async () => (await unary<ClusterStatusWire>(admin, 'Status', {})).signers.every((s) => s.up));
  };
  const dumpLogs = () => [coordinator, ...ALL.map((i) => signers.get(i))].map((p) => (p ? `--- ${p.name}:\n${p.stderr.slice(-30).join('\n')}` : '')).join('\n');

  before(async () => {
    cluster = await createTestCluster({ signers: ALL, sessionTimeoutMs: 10_000 });
    ensureClusterPki(cluster.pki, ['admin', 'provider']);
    ensureClusterPki(cluster.otherPki, ['admin']);
    cluster.config.pool = { target: 2, batch: 2, refillConcurrency: 1, subsets: 3 };
    cluster.config.maxKeysPerSigner = MAX_KEYS;
    writeClusterConfig(cluster.dir, cluster.config);
    await Promise.all(ALL.map(async (i) => signers.set(i, await launch(`signer ${i}`, SIGNER_MAIN, ['--dir', cluster.dir, '--index', String(i)], env(), SIGNER_READY))));
    await startCoordinator();
    const key = await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'tls', threshold: 2, signer_count: 3, clients: ['unix'] }, 120_000);
    assert.deepEqual(key.signers, ALL);
    // Then the coordinator stops (its pools full, so no presign is left running): the signers'
    // rpc metrics move only with this test's own calls until the ReconcilePair test restarts it.
    await until(async () => {
      const st = await unary<ClusterStatusWire>(admin, 'Status', {});
      return st.pools.length === 3 && st.pools.every((p) => p.depth >= p.target);
    });
    admin.close();
    await stop(coordinator);
  });

  after(async () => {
    for (const s of stubs) s.close();
    admin?.close();
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(dumpLogs());
  });

  it('every Signer RPC from the provider and admin certificates → PERMISSION_DENIED, no handler runs; the coordinator is served', async () => {
    const methods = Object.keys(services.Signer.service);
    assert.ok(['Health', 'KeyGen', 'Presign', 'Finish', 'Refresh', 'PairSetup'].every((m) => methods.includes(m)), methods.join(','));
    const before = await metrics(1);
    for (const who of ['provider', 'admin']) {
      const s = stub(1, who);
      for (const method of methods) {
        expectCode(await call(s, method, {}), grpc.status.PERMISSION_DENIED, new RegExp(`^Signer\\.${method}: caller '${who}' is not the coordinator$`));
      }
    }
    const mid = await metrics(1);
    for (const method of methods) {
      assert.equal(refusedCount(mid, 'Signer', method, 'wrong-identity') - refusedCount(before, 'Signer', method, 'wrong-identity'), 2, `${method}: two refusals counted`);
      assert.equal(rpcCount(mid, method), rpcCount(before, method), `${method}: a handler ran for a refused caller`);
    }
    assert.ok(signers.get(1)!.stderr.some((l) => l.includes('"call refused"') && l.includes('"caller":"provider"') && l.includes('"method":"KeyGen"')), 'the refusal is logged');

    // Positive control: the same empty requests from the coordinator reach the handlers.
    const asCoordinator = stub(1, 'coordinator');
    for (const method of methods) {
      const r = await call(asCoordinator, method, {});
      if (r.error) assert.doesNotMatch(r.error.details, /is not the coordinator/, method);
    }
    const after = await metrics(1);
    for (const method of methods) assert.equal(refusedCount(after, 'Signer', method, 'wrong-identity'), refusedCount(mid, 'Signer', method, 'wrong-identity'), method);
    for (const method of ['Health', 'KeyGen', 'Presign', 'Finish', 'Refresh', 'PairSetup']) assert.equal(rpcCount(after, method) - rpcCount(mid, method), 1, `${method} handler ran once`);

    // Another CA's certificate does not even get a TLS session.
    const r = await call(stub(1, 'outsider'), 'Health', {}, 10_000);
    assert.ok(r.error);
    assert.equal(grpc.status[r.error.code], 'UNAVAILABLE', r.error.details);
  });

  it('the caller is checked before the request is read: undecodable bytes and a 60 MB request from `provider` → PERMISSION_DENIED', async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99]);
    const raw = (who: string, method: string, body: Buffer) => {
      const c = new grpc.Client(endpoint(1), mtls(identity(cluster, who)), { 'grpc.ssl_target_name_override': 'signer-1', 'grpc.default_authority': 'signer-1' });
      return new Promise<grpc.ServiceError | null>((resolve) => {
        c.makeUnaryRequest(`/quorumkey.v1.Signer/${method}`, (b: Buffer) => b, (b: Buffer) => b, body, (err) => {
          c.close();
          resolve(err);
        });
      });
    };
    // Control: from the coordinator those bytes reach the decoder, which fails on them.
    const decoded = await raw('coordinator', 'Finish', garbage);
    assert.ok(decoded);
    assert.equal(grpc.status[decoded.code], 'INTERNAL', decoded.details);
    assert.match(decoded.details, /deserializ/i);
    for (const method of ['Finish', 'KeyGen', 'PairSetup']) {
      const refused = await raw('provider', method, garbage);
      assert.ok(refused);
      assert.equal(grpc.status[refused.code], 'PERMISSION_DENIED', `${method}: ${refused.details}`);
      assert.match(refused.details, new RegExp(`^Signer\\.${method}: caller 'provider' is not the coordinator$`));
    }

    const before = await metrics(1);
    const provider = stub(1, 'provider');
    const big = await call(provider, 'Finish', { key_id: 'tls', presignature_id: randomBytes(32), tweak_seed: randomBytes(32), tbs: Buffer.alloc(BIG, 0x41) }, 120_000);
    expectCode(big, grpc.status.PERMISSION_DENIED, /^Signer\.Finish: caller 'provider' is not the coordinator$/);
    const bigPresign = await call(provider, 'Presign', { key_id: 'tls', session_id: Buffer.alloc(BIG, 0x42), subset: [1, 2], count: 1 }, 120_000);
    expectCode(bigPresign, grpc.status.PERMISSION_DENIED, /^Signer\.Presign: caller 'provider' is not the coordinator$/);
    const mid = await metrics(1);
    assert.equal(refusedCount(mid, 'Signer', 'Finish', 'wrong-identity') - refusedCount(before, 'Signer', 'Finish', 'wrong-identity'), 1);
    assert.equal(refusedCount(mid, 'Signer', 'Presign', 'wrong-identity') - refusedCount(before, 'Signer', 'Presign', 'wrong-identity'), 1);
    assert.equal(rpcCount(mid, 'Finish'), rpcCount(before, 'Finish'), 'the Finish handler ran for the 60 MB request');
    assert.equal(rpcCount(mid, 'Presign'), rpcCount(before, 'Presign'), 'the Presign handler ran for the 60 MB request');

    // Control: 60 MB from the coordinator is within the message limit, so it is read, decoded and handled.
    const fromCoordinator = await call(stub(1, 'coordinator'), 'Finish', { key_id: 'tls', presignature_id: randomBytes(32), tweak_seed: randomBytes(32), tbs: Buffer.alloc(BIG, 0x41) }, 120_000);
    assert.ok(fromCoordinator.error, 'a Finish of an unknown presignature cannot succeed');
    assert.notEqual(grpc.status[fromCoordinator.error.code], 'PERMISSION_DENIED');
    const after = await metrics(1);
    assert.equal(rpcCount(after, 'Finish') - rpcCount(mid, 'Finish'), 1, 'the coordinator’s 60 MB Finish reached its handler');
  });

  describe('Peer service', () => {
    const envelope = (from: number, sessionId = randomBytes(32)): ProtocolEnvelope => ({ protocol: 'presign', key_id: 'tls', session_id: sessionId, round: 1, from, to: 1, payload: { x: randomBytes(4) } });
    /** Opens Peer.Exchange to signer 1 as `who`, writes `envelopes`, never ends the stream itself. */
    const exchange = (who: string, envelopes: ProtocolEnvelope[]) => {
      const peer = client('Peer', endpoint(1), 'signer-1', mtls(identity(cluster, who)));
      let stream!: grpc.ClientWritableStream<ProtocolEnvelope>;
      const done = new Promise<grpc.ServiceError | null>((resolve) => {
        stream = (peer.Exchange as (cb: (e: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<ProtocolEnvelope>)((e) => {
          peer.close();
          resolve(e);
        });
      });
      stream.on('error', () => undefined);
      for (const e of envelopes) stream.write(e);
      return { stream, done };
    };
    const peerMessages = (text: string) => sample(text, 'quorumkey_signer_peer_messages_total');
    const openStreams = (text: string) => sample(text, 'quorumkey_signer_peer_streams_open');

    it('a real peer’s stream stays open while it writes and is acknowledged when it ends (the control)', async () => {
      const before = await metrics(1);
      assert.equal(openStreams(before), 0);
      const sid = randomBytes(32);
      const { stream, done } = exchange('signer-2', [envelope(2, sid)]);
      const open = await until(async () => {
        const m = await metrics(1);
        return openStreams(m) === 1 && peerMessages(m) > peerMessages(before) ? m : undefined;
      });
      assert.equal(peerMessages(open) - peerMessages(before), 1);
      stream.end();
      assert.equal(await done, null);
      assert.equal(openStreams(await metrics(1)), 0);
    });

    it('Exchange from the coordinator, the provider or the signer’s own certificate → ended at once with PERMISSION_DENIED, nothing read', async () => {
      const before = await metrics(1);
      for (const who of ['coordinator', 'provider', 'signer-1']) {
        const { done } = exchange(who, Array.from({ length: 20 }, () => envelope(2)));
        const err = await done; // the client never ended its stream: the signer ended the call
        assert.ok(err, `${who}: the stream was accepted`);
        assert.equal(grpc.status[err.code], 'PERMISSION_DENIED', `${who}: ${err.details}`);
        assert.equal(err.details, `Peer.Exchange: '${who}' is not a peer signer of signer 1`);
      }
      const after = await metrics(1);
      assert.equal(refusedCount(after, 'Peer', 'Exchange', 'wrong-identity') - refusedCount(before, 'Peer', 'Exchange', 'wrong-identity'), 3);
      assert.equal(peerMessages(after), peerMessages(before), 'a refused stream delivered messages');
      assert.equal(openStreams(after), 0);

      const retire = client('Peer', endpoint(1), 'signer-1', mtls(identity(cluster, 'coordinator')));
      stubs.push(retire);
      expectCode(await call(retire, 'RetirePair', { key_id: 'tls', epoch: 0, reason: 'ot-check-failed' }), grpc.status.PERMISSION_DENIED, /^Peer\.RetirePair: 'coordinator' is not a peer signer of signer 1$/);
    });

    it('signer-2 writing an envelope as signer 3 → the stream is ended at once with PERMISSION_DENIED; nothing after it is delivered', async () => {
      const before = await metrics(1);
      const sid = randomBytes(32);
      const { done } = exchange('signer-2', [envelope(2, sid), ...Array.from({ length: 20 }, () => envelope(3, sid))]);
      const err = await done;
      assert.ok(err, 'the stream was accepted to the end');
      assert.equal(grpc.status[err.code], 'PERMISSION_DENIED', err.details);
      assert.equal(err.details, 'Peer.Exchange: signer-2 sent a message as signer 3');
      const after = await metrics(1);
      assert.equal(refusedCount(after, 'Peer', 'Exchange', 'wrong-sender') - refusedCount(before, 'Peer', 'Exchange', 'wrong-sender'), 1, 'one refusal, not one per envelope written');
      assert.equal(peerMessages(after) - peerMessages(before), 1, 'only the envelope before the forged one was delivered');
      assert.equal(openStreams(after), 0, 'the refused stream is still open at the signer');
      // The signer serves its real peers as before.
      const ok = exchange('signer-3', [envelope(3)]);
      ok.stream.end();
      assert.equal(await ok.done, null);
    });
  });

  describe('PairSetup needs the operator’s approval', () => {
    const pairSetup = (i: number, peer: number, approval: OperatorApproval | undefined, label = randomBytes(32)) =>
      call<KeySummary>(stub(i, 'coordinator'), 'PairSetup', { key_id: 'tls', session_id: label, peer, ...(approval ? { approval } : {}) }, 120_000);
    const refusal = (r: CallResult<KeySummary>, reason: string, detail?: RegExp) => {
      const err = expectCode(r, grpc.status.PERMISSION_DENIED, new RegExp(`^signer \\d: ${reason}: `));
      if (detail) assert.match(err.details, detail);
      assert.equal(err.metadata.get('qk-refusal')[0], reason);
    };
    const pairSetups = (text: string) => sample(text, 'quorumkey_signer_sessions_total', 'protocol="pair-setup"');

    it('without approval, signed by the coordinator, by another CA’s admin, for another pair / key / op, expired → refused with the named reason; nothing runs', async () => {
      const { admin: adm, coordinator: coord, foreign } = ids();
      const before = await metrics(1);
      refusal(await pairSetup(1, 2, undefined), 'approval-missing');
      refusal(await pairSetup(1, 2, pairApproval(coord, { key: 'tls', a: 1, b: 2 })), 'approval-not-admin', /signed by 'coordinator'/);
      refusal(await pairSetup(1, 2, pairApproval(foreign, { key: 'tls', a: 1, b: 2 })), 'approval-untrusted');
      refusal(await pairSetup(1, 2, pairApproval(adm, { key: 'tls', a: 1, b: 3 })), 'approval-mismatch', /for b 3, not 2/);
      refusal(await pairSetup(1, 2, pairApproval(adm, { key: 'other', a: 1, b: 2 })), 'approval-mismatch', /for key "other", not "tls"/);
      refusal(await pairSetup(1, 2, createApproval(adm, 'adopt-policy', { key: 'tls', a: 1, b: 2 })), 'approval-mismatch', /for op "adopt-policy"/);
      refusal(await pairSetup(1, 2, pairApproval(adm, { key: 'tls', a: 2, b: 1 })), 'approval-mismatch'); // a < b, always
      refusal(await pairSetup(1, 2, pairApproval(adm, { key: 'tls', a: 1, b: 2 }, Date.now() - 10 * 60_000)), 'approval-expired');
      refusal(await pairSetup(1, 2, pairApproval(adm, { key: 'tls', a: 1, b: 2 }, Date.now() + 10 * 60_000)), 'approval-expired');
      const after = await metrics(1);
      assert.equal(pairSetups(after), pairSetups(before), 'a pair setup session ran without a valid approval');
      assert.equal(rpcCount(after, 'PairSetup') - rpcCount(before, 'PairSetup'), 9);
    });

    it('a fresh admin approval → both signers re-run the pair setup and presign together; the same approval again → approval-replayed', async () => {
      const { admin: adm } = ids();
      const approval = pairApproval(adm, { key: 'tls', a: 1, b: 2 });
      const before = await Promise.all([metrics(1), metrics(2)]);
      const label = randomBytes(32);
      const [r1, r2] = await Promise.all([pairSetup(1, 2, approval, label), pairSetup(2, 1, approval, label)]);
      for (const r of [r1, r2]) {
        assert.ok(!r.error, r.error?.details);
        assert.equal(r.value!.key_id, 'tls');
        assert.deepEqual(r.value!.retired_peers, []);
      }
      const after = await Promise.all([metrics(1), metrics(2)]);
      for (const k of [0, 1]) {
        assert.equal(sample(after[k]!, 'quorumkey_signer_sessions_total', 'protocol="pair-setup",result="ok"') - sample(before[k]!, 'quorumkey_signer_sessions_total', 'protocol="pair-setup",result="ok"'), 1);
      }
      const again = randomBytes(32);
      const [x1, x2] = await Promise.all([pairSetup(1, 2, approval, again), pairSetup(2, 1, approval, again)]);
      refusal(x1, 'approval-replayed');
      refusal(x2, 'approval-replayed');
      // The fresh OT correlation works: a presign of [1,2].
      const sid = randomBytes(32);
      const presigned = await Promise.all([1, 2].map((i) => call<{ presignatures: { id: Buffer }[] }>(stub(i, 'coordinator'), 'Presign', { key_id: 'tls', session_id: sid, subset: [1, 2], count: 1 }, 60_000)));
      for (const p of presigned) assert.ok(!p.error, p.error?.details);
      assert.equal(Buffer.from(presigned[0]!.value!.presignatures[0]!.id).toString('hex'), Buffer.from(presigned[1]!.value!.presignatures[0]!.id).toString('hex'));
    });

    it('Admin.ReconcilePair carries the approval: none, or one the coordinator could make → PERMISSION_DENIED; `quorumkey signers reconcile` signs one and works', async () => {
      const { admin: adm, coordinator: coord } = ids();
      await startCoordinator();
      const reconcile = (approval?: OperatorApproval, a = 1, b = 2) => unary<ClusterStatusWire>(admin, 'ReconcilePair', { key_id: 'tls', a, b, ...(approval ? { approval } : {}) }, 120_000);
      const refused = async (p: Promise<unknown>, detail: RegExp) => {
        const err = await p.then(
          () => assert.fail('ReconcilePair succeeded'),
          (e: grpc.ServiceError) => e,
        );
        assert.equal(grpc.status[err.code], 'PERMISSION_DENIED', err.details);
        assert.match(err.details, detail);
      };
      const before = await Promise.all([metrics(1), metrics(2)]);
      await refused(reconcile(), /approval-missing/);
      await refused(reconcile(pairApproval(coord, { key: 'tls', a: 1, b: 2 })), /signer 1 PairSetup: PERMISSION_DENIED: signer 1: approval-not-admin/);
      await refused(reconcile(pairApproval(adm, { key: 'tls', a: 1, b: 3 })), /approval-mismatch/);
      const mid = await Promise.all([metrics(1), metrics(2)]);
      for (const k of [0, 1]) assert.equal(pairSetups(mid[k]!), pairSetups(before[k]!));

      const r = cli(cluster.dir, 'signers', 'reconcile', '--key', 'tls', '2', '1');
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^signers 1 and 2 reconciled for key tls$/m);
      const after = await Promise.all([metrics(1), metrics(2)]);
      for (const k of [0, 1]) {
        assert.equal(sample(after[k]!, 'quorumkey_signer_sessions_total', 'protocol="pair-setup",result="ok"') - sample(mid[k]!, 'quorumkey_signer_sessions_total', 'protocol="pair-setup",result="ok"'), 1);
      }
    });
  });

  it(`KeyGen stops at maxKeysPerSigner (${MAX_KEYS}), counting keys still being generated → RESOURCE_EXHAUSTED key-limit`, async () => {
    const keyGen = (i: number, keyId: string, sid: Buffer) =>
      call<{ public_key: Buffer; epoch: number; public_shares_digest: Buffer }>(stub(i, 'coordinator'), 'KeyGen', { key_id: keyId, session_id: sid, parties: [1, 2], threshold: 2, policy: policy() }, 120_000);
    const commit = (keyId: string, dealt: CallResult<{ epoch: number; public_shares_digest: Buffer }>) => commitShares([stub(1, 'coordinator'), stub(2, 'coordinator')], keyId, dealt.value!);
    const limit = (r: CallResult<unknown>, count: number) => {
      const err = expectCode(r, grpc.status.RESOURCE_EXHAUSTED, new RegExp(`^signer 1 holds or is generating ${count} keys, its limit \\(maxKeysPerSigner in cluster\\.json: ${MAX_KEYS}\\)$`));
      assert.equal(err.metadata.get('qk-refusal')[0], 'key-limit');
    };
    // Below the limit (signer 1 holds 'tls'): a second key.
    const sid2 = randomBytes(32);
    const k2 = await Promise.all([keyGen(1, 'k2', sid2), keyGen(2, 'k2', sid2)]);
    for (const r of k2) assert.ok(!r.error, r.error?.details);
    await commit('k2', k2[0]!);
    // 'k3' starts at signer 1 only; while it waits for signer 2, it counts.
    const sid3 = randomBytes(32);
    const started = signers.get(1)!.stderr.length;
    const k3at1 = keyGen(1, 'k3', sid3);
    await until(() => signers.get(1)!.stderr.slice(started).some((l) => l.includes('"key generation started"') && l.includes('"key":"k3"')));
    limit(await keyGen(1, 'k4', randomBytes(32)), 3);
    const k3 = await Promise.all([k3at1, keyGen(2, 'k3', sid3)]);
    for (const r of k3) assert.ok(!r.error, r.error?.details);
    await commit('k3', k3[0]!);
    limit(await keyGen(1, 'k5', randomBytes(32)), 3);
    const m = await metrics(1);
    assert.equal(refusedCount(m, 'Signer', 'KeyGen', 'key-limit'), 2);
    assert.equal(sample(m, 'quorumkey_signer_keys'), 3);
    // Signer 3 holds one key: it is not affected by signer 1's count.
    const h = await call<{ keys: unknown[] }>(stub(3, 'coordinator'), 'Health', {});
    assert.equal(h.value?.keys.length, 1);
  });
});
