/**
 * Audit rotation by size (src/audit/log.ts, segments.ts): the chain continues across files, the
 * Merkle root over every record is resumed from the active file alone (MerkleFrontier), and every
 * state a crash can leave during a rotation (each step is one rename, create or write) reopens
 * into a verifiable chain. The real kill -9 of a writer: durability.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { AuditLog, AuditLogError, MerkleFrontier, merkleRoot, verifyAuditLog, type AuditHead, type AuditVerifyResult } from '../../src/audit/log.js';
import { closedSegments, segmentPath } from '../../src/audit/segments.js';

const ROTATE = 1500; // bytes: a handful of records per file
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function records(file: string): Promise<{ seq: number; prev: string; hash: string; record: Record<string, unknown> }[]> {
  return (await readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** Every file of the log in chain order, as the directory holds them. */
async function files(path: string): Promise<string[]> {
  const active = (await readdir(join(path, '..'))).includes(basename(path));
  return [...(await closedSegments(path)).map((s) => s.path), ...(active ? [path] : [])];
}

/** The RFC 6962 root over every record hash of the files, with the batch merkleRoot. */
async function rootOver(paths: string[]): Promise<string> {
  const leaves: Uint8Array[] = [];
  for (const f of paths) for (const r of await records(f)) leaves.push(Buffer.from(r.hash, 'hex'));
  return hex(merkleRoot(leaves));
}

function ok(res: AuditVerifyResult): asserts res is Extract<AuditVerifyResult, { ok: true }> {
  assert.equal(res.ok, true, JSON.stringify(res));
}

function failsAt(res: AuditVerifyResult, file: string, line: number, reason: RegExp): void {
  assert.equal(res.ok, false, `expected a failure at ${basename(file)} line ${line}`);
  if (res.ok) return;
  assert.equal(basename(res.file), basename(file), res.reason);
  assert.equal(res.line, line, res.reason);
  assert.match(res.reason, reason);
}

const entry = (i: number) => ({ event: 'sign', i, digest: createHash('sha256').update(`m${i}`).digest('hex'), pad: 'x'.repeat(100 + (i % 7) * 30) });

