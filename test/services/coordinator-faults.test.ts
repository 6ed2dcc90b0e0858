/**
 * Coordinator fault handling, real processes only: signers 1–3 are `dist/signer-node/main.js`;
 * to misbehave, a signer is restarted as the test-only wrapper `dist/test/services/malicious-signer.js`
 * (a real signer node, QK_MALICIOUS_MODE chooses what it does wrong); the coordinator is
 * `dist/src/coordinator/main.js`. One cluster for the whole file, one 2-of-3 key 'tls'.
 *
 *  - pool target 0: every signature presigns inline; then pools of target 3, drained by bursts
 *  - finish-nonce: the combiner names the signer, the coordinator quarantines it, the request is
 *    answered from another subset; Admin.Quarantine / Readmit by hand; Readmit reaches the signers
 *  - finish-fail / finish-slow: Finish errors and Finish deadlines are retried on another subset
 *    (no quarantine); with no other subset the error names the subsets tried
 *  - Readmit while a signer is slow to be told: its stale blame reports do not re-quarantine, but a
 *    new blame arriving during the fan-out stands (readmit-slow + presign-tau)
 *  - every returned signature verifies; promtool-clean /metrics; the audit log has one record per
 *    signature (inline presigns flagged).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { launch, running, sample, stop, tampered, type Proc } from './processes.js';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { verifyAuditLog } from '../../src/audit/log.js';
import { paths, writeClusterConfig } from '../../src/cluster/config.js';
import { tls13CertificateVerifyContent } from '../../src/coordinator/classify.js';
import { ensureClusterPki } from '../../src/pki/cluster-ca.js';
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
import { createTestCluster, SIGNER_MAIN, type TestCluster } from './signer-cluster.js';

const MALICIOUS_MAIN = fileURLToPath(new URL('./malicious-signer.js', import.meta.url));
const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));
const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const COORDINATOR_READY = /^coordinator ready sign=unix:(\S+) grpc=(\S+) http=http:\/\/(\S+)$/;
const ALL = [1, 2, 3];
/** The coordinator's Finish deadline (SignOptions.finishTimeoutMs default) is 5 s. */
const SLOW_FINISH_MS = 6000;
/** How long signer 2 (readmit-slow) holds a Readmit back; below the coordinator's 5 s Readmit deadline. */
const SLOW_READMIT_MS = 3500;

const cv = () => Buffer.from(tls13CertificateVerifyContent(randomBytes(32)));

