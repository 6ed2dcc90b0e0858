import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { appendFile, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuditLog,
  AuditLogError,
  GENESIS_HASH,
  auditPeriodRoot,
  canonicalJson,
  hashAuditEntry,
  merkleRoot,
  verifyAuditLog,
  type AuditVerifyResult,
} from '../../src/audit/log.js';

function record(i: number) {
  return {
    context: i % 3 === 0 ? 'ocsp' : 'tls-server',
    ocsp: i % 3 === 0 ? { serial: `0x${(1000 + i).toString(16)}`, status: 'good' } : null,
    digest: createHash('sha256').update(`tbs-${i}`).digest('hex'),
    subset: [1, 3, 5],
    presignature: `ps-${i}`,
    R: `02${'ab'.repeat(32)}`,
    signature: { r: 'cd'.repeat(32), s: 'ef'.repeat(32) },
    caller: 'nginx@edge-1',
    note: 'ünïcødé \u2028 "quoted" \\ back',
  };
}

/** Deterministic clock: one second per call from 2026-01-01. */
function testClock(start = Date.UTC(2026, 0, 1)): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

function assertFailsAt(res: AuditVerifyResult, line: number, reason?: RegExp): void {
  assert.equal(res.ok, false, `expected failure at line ${line}, got ${JSON.stringify(res)}`);
  if (res.ok) return;
  assert.equal(res.line, line, `failed at line ${res.line} (${res.reason}), expected ${line}`);
  if (reason) assert.match(res.reason, reason);
}

async function lines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  assert.ok(text.endsWith('\n'));
  return text.slice(0, -1).split('\n');
}

/** RFC 6962 root over the record hashes of the files, in order (computed with the batch merkleRoot). */
async function rootOf(...files: string[]): Promise<string> {
  const hashes: Uint8Array[] = [];
  for (const f of files) for (const l of (await readFile(f, 'utf8')).split('\n').filter(Boolean)) hashes.push(Buffer.from(JSON.parse(l).hash, 'hex'));
  return Buffer.from(merkleRoot(hashes)).toString('hex');
}

async function writeLines(path: string, ls: string[]): Promise<void> {
  await writeFile(path, ls.map((l) => `${l}\n`).join(''));
}

