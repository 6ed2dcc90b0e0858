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
 *
 * Rotation (option rotateBytes): the log is a sequence of files, `<path>.000001`, `<path>.000002`,
 * … (closed) and `<path>` (active), one chain across them (segments.ts). Each file after the first
 * starts with a rotation record {event: "audit-rotated", previous_file, merkle: {size, frontier}}
 * that names the file before it and carries the RFC 6962 frontier of every earlier record, so
 * that a writer resumes the chain and the Merkle tree from the active file alone. Verification
 * walks every file: a missing, reordered or replaced file breaks the chain (or names the wrong
 * predecessor); a missing newest file or records cut from its end need a kept head, as above.
 */
import { createHash } from 'node:crypto';
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { canonicalJson, type JsonValue } from './canonical.js';
import { MerkleFrontier, merkleRoot } from './merkle.js';
import { closedSegments, segmentPath, type AuditSegment } from './segments.js';
import { fsyncDirectory } from '../storage/atomic-write.js';

export { canonicalJson, CanonicalJsonError, type JsonValue } from './canonical.js';
export { merkleRoot, merkleLeafHash, merkleNodeHash, MerkleFrontier } from './merkle.js';

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

/**
 * A verification: the records, the head hash and the RFC 6962 root over every record; or the
 * file and line (1-based; 0 when it cannot be read) of the first problem, and why.
 */
export type AuditVerifyResult = { ok: true; records: number; head: string; root: string } | { ok: false; file: string; line: number; reason: string };

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

/** Where a walk through the chain stands: the head so far and the Merkle tree of every record so far. */
interface ChainState {
  seq: number;
  hash: string;
  tree: MerkleFrontier;
}

const genesisState = (): ChainState => ({ seq: 0, hash: GENESIS_HASH, tree: new MerkleFrontier() });

/**
 * The first record of every file after the first (rotation): it names the file before it and
 * carries the Merkle frontier of every record before it, so that a writer resumes the tree from
 * the active file alone.
 */
export const AUDIT_ROTATED_EVENT = 'audit-rotated';

function rotationRecordOf(previousFile: string, tree: MerkleFrontier): JsonValue {
  const frontier = tree.frontier.map((n) => Buffer.from(n).toString('hex'));
  return { event: AUDIT_ROTATED_EVENT, previous_file: previousFile, merkle: { size: tree.size, frontier } };
}

type Rotation = { previousFile: string; tree: MerkleFrontier } | { reason: string };

/** The rotation record's content, or undefined when `record` is not one. */
function rotationOf(record: JsonValue): Rotation | undefined {
  if (typeof record !== 'object' || record === null || Array.isArray(record) || record.event !== AUDIT_ROTATED_EVENT) return undefined;
  const merkle = record.merkle;
  const previousFile = record.previous_file;
  if (typeof previousFile !== 'string' || typeof merkle !== 'object' || merkle === null || Array.isArray(merkle)) {
    return { reason: 'rotation record without previous_file and merkle' };
  }
  const { size, frontier } = merkle;
  if (typeof size !== 'number' || !Array.isArray(frontier) || !frontier.every((h) => typeof h === 'string' && HEX64.test(h))) {
    return { reason: 'rotation record with a malformed Merkle frontier' };
  }
  try {
    return { previousFile, tree: new MerkleFrontier(size, frontier.map((h) => Buffer.from(h as string, 'hex'))) };
  } catch (e) {
    return { reason: `rotation record: ${(e as Error).message}` };
  }
}

const sameTree = (a: MerkleFrontier, b: MerkleFrontier) =>
  a.size === b.size && a.frontier.every((n, k) => Buffer.from(n).equals(Buffer.from(b.frontier[k]!)));

type WalkResult = { ok: true; start: ChainState; state: ChainState; lines: number } | { ok: false; line: number; reason: string };

/**
 * Walks the records of one file: each checked on its own and linked to the one before. `from`
 * is the state the file continues (undefined: taken from the file's own first record, genesis or
 * a rotation record); `previousFile` the name of the file before it (its first record must then
 * be the rotation record naming it). `visit` may stop the walk with a reason.
 */
