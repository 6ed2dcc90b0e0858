/**
 * The audit page's data: the chain verified from the file, the Merkle root over all its records
 * (as `quorumkey audit head` computes it) and the latest records. The file is scanned again only
 * when the log has grown, at most every MIN_RESCAN_MS, never twice at once: the cost of open
 * pages stays bounded on a busy log (whose root may then lag its head by a few seconds).
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { merkleRoot, scanAuditLog, type AuditEntry, type AuditHead } from '../audit/log.js';
import { closedSegments } from '../audit/segments.js';

export const LATEST_RECORDS = 20;
const MIN_RESCAN_MS = 5000;

export interface AuditFile {
  name: string;
  bytes: number;
  active: boolean;
}

export interface AuditScan {
  /** Head of the records scanned (the file may have grown since). */
  head: AuditHead;
  merkleRoot: string;
  records: number;
  verify: { ok: true } | { ok: false; line: number; reason: string };
  latest: AuditEntry[];
  /** The files of the rotation, oldest first, the active one last. */
  files: AuditFile[];
}

export class AuditView {
  private cached: AuditScan | undefined;
  private running: Promise<AuditScan> | undefined;
  private scannedAt = 0;

  constructor(
    private readonly path: string,
    private readonly liveHead: () => AuditHead,
  ) {}

  /** The scan for the current head (joins one in flight; rescans when the log has grown). */
  current(): Promise<AuditScan> {
    const live = this.liveHead();
    const fresh = this.cached && ((this.cached.head.seq === live.seq && this.cached.head.hash === live.hash) || Date.now() - this.scannedAt < MIN_RESCAN_MS);
    if (fresh) return Promise.resolve(this.cached!);
    this.running ??= this.scan().finally(() => (this.running = undefined));
    return this.running;
  }

  private async scan(): Promise<AuditScan> {
    this.scannedAt = Date.now();
    const leaves: Uint8Array[] = [];
    const latest: AuditEntry[] = [];
    const res = await scanAuditLog(this.path, (e) => {
      leaves.push(Buffer.from(e.hash, 'hex'));
      latest.push(e);
      if (latest.length > LATEST_RECORDS) latest.shift();
    });
    const files = await this.files();
    const scan: AuditScan = res.ok
      ? { head: { seq: res.records, hash: res.head }, merkleRoot: Buffer.from(merkleRoot(leaves)).toString('hex'), records: res.records, verify: { ok: true }, latest: latest.reverse(), files }
      : { head: this.liveHead(), merkleRoot: '', records: leaves.length, verify: { ok: false, line: res.line, reason: res.reason }, latest: latest.reverse(), files };
    this.cached = scan;
    return scan;
  }

  private async files(): Promise<AuditFile[]> {
    const all = [...(await closedSegments(this.path)).map((f) => ({ path: f.path, active: false })), { path: this.path, active: true }];
    const out: AuditFile[] = [];
    for (const f of all) {
      // A file rotated away between the listing and its stat is left out (it is in the next scan).
      const bytes = await stat(f.path).then((st) => st.size, () => undefined);
      if (bytes !== undefined) out.push({ name: basename(f.path), bytes, active: f.active });
    }
    return out;
  }
}
