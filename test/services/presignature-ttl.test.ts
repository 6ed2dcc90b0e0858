/**
 * Bounded signer memory: presignature halves no coordinator asks for (it restarted and lost its
 * pools) expire after the cluster's presignatureTtlMs, on real signer processes; one that is
 * asked for in time still signs. The expiry itself is Party.expirePresignatures, tested purely too.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { writeClusterConfig } from '../../src/cluster/config.js';
import { waitFor } from '../coordinator/clients.js';
import { launch, running, sample, stop, type Proc } from './processes.js';
import { call, client, commitShares, createTestCluster, httpGet, identity, mtls, ok, policyBytes, SIGNER_MAIN, type Stub, type TestCluster } from './signer-cluster.js';
import { runSessions } from '../../src/protocol/local-network.js';
import { Cluster, sha256 } from '../protocol/harness.js';

const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const KEY = 'ttl';
const TTL_MS = 3000;

describe('presignature expiry', function () {
  this.timeout(180_000);

  it('Party.expirePresignatures destroys exactly those stored before the cut-off', () => {
    const cluster = new Cluster(2, 'ttl');
    assert.equal(cluster.keyGen(KEY, 2).aborts.size, 0);
    // Two batches of two, stored at t = 100 and t = 200 (the caller's clock).
    for (const now of [100, 200]) {
      const sid = cluster.sessionId();
      const sessions = new Map([1, 2].map((i) => [i, cluster.party(i).startPresign(KEY, sid, [1, 2], 2)] as const));
      assert.equal(runSessions(sessions).aborts.size, 0);
      for (const [i, session] of sessions) cluster.party(i).complete(session, now);
    }
    const party = cluster.party(1);
    assert.equal(party.presignatureCount(KEY), 4);
    assert.deepEqual(party.expirePresignatures(100), [], 'none stored before t = 100');
    assert.deepEqual(party.expirePresignatures(150), [KEY, KEY], 'the first batch');
    assert.equal(party.presignatureCount(KEY), 2);
    assert.deepEqual(party.expirePresignatures(201), [KEY, KEY], 'then the second');
    assert.equal(party.presignatureCount(KEY), 0);
  });

  describe('on real signer processes', () => {
    let cluster: TestCluster;
    const stubs = new Map<number, Stub>();
    const procs: Proc[] = [];

    before(async () => {
      cluster = await createTestCluster({ signers: [1, 2], sessionTimeoutMs: 20_000 });
      writeClusterConfig(cluster.dir, { ...cluster.config, presignatureTtlMs: TTL_MS });
      for (const i of [1, 2]) procs.push(await launch(`signer ${i}`, SIGNER_MAIN, ['--dir', cluster.dir, '--index', String(i)], cluster.env, SIGNER_READY));
      const creds = mtls(identity(cluster, 'coordinator'));
      for (const s of cluster.config.signers) stubs.set(s.index, client('Signer', s.endpoint, `signer-${s.index}`, creds));
      const sid = randomBytes(32);
      try {
        const [answer] = await Promise.all([1, 2].map((i) => ok<{ epoch: number; public_shares_digest: Buffer }>(stubs.get(i)!, 'KeyGen', { key_id: KEY, session_id: sid, parties: [1, 2], threshold: 2, policy: policyBytes() }, 60_000)));
        await commitShares([...stubs.values()], KEY, answer!);
      } catch (e) {
        for (const p of procs) console.log(p.name, [...p.stdout, ...p.stderr].slice(-15).join('\n')); // why, in the CI log
        throw e;
      }
    });
    after(async () => {
      for (const s of stubs.values()) s.close();
      await Promise.all([...running].map((p) => stop(p)));
      if (cluster) rmSync(cluster.root, { recursive: true, force: true });
    });

    const held = async (i: number) => (await ok<{ keys: { key_id: string; presignatures: number }[] }>(stubs.get(i)!, 'Health', {})).keys.find((k) => k.key_id === KEY)!.presignatures;

    it('unused presignatures are destroyed after the TTL (gauge, counter, Finish); used in time they sign', async () => {
      const sid = randomBytes(32);
      const refs = await Promise.all([1, 2].map((i) => ok<{ presignatures: { id: Buffer }[] }>(stubs.get(i)!, 'Presign', { key_id: KEY, session_id: sid, subset: [1, 2], count: 4 })));
      assert.deepEqual(await Promise.all([1, 2].map(held)), [4, 4]);
      // In time: one of them answers Finish at both.
      const first = refs[0]!.presignatures[0]!.id;
      const finish = (id: Buffer) => ({ key_id: KEY, presignature_id: id, digest: sha256(new TextEncoder().encode('m')), tweak_seed: randomBytes(32) });
      for (const i of [1, 2]) await ok(stubs.get(i)!, 'Finish', finish(first));
      // Then the other three expire at both signers.
      await waitFor('the unused presignatures expired', async () => (await Promise.all([1, 2].map(held))).every((n) => n === 0), 30_000, 250);
      for (const s of cluster.config.signers) {
        const metrics = (await httpGet(s.http, '/metrics')).body;
        assert.equal(sample(metrics, 'quorumkey_signer_presignatures_expired_total', `key="${KEY}"`), 3, `signer ${s.index}`);
      }
      const late = await call(stubs.get(1)!, 'Finish', finish(refs[0]!.presignatures[1]!.id));
      assert.equal(late.error?.details, 'presignature unknown or already used');
    });
  });
});
