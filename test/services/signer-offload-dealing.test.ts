/**
 * Key generation computes on the signer's compute thread, not on the thread answering RPCs
 * (issue 10; DESIGN §2 step 5, §4), with real processes: signer 1 is the test wrapper in mode
 * keygen-block (a real signer node whose compute thread, in a key generation's step, stops until
 * the test writes a file: blocking-compute.ts), signer 2 is `dist/signer-node/main.js`, and this
 * test is the coordinator (it holds the coordinator certificate).
 *
 * While signer 1's compute thread is stopped inside the key generation, the test asks signer 1
 * for Health, /healthz, /metrics and a Finish of another key. A signer that computed the key
 * generation on the thread answering RPCs could answer none of them until the test let the
 * computation go on; this one answers all of them, and the KeyGen answer comes only after the
 * test released the thread. No clock is involved: the thread is stopped for as long as the
 * test needs.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { paths } from '../../src/cluster/config.js';
import { KEYGEN_BLOCKED_FILE as BLOCKED_FILE, KEYGEN_RELEASE_FILE as RELEASE_FILE, MALICIOUS_MODE_ENV } from './malicious-signer.js';
import { launch, running, stop, type Proc } from './processes.js';
import { call, client, commitShares, createTestCluster, httpGet, identity, mtls, ok, policyBytes, SIGNER_MAIN, type Stub, type TestCluster } from './signer-cluster.js';

const MALICIOUS_MAIN = fileURLToPath(new URL('./malicious-signer.js', import.meta.url));
const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const ONLINE_KEY = 'online';
const DEALT_KEY = 'dealt-meanwhile';

interface Dealt {
  public_key: Buffer;
  epoch: number;
  public_shares_digest: Buffer;
}

describe('signer compute thread: Health and Finish are answered while a key generation computes (real processes)', function () {
  this.timeout(300_000);
  let cluster: TestCluster;
  const procs = new Map<number, Proc>();
  const stubs = new Map<number, Stub>();
  const dir1 = () => paths(cluster.dir).signer(1);
  const http1 = () => cluster.config.signers.find((s) => s.index === 1)!.http;
  const keyGenBoth = (keyId: string) => {
    const request = { key_id: keyId, session_id: randomBytes(32), parties: [1, 2], threshold: 2, policy: policyBytes() };
    return [1, 2].map((i) => ok<Dealt>(stubs.get(i)!, 'KeyGen', request, 240_000));
  };

  before(async () => {
    cluster = await createTestCluster({ signers: [1, 2], sessionTimeoutMs: 120_000 });
    const args = (i: number) => ['--dir', cluster.dir, '--index', String(i)];
    procs.set(1, await launch('signer 1 (wrapper: keygen-block)', MALICIOUS_MAIN, args(1), { ...cluster.env, [MALICIOUS_MODE_ENV]: 'keygen-block' }, SIGNER_READY));
    procs.set(2, await launch('signer 2', SIGNER_MAIN, args(2), cluster.env, SIGNER_READY));
    const creds = mtls(identity(cluster, 'coordinator'));
    for (const s of cluster.config.signers) stubs.set(s.index, client('Signer', s.endpoint, `signer-${s.index}`, creds));
    // The first key's generation is let through at once (the release file exists).
    writeFileSync(join(dir1(), RELEASE_FILE), '');
    const [dealt] = await Promise.all(keyGenBoth(ONLINE_KEY));
    await commitShares([...stubs.values()], ONLINE_KEY, dealt!);
    rmSync(join(dir1(), RELEASE_FILE));
    rmSync(join(dir1(), BLOCKED_FILE));
  });

  after(async () => {
    for (const s of stubs.values()) s.close();
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  it('while signer 1 computes a key generation, its Health, /healthz, /metrics and a Finish of another key come first', async () => {
    const presign = { key_id: ONLINE_KEY, session_id: randomBytes(32), subset: [1, 2], count: 1 };
    const [warm] = await Promise.all([1, 2].map((i) => ok<{ presignatures: { id: Buffer }[] }>(stubs.get(i)!, 'Presign', presign, 120_000)));
    const presignature = warm!.presignatures[0]!;

    const order: string[] = [];
    const [dealing1, dealing2] = keyGenBoth(DEALT_KEY);
    const dealt = dealing1!.then((r) => {
      order.push('keygen');
      return r;
    });
    // Wait (no deadline asserted) until signer 1's compute thread has stopped inside the key generation.
    while (!existsSync(join(dir1(), BLOCKED_FILE))) await new Promise((r) => setTimeout(r, 20));
    assert.equal(readFileSync(join(dir1(), BLOCKED_FILE), 'utf8'), DEALT_KEY, 'the compute thread stopped in the new key generation');

    const stub = stubs.get(1)!;
    const health = await ok<{ keys: { key_id: string }[] }>(stub, 'Health', {});
    assert.deepEqual(health.keys.map((k) => k.key_id), [ONLINE_KEY], 'Health lists only the committed key');
    order.push('health');
    assert.equal((await httpGet(http1(), '/healthz')).status, 200);
    order.push('healthz');
    const metrics = await httpGet(http1(), '/metrics');
    const backlog = /^quorumkey_signer_compute_backlog(?:{[^}]*})? (\d+)$/m.exec(metrics.body);
    assert.ok(backlog && Number(backlog[1]) >= 1, `the compute thread has the key generation's step outstanding: ${metrics.body.split('\n').filter((l) => l.includes('backlog')).join(' | ')}`);
    order.push('metrics');
    const digest = createHash('sha256').update('during a key generation').digest();
    const finish = await call<{ share: unknown }>(stub, 'Finish', { key_id: ONLINE_KEY, presignature_id: presignature.id, digest, tweak_seed: randomBytes(32) });
    assert.ok(!finish.error, `Finish answered: ${finish.error?.details}`);
    assert.ok(finish.value?.share, 'with an online share');
    order.push('finish');
    await ok(stub, 'Health', {});
    order.push('health-last');
    assert.deepEqual(order, ['health', 'healthz', 'metrics', 'finish', 'health-last'], 'the KeyGen is still computing');

    writeFileSync(join(dir1(), RELEASE_FILE), '');
    const [r1, r2] = await Promise.all([dealt, dealing2!]);
    assert.equal(order.at(-1), 'keygen', 'the KeyGen answer came after every other answer');
    assert.deepEqual(r1.public_key, r2.public_key, 'both signers dealt the same key');
    assert.deepEqual(r1.public_shares_digest, r2.public_shares_digest);
    await commitShares([...stubs.values()], DEALT_KEY, r1);
    const after = await ok<{ keys: { key_id: string; public_key: Buffer }[] }>(stub, 'Health', {});
    assert.deepEqual(after.keys.map((k) => k.key_id).sort(), [DEALT_KEY, ONLINE_KEY].sort());
    assert.deepEqual(after.keys.find((k) => k.key_id === DEALT_KEY)!.public_key, r1.public_key, 'the key dealt on the compute thread is installed');
  });
});