describe('audit/rotation', function () {
  this.timeout(60_000);
  let dir: string;
  let path: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-audit-rot-'));
    path = join(dir, 'audit.log');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Appends n records (some concurrently), closing and reopening the log on the way. */
  async function fill(n: number, from = 0): Promise<AuditHead> {
    let log = await AuditLog.open(path, { rotateBytes: ROTATE });
    for (let i = from; i < from + n; i += 3) {
      await Promise.all([0, 1, 2].filter((k) => i + k < from + n).map((k) => log.append(entry(i + k))));
      if (i % 12 === 0) {
        await log.close();
        log = await AuditLog.open(path, { rotateBytes: ROTATE });
      }
    }
    const head = log.head();
    await log.close();
    return head;
  }

  it('MerkleFrontier: the root of every prefix equals merkleRoot; resumed from its frontier it goes on the same', () => {
    const leaves = Array.from({ length: 70 }, () => randomBytes(32));
    const tree = new MerkleFrontier();
    assert.equal(hex(tree.root()), hex(merkleRoot([])));
    for (let n = 1; n <= leaves.length; n++) {
      tree.push(leaves[n - 1]!);
      assert.equal(hex(tree.root()), hex(merkleRoot(leaves.slice(0, n))), `${n} leaves`);
      assert.equal(tree.frontier.length, n.toString(2).replace(/0/g, '').length);
    }
    const resumed = new MerkleFrontier(37, rebuilt(leaves.slice(0, 37)));
    for (const l of leaves.slice(37)) resumed.push(l);
    assert.equal(hex(resumed.root()), hex(merkleRoot(leaves)));
    assert.throws(() => new MerkleFrontier(3, [randomBytes(32)]), /a Merkle frontier of 3 leaves has 2 subtree roots, got 1/);
    assert.throws(() => new MerkleFrontier(-1), RangeError);
  });

  function rebuilt(leaves: Uint8Array[]): Uint8Array[] {
    const t = new MerkleFrontier();
    for (const l of leaves) t.push(l);
    return t.frontier;
  }

  it('rotates by size across several files; the chain continues and verifies over all of them; root and head match', async () => {
    const head = await fill(60);
    const all = await files(path);
    assert.ok(all.length >= 6, `${all.length} files`);
    assert.deepEqual(all.slice(0, -1).map((f) => basename(f)), all.slice(0, -1).map((_, k) => basename(segmentPath(path, k + 1))));
    for (const [k, f] of all.entries()) {
      const rs = await records(f);
      if (k === 0) {
        assert.equal(rs[0]!.seq, 1);
        continue;
      }
      const before = await records(all[k - 1]!);
      const last = before[before.length - 1]!;
      // The first record of each new file chains to the last hash of the previous one.
      assert.deepEqual([rs[0]!.seq, rs[0]!.prev], [last.seq + 1, last.hash]);
      assert.equal(rs[0]!.record.event, 'audit-rotated');
      assert.equal(rs[0]!.record.previous_file, basename(all[k - 1]!));
      assert.ok(rs.slice(1).every((r) => r.record.event === 'sign'), 'only the first record of a file is a rotation record');
    }
    const res = await verifyAuditLog(path, { expectedHead: head, exact: true });
    ok(res);
    assert.equal(res.records, head.seq);
    assert.equal(res.records, 60 + all.length - 1, 'the 60 records and one rotation record per new file');
    assert.equal(res.root, await rootOver(all));
    const reopened = await AuditLog.open(path, { rotateBytes: ROTATE });
    assert.deepEqual(reopened.head(), head);
    assert.equal(reopened.merkleRoot(), res.root, 'resumed from the active file alone');
    await reopened.close();
    // Without rotation the same log goes on in the active file.
    const plain = await AuditLog.open(path);
    await plain.append(entry(99));
    await plain.close();
    ok(await verifyAuditLog(path));
  });

  it('a removed or swapped middle file, and a cut or removed newest file (against a kept head), are detected', async () => {
    const head = await fill(60);
    const all = await files(path);
    const middle = all[2]!;
    const aside = join(dir, 'aside');
    await rename(middle, aside);
    failsAt(await verifyAuditLog(path), all[3]!, 1, /continues audit\.log\.000003, but the file before it is audit\.log\.000002: a file is missing/);
    await rename(aside, middle);
    ok(await verifyAuditLog(path));

    // Swapped contents of two closed files.
    const [a, b] = [await readFile(all[1]!), await readFile(all[2]!)];
    await writeFile(all[1]!, b);
    await writeFile(all[2]!, a);
    failsAt(await verifyAuditLog(path), all[1]!, 1, /continues audit\.log\.000002, but the file before it is audit\.log\.000001/);
    await writeFile(all[1]!, a);
    await writeFile(all[2]!, b);

    // The oldest file removed: the chain no longer starts at genesis.
    await rename(all[0]!, aside);
    failsAt(await verifyAuditLog(path), all[1]!, 1, /the oldest file starts with a rotation record continuing audit\.log\.000001: the files before it are missing/);
    await rename(aside, all[0]!);

    // The last record of the newest file cut: only a kept head sees it.
    const active = await readFile(path, 'utf8');
    const lines = active.split('\n').filter(Boolean);
    await writeFile(path, lines.slice(0, -1).map((l) => l + '\n').join(''));
    ok(await verifyAuditLog(path));
    failsAt(await verifyAuditLog(path, { expectedHead: head }), path, lines.length, /records were removed from the end/);
    // The whole newest file removed.
    await rm(path);
    ok(await verifyAuditLog(path));
    failsAt(await verifyAuditLog(path, { expectedHead: head }), all[all.length - 2]!, (await records(all[all.length - 2]!)).length + 1, /records were removed from the end/);
  });

  it('an edited rotation record (forged Merkle frontier) breaks the chain there', async () => {
    await fill(30);
    const all = await files(path);
    const text = await readFile(all[2]!, 'utf8');
    const first = JSON.parse(text.slice(0, text.indexOf('\n')));
    first.record.merkle.frontier[0] = '00'.repeat(32);
    await writeFile(all[2]!, JSON.stringify(first) + text.slice(text.indexOf('\n')));
    failsAt(await verifyAuditLog(path), all[2]!, 1, /hash mismatch/);
  });

  describe('a writer killed at any step of a rotation reopens into a verifiable chain', () => {
    /** A log whose active file is full: the next append rotates it. Returns the head and the next closed name. */
    async function full(): Promise<{ head: AuditHead; next: string }> {
      await fill(20);
      const log = await AuditLog.open(path, { rotateBytes: 1 << 20 });
      for (let i = 0; (await readFile(path)).length < ROTATE; i++) await log.append(entry(1000 + i));
      const head = log.head();
      await log.close();
      return { head, next: segmentPath(path, (await closedSegments(path)).length + 1) };
    }

    /**
     * Reopens (rotation on, repair on), appends one record, and checks the whole chain. `atOpen`:
     * records open() itself writes (a repair, and the rotation record going out with it).
     */
    async function resumes(before: AuditHead, closedName: string, atOpen = 0): Promise<Extract<AuditVerifyResult, { ok: true }>> {
      const log = await AuditLog.open(path, { rotateBytes: ROTATE, repairTruncatedTail: true });
      if (atOpen === 0) assert.deepEqual(log.head(), before, 'resumes at the last durable record');
      else assert.equal(log.head().seq, before.seq + atOpen);
      await log.append({ event: 'sign', after: 'crash' });
      await log.close();
      const res = await verifyAuditLog(path, { expectedHead: before });
      ok(res);
      assert.equal(res.root, await rootOver(await files(path)));
      const rs = await records(path);
      assert.deepEqual(rs[0]!.record, { ...rs[0]!.record, event: 'audit-rotated', previous_file: basename(closedName) });
      assert.equal(rs[0]!.seq, before.seq + 1);
      return res;
    }

    it('killed after the rename, before the new file exists', async () => {
      const { head, next } = await full();
      await rename(path, next);
      const res = await resumes(head, next);
      assert.equal(res.records, head.seq + 2, 'the rotation record, then the new record');
    });

    it('killed after the new file was created, before anything was written to it', async () => {
      const { head, next } = await full();
      await rename(path, next);
      await writeFile(path, '');
      await resumes(head, next);
    });

    it('killed while writing the rotation record: the torn line is set aside, and the repair recorded after the rotation record', async () => {
      const { head, next } = await full();
      await rename(path, next);
      await writeFile(path, `{"seq":${head.seq + 1},"prev":"${head.hash.slice(0, 20)}`);
      await assert.rejects(AuditLog.open(path, { rotateBytes: ROTATE }), (e: AuditLogError) => e.code === 'truncated-tail');
      await resumes(head, next, 2);
      const rs = await records(path);
      assert.deepEqual(rs.map((r) => r.record.event), ['audit-rotated', 'audit-repaired', 'sign']);
      assert.match(String(rs[1]!.record.partial_file), /^audit\.log\.partial-/);
    });

    it('killed before the rename, or after the rotation record and its batch: nothing to complete', async () => {
      const { head, next } = await full();
      // Before: the full active file is simply rotated by the next write.
      await resumes(head, next);
      // After: a complete file that starts with the rotation record.
      const again = await AuditLog.open(path, { rotateBytes: ROTATE });
      const mid = again.head();
      await again.close();
      const res = await verifyAuditLog(path, { expectedHead: mid, exact: true });
      ok(res);
    });

    it('a torn last record of the newest file (not in a rotation) is repaired at start and recorded', async () => {
      const head = await fill(20);
      await writeFile(path, (await readFile(path, 'utf8')) + '{"seq":' + (head.seq + 1) + ',"prev":"');
      const log = await AuditLog.open(path, { rotateBytes: ROTATE, repairTruncatedTail: true });
      assert.equal(log.head().seq, head.seq + 1, 'the repair is the next record');
      await log.close();
      const rs = await records(path);
      assert.equal(rs[rs.length - 1]!.record.event, 'audit-repaired');
      ok(await verifyAuditLog(path, { expectedHead: head }));
    });

    it('a newest file that does not continue the closed file before it is refused at open', async () => {
      await fill(30);
      const all = await files(path);
      const active = await readFile(path);
      // The active file replaced by an older file's content (its rotation record names another file).
      await writeFile(path, await readFile(all[1]!));
      await assert.rejects(AuditLog.open(path, { rotateBytes: ROTATE }), (e: AuditLogError) => e.code === 'corrupt-tail' && /a file is missing, renamed or reordered/.test(e.message));
      // The newest closed file cut by one record: the active file continues a record that is gone.
      await writeFile(path, active);
      const last = all[all.length - 2]!;
      const lines = (await readFile(last, 'utf8')).split('\n').filter(Boolean);
      await writeFile(last, lines.slice(0, -1).map((l) => l + '\n').join(''));
      await assert.rejects(AuditLog.open(path, { rotateBytes: ROTATE }), (e: AuditLogError) => e.code === 'corrupt-tail' && /continues record \d+, but audit\.log\.\d{6} ends at record \d+/.test(e.message));
    });
  });
});
