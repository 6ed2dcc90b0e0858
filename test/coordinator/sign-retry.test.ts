/**
 * Which subset the sign path retries on after a failure without a named culprit (an invalid
 * combined signature, a signer's error answer): src/coordinator/sign.ts preferredSubsets, first
 * as functions, then through the real SignService of an in-process coordinator in front of real
 * signer processes, signer 5 being the test wrapper in mode finish-w (a corrupted online share w:
 * the combined signature does not verify and names nobody).
 *
 * The attempts are steered with the pools' own ranking: with pool target 0 every attempt presigns
 * inline on the best preferred subset, and PoolSet.penalise ranks the subsets the test does not
 * want first after all others. Each attempt is observed from outside the loop: the coordinator's
 * 'combined signature invalid' log line names the failed subset, the wrapper logs each share it
 * corrupted, the returned quorum is the last attempt.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeClusterConfig } from '../../src/cluster/config.js';
import { jsonLogger } from '../../src/coordinator/log.js';
import { subsetsOf } from '../../src/coordinator/pools.js';
import { Coordinator } from '../../src/coordinator/service.js';
import { preferredSubsets, primeSuspects } from '../../src/coordinator/sign.js';
import { MALICIOUS_MODE_ENV } from '../services/malicious-signer.js';
import { launch, running, sample, stop, tampered, type Proc } from '../services/processes.js';
import { createTestCluster, SIGNER_MAIN, type TestCluster } from '../services/signer-cluster.js';
import { waitFor } from './clients.js';

const MALICIOUS_MAIN = fileURLToPath(new URL('../services/malicious-signer.js', import.meta.url));
const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;

const label = (s: readonly number[]) => s.join(',');

describe('sign retry: preferred subsets after failures', () => {
  it('without failures: every subset, in ranking order', () => {
    const ranked = [[3, 4], [1, 2], [1, 4]];
    assert.deepEqual(preferredSubsets(ranked, []), ranked);
    assert.deepEqual(preferredSubsets([], [[1, 2]]), []);
  });

  it('prime suspects are the signers common to every failure', () => {
    assert.deepEqual(primeSuspects([]), []);
    assert.deepEqual(primeSuspects([[3, 4]]), [3, 4]);
    assert.deepEqual(primeSuspects([[3, 4], [1, 4]]), [4]);
    assert.deepEqual(primeSuspects([[3, 4], [1, 4], [1, 2]]), []);
    assert.deepEqual(primeSuspects([[2, 4, 5], [4]]), [4]);
  });

  it('2-of-4, [3,4] failed: only [1,2] (not [1,4] / [2,4], which avoiding the failed subset alone allows)', () => {
    const ranked = [[1, 4], [2, 4], [1, 3], [2, 3], [1, 2]];
    assert.deepEqual(preferredSubsets(ranked, [[3, 4]]), [[1, 2]]);
  });

  it('no subset without a prime suspect: those sharing the fewest signers with the failures, in ranking order', () => {
    // [1,2] is not available (tried already, or a member unhealthy): every subset left holds 3 or 4.
    assert.deepEqual(preferredSubsets([[2, 4], [1, 3], [1, 4], [2, 3]], [[3, 4]]), [[2, 4], [1, 3], [1, 4], [2, 3]]);
    // Failures [3,4] and [1,4]: prime suspect 4; without it, [1,2] and [2,3] share one signer with the failures, [1,3] two.
    assert.deepEqual(preferredSubsets([[1, 3], [2, 3], [1, 2]], [[3, 4], [1, 4]]), [[2, 3], [1, 2]]);
    // A signer that answered Finish with an error is a failed set of its own.
    assert.deepEqual(preferredSubsets([[1, 3], [2, 3], [1, 2]], [[3]]), [[1, 2]]);
  });
});

describe('sign retry: the real SignService with a signer that corrupts its online shares', function () {
  this.timeout(300_000);
  const BAD = 5;
  let cluster: TestCluster;
  let coordinator: Coordinator;
  const signers = new Map<number, Proc>();
  /** The coordinator's structured log, line by line. */
  const log: Record<string, unknown>[] = [];

  /** The failed subsets the coordinator logged since line `from`. */
  const invalidCombinations = (from: number) => log.slice(from).filter((l) => l.msg === 'combined signature invalid: one of the subset misbehaved').map((l) => label(l.subset as number[]));
  const retries = async (keyId: string) => sample(await (await fetch(`http://${coordinator.endpoints.http}/metrics`)).text(), 'quorumkey_sign_retries_total', `key="${keyId}"`);

  /**
   * Signs with `keyId` while every subset but `first` ranks last: returns the subsets that failed
   * (in order), the quorum that signed, the retries counted and the shares signer 5 corrupted.
   */
  async function signWithFirst(keyId: string, threshold: number, holders: number[], first: number[][]) {
    const all = subsetsOf(holders, threshold);
    for (const s of all) coordinator.pools.penalise(keyId, s, 0); // the previous case's penalties are over
    for (const s of all) if (!first.some((f) => label(f) === label(s))) coordinator.pools.penalise(keyId, s, 600_000);
    const [logFrom, retriesBefore, corruptedBefore] = [log.length, await retries(keyId), tampered(signers.get(BAD)!, 'finish')];
    const digest = createHash('sha256').update(randomBytes(32)).digest();
    const out = await coordinator.signService.sign({ keyId, digest, digestAlg: 'sha256', caller: 'unix', deadline: Date.now() + 120_000 });
    const failed = invalidCombinations(logFrom);
    // The wrapper's log comes through a pipe and may trail its answers.
    const corrupted = () => tampered(signers.get(BAD)!, 'finish') - corruptedBefore;
    await waitFor('signer 5 logged the shares it corrupted', () => corrupted() >= failed.length, 30_000);
    return { failed, quorum: out.quorum, retries: (await retries(keyId)) - retriesBefore, corrupted: corrupted() };
  }

  before(async () => {
    cluster = await createTestCluster({ signers: [1, 2, 3, 4, BAD], sessionTimeoutMs: 30_000 });
    // Nothing pooled: every attempt presigns inline on the subset the retry logic picks.
    cluster.config.pool = { target: 0, batch: 1, refillConcurrency: 1, subsets: 10 };
    writeClusterConfig(cluster.dir, cluster.config);
    const args = (i: number) => ['--dir', cluster.dir, '--index', String(i)];
    const env = { ...cluster.env, QUORUMKEY_LOG_LEVEL: 'info' };
    await Promise.all([
      ...[1, 2, 3, 4].map(async (i) => signers.set(i, await launch(`signer ${i}`, SIGNER_MAIN, args(i), env, SIGNER_READY))),
      (async () => signers.set(BAD, await launch(`signer ${BAD} (wrapper: finish-w)`, MALICIOUS_MAIN, args(BAD), { ...env, [MALICIOUS_MODE_ENV]: 'finish-w' }, SIGNER_READY)))(),
    ]);
    coordinator = await Coordinator.start({ dir: cluster.dir, log: jsonLogger('coordinator', 'info', (line) => void log.push(JSON.parse(line) as Record<string, unknown>)) });
    await waitFor('every signer healthy at the coordinator', () => [1, 2, 3, 4, BAD].every((i) => coordinator.signers.healthy(i)), 30_000);
    // 2-of-4 on [1,2,3,5] and 3-of-5 on all, for raw digests.
    await coordinator.admin.createKey({ keyId: 'k24', threshold: 2, signers: [1, 2, 3, BAD], signerCount: 0, policy: ['raw-digest'], clients: ['unix'] });
    await coordinator.admin.createKey({ keyId: 'k35', threshold: 3, signers: [1, 2, 3, 4, BAD], signerCount: 0, policy: ['raw-digest'], clients: ['unix'] });
  });

  after(async () => {
    await coordinator?.stop();
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  it('2-of-4 with signer 5 corrupting: whichever subset comes first, a good subset signs by the second attempt ([1,5], [2,5], [3,5] are never all tried)', async () => {
    const holders = [1, 2, 3, BAD];
    for (const first of subsetsOf(holders, 2)) {
      const r = await signWithFirst('k24', 2, holders, [first]);
      if (!first.includes(BAD)) {
        assert.deepEqual(r, { failed: [], quorum: first, retries: 0, corrupted: 0 }, `first [${first}]`);
        continue;
      }
      // [a,5] failed: both are prime suspects, so the retry takes the one subset without either.
      const rest = holders.filter((i) => !first.includes(i));
      assert.deepEqual(r, { failed: [label(first)], quorum: rest, retries: 1, corrupted: 1 }, `first [${first}]`);
    }
  });

  it('3-of-5 with signer 5 corrupting: even when the two best subsets both hold it, the third attempt signs', async () => {
    const holders = [1, 2, 3, 4, BAD];
    // [a,b,5] then [c,d,5]: after the first failure these rank first among the subsets sharing
    // the fewest signers with it; after the second only 5 is a prime suspect.
    for (const [a, b] of [
      [1, 2],
      [1, 3],
      [1, 4],
    ]) {
      const [c, d] = [1, 2, 3, 4].filter((i) => i !== a && i !== b);
      const bad = [
        [a!, b!, BAD],
        [c!, d!, BAD],
      ];
      const r = await signWithFirst('k35', 3, holders, bad);
      const what = `bad subsets ${bad.map((s) => `[${s}]`).join(' ')}`;
      assert.deepEqual([...r.failed].sort(), bad.map(label).sort(), `${what}: both failed`);
      assert.equal(r.retries, 2, what);
      assert.equal(r.corrupted, 2, what);
      assert.equal(r.quorum.length, 3);
      assert.ok(!r.quorum.includes(BAD), `${what}: signed by [${r.quorum}]`);
    }
  });

  it('an invalid combination names nobody: no signer is quarantined', () => {
    for (const i of [1, 2, 3, 4, BAD]) assert.equal(coordinator.signers.state(i).quarantined, false, `signer ${i}`);
  });
});
