/**
 * The CT log's storage on a real file system: entries survive a reopen in order, a resubmitted
 * entry is not stored twice, a torn last line (a crash mid-append, never acknowledged) is cut off
 * and reported while the entries before it stay, a damaged line in the middle refuses to open,
 * and the signed tree head is replaced atomically and checked against the entries.
 */
import { strict as assert } from 'node:assert';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogStore } from '../../src/ct/log-store.js';
import { encodeSct, merkleTreeLeaf, type Sct } from '../../src/ct/structures.js';

function entry(n: number) {
  const timestamp = 1_700_000_000_000 + n;
  const certificate = Buffer.from(`certificate ${n}`);
  const sct: Sct = { logId: Buffer.alloc(32, 1), timestamp, extensions: new Uint8Array(0), signature: Buffer.from([0x30, 0x03, 0x02, 0x01, n]) };
  return { leaf: merkleTreeLeaf(timestamp, { type: 'x509', certificate }), chain: [certificate], sct: encodeSct(sct) };
}

describe('CT log store', () => {
  it('keeps entries in order across a reopen and stores a resubmission once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-ctstore-'));
    const store = await LogStore.open(dir);
    const [a, b] = await Promise.all([store.append(entry(1)), store.append(entry(2))]);
    assert.equal(a.timestamp, 1_700_000_000_001);
    assert.equal(b.timestamp, 1_700_000_000_002);
    const again = await store.append({ ...entry(1), sct: entry(9).sct });
    assert.equal(again.timestamp, a.timestamp, 'the SCT issued first is the answer');
    assert.equal(store.treeSize, 2);
    await store.close();
    const reopened = await LogStore.open(dir);
    assert.equal(reopened.treeSize, 2);
    assert.deepEqual(reopened.leavesUpTo().map((l) => Buffer.from(l)), [entry(1).leaf, entry(2).leaf].map((l) => Buffer.from(l)));
    await reopened.close();
  });

  it('cuts off a torn last line, reports it, and keeps appending after the entries before it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-ctstore-'));
    const store = await LogStore.open(dir);
    await store.append(entry(1));
    await store.close();
    appendFileSync(join(dir, 'entries.jsonl'), '{"leaf":"AAAB');
    let repaired = 0;
    const reopened = await LogStore.open(dir, (bytes) => (repaired = bytes));
    assert.equal(repaired, '{"leaf":"AAAB'.length);
    assert.equal(reopened.treeSize, 1);
    await reopened.append(entry(2));
    await reopened.close();
    const lines = readFileSync(join(dir, 'entries.jsonl'), 'utf8').split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[2], '');
    for (const l of lines.slice(0, 2)) JSON.parse(l);
  });

  it('refuses to open with a damaged line in the middle', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-ctstore-'));
    const store = await LogStore.open(dir);
    await store.append(entry(1));
    await store.close();
    const file = join(dir, 'entries.jsonl');
    writeFileSync(file, `not json\n${readFileSync(file, 'utf8')}`);
    await assert.rejects(LogStore.open(dir), /line 1 is not JSON: the CT log is damaged/);
  });

  it('replaces the tree head atomically and refuses one that covers more entries than stored', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-ctstore-'));
    const store = await LogStore.open(dir);
    assert.equal(await store.readTreeHead(), undefined);
    await store.append(entry(1));
    const head = { treeSize: 1, timestamp: 5, rootHash: Buffer.alloc(32, 3), signature: Buffer.from([0x30, 0]) };
    await store.writeTreeHead(head);
    const back = await store.readTreeHead();
    assert.equal(back?.treeSize, 1);
    assert.deepEqual(Buffer.from(back!.rootHash), head.rootHash);
    assert.deepEqual(readdirSync(dir).sort(), ['entries.jsonl', 'sth.json'], 'no temporary file left');
    await store.writeTreeHead({ ...head, treeSize: 2 });
    await assert.rejects(store.readTreeHead(), /covers 2 entries, .* holds 1: entries were lost/);
    await store.close();
  });
});
