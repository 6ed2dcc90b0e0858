/**
 * Refill between the low- and the high-water mark, and refill yielding to online work, on an
 * in-process coordinator in front of two real signer processes (a 2-of-2 key: one subset, one
 * pool). Presign sessions are counted from the coordinator's metrics; that a planning round ran
 * and waited is its own counter (quorumkey_pool_refill_deferred_total), so "no refill" is asserted
 * after the refiller demonstrably looked, not after a sleep.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { writeClusterConfig, type PoolConfig } from '../../src/cluster/config.js';
import { jsonLogger } from '../../src/coordinator/log.js';
import { Coordinator } from '../../src/coordinator/service.js';
import { waitFor } from '../coordinator/clients.js';
import { assertPromtoolClean, launch, running, sample, stop } from './processes.js';
import { createTestCluster, SIGNER_MAIN, type TestCluster } from './signer-cluster.js';

const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const KEY = 'refill';

describe('pool refill between the marks, yielding to online work (real signers)', function () {
  this.timeout(300_000);
  let cluster: TestCluster;
  let coordinator: Coordinator | undefined;

  const depth = () => coordinator!.pools.depth(KEY, [1, 2]);
  const metrics = async () => coordinator!.metrics.text();
  const sessions = async () => sample(await metrics(), 'quorumkey_presign_total', `key="${KEY}",result="ok"`);
  const deferred = async () => sample(await metrics(), 'quorumkey_pool_refill_deferred_total');
  const sign = async (n: number) => {
    for (let k = 0; k < n; k++) {
      const digest = createHash('sha256').update(randomBytes(32)).digest();
      const out = await coordinator!.signService.sign({ keyId: KEY, digest, digestAlg: 'sha256', caller: 'unix', deadline: Date.now() + 60_000 });
      assert.equal(out.quorum.join(','), '1,2');
    }
  };
  /** Starts the coordinator with `pool`, the key existing or created, and waits for a full pool. */
  const startWith = async (pool: PoolConfig) => {
    writeClusterConfig(cluster.dir, { ...cluster.config, pool });
    coordinator = await Coordinator.start({ dir: cluster.dir, log: jsonLogger('coordinator', 'warn') });
    await waitFor('both signers healthy', () => [1, 2].every((i) => coordinator!.signers.healthy(i)), 30_000);
    if (!coordinator.keys.get(KEY)) await coordinator.admin.createKey({ keyId: KEY, threshold: 2, signers: [1, 2], signerCount: 0, policy: ['raw-digest'], clients: ['unix'] });
    await waitFor('the pool at its high-water mark', () => depth() === pool.target, 120_000);
  };
  /** Waits until the refiller planned (and deferred) at least one more round. */
  const anotherDeferredRound = async () => {
    const before = await deferred();
    await waitFor('a planning round that deferred the refill', async () => (await deferred()) > before, 30_000);
  };

  before(async () => {
    cluster = await createTestCluster({ signers: [1, 2], sessionTimeoutMs: 20_000 });
    const env = { ...cluster.env, QUORUMKEY_LOG_LEVEL: 'info' };
    for (const i of [1, 2]) await launch(`signer ${i}`, SIGNER_MAIN, ['--dir', cluster.dir, '--index', String(i)], env, SIGNER_READY);
  });
  after(async () => {
    await coordinator?.stop();
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  it('a pool is refilled only once below the low mark, and then up to the high mark', async () => {
    // Quiet period 0: busy only while a request is in flight, so between signatures refills may run.
    await startWith({ target: 8, lowWater: 6, batch: 4, refillConcurrency: 1, subsets: 1, refillQuietMs: 0 });
    const filled = await sessions();
    assert.equal(filled, 2, 'two batches of 4 up to the high mark');
    await sign(2);
    assert.equal(depth(), 6);
    // Not below the low mark: nothing to plan, even on a quiet machine.
    assert.deepEqual(coordinator!.pools.plan(1), []);
    await sign(1);
    await waitFor('refilled to the high mark', () => depth() === 8, 60_000);
    assert.equal(await sessions(), filled + 1, 'one batch of 3 (the deficit), not one per signature');
    const text = await metrics();
    assert.equal(sample(text, 'quorumkey_presignatures_generated_total', `key="${KEY}"`), 11);
    assertPromtoolClean(text, 'coordinator metrics');
    await coordinator!.stop();
    coordinator = undefined;
  });

  it('while sign requests keep coming, a warm pool serves them without starting a refill until it reaches its reserve', async () => {
    // The online path counts as busy for 100 s after each request: only the reserve rule can start a batch.
    await startWith({ target: 8, lowWater: 6, batch: 4, refillConcurrency: 1, subsets: 1, refillQuietMs: 100_000 });
    const filled = await sessions();
    await sign(3);
    assert.equal(depth(), 5, 'below the low mark (6), above the reserve (3)');
    await anotherDeferredRound();
    await sign(2);
    await anotherDeferredRound();
    assert.equal(await sessions(), filled, 'no presign session while the burst is served from the warm pool');
    assert.equal(depth(), 3);
    await sign(1);
    // Depth 2 < 3: the pool refills under load, one batch, and then waits again though not full.
    await waitFor('one batch under load', () => depth() === 6, 60_000);
    await anotherDeferredRound();
    assert.equal(await sessions(), filled + 1);
    assert.equal(depth(), 6, 'filling, but the rest waits for a quiet period');
  });
});
