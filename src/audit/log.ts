/**
 * Append-only, hash-chained audit log (DESIGN §5).
 *
 * File format: UTF-8, one record per line, each line terminated by "\n":
 *
 *   {"seq":<n>,"prev":"<64 hex>","time":"<ISO-8601 UTC>","record":<canonical JSON>,"hash":"<64 hex>"}
 *
 * with the keys in exactly that order and no whitespace (a line is rejected unless it is
 * byte-identical to this serialisation of its own content).
 *
 * - seq: 1 for the first record, +1 per record (so seq = line number = records so far).
 * - prev: the hash of the previous record; GENESIS_HASH (64 zeros) for the first.
 * - time: when the record was appended, `Date.prototype.toISOString()` form.
 * - record: the caller's structured object (context, digest, subset, presignature id, R,
 *   signature, caller, …) — any plain JSON value; the log does not interpret it.
 * - hash = lowercase hex SHA-256( "quorumkey-audit-v1\n" ‖ canonicalJson({seq, prev, time, record}) )
 *   where canonicalJson (canonical.ts) sorts object keys and has no whitespace, so the hashed bytes
 *   are  {"prev":"…","record":{…},"seq":n,"time":"…"}  — unambiguous because JSON strings are
 *   escaped and every value is delimited.
 *
 * What the chain proves, and what it does not: editing, inserting, deleting or reordering any
 * record breaks the chain at that line, and so does cutting the last line short. Deleting the
 * last k whole records (or replacing the whole file) leaves a shorter but valid chain. That is
 * only detectable against a head (seq, hash) kept elsewhere: export `head()` periodically (metrics,
 * a peer, a ticket, the published per-period Merkle roots) and pass it to
 * `verifyAuditLog(path, { expectedHead })`, which then requires record `seq` to exist with that hash.
 *
 * One writer per file: AuditLog serialises appends of one process (group commit: records that
 * arrive while a write is in flight go out together in one write + one fsync, each promise resolves
 * only once its record is durable) and refuses to continue if the file grows behind its back.
 */
import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { canonicalJson, type JsonValue } from './canonical.js';
import { merkleRoot } from './merkle.js';
import { fsyncDirectory } from '../storage/atomic-write.js';

export { canonicalJson, CanonicalJsonError, type JsonValue } from './canonical.js';
export { merkleRoot, merkleLeafHash, merkleNodeHash } from './merkle.js';

export const GENESIS_HASH = '0'.repeat(64);
export const AUDIT_HASH_DOMAIN = 'quorumkey-audit-v1\n';
/** Longest accepted line (bytes, without the newline). */
export const MAX_AUDIT_LINE_BYTES = 1024 * 1024;

const HEX64 = /^[0-9a-f]{64}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const NL = 0x0a;

export interface AuditEntry {
  seq: number;
  prev: string;
  time: string;
  record: JsonValue;
  hash: string;
}

/** The newest record: its seq (= number of records) and hash. Genesis: {seq: 0, hash: GENESIS_HASH}. */
export interface AuditHead {
  seq: number;
  hash: string;
}

export type AuditVerifyResult = { ok: true; records: number; head: string } | { ok: false; line: number; reason: string };

export type AuditLogErrorCode = 'invalid-record' | 'truncated-tail' | 'corrupt-tail' | 'concurrent-writer' | 'closed' | 'broken' | 'io' | 'verify-failed';

export class AuditLogError extends Error {
  readonly code: AuditLogErrorCode;
  constructor(code: AuditLogErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'AuditLogError';
    this.code = code;
  }
}

/** Hash of one record, from its already canonical record text. */
function hashFromCanonicalRecord(seq: number, prev: string, time: string, recordCanon: string): string {
  // Keys in sorted order: prev < record < seq < time — identical to canonicalJson({seq, prev, time, record}).
  const canon = `{"prev":${JSON.stringify(prev)},"record":${recordCanon},"seq":${seq},"time":${JSON.stringify(time)}}`;
  return createHash('sha256').update(AUDIT_HASH_DOMAIN, 'utf8').update(canon, 'utf8').digest('hex');
}

