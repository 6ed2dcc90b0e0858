/**
 * The CT log's storage: an append-only file of entries (one JSON line each: the MerkleTreeLeaf,
 * the submitted chain, the SCT issued for it) and the latest signed tree head (replaced
 * atomically). An entry is durable (written and fsynced) before its SCT is returned, and a tree
 * head is signed only over durable entries. A line torn by a crash was never acknowledged: it is
 * set aside at open (the file is cut back to the last complete line) and the repair reported.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDirectory, writeFileAtomic } from '../storage/atomic-write.js';
import { decodeMerkleTreeLeaf, decodeSct, type LogEntry, type Sct } from './structures.js';

export interface StoredEntry {
  leaf: Uint8Array;
  chain: Uint8Array[];
  sct: Uint8Array;
}

export interface StoredTreeHead {
  treeSize: number;
  timestamp: number;
  rootHash: Uint8Array;
  /** DER ECDSA signature over the tree head's signature input. */
  signature: Uint8Array;
}

export class LogStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LogStoreError';
  }
}

/** What makes two submissions the same entry: the certificate, or the issuer key hash and TBS. */
export function entryIdentity(entry: LogEntry): string {
  const h = createHash('sha256');
  if (entry.type === 'x509') h.update('x509\0').update(entry.certificate);
  else h.update('precert\0').update(entry.issuerKeyHash).update(entry.tbsCertificate);
  return h.digest('hex');
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const unb64 = (s: unknown, what: string): Uint8Array => {
  if (typeof s !== 'string') throw new LogStoreError(`${what} is not a base64 string`);
  return Uint8Array.from(Buffer.from(s, 'base64'));
};

export class LogStore {
  private readonly entries: StoredEntry[] = [];
  private readonly scts = new Map<string, Uint8Array>();
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly entriesFile: string,
    private readonly sthFile: string,
    private fh: FileHandle,
    private size: number,
  ) {}

  /** Opens (creating) the store in `dir`; `repaired` reports a torn tail that was cut off. */
  static async open(dir: string, repaired: (bytes: number) => void = () => undefined): Promise<LogStore> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const entriesFile = join(dir, 'entries.jsonl');
    // Append mode: every write lands at the end, after the last complete line.
    const fh = await open(entriesFile, 'a+', 0o600);
    try {
      await fsyncDirectory(dir);
      const data = await readFile(entriesFile);
      const end = data.lastIndexOf(0x0a) + 1;
      if (end < data.length) {
        repaired(data.length - end);
        await fh.truncate(end);
        await fh.sync();
      }
      const store = new LogStore(entriesFile, join(dir, 'sth.json'), fh, end);
      const lines = data.subarray(0, end).toString('utf8').split('\n').slice(0, -1);
      lines.forEach((line, k) => store.remember(parseEntry(line, `${entriesFile} line ${k + 1}`)));
      return store;
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get treeSize(): number {
    return this.entries.length;
  }

  /** Leaves in log order (the tree's input). */
  leavesUpTo(size = this.entries.length): readonly Uint8Array[] {
    return this.entries.slice(0, size).map((e) => e.leaf);
  }

  /** Entries start..end (inclusive, end below treeSize), as stored. */
  range(start: number, end: number): readonly StoredEntry[] {
    return this.entries.slice(start, end + 1);
  }

  /** The SCT already issued for this entry, if any. */
  sctFor(identity: string): Sct | undefined {
    const sct = this.scts.get(identity);
    return sct && decodeSct(sct);
  }

  private remember(e: StoredEntry): void {
    this.entries.push(e);
    this.scts.set(entryIdentity(decodeMerkleTreeLeaf(e.leaf).entry), e.sct);
  }

  /** Appends an entry durably (one write, then fsync); an entry already present is not added twice. */
  append(entry: StoredEntry): Promise<Sct> {
    const run = this.tail.then(async () => {
      const identity = entryIdentity(decodeMerkleTreeLeaf(entry.leaf).entry);
      const existing = this.sctFor(identity);
      if (existing) return existing;
      const line = Buffer.from(JSON.stringify({ leaf: b64(entry.leaf), chain: entry.chain.map(b64), sct: b64(entry.sct) }) + '\n');
      try {
        await this.fh.write(line, 0, line.length, null);
        await this.fh.sync();
      } catch (e) {
        // Nothing half-written may stay behind a later entry.
        await this.fh.truncate(this.size).catch(() => undefined);
        throw new LogStoreError(`the CT log could not store the entry: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      this.size += line.length;
      this.remember(entry);
      return decodeSct(entry.sct);
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  async readTreeHead(): Promise<StoredTreeHead | undefined> {
    let text: string;
    try {
      text = await readFile(this.sthFile, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const o = JSON.parse(text) as Record<string, unknown>;
    if (!Number.isSafeInteger(o.tree_size) || !Number.isSafeInteger(o.timestamp)) throw new LogStoreError(`${this.sthFile} is malformed`);
    const head = { treeSize: o.tree_size as number, timestamp: o.timestamp as number, rootHash: unb64(o.sha256_root_hash, 'sha256_root_hash'), signature: unb64(o.signature, 'signature') };
    if (head.treeSize > this.entries.length) throw new LogStoreError(`${this.sthFile} covers ${head.treeSize} entries, ${this.entriesFile} holds ${this.entries.length}: entries were lost`);
    return head;
  }

  writeTreeHead(head: StoredTreeHead): Promise<void> {
    const text = JSON.stringify({ tree_size: head.treeSize, timestamp: head.timestamp, sha256_root_hash: b64(head.rootHash), signature: b64(head.signature) }) + '\n';
    return writeFileAtomic(this.sthFile, Buffer.from(text));
  }

  async close(): Promise<void> {
    await this.tail;
    await this.fh.close();
  }
}

function parseEntry(line: string, where: string): StoredEntry {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new LogStoreError(`${where} is not JSON: the CT log is damaged`);
  }
  if (!Array.isArray(o.chain)) throw new LogStoreError(`${where} has no chain`);
  const entry = { leaf: unb64(o.leaf, `${where} leaf`), chain: o.chain.map((c, k) => unb64(c, `${where} chain[${k}]`)), sct: unb64(o.sct, `${where} sct`) };
  try {
    decodeMerkleTreeLeaf(entry.leaf);
    decodeSct(entry.sct);
  } catch (e) {
    throw new LogStoreError(`${where}: ${(e as Error).message}`);
  }
  return entry;
}
