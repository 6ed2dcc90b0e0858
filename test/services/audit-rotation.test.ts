/**
 * Audit rotation on a running cluster: with a small cluster.json auditRotateBytes the
 * coordinator's and the signers' logs rotate while real signatures are made; the coordinator
 * exports its head (records, hash) and the Merkle root over every record as metrics
 * (promtool-clean) equal to what `quorumkey audit head` computes from the files; `audit verify`
 * (with --head and --cross against the rotated signer logs) walks every file, and a removed middle
 * file or a cut newest file is detected.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { verifyAuditLog } from '../../src/audit/log.js';
import { closedSegments } from '../../src/audit/segments.js';
import { paths, writeClusterConfig } from '../../src/cluster/config.js';
import { jsonLogger } from '../../src/coordinator/log.js';
import { Coordinator } from '../../src/coordinator/service.js';
import { waitFor } from '../coordinator/clients.js';
import { cli } from './cluster-harness.js';
import { assertPromtoolClean, launch, running, sample, stop } from './processes.js';
import { createTestCluster, SIGNER_MAIN, type TestCluster } from './signer-cluster.js';

const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const KEY = 'rot';

describe('audit rotation on a running cluster (coordinator and signers)', function () {
  this.timeout(300_000);
  let cluster: TestCluster;
  let coordinator: Coordinator | undefined;
  let log: string;

  before(async () => {
    cluster = await createTestCluster({ signers: [1, 2], sessionTimeoutMs: 20_000 });
    // About four coordinator records per file.
    writeClusterConfig(cluster.dir, { ...cluster.config, pool: { target: 4, batch: 4, refillConcurrency: 1, subsets: 1 }, auditRotateBytes: 4096 });
    for (const i of [1, 2]) await launch(`signer ${i}`, SIGNER_MAIN, ['--dir', cluster.dir, '--index', String(i)], cluster.env, SIGNER_READY);
    coordinator = await Coordinator.start({ dir: cluster.dir, log: jsonLogger('coordinator', 'warn') });
    await waitFor('both signers healthy', () => [1, 2].every((i) => coordinator!.signers.healthy(i)), 30_000);
    await coordinator.admin.createKey({ keyId: KEY, threshold: 2, signers: [1, 2], signerCount: 0, policy: ['raw-digest'], clients: ['unix'] });
    log = join(paths(cluster.dir).coordinator, 'audit.log');
  });
  after(async () => {
    await coordinator?.stop();
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  it('signing rotates the logs; the metrics carry the head and the Merkle root of every file', async () => {
    for (let n = 0; n < 24; n++) {
      const digest = createHash('sha256').update(randomBytes(32)).digest();
      await coordinator!.signService.sign({ keyId: KEY, digest, digestAlg: 'sha256', caller: 'unix', deadline: Date.now() + 60_000 });
    }
    assert.ok((await closedSegments(log)).length >= 3, 'the coordinator log rotated');
    for (const i of [1, 2]) assert.ok((await closedSegments(paths(cluster.dir).signerAudit(i))).length >= 1, `signer ${i}'s log rotated`);
    const verified = await verifyAuditLog(log);
    assert.ok(verified.ok, JSON.stringify(verified));
    const text = await coordinator!.metrics.text();
    assertPromtoolClean(text, 'coordinator metrics');
    assert.equal(sample(text, 'quorumkey_audit_head_records'), verified.records);
    const commits = sample(text, 'quorumkey_audit_commits_total');
    assert.ok(commits >= 1 && commits <= sample(text, 'quorumkey_audit_records_total'), `${commits} group commits`);
    assert.equal(sample(text, 'quorumkey_audit_head_info', `hash="${verified.head}"`), 1);
    assert.equal(sample(text, 'quorumkey_audit_merkle_root_info', `root="${verified.root}"`), 1);
    assert.equal(text.split('\n').filter((l) => l.startsWith('quorumkey_audit_merkle_root_info{')).length, 1, 'one root series, the latest');
  });

  it('audit head and audit verify walk every file; --cross matches the rotated signer logs', async () => {
    await coordinator!.stop();
    coordinator = undefined;
    const head = cli(cluster.dir, 'audit', 'head');
    assert.equal(head.status, 0, head.stderr);
    const verified = await verifyAuditLog(log);
    assert.ok(verified.ok);
    assert.match(head.stdout, new RegExp(`^head ${verified.records}:${verified.head}$`, 'm'));
    assert.match(head.stdout, new RegExp(`^merkle root ${verified.root} over ${verified.records} records$`, 'm'));
    const cross = cli(cluster.dir, 'audit', 'verify', '--head', `${verified.records}:${verified.head}`, '--cross');
    assert.equal(cross.status, 0, cross.stderr);
    assert.match(cross.stdout, /cross-check: the 24 signatures of the coordinator's log match the 2 signers' logs/);
  });

  it('a removed middle file and a cut newest file are detected', async () => {
    const head = /^head (\d+:[0-9a-f]{64})$/m.exec(cli(cluster.dir, 'audit', 'head').stdout)![1]!;
    const closed = (await closedSegments(log)).map((s) => s.path);
    const middle = closed[1]!;
    renameSync(middle, `${middle}.aside`);
    const missing = cli(cluster.dir, 'audit', 'verify');
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, new RegExp(`${basename(closed[2] ?? log)} line 1: the rotation record continues ${basename(middle)}, but the file before it is ${basename(closed[0]!)}: a file is missing`));
    renameSync(`${middle}.aside`, middle);
    assert.equal(cli(cluster.dir, 'audit', 'verify', '--head', head).status, 0);
    const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    writeFileSync(log, lines.slice(0, -1).map((l) => l + '\n').join(''));
    assert.equal(cli(cluster.dir, 'audit', 'verify').status, 0, 'the shorter chain is valid on its own');
    const cut = cli(cluster.dir, 'audit', 'verify', '--head', head);
    assert.notEqual(cut.status, 0);
    assert.match(cut.stderr, /records were removed from the end/);
  });
});