/** hash = SHA-256(AUDIT_HASH_DOMAIN ‖ canonicalJson({seq, prev, time, record})), lowercase hex. */
export function hashAuditEntry(seq: number, prev: string, time: string, record: unknown): string {
  const canon = canonicalJson({ seq, prev, time, record });
  return createHash('sha256').update(AUDIT_HASH_DOMAIN, 'utf8').update(canon, 'utf8').digest('hex');
}

function lineFromCanonicalRecord(seq: number, prev: string, time: string, recordCanon: string, hash: string): string {
  return `{"seq":${seq},"prev":"${prev}","time":${JSON.stringify(time)},"record":${recordCanon},"hash":"${hash}"}`;
}

/** The exact line (without "\n") for an entry. */
export function serializeAuditEntry(e: AuditEntry): string {
  return lineFromCanonicalRecord(e.seq, e.prev, e.time, canonicalJson(e.record), e.hash);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses one line and checks it on its own (shape, own hash, canonical form). */
function parseLine(bytes: Uint8Array): { entry: AuditEntry } | { reason: string } {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { reason: 'not valid UTF-8 (garbage)' };
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { reason: 'not a JSON record (garbage or partial line)' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { reason: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'hash,prev,record,seq,time') return { reason: `unexpected fields (${keys})` };
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) return { reason: 'seq is not a positive integer' };
  if (typeof o.prev !== 'string' || !HEX64.test(o.prev)) return { reason: 'prev is not 64 lowercase hex digits' };
  if (typeof o.hash !== 'string' || !HEX64.test(o.hash)) return { reason: 'hash is not 64 lowercase hex digits' };
  if (typeof o.time !== 'string' || !ISO_TIME.test(o.time)) return { reason: 'time is not an ISO-8601 UTC timestamp' };
  const entry: AuditEntry = { seq: o.seq, prev: o.prev, time: o.time, record: o.record as JsonValue, hash: o.hash };
  let recordCanon: string;
  try {
    recordCanon = canonicalJson(entry.record);
  } catch (e) {
    return { reason: `record is not canonical JSON (${(e as Error).message})` };
  }
  if (hashFromCanonicalRecord(entry.seq, entry.prev, entry.time, recordCanon) !== entry.hash) {
    return { reason: `hash mismatch for record ${entry.seq}: its content was edited` };
  }
  if (lineFromCanonicalRecord(entry.seq, entry.prev, entry.time, recordCanon, entry.hash) !== text) {
    return { reason: `record ${entry.seq} is not in canonical form: the line was edited` };
  }
  return { entry };
}

function linkReason(entry: AuditEntry, expectedSeq: number, expectedPrev: string): string | undefined {
  if (entry.seq !== expectedSeq) {
    return `seq ${entry.seq} where ${expectedSeq} was expected: a record was deleted, inserted or reordered`;
  }
  if (entry.prev !== expectedPrev) {
    return `prev of record ${entry.seq} is not the hash of record ${expectedSeq - 1}: the chain is broken (record deleted, replaced or reordered)`;
  }
  return undefined;
}

interface RawLine {
  lineNo: number;
  bytes: Buffer;
  /** False for a last line without "\n". */
  terminated: boolean;
  tooLong: boolean;
}

async function* readLines(path: string): AsyncGenerator<RawLine> {
  const fh = await open(path, 'r');
  try {
    const chunk = Buffer.alloc(256 * 1024);
    let carry: Buffer[] = [];
    let carryLen = 0;
    let lineNo = 0;
    let skipping = false; // inside an over-long line
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      let start = 0;
      const data = chunk.subarray(0, bytesRead);
      for (;;) {
        const nl = data.indexOf(NL, start);
        if (nl < 0) {
          if (!skipping) {
            carry.push(Buffer.from(data.subarray(start)));
            carryLen += bytesRead - start;
            if (carryLen > MAX_AUDIT_LINE_BYTES) {
              skipping = true;
              carry = [];
              carryLen = 0;
            }
          }
          break;
        }
        lineNo++;
        if (skipping) {
          yield { lineNo, bytes: Buffer.alloc(0), terminated: true, tooLong: true };
          skipping = false;
        } else {
          const piece = data.subarray(start, nl);
          const bytes = carryLen ? Buffer.concat([...carry, piece]) : Buffer.from(piece);
          carry = [];
          carryLen = 0;
          yield { lineNo, bytes, terminated: true, tooLong: bytes.length > MAX_AUDIT_LINE_BYTES };
        }
        start = nl + 1;
      }
    }
    if (skipping || carryLen > 0) {
      yield { lineNo: lineNo + 1, bytes: Buffer.concat(carry), terminated: false, tooLong: skipping };
    }
  } finally {
    await fh.close();
  }
}