describe('audit/log: hash-chained append-only log', function () {
  let dir: string;
  let path: string;
  let head100: { seq: number; hash: string };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qk-audit-'));
    path = join(dir, 'audit.log');
    const log = await AuditLog.open(path, { clock: testClock() });
    for (let i = 1; i <= 100; i++) await log.append(record(i));
    head100 = log.head();
    await log.close();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('100 appended records verify; head() matches; file mode 0600; line format as documented', async () => {
    const res = await verifyAuditLog(path);
    assert.deepEqual(res, { ok: true, records: 100, head: head100.hash, root: await rootOf(path) });
    assert.equal(head100.seq, 100);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const ls = await lines(path);
    assert.equal(ls.length, 100);
    const first = JSON.parse(ls[0]!);
    assert.deepEqual(Object.keys(first), ['seq', 'prev', 'time', 'record', 'hash']);
    assert.equal(first.seq, 1);
    assert.equal(first.prev, GENESIS_HASH);
    assert.equal(first.time, '2026-01-01T00:00:01.000Z');
    assert.equal(first.hash, hashAuditEntry(1, GENESIS_HASH, first.time, record(1)));
    // hash = SHA-256("quorumkey-audit-v1\n" ‖ canonical JSON with sorted keys), recomputed by hand.
    const canon = `{"prev":"${GENESIS_HASH}","record":${canonicalJson(record(1))},"seq":1,"time":"${first.time}"}`;
    assert.equal(first.hash, createHash('sha256').update(`quorumkey-audit-v1\n${canon}`).digest('hex'));
    const second = JSON.parse(ls[1]!);
    assert.equal(second.prev, first.hash);
    assert.deepEqual(await verifyAuditLog(path, { expectedHead: head100, exact: true }), { ok: true, records: 100, head: head100.hash, root: await rootOf(path) });
  });

  it('an edited field of record 50 fails at line 50', async () => {
    const ls = await lines(path);
    const e = JSON.parse(ls[49]!);
    e.record.caller = 'attacker';
    ls[49] = JSON.stringify(e);
    await writeLines(path, ls);
    assertFailsAt(await verifyAuditLog(path), 50, /hash mismatch/);
  });

  it('an edited record whose hash was recomputed breaks the link at line 51', async () => {
    const ls = await lines(path);
    const e = JSON.parse(ls[49]!);
    e.record.digest = '00'.repeat(32);
    e.hash = hashAuditEntry(e.seq, e.prev, e.time, e.record);
    ls[49] = JSON.stringify(e);
    await writeLines(path, ls);
    assertFailsAt(await verifyAuditLog(path), 51, /prev/);
  });

  it('a reformatted line (same values) is rejected as edited', async () => {
    const ls = await lines(path);
    ls[9] = JSON.stringify(JSON.parse(ls[9]!), null, 0).replace('"seq":10,', '"seq": 10,');
    await writeLines(path, ls);
    assertFailsAt(await verifyAuditLog(path), 10, /canonical form/);
  });

  it('deleting record 50 fails at line 50; deleting record 99 fails at line 99', async () => {
    const ls = await lines(path);
    await writeLines(path, [...ls.slice(0, 49), ...ls.slice(50)]);
    assertFailsAt(await verifyAuditLog(path), 50, /seq 51 where 50/);
    await writeLines(path, [...ls.slice(0, 98), ls[99]!]);
    assertFailsAt(await verifyAuditLog(path), 99);
  });

  it('deleting the last record is only caught against a separately kept head', async () => {
    const ls = await lines(path);
    await writeLines(path, ls.slice(0, 99));
    const plain = await verifyAuditLog(path);
    assert.equal(plain.ok, true, 'the chain alone cannot see a removed last record');
    assertFailsAt(await verifyAuditLog(path, { expectedHead: head100 }), 100, /removed from the end/);
    // A replaced history with a valid chain but a different record 100 is caught too.
    const log = await AuditLog.open(path, { clock: testClock(Date.UTC(2027, 0, 1)) });
    await log.append({ forged: true });
    await log.close();
    assert.equal((await verifyAuditLog(path)).ok, true);
    assertFailsAt(await verifyAuditLog(path, { expectedHead: head100 }), 100, /head kept separately/);
  });

  it('swapping two lines fails', async () => {
    const ls = await lines(path);
    [ls[49], ls[50]] = [ls[50]!, ls[49]!];
    await writeLines(path, ls);
    assertFailsAt(await verifyAuditLog(path), 50, /reordered/);
  });

  it('a truncated last line fails (cut inside the line, and only the newline)', async () => {
    const { size } = await stat(path);
    await truncate(path, size - 1);
    assertFailsAt(await verifyAuditLog(path), 100, /truncated last line/);
    await truncate(path, size - 40);
    assertFailsAt(await verifyAuditLog(path), 100, /truncated last line/);
  });

  it('garbage is rejected: appended text, binary junk in the middle, an empty line, a missing file', async () => {
    const orig = await readFile(path);
    await appendFile(path, 'hello world\n');
    assertFailsAt(await verifyAuditLog(path), 101, /garbage/);
    const ls = (await lines(path)).slice(0, 100);
    await writeFile(path, Buffer.concat([Buffer.from(ls.slice(0, 20).join('\n') + '\n'), randomBytes(64).map((b) => (b === 10 ? 11 : b)), Buffer.from('\n' + ls.slice(20).join('\n') + '\n')]));
    assertFailsAt(await verifyAuditLog(path), 21, /garbage|UTF-8/);
    await writeFile(path, ls.slice(0, 5).join('\n') + '\n\n' + ls.slice(5).join('\n') + '\n');
    assertFailsAt(await verifyAuditLog(path), 6);
    await writeFile(path, Buffer.concat([orig, Buffer.from('\n')]));
    assertFailsAt(await verifyAuditLog(path), 101);
    assertFailsAt(await verifyAuditLog(join(dir, 'nope.log')), 0, /ENOENT/);
  });

  it('reopening resumes the chain; the tail is re-verified on open', async () => {
    const log = await AuditLog.open(path, { clock: testClock(Date.UTC(2026, 5, 1)) });
    assert.deepEqual(log.head(), head100);
    const r = await log.append({ after: 'restart' });
    assert.equal(r.seq, 101);
    assert.equal(r.prev, head100.hash);
    await log.close();
    const again = await AuditLog.open(path);
    assert.equal(again.head().seq, 101);
    await again.append({ n: 102 });
    await again.close();
    const res = await verifyAuditLog(path);
    assert.equal(res.ok && res.records, 102);

    // An edited tail is refused on open.
    const ls = await lines(path);
    const e = JSON.parse(ls[101]!);
    e.record.n = 7;
    ls[101] = JSON.stringify(e);
    await writeLines(path, ls);
    await assert.rejects(AuditLog.open(path), (err: AuditLogError) => err instanceof AuditLogError && err.code === 'corrupt-tail');
  });

  it('a partial last line blocks open until repaired; repair keeps the partial bytes aside', async () => {
    const { size } = await stat(path);
    await truncate(path, size - 30);
    await assert.rejects(AuditLog.open(path), (err: AuditLogError) => err.code === 'truncated-tail');
    const log = await AuditLog.open(path, { repairTruncatedTail: true });
    // The 99 whole records stay; the repair itself is record 100.
    assert.equal(log.head().seq, 100);
    await log.append({ resumed: true });
    await log.close();
    assert.equal((await verifyAuditLog(path)).ok, true);
    const side = (await readdir(dir)).filter((n) => n.startsWith('audit.log.partial-'));
    assert.equal(side.length, 1);
    assert.ok((await readFile(join(dir, side[0]!), 'utf8')).startsWith('{"seq":100,'));
    const repair = JSON.parse((await lines(path))[99]!).record;
    assert.deepEqual(repair, { event: 'audit-repaired', partial_file: side[0], bytes: (await readFile(join(dir, side[0]!))).length });
  });

  it('50 concurrent appends (Promise.all) produce a valid chain in call order', async () => {
    const p2 = join(dir, 'concurrent.log');
    const log = await AuditLog.open(p2);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append({ i })));
    assert.deepEqual(results.map((r) => r.seq), Array.from({ length: 50 }, (_, i) => i + 1));
    for (let i = 1; i < 50; i++) assert.equal(results[i]!.prev, results[i - 1]!.hash);
    assert.deepEqual(log.head(), { seq: 50, hash: results[49]!.hash });
    // More appends racing with close() are still written before the file closes.
    const late = [log.append({ late: 1 }), log.append({ late: 2 })];
    await log.close();
    await Promise.all(late);
    await assert.rejects(log.append({ tooLate: true }), (e: AuditLogError) => e.code === 'closed');
    const reopened = await AuditLog.open(p2);
    const head = reopened.head();
    await reopened.close();
    assert.equal(head.seq, 52);
    assert.deepEqual(await verifyAuditLog(p2), { ok: true, records: 52, head: head.hash, root: await rootOf(p2) });
    const ls = await lines(p2);
    assert.deepEqual(ls.slice(0, 50).map((l) => JSON.parse(l).record.i), Array.from({ length: 50 }, (_, i) => i));
  });

  it('works with fsync off; rejects non-JSON records without consuming a seq', async () => {
    const p2 = join(dir, 'nofsync.log');
    const log = await AuditLog.open(p2, { fsync: false });
    await log.append({ a: 1 });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const bad of [undefined, 10n, new Date(), NaN, { x: Infinity }, cyclic, [1, , 3], Buffer.from('x'), { f: () => 1 }]) {
      await assert.rejects(log.append(bad), (e: AuditLogError) => e.code === 'invalid-record', String(bad));
    }
    assert.equal((await log.append({ b: 2 })).seq, 2);
    await log.close();
    assert.equal((await verifyAuditLog(p2)).ok, true);
  });

  it('an empty log verifies with the genesis head', async () => {
    const p2 = join(dir, 'empty.log');
    const log = await AuditLog.open(p2);
    assert.deepEqual(log.head(), { seq: 0, hash: GENESIS_HASH });
    await log.close();
    assert.deepEqual(await verifyAuditLog(p2), { ok: true, records: 0, head: GENESIS_HASH, root: Buffer.from(merkleRoot([])).toString('hex') });
    assertFailsAt(await verifyAuditLog(p2, { expectedHead: { seq: 1, hash: GENESIS_HASH.replace(/^0/, '1') } }), 1, /removed from the end/);
  });

  it('key order of the record does not matter (canonical JSON)', async () => {
    assert.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1, y: -0 } }), '{"a":[true,null,"x"],"b":1,"c":{"y":0,"z":1}}');
    const t = '2026-01-01T00:00:00.000Z';
    assert.equal(hashAuditEntry(1, GENESIS_HASH, t, { b: 1, a: 2 }), hashAuditEntry(1, GENESIS_HASH, t, { a: 2, b: 1 }));
  });

  it('a second writer on the same file is detected', async () => {
    const a = await AuditLog.open(path);
    const b = await AuditLog.open(path);
    await a.append({ from: 'a' });
    await assert.rejects(b.append({ from: 'b' }), (e: AuditLogError) => e.code === 'concurrent-writer');
    await a.close();
    await b.close();
    assert.equal((await verifyAuditLog(path)).ok, true);
  });

  it('per-period Merkle root over the record hashes of that period', async () => {
    // Records 1..100 have times 00:00:01 … 00:01:40; take [00:00:11, 00:00:21) = records 11..20.
    const pr = await auditPeriodRoot(path, new Date(Date.UTC(2026, 0, 1, 0, 0, 11)), new Date(Date.UTC(2026, 0, 1, 0, 0, 21)));
    assert.equal(pr.count, 10);
    assert.equal(pr.firstSeq, 11);
    assert.equal(pr.lastSeq, 20);
    assert.deepEqual(pr.head, head100);
    const hashes = (await lines(path)).slice(10, 20).map((l) => Buffer.from(JSON.parse(l).hash, 'hex'));
    assert.equal(pr.root, Buffer.from(merkleRoot(hashes)).toString('hex'));
  });
});

