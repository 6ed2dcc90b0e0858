/**
 * A malicious signer among real processes: signers 1–3 are `dist/signer-node/main.js`, signer 4
 * is the test-only wrapper `dist/test/services/malicious-signer.js` (a real signer node whose
 * outgoing presign messages / online shares are tampered with from the outside), and the real
 * coordinator process `dist/src/coordinator/main.js`, all over mTLS.
 *
 * Contract under test (DESIGN §2 step 6, §3 "blame"): a failed VOLE check is a blame, which the
 * coordinator records as a pair conflict {accuser, culprit} for the key (never a quarantine: it
 * cannot tell accuser from accused); it never schedules a subset holding a conflicting pair until
 * Admin.ReconcilePair, and never returns a signature that does not verify.
 */
import { strict as assert } from 'node:assert';
import { launch, running, sample, stop, tampered, type Proc } from './processes.js';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { paths, writeClusterConfig, type ClusterConfig } from '../../src/cluster/config.js';
import { ensureClusterPki, loadIdentity, signerName } from '../../src/pki/cluster-ca.js';
import { createApproval } from '../../src/pki/operator-approval.js';
import { ensureDevPassphrase } from '../../signer-node/shares.js';
import {
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
import { MALICIOUS_MODE_ENV } from './malicious-signer.js';

const SIGNER_MAIN = fileURLToPath(new URL('../../signer-node/main.js', import.meta.url));
const MALICIOUS_MAIN = fileURLToPath(new URL('./malicious-signer.js', import.meta.url));
const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));

const HONEST = [1, 2, 3];
const BAD = 4;
const ALL = [...HONEST, BAD];

/** TLS 1.3 server CertificateVerify content: 64×0x20 ‖ label ‖ 0x00 ‖ 32-byte transcript hash. */
const tbs = () => Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify'), Buffer.from([0]), randomBytes(32)]);

