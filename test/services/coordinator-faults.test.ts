/**
 * Coordinator fault handling, real processes only: signers 1–3 are `dist/signer-node/main.js`;
 * to misbehave, a signer is restarted as the test-only wrapper `dist/test/services/malicious-signer.js`
 * (a real signer node, QK_MALICIOUS_MODE chooses what it does wrong); the coordinator is
 * `dist/src/coordinator/main.js`. One cluster for the whole file, one 2-of-3 key 'tls'.
 *
 *  - pool target 0: every signature presigns inline; then pools of target 3, drained by bursts
 *  - finish-nonce: the combiner itself proves the signer wrong, the coordinator quarantines it, the
 *    request is answered from another subset; Admin.Quarantine / Readmit by hand (coordinator
 *    state only: no signer is called)
 *  - finish-fail / finish-slow: Finish errors and Finish deadlines are retried on another subset
 *    (no quarantine); with no other subset the error names the subsets tried
 *  - presign-tau: an honest peer's VOLE check fails; that is a pair conflict {peer, 3} for the key
 *    (reported by a member of the pair), not a quarantine: signing goes on with [1,2], signer 3 is
 *    never excluded; restarted honest it stays apart from the peers that retired it (durable on
 *    the signers) until Admin.ReconcilePair re-runs the pair setups, then its subsets fill again
 *  - every returned signature verifies; promtool-clean /metrics; the audit log has one record per
 *    signature (inline presigns flagged).
 */
import { strict as assert } from 'node:assert';
import { assertPromtoolClean, launch, running, sample, signerRpcs, signingWork, stop, tampered, type Proc } from './processes.js';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { verifyAuditLog } from '../../src/audit/log.js';
import { paths, writeClusterConfig } from '../../src/cluster/config.js';
import { tls13CertificateVerifyContent } from '../../src/policy/classify.js';
import { ensureClusterPki, loadIdentity } from '../../src/pki/cluster-ca.js';
import { createApproval } from '../../src/pki/operator-approval.js';
import {
  expectStatus,
  httpJson,
  sleep,
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
import { MALICIOUS_DELAY_ENV, MALICIOUS_MODE_ENV } from './malicious-signer.js';
import { cli } from './cluster-harness.js';
import { createTestCluster, SIGNER_MAIN, type TestCluster } from './signer-cluster.js';

const MALICIOUS_MAIN = fileURLToPath(new URL('./malicious-signer.js', import.meta.url));
const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));
const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const COORDINATOR_READY = /^coordinator ready sign=unix:(\S+) grpc=(\S+) http=http:\/\/(\S+)$/;
const ALL = [1, 2, 3];
/** HTTP signing with a bearer token (off by default). */
const TOKEN = randomBytes(32).toString('base64url');
const BEARER = { authorization: `Bearer ${TOKEN}` };
/** The coordinator's Finish deadline (SignOptions.finishTimeoutMs default) is 5 s. */
const SLOW_FINISH_MS = 6000;

const cv = () => Buffer.from(tls13CertificateVerifyContent(randomBytes(32)));