describe('audit/merkle: RFC 6962 Merkle tree hash', function () {
  const sha = (...parts: Uint8Array[]) => {
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    return h.digest();
  };
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

  it('3 leaves: root = H(01 ‖ H(01 ‖ H(00‖d0) ‖ H(00‖d1)) ‖ H(00‖d2)), computed independently', () => {
    const d = [Buffer.from('leaf zero'), Buffer.from('leaf one'), Buffer.from('leaf two')];
    const leaf = (x: Buffer) => sha(Buffer.of(0), x);
    const node = (l: Buffer, r: Buffer) => sha(Buffer.of(1), l, r);
    const expected = node(node(leaf(d[0]!), leaf(d[1]!)), leaf(d[2]!));
    assert.equal(hex(merkleRoot(d)), hex(expected));
    // Not the other split, and not without domain prefixes.
    assert.notEqual(hex(merkleRoot(d)), hex(node(leaf(d[0]!), node(leaf(d[1]!), leaf(d[2]!)))));
  });

  it('empty tree and single leaf', () => {
    assert.equal(hex(merkleRoot([])), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(hex(merkleRoot([Buffer.alloc(0)])), hex(sha(Buffer.of(0))));
  });

  it('matches the Certificate Transparency reference test vectors (1 to 8 leaves)', () => {
    const leaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'));
    const roots = [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    ];
    for (let n = 1; n <= 8; n++) assert.equal(hex(merkleRoot(leaves.slice(0, n))), roots[n - 1], `${n} leaves`);
  });
});
