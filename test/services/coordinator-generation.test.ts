/**
 * Bounded signer memory across coordinator restarts: each coordinator start picks a fresh random
 * generation and sends it with every Presign; a signer that sees a new one wipes the halves it
 * made for earlier generations. A coordinator process killed with SIGKILL and started again 20
 * times, each time after its pool was full, leaves each real signer holding one pool's worth of
 * presignatures (quorumkey_signer_presignatures) and counting the other 19 as superseded; a batch
 * that completes at a signer after a newer generation reached it is discarded, not stored.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeClusterConfig } from '../../src/cluster/config.js';
import { ensureClusterPki } from '../../src/pki/cluster-ca.js';
import { tlsClient, unary, waitFor } from '../coordinator/clients.js';
import { launch, running, sample, stop, type Proc } from './processes.js';
import { call, client, createTestCluster, httpGet, identity, mtls, SIGNER_MAIN, type Stub, type TestCluster } from './signer-cluster.js';

const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));
const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const COORDINATOR_READY = /^coordinator ready sign=unix:(\S+) grpc=(\S+) http=http:\/\/(\S+)$/;
const KEY = 'gen';
const TARGET = 8;
const RESTARTS = 20;

describe('coordinator generation: restarts leave signer memory bounded', function () {
  this.timeout(900_000);
  let cluster: TestCluster;
  const signers = new Map<number, Proc>();

  before(async () => {
    cluster = await createTestCluster({ signers: [1, 2], sessionTimeoutMs: 20_000 });
    ensureClusterPki(cluster.pki, ['admin']);
    writeClusterConfig(cluster.dir, { ...cluster.config, pool: { target: TARGET, batch: 4, refillConcurrency: 1, subsets: 1 } });
    for (const i of [1, 2]) signers.set(i, await launch(`signer ${i}`, SIGNER_MAIN, ['--dir', cluster.dir, '--index', String(i)], cluster.env, SIGNER_READY));
  });
  after(async () => {
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  const signerMetrics = async (i: number) => (await httpGet(cluster.config.signers.find((s) => s.index === i)!.http, '/metrics')).body;
  const held = async (i: number) => sample(await signerMetrics(i), 'quorumkey_signer_presignatures', `key="${KEY}"`);
  const superseded = async (i: number) => sample(await signerMetrics(i), 'quorumkey_signer_presignatures_superseded_total', `key="${KEY}"`);

  const kill9 = async (p: Proc) => {
    process.kill(p.pid, 'SIGKILL');
    await p.exited;
  };

  it(`a coordinator killed and restarted ${RESTARTS} times: each signer holds one pool, the rest superseded`, async () => {
    for (let round = 1; round <= RESTARTS; round++) {
      const coordinator = await launch(`coordinator ${round}`, COORDINATOR_MAIN, ['--dir', cluster.dir], cluster.env, COORDINATOR_READY);
      if (round === 1) {
        const admin = tlsClient('Admin', cluster.pki, coordinator.ready[2]!, 'admin');
        await unary(admin, 'CreateKey', { key_id: KEY, threshold: 2, signer_count: 2 }, 180_000);
        admin.close();
      }
      const metrics = async () => (await httpGet(coordinator.ready[3]!, '/metrics')).body;
      await waitFor(`round ${round}: the pool full`, async () => sample(await metrics(), 'quorumkey_pool_depth', `key="${KEY}"`) === TARGET, 120_000);
      // What this coordinator pooled is exactly what each signer holds: the earlier generations are gone.
      for (const i of [1, 2]) assert.equal(await held(i), TARGET, `round ${round}, signer ${i}`);
      await kill9(coordinator);
    }
    for (const i of [1, 2]) assert.equal(await superseded(i), (RESTARTS - 1) * TARGET, `signer ${i} wiped the pools of ${RESTARTS - 1} dead coordinators`);
  });

  it('a batch that completes after a newer generation arrived is discarded; a malformed generation is refused', async () => {
    const stubs = new Map<number, Stub>();
    const creds = mtls(identity(cluster, 'coordinator'));
    for (const s of cluster.config.signers) stubs.set(s.index, client('Signer', s.endpoint, `signer-${s.index}`, creds));
    const presign = (i: number, sid: Buffer, generation: Buffer, count = 2) =>
      call(stubs.get(i)!, 'Presign', { key_id: KEY, session_id: sid, subset: [1, 2], count, coordinator_generation: generation }, 60_000);
    const adopted = (i: number, generation: Buffer) => signers.get(i)!.stderr.some((l) => l.includes('new coordinator generation') && l.includes(generation.toString('hex')));
    try {
      const [a, b] = [randomBytes(16), randomBytes(16)];
      const before = await superseded(1);
      // Signer 1 joins a session of generation a, which cannot end before signer 2 joins it too.
      const sidA = randomBytes(32);
      const a1 = presign(1, sidA, a);
      await waitFor('signer 1 adopted generation a', () => adopted(1, a), 30_000);
      // Generation b reaches signer 1 meanwhile (its own session never completes: signer 2 is not asked).
      const b1 = presign(1, randomBytes(32), b, 1);
      await waitFor('signer 1 adopted generation b', () => adopted(1, b), 30_000);
      const a2 = await presign(2, sidA, a);
      assert.equal(a2.error, undefined, 'signer 2 is still on generation a: it keeps the batch');
      const late = await a1;
      assert.equal(late.error?.code, grpc.status.FAILED_PRECONDITION);
      assert.match(late.error!.details, /a newer coordinator generation presigned while this presign ran; its presignatures were discarded/);
      assert.deepEqual([await held(1), await held(2)], [0, 2]);
      assert.equal(await superseded(1), before + TARGET + 2, 'the last pool (at a) and the late batch');
      assert.ok((await b1).error, 'the session of b alone ends without signer 2');

      const bad = await call(stubs.get(1)!, 'Presign', { key_id: KEY, session_id: randomBytes(32), subset: [1, 2], count: 1, coordinator_generation: randomBytes(5) });
      assert.equal(bad.error?.details, 'coordinator_generation must be 16 bytes, got 5');
      // No generation claimed: nothing is wiped (signer 2 keeps its 2).
      const sid = randomBytes(32);
      for (const r of await Promise.all([1, 2].map((i) => presign(i, sid, Buffer.alloc(0))))) assert.equal(r.error, undefined);
      assert.deepEqual([await held(1), await held(2)], [2, 4]);
    } finally {
      for (const s of stubs.values()) s.close();
    }
  });
});