describe('coordinator faults with real signer processes (a misbehaving signer is the test wrapper)', function () {
  this.timeout(300_000);
  let cluster: TestCluster;
  const signers = new Map<number, Proc>();
  let coordinator: Proc;
  let ep: { socket: string; grpc: string; http: string };
  let admin: AnyClient | undefined;
  let client: AnyClient | undefined;
  let key: KeyInfoWire;
  /** Every signature returned (each verified when received); the audit log must hold as many records. */
  const returned: { tbs: Buffer; res: { signature_der: Buffer; quorum: number[] } }[] = [];

  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...cluster.env, QUORUMKEY_LOG_LEVEL: 'info', ...extra });
  const status = () => unary<ClusterStatusWire>(admin!, 'Status', {});
  const signerStatus = async (i: number) => (await status()).signers.find((s) => s.index === i)!;
  const metrics = async () => (await httpJson(`http://${ep.http}/metrics`)).text;
  const signerHttp = (i: number) => signers.get(i)!.ready[3]!;
  /** How often the coordinator logged that it lifted signer i's quarantine. */
  const readmissions = (i: number) => coordinator.stderr.filter((l) => l.includes('"msg":"signer readmitted"') && l.includes(`"signer":${i}`)).length;
  const poolsWith = async (i: number) => (await status()).pools.filter((p) => p.key_id === 'tls' && p.subset.includes(i) && p.depth > 0).length;

  /** (Re)starts signer i: the real signer node, or the wrapper with `mode`; waits until the coordinator sees the new boot. */
  const startSigner = async (i: number, mode?: string, delayMs?: number) => {
    const old = signers.get(i);
    const oldBoot = old && coordinator ? (await signerStatus(i)).boot_id : undefined;
    if (old) await stop(old);
    const args = ['--dir', cluster.dir, '--index', String(i)];
    const p = mode
      ? await launch(`signer ${i} (wrapper: ${mode})`, MALICIOUS_MAIN, args, env({ [MALICIOUS_MODE_ENV]: mode, [MALICIOUS_DELAY_ENV]: String(delayMs ?? SLOW_FINISH_MS) }), SIGNER_READY)
      : await launch(`signer ${i}`, SIGNER_MAIN, args, env(), SIGNER_READY);
    signers.set(i, p);
    if (coordinator) {
      await waitFor(`signer ${i} up again at the coordinator`, async () => {
        const s = await signerStatus(i);
        return s.up && s.boot_id !== '' && s.boot_id !== oldBoot;
      });
    }
  };

  const startCoordinator = async () => {
    admin?.close();
    client?.close();
    coordinator = await launch('coordinator', COORDINATOR_MAIN, ['--dir', cluster.dir], env(), COORDINATOR_READY);
    ep = { socket: coordinator.ready[1]!, grpc: coordinator.ready[2]!, http: coordinator.ready[3]! };
    admin = tlsClient('Admin', cluster.pki, ep.grpc, 'admin');
    client = socketClient(ep.socket);
    await waitFor('every signer up at the coordinator', async () => (await status()).signers.every((s) => s.up));
  };

  /** One Sign over the unix socket; what it returns must verify. */
  const sign = async (): Promise<SignResponseWire> => {
    const tbs = cv();
    const res = await unary<SignResponseWire>(client!, 'Sign', { key_id: 'tls', tbs }, 60_000);
    returned.push({ tbs, res });
    assert.ok(verifyTbs(key.spki_der, tbs, res.signature_der), `signature ${returned.length} (quorum [${res.quorum}]) verifies`);
    return res;
  };

  /** `n` concurrent Sign requests; every one must succeed, none with `bad` in its quorum. */
  const burst = async (n: number, bad: number): Promise<SignResponseWire[]> => {
    const settled = await Promise.allSettled(Array.from({ length: n }, () => sign()));
    const failed = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as Error] : []));
    const assertion = failed.find((e) => e instanceof assert.AssertionError);
    if (assertion) throw assertion;
    assert.deepEqual(failed.map((e) => `${grpc.status[(e as grpc.ServiceError).code]}: ${(e as grpc.ServiceError).details}`), [], 'every request is answered');
    const ok = settled.map((s) => (s as PromiseFulfilledResult<SignResponseWire>).value);
    for (const r of ok) assert.ok(!r.quorum.includes(bad), `quorum [${r.quorum}] excludes signer ${bad}`);
    return ok;
  };

  /** Bursts until signer `bad` answered Finish as its mode says (at most `rounds` bursts). */
  const burstUntilTampered = async (bad: number, rounds = 6, n = 8) => {
    const before = tampered(signers.get(bad)!, 'finish');
    for (let round = 0; round < rounds && tampered(signers.get(bad)!, 'finish') === before; round++) await burst(n, bad);
    assert.ok(tampered(signers.get(bad)!, 'finish') > before, `signer ${bad} was asked for a Finish (and misbehaved)`);
  };

  const dumpLogs = () => [coordinator, ...ALL.map((i) => signers.get(i))].map((p) => (p ? `--- ${p.name} (pid ${p.pid}):\n${p.stderr.slice(-25).join('\n')}` : '')).join('\n');

  before(async () => {
    cluster = await createTestCluster({ signers: ALL, sessionTimeoutMs: 10_000 });
    ensureClusterPki(cluster.pki, ['admin']);
    // Nothing pooled at first: every signature presigns inline.
    cluster.config.pool = { target: 0, batch: 1, refillConcurrency: 1, subsets: 3 };
    const tokenFile = join(cluster.root, 'http-sign.token');
    writeFileSync(tokenFile, TOKEN + '\n', { mode: 0o600 });
    cluster.config.coordinator.httpSign = { mode: 'token', tokenFile };
    writeClusterConfig(cluster.dir, cluster.config);
    await Promise.all(ALL.map((i) => startSigner(i)));
    await startCoordinator();
  });

  after(async () => {
    if (process.env.QK_TEST_LOG) console.log(dumpLogs());
    admin?.close();
    client?.close();
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(dumpLogs());
  });

  describe('empty pools', () => {
    it('creates the 2-of-3 key over Admin', async () => {
      key = await unary<KeyInfoWire>(admin!, 'CreateKey', { key_id: 'tls', threshold: 2, signer_count: 3, clients: ['unix', 'http-token'] }, 120_000);
      assert.deepEqual(key.signers, ALL);
    });

    it('pool target 0: every signature presigns inline (socket and HTTP), nothing is pooled', async () => {
      const inline = async () => sample(await metrics(), 'quorumkey_sign_inline_presign_total', 'key="tls"');
      const before = await inline();
      for (let n = 0; n < 3; n++) assert.equal((await sign()).quorum.length, 2);
      const tbs = cv();
      const http = await httpJson(`http://${ep.http}/v1/sign`, 'POST', JSON.stringify({ key_id: 'tls', tbs: tbs.toString('base64') }), BEARER);
      assert.equal(http.status, 200, http.text);
      const res = { signature_der: Buffer.from(http.json.signature as string, 'hex'), quorum: http.json.quorum as number[] };
      returned.push({ tbs, res });
      assert.ok(verifyTbs(key.spki_der, tbs, res.signature_der));
      assert.equal(await inline(), before + 4);
      const s = await status();
      assert.ok(s.pools.length === 3 && s.pools.every((p) => p.depth === 0 && p.target === 0), JSON.stringify(s.pools));
    });

    it('restarted with pool target 3: pools fill; bursts that drain them presign inline and are all answered', async () => {
      assert.equal(await stop(coordinator), 0, 'coordinator drains on SIGTERM and exits 0');
      cluster.config.pool = { target: 3, batch: 3, refillConcurrency: 3, subsets: 3 };
      writeClusterConfig(cluster.dir, cluster.config);
      await startCoordinator();
      await waitFor('every pool at target', async () => (await status()).pools.filter((p) => p.depth === 3).length === 3, 30_000);
      const inline = async () => sample(await metrics(), 'quorumkey_sign_inline_presign_total', 'key="tls"');
      const before = await inline();
      for (let round = 0; round < 4 && (await inline()) === before; round++) await burst(16, 0);
      assert.ok((await inline()) > before, 'a drained pool made the sign path presign inline');
    });
  });

  describe('a wrong nonce in the online share (signer 3 restarted as finish-nonce)', () => {
    before(async () => {
      await startSigner(3, 'finish-nonce');
      await waitFor('pools with signer 3 refilled', async () => (await poolsWith(3)) === 2, 30_000);
    });

    it('is named by the combiner; signer 3 is quarantined and the request is answered from another subset', async () => {
      const blamesBefore = sample(await metrics(), 'quorumkey_blames_total', 'reporter="combiner",peer="3"');
      await waitFor(
        'signer 3 quarantined',
        async () => {
          await burst(6, 3);
          return (await signerStatus(3)).quarantined;
        },
        30_000,
        0,
      );
      const s3 = await signerStatus(3);
      assert.equal(s3.healthy, false);
      assert.match(s3.quarantine_reason, /^online share rejected by the combiner: nonce-inconsistent \(party 3\)/);
      assert.ok(tampered(signers.get(3)!, 'finish') > 0);
      const text = await metrics();
      assert.ok(sample(text, 'quorumkey_blames_total', 'reporter="combiner",peer="3"') > blamesBefore);
      assert.equal(sample(text, 'quorumkey_signer_quarantined', 'signer="3"'), 1);
      // The combiner's own evidence, not a signer's report: no pair conflict.
      assert.deepEqual((await status()).conflicts, []);
      for (const i of [1, 2]) assert.equal(sample(text, 'quorumkey_signer_quarantined', `signer="${i}"`), 0);
    });

    it('while quarantined signer 3 is never asked for a share', async () => {
      const asked = tampered(signers.get(3)!, 'finish');
      for (const r of await burst(8, 3)) assert.deepEqual(r.quorum, [1, 2]);
      assert.equal(tampered(signers.get(3)!, 'finish'), asked);
    });

    it('Admin.Quarantine by hand: no quorum left, the error names healthy and quarantined signers; unknown signers are NOT_FOUND', async () => {
      const q = await unary<ClusterStatusWire>(admin!, 'Quarantine', { index: 1 });
      const s1 = q.signers.find((x) => x.index === 1)!;
      assert.equal(s1.quarantined, true);
      assert.equal(s1.quarantine_reason, 'quarantined by an operator');
      // Refused before any signer is asked: no Finish call, inline presign or retry.
      const work = signingWork(await metrics());
      const finishes = await Promise.all(ALL.map((i) => signerRpcs(signerHttp(i), 'Finish')));
      await expectStatus(
        unary(client!, 'Sign', { key_id: 'tls', tbs: cv() }),
        grpc.status.UNAVAILABLE,
        /^quorum insufficient: key 'tls' needs 2 of signers \[1\.\.3\], healthy: \[2\], quarantined: \[1,3\]$/,
      );
      const r409 = await httpJson(`http://${ep.http}/v1/sign`, 'POST', JSON.stringify({ key_id: 'tls', tbs: cv().toString('base64') }), BEARER);
      assert.equal(r409.status, 409);
      assert.equal(r409.json.error, 'quorum_insufficient');
      assert.deepEqual(signingWork(await metrics()), work, 'the refused requests cost the signers nothing');
      assert.deepEqual(await Promise.all(ALL.map((i) => signerRpcs(signerHttp(i), 'Finish'))), finishes, 'no signer was asked for an online share');
      await expectStatus(unary(admin!, 'Quarantine', { index: 9 }), grpc.status.NOT_FOUND, /signer 9 is not in the cluster/);
      await expectStatus(unary(admin!, 'Readmit', { index: 9 }), grpc.status.NOT_FOUND, /signer 9 is not in the cluster/);
      const r = await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 1 });
      assert.equal(r.signers.find((x) => x.index === 1)!.quarantined, false);
      assert.deepEqual((await sign()).quorum, [1, 2]);
    });

    it('Admin.Readmit lifts the quarantine (coordinator state only); still misbehaving, signer 3 is quarantined again', async () => {
      const logged = readmissions(3);
      const calls = await Promise.all(ALL.map((i) => signerRpcs(signerHttp(i), 'PairSetup')));
      const r = await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 3 });
      assert.equal(r.signers.find((x) => x.index === 3)!.quarantined, false);
      // The lift itself: logged once, and the gauge is 0 (no sign request runs that could quarantine it again).
      assert.equal(readmissions(3), logged + 1, "the coordinator logs 'signer readmitted' for signer 3");
      assert.equal(sample(await metrics(), 'quorumkey_signer_quarantined', 'signer="3"'), 0);
      // Coordinator state only: no pair re-setup (the only signer call that would revive a pair).
      assert.deepEqual(await Promise.all(ALL.map((i) => signerRpcs(signerHttp(i), 'PairSetup'))), calls, 'Readmit made no signer run a pair setup');
      await waitFor('pools with signer 3 refilled', async () => (await poolsWith(3)) === 2, 30_000);
      await waitFor(
        'signer 3 quarantined again',
        async () => {
          await burst(6, 3);
          return (await signerStatus(3)).quarantined;
        },
        30_000,
        0,
      );
    });
  });

  describe('Finish errors (signer 3 restarted as finish-fail)', () => {
    before(async () => {
      await startSigner(3, 'finish-fail');
      await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 3 });
      await waitFor('pools with signer 3 refilled', async () => (await poolsWith(3)) === 2, 30_000);
    });

    it('a request meeting the failing signer is answered from another subset; an error answer quarantines nobody', async () => {
      const before = sample(await metrics(), 'quorumkey_sign_retries_total', 'key="tls"');
      await burstUntilTampered(3);
      const text = await metrics();
      assert.ok(sample(text, 'quorumkey_sign_retries_total', 'key="tls"') > before, 'retried');
      assert.ok(sample(text, 'quorumkey_signer_failures_total', 'signer="3",method="Finish",reason="internal"') > 0);
      const s3 = await signerStatus(3);
      assert.ok(s3.up && !s3.quarantined, JSON.stringify(s3));
    });

    it('with no other subset left the request fails, naming the subsets tried', async () => {
      await unary<ClusterStatusWire>(admin!, 'Quarantine', { index: 1 });
      try {
        const err = await expectStatus(unary(client!, 'Sign', { key_id: 'tls', tbs: cv() }, 30_000), grpc.status.UNAVAILABLE, /^no usable signer subset left for key 'tls' after trying \[2,3\]: /);
        assert.match(err.details, /signer 3 Finish: INTERNAL: malicious signer: the Finish answer is withheld/);
        console.log(`      ${err.details}`);
      } finally {
        await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 1 });
      }
    });
  });

  describe(`slow Finish answers (signer 3 restarted as finish-slow: ${SLOW_FINISH_MS} ms, over the 5 s Finish deadline)`, () => {
    before(async () => {
      await startSigner(3, 'finish-slow', SLOW_FINISH_MS);
      await waitFor('pools with signer 3 refilled', async () => (await poolsWith(3)) === 2, 30_000);
    });

    it('a request meeting the slow signer is retried on another subset after the Finish deadline; nobody is quarantined', async () => {
      const before = await metrics();
      const t0 = Date.now();
      await burstUntilTampered(3, 3, 10);
      // The mechanism: signer 3's Finish ran into the coordinator's deadline and the request was retried.
      assert.ok(Date.now() - t0 >= 4500, 'no request can meet the slow signer and be answered before the 5 s Finish deadline');
      const text = await metrics();
      const deadlines = (t: string) => sample(t, 'quorumkey_signer_failures_total', 'signer="3",method="Finish",reason="deadline_exceeded"');
      assert.ok(deadlines(text) > deadlines(before), 'a Finish of signer 3 ran into the deadline');
      assert.ok(sample(text, 'quorumkey_sign_retries_total', 'key="tls"') > sample(before, 'quorumkey_sign_retries_total', 'key="tls"'), 'and was retried');
      const s3 = await signerStatus(3);
      assert.ok(s3.up && !s3.quarantined, JSON.stringify(s3));
    });
  });

  describe('a failed VOLE check (signer 3 restarted as presign-tau): a pair conflict, not a quarantine', () => {
    const conflictsOf = (st: ClusterStatusWire) => st.conflicts.filter((c) => c.key_id === 'tls');
    const usable = (st: ClusterStatusWire) => (st.subsets.find((k) => k.key_id === 'tls')?.usable ?? []).map((u) => u.signers.join(','));

    before(async () => {
      await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 3 });
      await startSigner(3, 'presign-tau');
    });

    it('the honest peers that caught it report the pairs {1,3} and {2,3}; signer 3 is not excluded; signing goes on with [1,2]', async () => {
      const st = await waitFor(
        'conflicts {1,3} and {2,3}',
        async () => {
          const x = await status();
          return conflictsOf(x).length === 2 ? x : undefined;
        },
        45_000,
        100,
      );
      assert.deepEqual(conflictsOf(st).map((c) => `${c.a},${c.b}`), ['1,3', '2,3']);
      for (const c of conflictsOf(st)) assert.ok(c.reported_by.length > 0 && c.reported_by.every((r) => r === c.a || r === c.b), `reported by a member: [${c.reported_by}]`);
      assert.deepEqual(usable(st), ['1,2']);
      const s3 = st.signers.find((x) => x.index === 3)!;
      assert.ok(s3.up && s3.healthy && !s3.quarantined, JSON.stringify(s3));
      assert.ok(tampered(signers.get(3)!, 'presign') > 0, 'the wrapper tampered with its presign messages');
      for (const r of await burst(8, 3)) assert.deepEqual(r.quorum, [1, 2]);
      const text = await metrics();
      assert.equal(sample(text, 'quorumkey_pair_conflict', 'key="tls",a="1",b="3"'), 1);
      assert.equal(sample(text, 'quorumkey_pair_conflict', 'key="tls",a="2",b="3"'), 1);
      assert.equal(sample(text, 'quorumkey_usable_subsets', 'key="tls"'), 1);
      assert.equal(sample(text, 'quorumkey_signer_quarantined', 'signer="3"'), 0);
      assert.ok(sample(text, 'quorumkey_blames_total', 'key="tls",peer="3"') > 0, 'the blames of signer 3 are counted');
      const out = cli(cluster.dir, 'status');
      assert.equal(out.status, 0, out.stderr);
      assert.match(out.stdout, /key tls: usable subsets: 1 of 3/);
      assert.ok(out.stdout.includes('quorumkey signers reconcile --key tls 1 3') && out.stdout.includes('quorumkey signers reconcile --key tls 2 3'), out.stdout);
    });

    it('restarted honest, signer 3 stays apart from the peers that retired it until Admin.ReconcilePair; then its subsets fill again', async () => {
      await startSigner(3);
      await sleep(2500);
      let st = await status();
      assert.deepEqual(conflictsOf(st).map((c) => `${c.a},${c.b}`), ['1,3', '2,3'], 'a restart does not revive a retired pair');
      assert.equal(await poolsWith(3), 0);
      for (const peer of [1, 2]) {
        const t0 = Date.now();
        const approval = createApproval(loadIdentity(cluster.pki, 'admin'), 'pair-setup', { key: 'tls', a: peer, b: 3 });
        st = await unary<ClusterStatusWire>(admin!, 'ReconcilePair', { key_id: 'tls', a: 3, b: peer, approval }, 120_000);
        console.log(`      ReconcilePair {${peer},3} answered after ${Date.now() - t0} ms; conflicts left: ${conflictsOf(st).map((c) => `{${c.a},${c.b}}`).join(' ') || 'none'}`);
        assert.ok(!conflictsOf(st).some((c) => c.a === peer && c.b === 3), `{${peer},3} cleared by the reconciliation`);
      }
      assert.deepEqual(usable(st), ['1,2', '1,3', '2,3']);
      await waitFor('pools with signer 3 refilled', async () => (await poolsWith(3)) === 2, 30_000);
      assert.equal(sample(await metrics(), 'quorumkey_pair_conflict', 'key="tls"'), 0, 'the conflict gauges are gone');
      await burst(8, 0);
    });
  });

  describe('afterwards', () => {
    it('/metrics passes promtool check metrics', async () => {
      assertPromtoolClean(await metrics(), 'coordinator /metrics');
    });

    it('every returned signature verifies; the audit log holds one record per signature, inline presigns flagged', async () => {
      for (const r of returned) assert.ok(verifyTbs(key.spki_der, r.tbs, r.res.signature_der));
      assert.equal(await stop(coordinator), 0);
      const file = join(paths(cluster.dir).coordinator, 'audit.log');
      const res = await verifyAuditLog(file);
      assert.ok(res.ok, JSON.stringify(res));
      const all = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).record as { event: string; inline_presign: boolean; subset: number[]; signature: string; reason?: string });
      // One record per signature; the failed attempts (a misbehaving signer) are recorded as such.
      const records = all.filter((r) => r.event === 'sign');
      assert.equal(records.length, returned.length);
      for (const r of all.filter((r) => r.event !== 'sign')) assert.deepEqual([r.event, typeof r.reason], ['sign-failed', 'string']);
      assert.deepEqual(records.slice(0, 4).map((r) => r.inline_presign), [true, true, true, true]);
      const signaturesReturned = new Set(returned.map((r) => r.res.signature_der.toString('hex')));
      for (const r of records) assert.ok(signaturesReturned.has(r.signature), 'every audited signature was returned');
      console.log(`      ${returned.length} signatures, ${records.filter((r) => r.inline_presign).length} with an inline presign`);
    });
  });
});