const toldToReadmit = (p: Proc, peer: number) => p.stderr.filter((l) => l.includes('"msg":"peer readmitted by the operator"') && l.includes(`"peer":${peer},`)).length;

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
      key = await unary<KeyInfoWire>(admin!, 'CreateKey', { key_id: 'tls', threshold: 2, signer_count: 3 }, 120_000);
      assert.deepEqual(key.signers, ALL);
    });

    it('pool target 0: every signature presigns inline (socket and HTTP), nothing is pooled', async () => {
      const inline = async () => sample(await metrics(), 'quorumkey_sign_inline_presign_total', 'key="tls"');
      const before = await inline();
      for (let n = 0; n < 3; n++) assert.equal((await sign()).quorum.length, 2);
      const tbs = cv();
      const http = await httpJson(`http://${ep.http}/v1/sign`, 'POST', JSON.stringify({ key_id: 'tls', tbs: tbs.toString('base64') }));
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
      const blamesBefore = sample(await metrics(), 'quorumkey_blames_total', 'signer="3"');
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
      assert.ok(sample(text, 'quorumkey_blames_total', 'signer="3"') > blamesBefore);
      assert.equal(sample(text, 'quorumkey_signer_quarantined', 'signer="3"'), 1);
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
      const t0 = Date.now();
      await expectStatus(
        unary(client!, 'Sign', { key_id: 'tls', tbs: cv() }),
        grpc.status.UNAVAILABLE,
        /^quorum insufficient: key 'tls' needs 2 of signers \[1\.\.3\], healthy: \[2\], quarantined: \[1,3\]$/,
      );
      assert.ok(Date.now() - t0 < 2000, 'fails fast');
      const r409 = await httpJson(`http://${ep.http}/v1/sign`, 'POST', JSON.stringify({ key_id: 'tls', tbs: cv().toString('base64') }));
      assert.equal(r409.status, 409);
      assert.equal(r409.json.error, 'quorum_insufficient');
      await expectStatus(unary(admin!, 'Quarantine', { index: 9 }), grpc.status.NOT_FOUND, /signer 9 is not in the cluster/);
      await expectStatus(unary(admin!, 'Readmit', { index: 9 }), grpc.status.NOT_FOUND, /signer 9 is not in the cluster/);
      const r = await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 1 });
      assert.equal(r.signers.find((x) => x.index === 1)!.quarantined, false);
      assert.deepEqual((await sign()).quorum, [1, 2]);
    });

    it('Admin.Readmit lifts the quarantine and reaches the other signers; still misbehaving, signer 3 is quarantined again', async () => {
      const told = [1, 2].map((i) => toldToReadmit(signers.get(i)!, 3));
      const r = await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 3 });
      assert.equal(r.signers.find((x) => x.index === 3)!.quarantined, false);
      for (const [k, i] of [1, 2].entries()) await waitFor(`signer ${i} told to readmit signer 3`, () => toldToReadmit(signers.get(i)!, 3) === told[k]! + 1, 2000, 20);
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
      const t0 = Date.now();
      await burstUntilTampered(3, 3, 10);
      const took = Date.now() - t0;
      assert.ok(took >= 4500 && took < 20_000, `answered after the 5 s Finish deadline, not much later (${took} ms)`);
      const text = await metrics();
      assert.ok(sample(text, 'quorumkey_signer_failures_total', 'signer="3",method="Finish",reason="deadline_exceeded"') > 0);
      const s3 = await signerStatus(3);
      assert.ok(s3.up && !s3.quarantined, JSON.stringify(s3));
    });
  });

  describe(`Readmit while signer 2 is slow to be told (signer 2 as readmit-slow: ${SLOW_READMIT_MS} ms)`, () => {
    before(async () => {
      await startSigner(2, 'readmit-slow', SLOW_READMIT_MS);
      // Signer 1 out of the way: the only subset with signer 3 is [2,3], so signer 2 blames it.
      await stop(signers.get(1)!);
      await waitFor('signer 1 down', async () => !(await signerStatus(1)).up);
      await startSigner(3, 'presign-tau');
      await waitFor('signer 3 quarantined', async () => (await signerStatus(3)).quarantined, 30_000);
      assert.match((await signerStatus(3)).quarantine_reason, /blamed by signer 2/);
      await waitFor('signer 2 reports signer 3 as blamed', async () => ((await httpJson(`http://${signerHttp(2)}/healthz`)).json.blamed_peers as number[]).includes(3));
      // Signer 3 behaves now, signer 1 is back (it blames nobody).
      await startSigner(3);
      await startSigner(1);
    });

    it('stale blame reports of a signer not yet told do not re-quarantine the readmitted signer', async () => {
      const t0 = Date.now();
      const r = await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 3 });
      const took = Date.now() - t0;
      const s3 = r.signers.find((x) => x.index === 3)!;
      assert.ok(took >= SLOW_READMIT_MS - 100, `Readmit waited for signer 2 (${took} ms)`);
      assert.equal(s3.quarantined, false, `not quarantined (reason: ${s3.quarantine_reason})`);
      await waitFor('signer 2 told to readmit signer 3', () => toldToReadmit(signers.get(2)!, 3) === 1, 2000, 20);
      assert.deepEqual((await httpJson(`http://${signerHttp(2)}/healthz`)).json.blamed_peers, []);
      // Signer 3 is honest: the pools with it fill and it signs.
      await waitFor('pools with signer 3 refilled', async () => (await poolsWith(3)) === 2, 30_000);
      await sleep(1200);
      assert.equal((await signerStatus(3)).quarantined, false);
    });

    it('a new blame arriving while the signers are being told stands', async () => {
      await startSigner(3, 'presign-tau');
      await waitFor('signer 3 quarantined', async () => (await signerStatus(3)).quarantined, 30_000);
      const blamesBefore = sample(await metrics(), 'quorumkey_blames_total', 'signer="3"');
      const t0 = Date.now();
      const r = await unary<ClusterStatusWire>(admin!, 'Readmit', { index: 3 });
      const took = Date.now() - t0;
      const s3 = r.signers.find((x) => x.index === 3)!;
      console.log(`      Readmit answered after ${took} ms; signer 3: quarantined=${s3.quarantined} (${s3.quarantine_reason})`);
      assert.ok(took >= SLOW_READMIT_MS - 100, `Readmit waited for signer 2 (${took} ms)`);
      // Signer 1 was told at once; the refills resumed and its VOLE check caught signer 3 again
      // while signer 2 was still being told. That blame must not be wiped by the Readmit.
      assert.equal(s3.quarantined, true, 'the blame that arrived during the fan-out stands');
      assert.match(s3.quarantine_reason, /blamed by signer [12]\b/);
      assert.doesNotMatch(s3.quarantine_reason, /blamed by signer 2 \(reported in its health\)/, 'not a stale report of signer 2');
      assert.ok(sample(await metrics(), 'quorumkey_blames_total', 'signer="3"') > blamesBefore);
      await sleep(1000);
      assert.equal((await signerStatus(3)).quarantined, true, 'still quarantined');
      for (const res of await burst(4, 3)) assert.deepEqual(res.quorum, [1, 2]);
    });
  });

  describe('afterwards', () => {
    it('/metrics passes promtool check metrics', async function () {
      try {
        execFileSync('promtool', ['--version'], { stdio: 'ignore' });
      } catch {
        this.skip();
      }
      const text = await metrics();
      const out = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(out.status, 0, `${out.stdout}${out.stderr}`);
    });

    it('every returned signature verifies; the audit log holds one record per signature, inline presigns flagged', async () => {
      for (const r of returned) assert.ok(verifyTbs(key.spki_der, r.tbs, r.res.signature_der));
      assert.equal(await stop(coordinator), 0);
      const file = join(paths(cluster.dir).coordinator, 'audit.log');
      const res = await verifyAuditLog(file);
      assert.ok(res.ok, JSON.stringify(res));
      assert.equal(res.records, returned.length);
      const records = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).record as { inline_presign: boolean; subset: number[]; signature: string });
      assert.deepEqual(records.slice(0, 4).map((r) => r.inline_presign), [true, true, true, true]);
      const signaturesReturned = new Set(returned.map((r) => r.res.signature_der.toString('hex')));
      for (const r of records) assert.ok(signaturesReturned.has(r.signature), 'every audited signature was returned');
      console.log(`      ${returned.length} signatures, ${records.filter((r) => r.inline_presign).length} with an inline presign`);
    });
  });
});
