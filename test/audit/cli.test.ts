/**
 * `quorumkey audit head` and `audit verify --head`: the head printed once and kept elsewhere
 * detects records cut from the end of the log, which the chain alone cannot.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, auditPeriodRoot } from '../../src/audit/log.js';
import { cli } from '../services/cluster-harness.js';

describe('audit/cli (audit head, audit verify --head)', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'qk-audit-cli-'));
  const file = join(dir, 'coordinator', 'audit.log');

  before(async () => {
    mkdirSync(join(dir, 'coordinator'), { recursive: true });
    const log = await AuditLog.open(file);
    for (let n = 0; n < 5; n++) await log.append({ event: 'sign', n });
    await log.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the head and the Merkle root of every record; verify --head passes on the same log', async () => {
    const head = cli(dir, 'audit', 'head');
    assert.equal(head.status, 0, head.stderr);
    const [, seq, hash] = /^head (\d+):([0-9a-f]{64})$/m.exec(head.stdout)!;
    assert.equal(Number(seq), 5);
    const root = await auditPeriodRoot(file, new Date(0), new Date(8.64e15));
    assert.equal(hash, root.head.hash);
    assert.match(head.stdout, new RegExp(`^merkle root ${root.root} over 5 records$`, 'm'));
    const ok = cli(dir, 'audit', 'verify', '--head', `${seq}:${hash}`);
    assert.equal(ok.status, 0, ok.stderr);
  });

  it('a record cut from the end: the chain still verifies, the kept head does not', () => {
    const [, seq, hash] = /^head (\d+):([0-9a-f]{64})$/m.exec(cli(dir, 'audit', 'head').stdout)!;
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    writeFileSync(file, lines.slice(0, -1).map((l) => l + '\n').join(''));
    assert.equal(cli(dir, 'audit', 'verify').status, 0, 'the shorter chain is valid on its own');
    const cut = cli(dir, 'audit', 'verify', '--head', `${seq}:${hash}`);
    assert.notEqual(cut.status, 0);
    assert.match(cut.stderr, /log ends after record 4, but a head at record 5 was kept: records were removed from the end/);
    assert.match(cli(dir, 'audit', 'verify', '--head', 'nonsense').stderr, /--head must be SEQ:HASH/);
  });
});
