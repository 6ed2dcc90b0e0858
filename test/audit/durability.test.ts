/**
 * Group commit, durable before the answer (src/audit/log.ts):
 * - in process: appends issued together share one write and one fsync (onCommit), and none
 *   resolves before the commit that holds it;
 * - a real writer process (audit-writer.ts) under strace: the system calls themselves show fewer
 *   fsyncs than records, and every answer written to stdout comes after the fsync that follows
 *   the write of its record (kill -9 alone could not show the fsync: the page cache survives it);
 * - the writer killed with SIGKILL right after answers, again and again, with rotation every few
 *   records: each restart repairs what the kill tore, and no answered record is ever missing.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AuditLog, scanAuditLog } from '../../src/audit/log.js';
import { closedSegments } from '../../src/audit/segments.js';
import { requireTool } from '../services/processes.js';

const WRITER = fileURLToPath(new URL('./audit-writer.js', import.meta.url));

describe('audit/durability: group commit, durable before the answer', function () {
  this.timeout(240_000);
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-audit-dur-'));
    path = join(dir, 'audit.log');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('appends issued together share one commit; none resolves before its commit', async () => {
    const events: string[] = [];
    const log = await AuditLog.open(path, { onCommit: (n) => events.push(`commit ${n}`) });
    await Promise.all(Array.from({ length: 64 }, (_, i) => log.append({ i }).then((r) => events.push(`answer ${r.seq}`))));
    await log.close();
    // The first append starts a commit at once; the 63 queued behind it share the next one.
    assert.deepEqual(events, ['commit 1', 'answer 1', 'commit 63', ...Array.from({ length: 63 }, (_, k) => `answer ${k + 2}`)]);
  });

  it('strace of a writer process: fewer fsyncs than records, and each answer after the fsync of its record', () => {
    requireTool('strace', 'strace');
    const trace = join(dir, 'trace.txt');
    const run = spawnSync('strace', ['-f', '-qq', '-s', '1000000', '-e', 'trace=openat,write,fsync,close', '-o', trace, process.execPath, WRITER, path, '4096', '32', '6'], {
      encoding: 'utf8',
      timeout: 180_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^done$/m);
    const writers = new Set<number>(); // fds of the active file opened for writing
    let created = 0;
    const written = new Map<number, number>(); // fd → highest seq written to it
    const pendingFsync = new Map<number, number>(); // tid → fd of its unfinished fsync
    let durable = 0;
    let fsyncs = 0;
    const answers: number[] = [];
    for (const line of readFileSync(trace, 'utf8').split('\n')) {
      const m = /^(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const [tid, call] = [Number(m[1]), m[2]!];
      const opened = /^openat\(AT_FDCWD, "([^"]+)", ([A-Z_|]+)(?:, \d+)?\) = (\d+)$/.exec(call);
      if (opened && opened[1] === path && opened[2]!.includes('O_CREAT')) {
        writers.add(Number(opened[3]));
        created++;
      }
      const closed = /^close\((\d+)\)/.exec(call);
      if (closed) writers.delete(Number(closed[1]));
      const w = /^write\((\d+), "(.*)/.exec(call);
      if (w && writers.has(Number(w[1]))) {
        const seqs = [...w[2]!.matchAll(/\\"seq\\":(\d+),/g)].map((x) => Number(x[1]));
        written.set(Number(w[1]), Math.max(written.get(Number(w[1])) ?? 0, ...seqs));
      }
      if (w && w[1] === '1') for (const a of w[2]!.matchAll(/ok (\d+) /g)) answers.push(Number(a[1]));
      // An fsync done: on one line, or resumed after another thread's calls.
      const full = /^fsync\((\d+)\)\s+= 0$/.exec(call);
      const started = /^fsync\((\d+) <unfinished \.\.\.>$/.exec(call);
      if (started) pendingFsync.set(tid, Number(started[1]));
      const resumed = /^<\.\.\. fsync resumed>\)\s+= 0$/.test(call) ? pendingFsync.get(tid) : undefined;
      const fd = full ? Number(full[1]) : resumed;
      if (fd !== undefined && writers.has(fd)) {
        fsyncs++;
        durable = Math.max(durable, written.get(fd) ?? 0);
      }
      for (const a of answers.splice(0)) assert.ok(a <= durable, `record ${a} answered before an fsync covered it (durable up to ${durable})`);
    }
    const records = 6 * 32;
    assert.equal(run.stdout.split('\n').filter((l) => l.startsWith('ok ')).length, records);
    assert.ok(created >= 3, 'the log rotated: the active file was created again');
    assert.ok(fsyncs > 0 && fsyncs < records / 4, `${fsyncs} fsyncs for ${records} records`);
  });

  it('killed with SIGKILL right after answering, fifteen times, with rotation: every answered record is in the log', async () => {
    const answered = new Map<number, string>();
    let kills = 0;
    for (let round = 0; round < 15; round++) {
      const stopAfter = 3 + ((round * 7) % 40);
      const child = spawn(process.execPath, [WRITER, path, '3000', '8', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
      let seen = 0;
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const [what, seq, hash] = line.split(' ');
        if (what === 'open') {
          // Every answer of the earlier rounds is at or before the head this restart resumed from.
          const last = Math.max(0, ...answered.keys());
          assert.ok(Number(seq) >= last, `restart resumed at ${seq}, but record ${last} was answered`);
          return;
        }
        if (what !== 'ok') return;
        answered.set(Number(seq), hash!);
        if (++seen === stopAfter) process.kill(child.pid!, 'SIGKILL');
      });
      const signal = await exited;
      assert.equal(signal, 'SIGKILL', stderr);
      kills++;
    }
    // The last kill may have torn a record too: the next start repairs it, as the services do.
    await (await AuditLog.open(path, { repairTruncatedTail: true, rotateBytes: 3000 })).close();
    const found = new Map<number, string>();
    const res = await scanAuditLog(path, (e) => void found.set(e.seq, e.hash));
    assert.ok(res.ok, JSON.stringify(res));
    for (const [seq, hash] of answered) assert.equal(found.get(seq), hash, `answered record ${seq} is in the log with its hash`);
    assert.equal(kills, 15);
    assert.ok((await closedSegments(path)).length >= 3, 'rotated on the way');
  });
});
