/**
 * The signer's online path never waits behind presign computation (issue 10; DESIGN §2 step 5,
 * §4), with real processes: signer 1 is `dist/signer-node/main.js`, signer 2 the test wrapper in
 * mode presign-hold (a real signer node that holds back its last presign message until SIGUSR2),
 * and this test is the coordinator (it holds the coordinator certificate).
 *
 * Holding signer 2's last message lets the test start signer 1's final presign step itself: it
 * releases the message and at once asks signer 1 for Health, /healthz and a Finish, one after
 * the other, on the same connection as the Presign call. The signer writes answers in the order
 * it produces them, so the order in which they arrive here is the order it answered. A signer
 * that computed on the thread answering RPCs could answer at most the first request before the
 * batch's step, and every later one only after the Presign answer; one whose compute thread does
 * the step answers all of them first. Throughout the batch, Health probes with the coordinator's
 * probe deadline (1500 ms, src/coordinator/signers.ts) must all succeed.
 *
 * The compute thread runs at a lower priority than the thread answering RPCs: Linux nice values
 * are per thread, read here from /proc/<pid>/task/<tid>/stat.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeClusterConfig } from '../../src/cluster/config.js';
import { MALICIOUS_MODE_ENV } from './malicious-signer.js';
import { launch, running, stop, type Proc } from './processes.js';
import { call, client, commitShares, createTestCluster, httpGet, identity, mtls, ok, policyBytes, SIGNER_MAIN, type Stub, type TestCluster } from './signer-cluster.js';

const MALICIOUS_MAIN = fileURLToPath(new URL('./malicious-signer.js', import.meta.url));
const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const KEY = 'offloaded';
const BIG_BATCH = 256;
const HEALTH_DEADLINE_MS = 1500;
const NICE_INCREMENT = 10;

interface PresignResponse {
  presignatures: { id: Buffer; nonce: Buffer }[];
}

/** nice value of every thread of a process, by thread id. */
function threadNices(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, nice field 19 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), Number(fields[16]));
  }
  return out;
}