async function walkFile(file: string, from: ChainState | undefined, previousFile: string | undefined, visit?: (e: AuditEntry) => string | undefined): Promise<WalkResult> {
  let start = from;
  let state: ChainState | undefined = from && { ...from, tree: new MerkleFrontier(from.tree.size, from.tree.frontier) };
  let lines = 0;
  for await (const line of readLines(file)) {
    lines = line.lineNo;
    const fail = (reason: string): WalkResult => ({ ok: false, line: line.lineNo, reason });
    if (line.tooLong) return fail(`line longer than ${MAX_AUDIT_LINE_BYTES} bytes (garbage)`);
    if (!line.terminated) return fail('truncated last line (no terminating newline): an interrupted append or a cut file');
    const parsed = parseLine(line.bytes);
    if ('reason' in parsed) return fail(parsed.reason);
    const entry = parsed.entry;
    const rotation = rotationOf(entry.record);
    if (rotation && 'reason' in rotation) return fail(rotation.reason);
    if (line.lineNo === 1) {
      if (previousFile !== undefined && !rotation) return fail(`the file does not start with the rotation record that continues ${previousFile}`);
      if (previousFile !== undefined && rotation!.previousFile !== previousFile) {
        return fail(`the rotation record continues ${rotation!.previousFile}, but the file before it is ${previousFile}: a file is missing, renamed or reordered`);
      }
      if (previousFile === undefined && rotation && start?.seq === 0) {
        return fail(`the oldest file starts with a rotation record continuing ${rotation.previousFile}: the files before it are missing`);
      }
      if (!start) start = rotation ? { seq: entry.seq - 1, hash: entry.prev, tree: rotation.tree } : genesisState();
      if (!state) state = { ...start, tree: new MerkleFrontier(start.tree.size, start.tree.frontier) };
      if (rotation && !sameTree(rotation.tree, state.tree)) return fail('the Merkle frontier in the rotation record does not match the records before it');
    } else if (rotation) {
      return fail('a rotation record inside a file (only a file\'s first record may be one)');
    }
    const why = linkReason(entry, state!.seq + 1, state!.hash);
    if (why) return fail(why);
    const stop = visit?.(entry);
    if (stop) return fail(stop);
    state!.seq = entry.seq;
    state!.hash = entry.hash;
    state!.tree.push(Buffer.from(entry.hash, 'hex'));
  }
  start ??= genesisState();
  return { ok: true, start, state: state ?? { ...start }, lines };
}

/** Every file of the log in chain order (closed files, then the active file if it exists). */
async function logFiles(path: string): Promise<string[]> {
  const files = (await closedSegments(path)).map((s) => s.path);
  const active = await stat(path).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    },
  );
  // No file at all: the active file, so that the walk reports it missing.
  if (active || files.length === 0) files.push(path);
  return files;
}

