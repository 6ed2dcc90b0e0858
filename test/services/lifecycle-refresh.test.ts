/**
 * Two-phase refresh under real faults (issue 9, DESIGN §3 and §7), on real signer processes: one
 * signer's shares directory unwritable; a signer SIGKILLed before, during and after its commit;
 * one refresh echo never sent (the test wrapper, test/services/malicious-signer.ts, mode
 * refresh-drop); the coordinator — a real process here — SIGKILLed between prepare and commit
 * (signer 4 holds its answer, wrapper mode refresh-hold). After each: every holder on the same
 * epoch, the one keys.json records, no pending share left in any data directory, the key signs
 * (OpenSSL verifies), no blame, no pair conflict, no quarantine, and the other key signs too.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CoordinatorError } from '../../src/coordinator/errors.js';
import type { CommitShareRequest, KeySummary } from '../../src/coordinator/signers.js';
import { KeyStore } from '../../src/coordinator/keys.js';
import { join } from 'node:path';
import { paths } from '../../src/cluster/config.js';
import { waitFor } from '../coordinator/clients.js';
import { LifecycleCluster } from './lifecycle-harness.js';
import { httpGet } from './signer-cluster.js';
import { launch, stop } from './processes.js';

const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));
const COORDINATOR_READY = /^coordinator ready sign=(\S+) grpc=(\S+) http=(\S+)$/;
const HOLDERS = [1, 2, 3, 4];
const KEY = 'weekly';
const OTHER = 'other';

describe('key lifecycle: two-phase refresh under faults (real processes)', function () {
  this.timeout(600_000);
  let c: LifecycleCluster;
  /** The epoch every holder must end on. */
  let epoch = 0;

  before(async () => {
    c = await LifecycleCluster.create(HOLDERS, 20_000);
    await c.startCoordinator();
    await c.createKey(KEY, 3, HOLDERS);
    await c.createKey(OTHER, 2, [1, 2, 3]);
  });
  after(async () => {
    await c?.close();
  });

  /** Every holder on `epoch` (keys.json too), nothing pending, it signs; nothing blamed. */
  async function converged(): Promise<void> {
    const want = Object.fromEntries(HOLDERS.map((i) => [i, epoch]));
    await waitFor(`every holder on epoch ${epoch}, nothing pending`, async () => {
      const now = await c.epochs(KEY);
      const reported = c.coordinator!.signers.all().every((s) => s.pending.length === 0);
      return JSON.stringify(now) === JSON.stringify(want) && reported && c.keyFiles(KEY).every((f) => f.endsWith('.share'));
    }, 60_000, 250);
    assert.equal(c.coordinator!.keys.get(KEY)!.epoch, epoch, 'keys.json records the committed epoch');
    assert.equal(KeyStore.load(join(paths(c.dir).coordinator, 'keys.json')).get(KEY)!.epoch, epoch, 'keys.json on disk');
    assert.deepEqual(c.keyFiles(KEY).sort(), HOLDERS.map((i) => `signer-${i}/${KEY}.share`));
    await c.signAndVerify(KEY);
    await c.signAndVerify(OTHER);
    assert.deepEqual(c.admin.status().conflicts, [], 'no pair conflict on any key');
    for (const s of c.coordinator!.signers.all()) assert.equal(s.quarantined, false, `signer ${s.index} not quarantined`);
    const blames = [...c.signers.values()].flatMap((p) => p.stderr.filter((l) => l.includes('"pair retired')));
    assert.deepEqual(blames, [], 'no signer retired a pair');
  }

  async function refreshFails(pattern: RegExp): Promise<void> {
    try {
      await c.admin.refreshKey(KEY);
    } catch (e) {
      assert.ok(e instanceof CoordinatorError, String(e));
      assert.match(e.message, pattern);
      assert.doesNotMatch(e.message, /blame|ot-check|vole-check/);
      return;
    }
    assert.fail('the refresh succeeded');
  }

  it('refresh with every signer healthy: all on epoch 1', async () => {
    const before = await c.epochs(KEY);
    assert.deepEqual(before, { 1: 0, 2: 0, 3: 0, 4: 0 });
    await c.admin.refreshKey(KEY);
    epoch = 1;
    await converged();
  });

  it("one signer's shares directory unwritable: the refresh fails, every signer stays on the epoch; fixed, it refreshes", async () => {
    execFileSync('chattr', ['+i', c.sharesDir(3)]);
    try {
      await refreshFails(/refresh of 'weekly' failed: signer 3 Refresh: INTERNAL.*rolled back: no holder keeps a share of this attempt/);
    } finally {
      execFileSync('chattr', ['-i', c.sharesDir(3)]);
    }
    await converged();
    await c.admin.refreshKey(KEY);
    epoch++;
    await converged();
  });

  /** Refreshes with signer 3 SIGKILLed at `when` relative to the coordinator's CommitShare to it. */
  async function refreshKillingAtCommit(when: 'before' | 'during' | 'after'): Promise<void> {
    const registry = c.coordinator!.signers;
    const real = registry.commitShare.bind(registry);
    registry.commitShare = async (index: number, req: CommitShareRequest, timeoutMs: number): Promise<KeySummary> => {
      if (index !== 3 || req.key_id !== KEY) return real(index, req, timeoutMs);
      if (when === 'before') await c.killSigner(3);
      const call = real(index, req, timeoutMs);
      if (when === 'during') await c.killSigner(3);
      const answer = await call;
      if (when === 'after') await c.killSigner(3);
      return answer;
    };
    try {
      const record = await c.admin.refreshKey(KEY);
      epoch++;
      assert.equal(record.epoch, epoch, 'committed: every holder had its pending share');
    } finally {
      registry.commitShare = real;
    }
    await c.startSigner(3);
    await converged();
  }

  it('a signer SIGKILLed before its commit: restarted, it commits the pending epoch (the coordinator tells it)', async () => {
    await refreshKillingAtCommit('before');
    assert.ok(c.logged('pending share committed after the fact').some((l) => l.signer === 3 && l.epoch === epoch), 'reconciled from Health');
  });

  it('a signer SIGKILLed during its commit: restarted, it ends on the committed epoch', async () => {
    await refreshKillingAtCommit('during');
  });

  it('a signer SIGKILLed after its commit: restarted, it is on the committed epoch', async () => {
    await refreshKillingAtCommit('after');
  });

  it('one refresh echo never sent (test wrapper): the refresh fails without a blame, every signer stays; the next one works', async () => {
    await c.killSigner(4);
    const wrapper = await c.startSigner(4, { mode: 'refresh-drop' });
    await waitFor('signer 4 up again', () => c.coordinator!.signers.healthy(4), 30_000);
    await refreshFails(/refresh of 'weekly' failed/);
    assert.ok(wrapper.stderr.some((l) => l.includes('"malicious: tampered"') && l.includes('"what":"refresh"') && l.includes('"drop"')), 'the wrapper dropped one echo');
    await converged();
    await c.admin.refreshKey(KEY); // the wrapper drops only once
    epoch++;
    await converged();
  });

  it('the coordinator SIGKILLed between prepare and commit: restarted, it discards the pending epoch everywhere; the next refresh works', async () => {
    await c.coordinator!.stop();
    c.coordinator = undefined;
    await c.killSigner(4);
    const holding = await c.startSigner(4, { mode: 'refresh-hold', delayMs: 60_000 });
    const coordinator = await launch('coordinator', COORDINATOR_MAIN, ['--dir', c.dir], { ...c.cluster.env, QUORUMKEY_LOG_LEVEL: 'info' }, COORDINATOR_READY);
    const refreshing = c.cli('refresh', KEY);
    await waitFor('signer 4 sealed its pending share and holds its answer', () => holding.stderr.some((l) => l.includes('"malicious: tampered"') && l.includes('"hold"')), 120_000, 50);
    await waitFor('every holder sealed a pending share', () => HOLDERS.every((i) => c.keyFiles(KEY).includes(`signer-${i}/${KEY}.pending`)), 60_000, 50);
    const healthz = (await httpGet(c.signers.get(1)!.ready[3]!, '/healthz')).body;
    assert.deepEqual((JSON.parse(healthz) as { pending: unknown[] }).pending, [{ key_id: KEY, epoch: epoch + 1 }], "signer 1's /healthz lists its pending share");
    process.kill(coordinator.pid, 'SIGKILL');
    await coordinator.exited;
    const cli = await refreshing;
    assert.notEqual(cli.status, 0, 'the refresh did not complete');
    await stop(holding);
    await c.startSigner(4);
    await c.startCoordinator();
    await converged();
    const discarded = c.logged('uncommitted pending share discarded').filter((l) => l.key === KEY && l.epoch === epoch + 1).map((l) => l.signer);
    assert.deepEqual([...new Set(discarded)].sort(), HOLDERS, 'the restarted coordinator told every holder to discard the uncommitted epoch');
    await c.admin.refreshKey(KEY);
    epoch++;
    await converged();
  });

  it('status shows each signer’s epoch of each key', async () => {
    const r = await c.cli('status');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`key ${KEY}: [^\\n]*\\n  epochs: 1:${epoch} 2:${epoch} 3:${epoch} 4:${epoch}  committed ${epoch}\\n`));
    assert.doesNotMatch(r.stdout, /DIFFERENT EPOCHS/);
  });
});