export interface VerifyAuditOptions {
  /**
   * A head kept outside the log (from `AuditLog.head()` or an earlier verification). The log must
   * contain record `seq` with exactly this hash; fewer records means records were cut from the end.
   */
  expectedHead?: AuditHead;
  /** With expectedHead: the log must end exactly at that head (no later records). */
  exact?: boolean;
}

/** Scans the whole log; calls onEntry for each valid record. */
async function scan(path: string, options: VerifyAuditOptions, onEntry?: (e: AuditEntry) => void): Promise<AuditVerifyResult> {
  const expected = options.expectedHead;
  if (expected && (!Number.isSafeInteger(expected.seq) || expected.seq < 0 || !HEX64.test(expected.hash))) {
    throw new TypeError('expectedHead must be {seq: integer >= 0, hash: 64 lowercase hex}');
  }
  let prev = GENESIS_HASH;
  let n = 0;
  try {
    for await (const line of readLines(path)) {
      if (line.tooLong) return { ok: false, line: line.lineNo, reason: `line longer than ${MAX_AUDIT_LINE_BYTES} bytes (garbage)` };
      if (!line.terminated) {
        return { ok: false, line: line.lineNo, reason: 'truncated last line (no terminating newline): an interrupted append or a cut file' };
      }
      const parsed = parseLine(line.bytes);
      if ('reason' in parsed) return { ok: false, line: line.lineNo, reason: parsed.reason };
      const why = linkReason(parsed.entry, n + 1, prev);
      if (why) return { ok: false, line: line.lineNo, reason: why };
      if (expected && parsed.entry.seq === expected.seq && parsed.entry.hash !== expected.hash) {
        return { ok: false, line: line.lineNo, reason: `record ${expected.seq} does not have the hash of the head kept separately: the log was rewritten` };
      }
      onEntry?.(parsed.entry);
      prev = parsed.entry.hash;
      n++;
    }
  } catch (e) {
    return { ok: false, line: 0, reason: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  if (expected) {
    if (expected.seq === 0 && expected.hash !== GENESIS_HASH) {
      return { ok: false, line: 0, reason: 'expected head at seq 0 must be the genesis hash' };
    }
    if (n < expected.seq) {
      return {
        ok: false,
        line: n + 1,
        reason: `log ends after record ${n}, but a head at record ${expected.seq} was kept: records were removed from the end`,
      };
    }
    if (options.exact && n !== expected.seq) {
      return { ok: false, line: expected.seq + 1, reason: `log has ${n} records, exactly ${expected.seq} were expected` };
    }
  }
  return { ok: true, records: n, head: prev };
}

/**
 * Verifies the whole chain. Returns the number of records and the head hash, or the first bad
 * line (1-based; 0 when the file cannot be read) and why.
 */
export function verifyAuditLog(path: string, options: VerifyAuditOptions = {}): Promise<AuditVerifyResult> {
  return scan(path, options);
}

/** Verifies the whole chain like verifyAuditLog, handing each valid record to `onEntry` in order. */
export function scanAuditLog(path: string, onEntry: (e: AuditEntry) => void, options: VerifyAuditOptions = {}): Promise<AuditVerifyResult> {
  return scan(path, options, onEntry);
}

export interface PeriodRoot {
  /** RFC 6962 root (hex) over the hashes of the records with from <= time < to, in log order. */
  root: string;
  count: number;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  /** Head of the whole (verified) log at the time of the computation. */
  head: AuditHead;
}

/** Verifies the log and computes the Merkle root of one period's records, for publication. */
export async function auditPeriodRoot(path: string, from: Date, to: Date, options: VerifyAuditOptions = {}): Promise<PeriodRoot> {
  const lo = from.getTime();
  const hi = to.getTime();
  const leaves: Uint8Array[] = [];
  let firstSeq: number | undefined;
  let lastSeq: number | undefined;
  const res = await scan(path, options, (e) => {
    const t = Date.parse(e.time);
    if (t >= lo && t < hi) {
      leaves.push(Buffer.from(e.hash, 'hex'));
      firstSeq ??= e.seq;
      lastSeq = e.seq;
    }
  });
  if (!res.ok) throw new AuditLogError('verify-failed', `${path} line ${res.line}: ${res.reason}`);
  return {
    root: Buffer.from(merkleRoot(leaves)).toString('hex'),
    count: leaves.length,
    firstSeq,
    lastSeq,
    head: { seq: res.records, hash: res.head },
  };
}

export interface AuditLogOptions {
  /** fsync after each write (default true). Appends resolve only once their record is durable. */
  fsync?: boolean;
  /** Clock for the `time` field (default: new Date()). */
  clock?: () => Date;
  /** Mode of a newly created log file (default 0600). */
  mode?: number;
  /** How many trailing records open() re-verifies (hash, form and links; default 16). */
  tailRecords?: number;
  /**
   * If the file ends in an incomplete line (crash during an append), move that partial line to
   * `<path>.partial-<timestamp>`, continue after the last complete record, and record the repair
   * itself as the next record ({event: "audit-repaired", partial_file, bytes}). Default false:
   * open() refuses with 'truncated-tail' so that an operator looks first.
   */
  repairTruncatedTail?: boolean;
  /** Most records written in one group commit (default 256). */
  maxBatch?: number;
}

export interface AuditAppendResult {
  seq: number;
  prev: string;
  time: string;
  hash: string;
}

interface Pending {
  recordCanon: string;
  resolve: (r: AuditAppendResult) => void;
  reject: (e: unknown) => void;
}

export class AuditLog {
  private seq: number;
  private hash: string;
  private size: number;
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private broken: string | undefined;
  /** Why the latest append failed, until one succeeds again. */
  private lastFailure: string | undefined;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    head: AuditHead,
    size: number,
    private readonly options: Required<Pick<AuditLogOptions, 'fsync' | 'clock' | 'maxBatch'>>,
  ) {
    this.seq = head.seq;
    this.hash = head.hash;
    this.size = size;
  }

  /** Opens (creating it if needed, mode 0600) and resumes after the last record, re-verifying the tail. */
  static async open(path: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    const existed = await stat(path).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return false;
        throw new AuditLogError('io', `cannot stat ${path}: ${e.code}`, { cause: e });
      },
    );
    let fh: FileHandle;
    try {
      fh = await open(path, 'a+', options.mode ?? 0o600);
      if (!existed) await fsyncDirectory(dirname(path));
    } catch (e) {
      throw new AuditLogError('io', `cannot open ${path}: ${(e as NodeJS.ErrnoException).code}`, { cause: e });
    }
    try {
      const found = (await fh.stat()).size;
      const { size, partialFile } = await AuditLog.handleTruncatedTail(path, fh, found, options.repairTruncatedTail ?? false);
      const head = await AuditLog.readTail(path, fh, size, options.tailRecords ?? 16);
      const log = new AuditLog(path, fh, head, size, {
        fsync: options.fsync ?? true,
        clock: options.clock ?? (() => new Date()),
        maxBatch: options.maxBatch ?? 256,
      });
      if (partialFile) await log.append({ event: 'audit-repaired', partial_file: basename(partialFile), bytes: found - size });
      return log;
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  private static async handleTruncatedTail(path: string, fh: FileHandle, size: number, repair: boolean): Promise<{ size: number; partialFile?: string }> {
    if (size === 0) return { size: 0 };
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    if (last[0] === NL) return { size };
    // Find the end of the last complete line.
    let pos = size;
    let cut = 0;
    const chunk = Buffer.alloc(64 * 1024);
    while (pos > 0) {
      const n = Math.min(chunk.length, pos);
      pos -= n;
      await fh.read(chunk, 0, n, pos);
      const i = chunk.subarray(0, n).lastIndexOf(NL);
      if (i >= 0) {
        cut = pos + i + 1;
        break;
      }
    }
    const partialLen = size - cut;
    if (!repair) {
      throw new AuditLogError(
        'truncated-tail',
        `${path} ends with an incomplete record of ${partialLen} bytes (interrupted append?); check it with 'quorumkey audit verify', then reopen with repairTruncatedTail to set the partial line aside and continue`,
      );
    }
    const partial = Buffer.alloc(partialLen);
    await fh.read(partial, 0, partialLen, cut);
    const partialFile = `${path}.partial-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const side = await open(partialFile, 'wx', 0o600);
    try {
      await side.writeFile(partial);
      await side.sync();
    } finally {
      await side.close();
    }
    await fh.truncate(cut);
    await fh.sync();
    await fsyncDirectory(dirname(path));
    return { size: cut, partialFile };
  }

  private static async readTail(path: string, fh: FileHandle, size: number, tailRecords: number): Promise<AuditHead> {
    if (size === 0) return { seq: 0, hash: GENESIS_HASH };
    const want = Math.max(1, tailRecords);
    let pos = size;
    let buf = Buffer.alloc(0);
    const countNl = (b: Buffer): number => {
      let c = 0;
      for (let i = b.indexOf(NL); i >= 0; i = b.indexOf(NL, i + 1)) c++;
      return c;
    };
    // Read backwards until we hold `want` complete lines plus the newline before them, or the file start.
    while (pos > 0 && countNl(buf) <= want && buf.length <= (want + 1) * MAX_AUDIT_LINE_BYTES) {
      const n = Math.min(64 * 1024, pos);
      pos -= n;
      const chunk = Buffer.alloc(n);
      await fh.read(chunk, 0, n, pos);
      buf = Buffer.concat([chunk, buf]);
    }
    let lines = splitLines(buf.subarray(0, buf.length - 1)); // the file ends with "\n" here
    let fromStart = pos === 0;
    if (!fromStart) lines = lines.slice(1); // first piece is (part of) an older line
    if (lines.length > want) {
      lines = lines.slice(lines.length - want);
      fromStart = false;
    }
    let prevEntry: AuditEntry | undefined;
    for (const [i, bytes] of lines.entries()) {
      const parsed = parseLine(bytes);
      if ('reason' in parsed) throw new AuditLogError('corrupt-tail', `${path}: record ${i + 1} of the last ${lines.length}: ${parsed.reason}`);
      const e = parsed.entry;
      const why = prevEntry ? linkReason(e, prevEntry.seq + 1, prevEntry.hash) : fromStart ? linkReason(e, 1, GENESIS_HASH) : undefined;
      if (why) throw new AuditLogError('corrupt-tail', `${path}: ${why}`);
      prevEntry = e;
    }
    if (!prevEntry) throw new AuditLogError('corrupt-tail', `${path}: no complete record in the last ${buf.length} bytes`);
    return { seq: prevEntry.seq, hash: prevEntry.hash };
  }

  /** Why appends fail right now (broken for good, or the latest append failed), else undefined. */
  problem(): string | undefined {
    return this.broken ?? this.lastFailure;
  }

  /** Head after the last durable append: {seq: records so far, hash}. Keep it somewhere else too. */
  head(): AuditHead {
    return { seq: this.seq, hash: this.hash };
  }

  /**
   * Appends one record (any plain JSON value; snapshotted at call time). Resolves once it is
   * written (and fsynced unless fsync: false). Concurrent calls are serialised in call order.
   */
  append(record: unknown): Promise<AuditAppendResult> {
    if (this.closed) return Promise.reject(new AuditLogError('closed', `${this.path} is closed`));
    let recordCanon: string;
    try {
      recordCanon = canonicalJson(record);
    } catch (e) {
      return Promise.reject(new AuditLogError('invalid-record', (e as Error).message, { cause: e }));
    }
    if (Buffer.byteLength(recordCanon, 'utf8') > MAX_AUDIT_LINE_BYTES - 400) {
      return Promise.reject(new AuditLogError('invalid-record', `record larger than ${MAX_AUDIT_LINE_BYTES - 400} bytes`));
    }
    return new Promise<AuditAppendResult>((resolve, reject) => {
      this.pending.push({ recordCanon, resolve, reject });
      this.flushing ??= this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, this.options.maxBatch);
        try {
          const results = await this.writeBatch(batch);
          this.lastFailure = undefined;
          batch.forEach((p, i) => p.resolve(results[i]!));
        } catch (e) {
          this.lastFailure = (e as Error).message;
          for (const p of batch) p.reject(e);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async writeBatch(batch: Pending[]): Promise<AuditAppendResult[]> {
    if (this.broken) throw new AuditLogError('broken', `${this.path}: ${this.broken}`);
    let seq = this.seq;
    let prev = this.hash;
    const results: AuditAppendResult[] = [];
    const lines: string[] = [];
    for (const p of batch) {
      seq++;
      const time = this.options.clock().toISOString();
      const hash = hashFromCanonicalRecord(seq, prev, time, p.recordCanon);
      lines.push(lineFromCanonicalRecord(seq, prev, time, p.recordCanon, hash), '\n');
      results.push({ seq, prev, time, hash });
      prev = hash;
    }
    const data = Buffer.from(lines.join(''), 'utf8');

    const actual = (await this.fh.stat()).size;
    if (actual !== this.size) {
      this.broken = `file size changed behind this writer (${this.size} → ${actual} bytes): another writer or an edit; reopen after checking`;
      throw new AuditLogError('concurrent-writer', `${this.path}: ${this.broken}`);
    }
    try {
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await this.fh.write(data, off, data.length - off);
        off += bytesWritten;
      }
      if (this.options.fsync) await this.fh.sync();
    } catch (e) {
      // Do not leave a partial line: cut back to the last good record (when anything was written
      // at all), or stop for good. A write refused outright (EPERM, ENOSPC) leaves nothing to undo,
      // so the log works again once the cause is gone.
      const written = await this.fh.stat().then((st) => st.size !== this.size, () => true);
      if (written) {
        try {
          await this.fh.truncate(this.size);
          if (this.options.fsync) await this.fh.sync();
        } catch {
          this.broken = 'a failed append could not be rolled back';
        }
      }
      throw new AuditLogError('io', `cannot append to ${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    this.size += data.length;
    this.seq = seq;
    this.hash = prev;
    return results;
  }

  /** Waits for pending appends, then closes the file. Further appends reject with 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.fh.close();
  }
}

function splitLines(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = b.indexOf(NL); i >= 0; i = b.indexOf(NL, start)) {
    out.push(b.subarray(start, i));
    start = i + 1;
  }
  out.push(b.subarray(start));
  return out;
}