/** Scans the whole log, every file in order; calls onEntry for each valid record. */
async function scan(path: string, options: VerifyAuditOptions, onEntry?: (e: AuditEntry) => void): Promise<AuditVerifyResult> {
  const expected = options.expectedHead;
  if (expected && (!Number.isSafeInteger(expected.seq) || expected.seq < 0 || !HEX64.test(expected.hash))) {
    throw new TypeError('expectedHead must be {seq: integer >= 0, hash: 64 lowercase hex}');
  }
  const visit = (e: AuditEntry): string | undefined => {
    if (expected && e.seq === expected.seq && e.hash !== expected.hash) {
      return `record ${expected.seq} does not have the hash of the head kept separately: the log was rewritten`;
    }
    onEntry?.(e);
    return undefined;
  };
  let state = genesisState();
  let file = path;
  let lines = 0;
  try {
    const files = await logFiles(path);
    for (const [k, f] of files.entries()) {
      file = f;
      const walked = await walkFile(f, state, k > 0 ? basename(files[k - 1]!) : undefined, visit);
      if (!walked.ok) return { ok: false, file: f, line: walked.line, reason: walked.reason };
      state = walked.state;
      lines = walked.lines;
    }
  } catch (e) {
    return { ok: false, file, line: 0, reason: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  const n = state.seq;
  if (expected) {
    if (expected.seq === 0 && expected.hash !== GENESIS_HASH) {
      return { ok: false, file, line: 0, reason: 'expected head at seq 0 must be the genesis hash' };
    }
    if (n < expected.seq) {
      return {
        ok: false,
        file,
        line: lines + 1,
        reason: `log ends after record ${n}, but a head at record ${expected.seq} was kept: records were removed from the end`,
      };
    }
    if (options.exact && n !== expected.seq) {
      return { ok: false, file, line: lines - (n - expected.seq) + 1, reason: `log has ${n} records, exactly ${expected.seq} were expected` };
    }
  }
  return { ok: true, records: n, head: state.hash, root: Buffer.from(state.tree.root()).toString('hex') };
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
  /**
   * If the file ends in an incomplete line (crash during an append), move that partial line to
   * `<path>.partial-<timestamp>`, continue after the last complete record, and record the repair
   * itself as the next record ({event: "audit-repaired", partial_file, bytes}). Default false:
   * open() refuses with 'truncated-tail' so that an operator looks first.
   */
  repairTruncatedTail?: boolean;
  /** Most records written in one group commit (default 256). */
  maxBatch?: number;
  /**
   * Rotation: once the active file holds at least this many bytes, the next write first closes it
   * as `<path>.<n>` and starts a new `<path>` whose first record is the rotation record (see
   * segments.ts). 0 or absent: never.
   */
  rotateBytes?: number;
  /** Called after each group commit (one write and one fsync) with the records it made durable. */
  onCommit?: (records: number) => void;
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

/** Reads the last record of a file (it must end in a complete line). */
async function lastRecord(file: string): Promise<AuditHead> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    let pos = size;
    let buf = Buffer.alloc(0);
    // Back to the newline before the last line (or the file start).
    while (pos > 0 && buf.subarray(0, buf.length - 1).lastIndexOf(NL) < 0 && buf.length <= MAX_AUDIT_LINE_BYTES + 1) {
      const n = Math.min(64 * 1024, pos);
      pos -= n;
      const chunk = Buffer.alloc(n);
      await fh.read(chunk, 0, n, pos);
      buf = Buffer.concat([chunk, buf]);
    }
    if (buf.length === 0 || buf[buf.length - 1] !== NL) throw new AuditLogError('corrupt-tail', `${file} does not end with a complete record`);
    const body = buf.subarray(0, buf.length - 1);
    const parsed = parseLine(body.subarray(body.lastIndexOf(NL) + 1));
    if ('reason' in parsed) throw new AuditLogError('corrupt-tail', `${file}: last record: ${parsed.reason}`);
    return { seq: parsed.entry.seq, hash: parsed.entry.hash };
  } finally {
    await fh.close();
  }
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

export class AuditLog {
  private seq: number;
  private hash: string;
  private readonly tree: MerkleFrontier;
  private size: number;
  /** Undefined only between the two steps of a rotation that failed half-way (retried on the next write). */
  private fh: FileHandle | undefined;
  /** The closed file of a rotation whose new active file is not created yet. */
  private rotatedTo: string | undefined;
  /** The closed file the active (empty) file continues, until its rotation record is durable. */
  private continues: string | undefined;
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private broken: string | undefined;
  /** Why the latest append failed, until one succeeds again. */
  private lastFailure: string | undefined;

  private constructor(
    readonly path: string,
    fh: FileHandle,
    state: ChainState,
    size: number,
    private readonly options: Required<Pick<AuditLogOptions, 'fsync' | 'clock' | 'maxBatch' | 'rotateBytes' | 'mode' | 'onCommit'>>,
  ) {
    this.fh = fh;
    this.seq = state.seq;
    this.hash = state.hash;
    this.tree = state.tree;
    this.size = size;
  }

  /**
   * Opens (creating it if needed, mode 0600) and resumes after the last record. The active file
   * is verified whole (records, links, its rotation record against the closed file before it);
   * a rotation interrupted by a crash is completed first (the rotation record written), then a
   * torn last record is set aside if allowed (repairTruncatedTail) and that repair recorded.
   */
  static async open(path: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    const mode = options.mode ?? 0o600;
    let closed: AuditSegment[];
    try {
      closed = await closedSegments(path);
    } catch (e) {
      throw new AuditLogError('io', `cannot list the audit files of ${path}: ${errCode(e)}`, { cause: e });
    }
    const existed = await stat(path).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return false;
        throw new AuditLogError('io', `cannot stat ${path}: ${e.code}`, { cause: e });
      },
    );
    let fh: FileHandle;
    try {
      fh = await open(path, 'a+', mode);
      if (!existed) await fsyncDirectory(dirname(path));
    } catch (e) {
      throw new AuditLogError('io', `cannot open ${path}: ${errCode(e)}`, { cause: e });
    }
    try {
      const found = (await fh.stat()).size;
      const { size, partialFile } = await AuditLog.handleTruncatedTail(path, fh, found, options.repairTruncatedTail ?? false);
      const last = closed.at(-1);
      const { state, continues } = size > 0 ? await AuditLog.resumeActive(path, last) : await AuditLog.resumeClosed(closed);
      const log = new AuditLog(path, fh, state, size, {
        fsync: options.fsync ?? true,
        clock: options.clock ?? (() => new Date()),
        maxBatch: options.maxBatch ?? 256,
        rotateBytes: options.rotateBytes ?? 0,
        mode,
        onCommit: options.onCommit ?? (() => undefined),
      });
      // A crash after the active file was closed: the next write starts its successor with the rotation record.
      log.continues = continues;
      if (partialFile) await log.append({ event: 'audit-repaired', partial_file: basename(partialFile), bytes: found - size });
      return log;
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  /** The active file holds records: walk it whole; its rotation record must continue `last`. */
  private static async resumeActive(path: string, last: AuditSegment | undefined): Promise<{ state: ChainState; continues?: string }> {
    const walked = await walkFile(path, undefined, last && basename(last.path));
    if (!walked.ok) throw new AuditLogError('corrupt-tail', `${path} line ${walked.line}: ${walked.reason}`);
    if (!last && walked.start.seq !== 0) {
      throw new AuditLogError('corrupt-tail', `${path} starts at record ${walked.start.seq + 1}, but there is no closed audit file before it`);
    }
    if (last) {
      const head = await lastRecord(last.path);
      if (head.seq !== walked.start.seq || head.hash !== walked.start.hash) {
        throw new AuditLogError('corrupt-tail', `${path} continues record ${walked.start.seq}, but ${basename(last.path)} ends at record ${head.seq} with another hash`);
      }
    }
    return { state: walked.state };
  }

  /** The active file is empty: the chain ends in the newest closed file (if any), whose rotation is then unfinished. */
  private static async resumeClosed(closed: readonly AuditSegment[]): Promise<{ state: ChainState; continues?: string }> {
    const last = closed.at(-1);
    if (!last) return { state: genesisState() };
    const before = closed.at(-2);
    const walked = await walkFile(last.path, undefined, before && basename(before.path));
    if (!walked.ok) throw new AuditLogError('corrupt-tail', `${last.path} line ${walked.line}: ${walked.reason}`);
    return { state: walked.state, continues: basename(last.path) };
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

  /** Why appends fail right now (broken for good, or the latest append failed), else undefined. */
  problem(): string | undefined {
    return this.broken ?? this.lastFailure;
  }

  /** Head after the last durable append: {seq: records so far, hash}. Keep it somewhere else too. */
  head(): AuditHead {
    return { seq: this.seq, hash: this.hash };
  }

  /** RFC 6962 root (hex) over the hashes of every record up to head(), across all files. */
  merkleRoot(): string {
    return Buffer.from(this.tree.root()).toString('hex');
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
          const results = await this.writeBatch(batch.map((p) => p.recordCanon));
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

  /** Writes one group of records, after a rotation when the active file is full. */
  private async writeBatch(canons: string[]): Promise<AuditAppendResult[]> {
    if (this.broken) throw new AuditLogError('broken', `${this.path}: ${this.broken}`);
    if (this.rotatedTo !== undefined || (this.options.rotateBytes > 0 && this.size >= this.options.rotateBytes)) this.continues = await this.rotate();
    if (this.continues === undefined) return this.write(canons);
    // A new active file: the rotation record goes out first, in the same write (and fsync) as the batch.
    const results = await this.write([canonicalJson(rotationRecordOf(this.continues, this.tree)), ...canons]);
    this.continues = undefined;
    return results.slice(1);
  }

  /**
   * Closes the active file as the next `<path>.<n>` and creates an empty active file. Every step
   * leaves a state open() resumes from: before the rename nothing changed; after it, a missing or
   * empty active file means the rotation record is still to be written, which open() does. A
   * failure part-way is retried by the next write. Returns the closed file's name.
   */
  private async rotate(): Promise<string> {
    const dir = dirname(this.path);
    try {
      if (this.rotatedTo === undefined) {
        const next = ((await closedSegments(this.path)).at(-1)?.n ?? 0) + 1;
        const target = segmentPath(this.path, next);
        await rename(this.path, target);
        this.rotatedTo = target;
        await this.fh?.close().catch(() => undefined);
        this.fh = undefined;
        await fsyncDirectory(dir);
      }
      const fh = await open(this.path, 'wx', this.options.mode);
      this.fh = fh;
      this.size = 0;
      await fsyncDirectory(dir);
    } catch (e) {
      throw new AuditLogError('io', `cannot rotate ${this.path}: ${errCode(e)}`, { cause: e });
    }
    const previous = basename(this.rotatedTo);
    this.rotatedTo = undefined;
    return previous;
  }

  /** Appends records (canonical JSON) to the active file in one write and one fsync. */
  private async write(canons: readonly string[]): Promise<AuditAppendResult[]> {
    const fh = this.fh!;
    let seq = this.seq;
    let prev = this.hash;
    const results: AuditAppendResult[] = [];
    const lines: string[] = [];
    for (const canon of canons) {
      seq++;
      const time = this.options.clock().toISOString();
      const hash = hashFromCanonicalRecord(seq, prev, time, canon);
      lines.push(lineFromCanonicalRecord(seq, prev, time, canon, hash), '\n');
      results.push({ seq, prev, time, hash });
      prev = hash;
    }
    const data = Buffer.from(lines.join(''), 'utf8');

    const actual = (await fh.stat()).size;
    if (actual !== this.size) {
      this.broken = `file size changed behind this writer (${this.size} → ${actual} bytes): another writer or an edit; reopen after checking`;
      throw new AuditLogError('concurrent-writer', `${this.path}: ${this.broken}`);
    }
    try {
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        off += bytesWritten;
      }
      if (this.options.fsync) await fh.sync();
    } catch (e) {
      // Do not leave a partial line: cut back to the last good record (when anything was written
      // at all), or stop for good. A write refused outright (EPERM, ENOSPC) leaves nothing to undo,
      // so the log works again once the cause is gone.
      const written = await fh.stat().then((st) => st.size !== this.size, () => true);
      if (written) {
        try {
          await fh.truncate(this.size);
          if (this.options.fsync) await fh.sync();
        } catch {
          this.broken = 'a failed append could not be rolled back';
        }
      }
      throw new AuditLogError('io', `cannot append to ${this.path}: ${errCode(e)}`, { cause: e });
    }
    this.size += data.length;
    this.seq = seq;
    this.hash = prev;
    for (const r of results) this.tree.push(Buffer.from(r.hash, 'hex'));
    this.options.onCommit(results.length);
    return results;
  }

  /** Waits for pending appends, then closes the file. Further appends reject with 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.fh?.close();
  }
}