describe('signer compute thread: Finish and Health are answered while a presign batch computes (real processes)', function () {
  this.timeout(300_000);
  let cluster: TestCluster;
  const procs = new Map<number, Proc>();
  const stubs = new Map<number, Stub>();
  const holds = () => procs.get(2)!.stderr.filter((l) => l.includes('"malicious: tampered"') && l.includes('"hold"')).length;
  const http1 = () => cluster.config.signers.find((s) => s.index === 1)!.http;

  /** Waits until signer 2 has held back one more message than `before`. */
  async function heldAfter(before: number): Promise<void> {
    for (let i = 0; i < 6000 && holds() <= before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(holds() > before, 'signer 2 held back its last presign message');
  }

  const presignBoth = (count: number) => {
    const request = { key_id: KEY, session_id: randomBytes(32), subset: [1, 2], count };
    return [1, 2].map((i) => ok<PresignResponse>(stubs.get(i)!, 'Presign', request, 240_000));
  };

  before(async () => {
    cluster = await createTestCluster({ signers: [1, 2], sessionTimeoutMs: 120_000 });
    cluster.config.signerCompute = { maxPresignBatch: BIG_BATCH, niceIncrement: NICE_INCREMENT };
    writeClusterConfig(cluster.dir, cluster.config);
    const args = (i: number) => ['--dir', cluster.dir, '--index', String(i)];
    procs.set(1, await launch('signer 1', SIGNER_MAIN, args(1), cluster.env, SIGNER_READY));
    procs.set(2, await launch('signer 2 (wrapper: presign-hold)', MALICIOUS_MAIN, args(2), { ...cluster.env, [MALICIOUS_MODE_ENV]: 'presign-hold' }, SIGNER_READY));
    const creds = mtls(identity(cluster, 'coordinator'));
    for (const s of cluster.config.signers) stubs.set(s.index, client('Signer', s.endpoint, `signer-${s.index}`, creds));
    const keyGen = { key_id: KEY, session_id: randomBytes(32), parties: [1, 2], threshold: 2, policy: policyBytes() };
    const [dealt] = await Promise.all([1, 2].map((i) => ok<{ epoch: number; public_shares_digest: Buffer }>(stubs.get(i)!, 'KeyGen', keyGen, 120_000)));
    await commitShares([...stubs.values()], KEY, dealt!);
  });

  after(async () => {
    for (const s of stubs.values()) s.close();
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  it('the compute thread runs at nice +10; the thread answering RPCs keeps its priority', () => {
    const pid = procs.get(1)!.pid;
    const nices = threadNices(pid);
    const main = nices.get(pid)!;
    const lowered = [...nices].filter(([, nice]) => nice === Math.min(19, main + NICE_INCREMENT));
    assert.equal(lowered.length, 1, `exactly one thread of signer 1 at nice ${main + NICE_INCREMENT}: ${JSON.stringify([...nices])}`);
    assert.notEqual(lowered[0]![0], pid, 'it is not the main thread');
    assert.ok(procs.get(1)!.stderr.some((l) => l.includes('"compute thread ready"') && l.includes(`"nice":${main + NICE_INCREMENT}`)), 'the signer logged its compute thread ready');
  });

  it('while signer 1 computes the last step of a 256-presignature batch, its Health, /healthz and Finish answers come first', async () => {
    // A presignature to use during the big batch.
    const before = holds();
    const small = presignBoth(1);
    await heldAfter(before);
    process.kill(procs.get(2)!.pid, 'SIGUSR2');
    const [warm] = await Promise.all(small);
    const presignature = warm!.presignatures[0]!;

    const order: string[] = [];
    const heldBefore = holds();
    const [big1, big2] = presignBoth(BIG_BATCH);
    const bigDone = big1!.then((r) => {
      order.push('presign');
      return r;
    });

    // Health probes with the coordinator's deadline, one after another, for the whole batch.
    let batchOver = false;
    const probes: { ok: boolean; detail: string }[] = [];
    const prober = (async () => {
      for (let i = 0; i < 100_000 && !batchOver; i++) {
        const r = await call(stubs.get(1)!, 'Health', {}, HEALTH_DEADLINE_MS);
        probes.push({ ok: !r.error, detail: r.error ? `${r.error.code} ${r.error.details}` : 'ok' });
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();

    await heldAfter(heldBefore);
    process.kill(procs.get(2)!.pid, 'SIGUSR2');
    // Signer 1 now gets signer 2's last message and starts its last step; ask it right away.
    const stub = stubs.get(1)!;
    for (let i = 0; i < 4; i++) {
      await ok(stub, 'Health', {});
      order.push(`health-${i}`);
    }
    const healthz = await httpGet(http1(), '/healthz');
    assert.equal(healthz.status, 200);
    order.push('healthz');
    const digest = createHash('sha256').update('during refill').digest();
    const finish = await call<{ share: unknown }>(stub, 'Finish', { key_id: KEY, presignature_id: presignature.id, digest, tweak_seed: randomBytes(32) });
    assert.ok(!finish.error, `Finish answered: ${finish.error?.details}`);
    assert.ok(finish.value?.share, 'with an online share');
    order.push('finish');
    const health = await ok<{ keys: { presignatures: number }[] }>(stub, 'Health', {});
    order.push('health-last');

    const [r1, r2] = await Promise.all([bigDone, big2!]);
    batchOver = true;
    await prober;
    assert.equal(r1.presignatures.length, BIG_BATCH);
    assert.deepEqual(r1.presignatures.map((p) => Buffer.from(p.id).toString('hex')), r2.presignatures.map((p) => Buffer.from(p.id).toString('hex')), 'both signers made the same batch');
    assert.equal(health.keys[0]!.presignatures, 0, 'the last Health came before the batch was stored (the warm presignature was used by Finish)');
    assert.deepEqual(order, ['health-0', 'health-1', 'health-2', 'health-3', 'healthz', 'finish', 'health-last', 'presign'], 'every answer came before the Presign answer');

    const failed = probes.filter((p) => !p.ok);
    assert.ok(probes.length >= 2, `Health was probed during the batch (${probes.length} probes)`);
    assert.deepEqual(failed, [], `no Health probe failed or timed out during the batch (${probes.length} probes)`);
    const after = await ok<{ keys: { presignatures: number }[] }>(stub, 'Health', {});
    assert.equal(after.keys[0]!.presignatures, BIG_BATCH, 'the batch is stored once done');
  });
});