describe('a malicious signer (test wrapper process) among real signer and coordinator processes', function () {
  this.timeout(120_000);
  let root: string;
  let dir: string;
  let config: ClusterConfig;
  const signers = new Map<number, Proc>();
  let coordinator: Proc;
  let endpoints: { socket: string; grpc: string; http: string };
  let admin: AnyClient;
  let client: AnyClient;
  let key: KeyInfoWire;
  /** Every signature the coordinator returned, with what it signed. */
  const returned: { tbs: Buffer; res: SignResponseWire; spki: Buffer }[] = [];
  let conflictsAfter = -1;

  const signerEnv = () => ({ ...process.env, QUORUMKEY_LOG_LEVEL: 'info' });
  const startHonest = async (i: number) =>
    signers.set(i, await launch(`signer ${i}`, SIGNER_MAIN, ['--dir', dir, '--index', String(i)], signerEnv(), /^signer (\d+) ready grpc=(\S+) http=(\S+)$/));
  const startMalicious = async (mode: string) =>
    signers.set(
      BAD,
      await launch(`malicious signer ${BAD}`, MALICIOUS_MAIN, ['--dir', dir, '--index', String(BAD)], { ...signerEnv(), [MALICIOUS_MODE_ENV]: mode }, /^signer (\d+) ready grpc=(\S+) http=(\S+)$/),
    );
  const signerHttp = (i: number) => signers.get(i)!.ready[3]!;
  const status = () => unary<ClusterStatusWire>(admin, 'Status', {});
  const signerStatus = async (i: number) => (await status()).signers.find((s) => s.index === i)!;
  const coordinatorMetrics = async () => (await httpJson(`http://${endpoints.http}/metrics`)).text;
  const signerMetrics = async (i: number) => (await httpJson(`http://${signerHttp(i)}/metrics`)).text;
  /** The peers signer i has retired for key tls (its /healthz). */
  const blamedPeers = async (i: number) =>
    ((await httpJson(`http://${signerHttp(i)}/healthz`)).json.keys as { key_id: string; retired_peers: number[] }[]).find((k) => k.key_id === 'tls')?.retired_peers ?? [];
  /** Pairs in conflict for key tls, as "a,b". */
  const conflictPairs = (s: ClusterStatusWire, keyId = 'tls') => s.conflicts.filter((c) => c.key_id === keyId).map((c) => `${c.a},${c.b}`);
  const WITH_BAD = HONEST.map((i) => `${i},${BAD}`);
  /** The operator's approval of a pair re-setup (what `quorumkey signers reconcile` signs). */
  const approval = (keyId: string, a: number, b: number) => createApproval(loadIdentity(paths(dir).pki, 'admin'), 'pair-setup', { key: keyId, a: Math.min(a, b), b: Math.max(a, b) });
  /** Re-runs the pair setups of signer 4 with every honest signer (the operator's reconcile). */
  const reconcileAll = async () => {
    for (const i of HONEST) await unary<ClusterStatusWire>(admin, 'ReconcilePair', { key_id: 'tls', a: i, b: BAD, approval: approval('tls', i, BAD) }, 120_000);
  };

  /** One Sign over the unix socket; a returned signature must verify (checked here, always). */
  const sign = async (keyInfo: KeyInfoWire = key): Promise<SignResponseWire> => {
    const data = tbs();
    const res = await unary<SignResponseWire>(client, 'Sign', { key_id: keyInfo.key_id, tbs: data, digest_alg: 'SHA256' }, 60_000);
    returned.push({ tbs: data, res, spki: keyInfo.spki_der });
    assert.ok(verifyTbs(keyInfo.spki_der, data, res.signature_der), `signature ${returned.length} (quorum [${res.quorum}]) verifies against the key`);
    assert.equal(res.context, 'tls-server');
    return res;
  };

  const dumpLogs = () => {
    const tail = (p: Proc | undefined, n: number) => (p ? `--- ${p.name} (pid ${p.pid}) stderr, last ${n} lines:\n${p.stderr.slice(-n).join('\n')}` : '');
    return [tail(coordinator, 40), ...ALL.map((i) => tail(signers.get(i), 12))].join('\n');
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'qk-malicious-'));
    dir = join(root, 'cluster');
    mkdirSync(dir, { mode: 0o700 });
    const pki = paths(dir).pki;
    ensureClusterPki(pki, [...ALL.map(signerName), 'coordinator', 'admin']);
    const list = [];
    for (const index of ALL) {
      ensureDevPassphrase(dir, index);
      list.push({ index, endpoint: `127.0.0.1:${await freePort()}`, http: `127.0.0.1:${await freePort()}`, seal: { mode: 'passphrase' as const } });
    }
    config = {
      signers: list,
      coordinator: { grpc: `127.0.0.1:${await freePort()}`, socket: paths(dir).socket, http: `127.0.0.1:${await freePort()}` },
      // Every subset of the 2-of-4 key is kept filled, so subsets with signer 4 are presigned at once.
      pool: { target: 4, batch: 2, refillConcurrency: 3, subsets: 6 },
      sessionTimeoutMs: 10_000,
    };
    writeClusterConfig(dir, config);
    await Promise.all([...HONEST.map(startHonest), startMalicious('presign-tau')]);
    coordinator = await launch('coordinator', COORDINATOR_MAIN, ['--dir', dir, '--log-level', 'debug'], process.env, /^coordinator ready sign=unix:(\S+) grpc=(\S+) http=http:\/\/(\S+)$/);
    endpoints = { socket: coordinator.ready[1]!, grpc: coordinator.ready[2]!, http: coordinator.ready[3]! };
    admin = tlsClient('Admin', pki, endpoints.grpc, 'admin');
    client = socketClient(endpoints.socket);
    await waitFor('every signer up at the coordinator', async () => (await status()).signers.every((s) => s.up), 20_000);
  });

  after(async () => {
    if (process.env.QK_TEST_LOG) console.log(dumpLogs());
    admin?.close();
    client?.close();
    await Promise.all([...running].map((p) => stop(p)));
    rmSync(root, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(dumpLogs());
  });

  it('creates a 2-of-4 key over Admin: key generation is not tampered with and succeeds', async () => {
    key = await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'tls', threshold: 2, signer_count: 4, clients: ['unix'] }, 120_000);
    assert.deepEqual(key.signers, ALL);
    assert.equal(key.threshold, 2);
    assert.deepEqual(key.policy, ['tls-server']);
    assert.equal(key.public_key.length, 33);
  });

  describe('presign tampering (presign-tau: the VOLE correction tau of its round-2 messages is altered)', () => {
    it('signer 4 is blamed by the honest peers during presign: the pairs {i,4} are in conflict, nobody is quarantined; every returned signature verifies', async () => {
      const t0 = Date.now();
      await waitFor(
        'pairs {1,4}, {2,4}, {3,4} in conflict',
        async () => {
          await sign();
          return conflictPairs(await status()).length === 3;
        },
        45_000,
        50,
      );
      conflictsAfter = returned.length;
      const s = await status();
      assert.deepEqual(conflictPairs(s), WITH_BAD);
      for (const c of s.conflicts) assert.ok(c.reported_by.every((r) => r === c.a || r === c.b), `{${c.a},${c.b}} reported by a member: [${c.reported_by}]`);
      assert.deepEqual(s.subsets.find((k) => k.key_id === 'tls')!.usable.map((u) => u.signers.join(',')), ['1,2', '1,3', '2,3']);
      for (const i of ALL) assert.equal(s.signers.find((x) => x.index === i)!.quarantined, false, `signer ${i} not quarantined`);
      assert.ok(tampered(signers.get(BAD)!, 'presign') > 0, 'the wrapper did tamper with presign messages');
      // No presignature with signer 4 was ever accepted: every signature so far came from honest subsets.
      for (const r of returned) assert.ok(!r.res.quorum.includes(BAD), `quorum [${r.res.quorum}] excludes signer 4`);
      console.log(`      pairs with signer 4 in conflict after ${Date.now() - t0} ms and ${returned.length} signatures: ${s.conflicts.map((c) => `{${c.a},${c.b}} ${c.reason}`).join('; ')}`);
    });

    it('while its pairs are in conflict, signing goes on with honest subsets only', async () => {
      for (let n = 0; n < 8; n++) {
        const res = await sign();
        assert.equal(res.quorum.length, 2);
        assert.ok(res.quorum.every((i) => HONEST.includes(i)), `quorum [${res.quorum}] is an honest subset`);
      }
      for (const r of returned.slice(conflictsAfter)) assert.ok(!r.res.quorum.includes(BAD));
      assert.deepEqual(conflictPairs(await status()), WITH_BAD, 'still in conflict: only a reconciliation (or refresh) clears it');
    });

    it('metrics: honest signers count a blame of peer 4; the coordinator counts it and shows the pair conflicts', async () => {
      const blames = new Map<number, number>();
      for (const i of HONEST) blames.set(i, sample(await signerMetrics(i), 'quorumkey_signer_blames_total', 'peer="4"'));
      const blamers = HONEST.filter((i) => blames.get(i)! > 0);
      if (blamers.length === 0) {
        const detail: string[] = [];
        for (const i of HONEST) {
          detail.push(`signer ${i} metrics: ${(await signerMetrics(i)).split('\n').filter((l) => /blame|abort/.test(l) && !l.startsWith('#')).join(' ; ')}`);
          detail.push(`signer ${i} log: ${signers.get(i)!.stderr.filter((l) => /blame|abort/i.test(l)).slice(0, 4).join(' ; ')}`);
        }
        assert.fail(`no honest signer counts a blame of signer 4 (quorumkey_signer_blames_total{peer="4"}):\n${detail.join('\n')}`);
      }
      for (const i of blamers) assert.ok((await blamedPeers(i)).includes(BAD), `signer ${i} /healthz lists 4 among the retired peers of tls`);
      for (const i of HONEST) {
        const text = await signerMetrics(i);
        for (const j of HONEST) if (j !== i) assert.equal(sample(text, 'quorumkey_signer_blames_total', `peer="${j}"`), 0, `signer ${i} blamed no honest peer (${j})`);
      }
      const text = await coordinatorMetrics();
      assert.ok(sample(text, 'quorumkey_blames_total', 'peer="4"') >= 1, 'quorumkey_blames_total{peer="4"} >= 1');
      for (const i of HONEST) assert.equal(sample(text, 'quorumkey_pair_conflict', `key="tls",a="${i}",b="4"`), 1);
      assert.equal(sample(text, 'quorumkey_usable_subsets', 'key="tls"'), 3);
      for (const i of ALL) assert.equal(sample(text, 'quorumkey_signer_quarantined', `signer="${i}"`), 0);
      // Honest reporters name signer 4 only (signer 4 itself may list the honest peers that retired it).
      for (const i of HONEST) for (const j of HONEST) assert.equal(sample(text, 'quorumkey_blames_total', `reporter="${i}",peer="${j}"`), 0);
    });

    it('Admin.ReconcilePair clears the pairs; still tampering, signer 4 is in conflict again at its next presign', async () => {
      const blamesBefore = sample(await coordinatorMetrics(), 'quorumkey_blames_total', 'peer="4"');
      // Each reconciliation re-runs one pair setup (not tampered with: only presign messages are)
      // and answers after both signers were probed anew: that pair is cleared, unless signer 4
      // already failed a presign with it again (the refills resume at once, and it keeps tampering).
      for (const i of HONEST) {
        const after = await unary<ClusterStatusWire>(admin, 'ReconcilePair', { key_id: 'tls', a: i, b: BAD, approval: approval('tls', i, BAD) }, 120_000);
        for (const x of after.signers) assert.equal(x.quarantined, false, `signer ${x.index} not quarantined`);
      }
      await waitFor(
        'pairs with signer 4 in conflict again',
        async () => {
          await sign();
          return conflictPairs(await status()).length === 3;
        },
        45_000,
        50,
      );
      assert.ok(sample(await coordinatorMetrics(), 'quorumkey_blames_total', 'peer="4"') > blamesBefore, 'new blames were counted');
      // Only an operator's reconciliation clears a conflict: it holds while signing goes on.
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        assert.ok(!(await sign()).quorum.includes(BAD));
        assert.deepEqual(conflictPairs(await status()), WITH_BAD, 'the pairs stay in conflict');
      }
      for (const r of returned) assert.ok(!r.res.quorum.includes(BAD));
    });
  });

  describe('online-share tampering (wrapper restarted with finish-w: honest presign, corrupted w)', () => {
    before(async () => {
      const old = signers.get(BAD)!;
      const oldBoot = (await signerStatus(BAD)).boot_id;
      await stop(old);
      await startMalicious('finish-w');
      await waitFor(
        'signer 4 back, new boot id, not quarantined',
        async () => {
          const s4 = await signerStatus(BAD);
          return s4.up && !s4.quarantined && s4.boot_id !== oldBoot && s4.boot_id !== '';
        },
        20_000,
      );
      // Its pairs were retired durably by the honest signers: a restart does not revive them.
      assert.deepEqual(conflictPairs(await status()), WITH_BAD);
      await reconcileAll();
      assert.deepEqual(conflictPairs(await status()), [], 'reconciled');
      // Presign is honest now: the pools of every subset with signer 4 fill up.
      await waitFor(
        'pools of subsets with signer 4 filled',
        async () => (await status()).pools.filter((p) => p.key_id === 'tls' && p.subset.includes(BAD) && p.depth > 0).length === 3,
        30_000,
        200,
      );
    });

    /** Sends `n` Sign requests at once; returns the signatures (each verified in sign()) and the errors. */
    const burst = async (n: number) => {
      const settled = await Promise.allSettled(Array.from({ length: n }, () => sign()));
      const ok: SignResponseWire[] = [];
      const failed: string[] = [];
      for (const s of settled) {
        if (s.status === 'fulfilled') ok.push(s.value);
        else if (s.reason instanceof assert.AssertionError) throw s.reason;
        else failed.push(`${grpc.status[(s.reason as grpc.ServiceError).code]}: ${(s.reason as grpc.ServiceError).details}`);
      }
      // A combination with signer 4's corrupted w cannot verify: whatever was returned came from honest subsets.
      for (const r of ok) assert.ok(!r.quorum.includes(BAD), `quorum [${r.quorum}] excludes signer 4`);
      return { ok, failed };
    };
    const counters = async () => {
      const text = await coordinatorMetrics();
      return {
        retries: sample(text, 'quorumkey_sign_retries_total', 'key="tls"'),
        suspected: sample(text, 'quorumkey_signer_suspected_total', 'signer="4"'),
        tampered: tampered(signers.get(BAD)!, 'finish'),
      };
    };

    it('a corrupted online share is never returned (all four signers eligible)', async () => {
      // Concurrent requests take pooled presignatures faster than they are refilled, so subsets
      // with signer 4 are used too (which subset comes first is the coordinator's latency ranking).
      const before = await counters();
      let ok = 0;
      const failed: string[] = [];
      let now = before;
      for (let round = 0; round < 4 && now.tampered === before.tampered; round++) {
        const r = await burst(24);
        ok += r.ok.length;
        failed.push(...r.failed);
        now = await counters();
      }
      console.log(
        `      corrupted online shares: ${now.tampered - before.tampered}; retried attempts: ${now.retries - before.retries}; ` +
          `signatures returned: ${ok}; requests failed without a signature: ${failed.length}${failed.length ? `, e.g. ${failed[0]}` : ''}`,
      );
      assert.ok(now.tampered > before.tampered, 'the wrapper corrupted online shares');
      assert.ok(now.suspected > before.suspected, 'quorumkey_signer_suspected_total{signer="4"} went up');
      assert.ok(now.retries > before.retries, 'failed combinations were retried');
      // After a failure on [i,4] the retry avoids both i and 4: an honest subset, always.
      assert.deepEqual(failed, [], 'every request was answered');
      assert.ok(ok > 0);
      // An invalid combination names no culprit: nobody is quarantined for it.
      for (const s of (await status()).signers) assert.equal(s.quarantined, false, `signer ${s.index} not quarantined`);
    });

    it('with one honest signer set aside by the operator, every request meeting a corrupted share is retried and succeeds', async () => {
      // Eligible signers {1,2,4}: subsets [1,2] (honest), [1,4] and [2,4] (corrupted). After a
      // failure on [1,4] or [2,4] the retry avoids both of its members (the prime suspects): [1,2].
      await unary<ClusterStatusWire>(admin, 'Quarantine', { index: 3 });
      try {
        await waitFor(
          'pools [1,4] and [2,4] refilled',
          async () => (await status()).pools.filter((p) => p.key_id === 'tls' && (p.subset.join() === '1,4' || p.subset.join() === '2,4') && p.depth > 0).length === 2,
          30_000,
          100,
        );
        const before = await counters();
        const r = await burst(16);
        const now = await counters();
        console.log(`      corrupted online shares: ${now.tampered - before.tampered}; retried attempts: ${now.retries - before.retries}; signatures returned: ${r.ok.length}/16`);
        assert.deepEqual(r.failed, [], 'every request succeeded');
        assert.ok(now.tampered > before.tampered, 'corrupted shares were met');
        assert.ok(now.retries > before.retries, 'and retried on another subset');
        for (const res of r.ok) assert.deepEqual(res.quorum, [1, 2]);
      } finally {
        await unary<ClusterStatusWire>(admin, 'Readmit', { index: 3 });
      }
    });

    it('a key whose only subset includes the malicious signer: Sign fails, no signature leaves', async () => {
      const pair = await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'pair', threshold: 2, signers: [1, BAD], clients: ['unix'] }, 120_000);
      assert.deepEqual(pair.signers, [1, BAD]);
      const tamperedBefore = tampered(signers.get(BAD)!, 'finish');
      for (let n = 0; n < 3; n++) {
        const data = tbs();
        const outcome = await unary<SignResponseWire>(client, 'Sign', { key_id: 'pair', tbs: data, digest_alg: 'SHA256' }, 60_000).then(
          (res) => ({ res }),
          (err: grpc.ServiceError) => ({ err }),
        );
        if ('res' in outcome) {
          returned.push({ tbs: data, res: outcome.res, spki: pair.spki_der });
          assert.fail(`Sign on 'pair' returned a signature (verifies: ${verifyTbs(pair.spki_der, data, outcome.res.signature_der)})`);
        }
        assert.notEqual(outcome.err.code, grpc.status.OK);
        if (n === 0) console.log(`      Sign on 'pair': ${grpc.status[outcome.err.code]}: ${outcome.err.details}`);
        // The error names the subset tried and why it failed.
        assert.match(outcome.err.details, /after trying \[1,4\]: subset \[1,4\]: signature-invalid/);
      }
      assert.ok(tampered(signers.get(BAD)!, 'finish') > tamperedBefore, 'signer 4 answered Finish with corrupted shares');
    });
  });

  describe('summary', () => {
    it('every signature the coordinator returned in this run verifies', () => {
      assert.ok(returned.length > 0);
      for (const r of returned) assert.ok(verifyTbs(r.spki, r.tbs, r.res.signature_der));
    });
  });
});
