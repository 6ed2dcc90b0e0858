/**
 * The CT log front (RFC 6962 §4): add-chain, add-pre-chain, get-sth, get-roots over a LogStore,
 * signing with a threshold key (policy `sct`) through `sign`. The entry is stored durably before
 * its SCT is returned, and the tree is incorporated at once (the maximum merge delay is zero).
 * A resubmitted entry gets the SCT already issued for it, without a new signature.
 */
import type { X509Certificate } from 'node:crypto';
import { merkleRoot } from '../audit/merkle.js';
import { validateChain } from './chain.js';
import { entryIdentity, type LogStore, type StoredTreeHead } from './log-store.js';
import { issuerKeyHash, tbsWithoutPoison } from './precert.js';
import { decodeMerkleTreeLeaf, encodeSct, entryExtraData, logIdOf, merkleTreeLeaf, sctSignatureInput, treeHeadSignatureInput, type LogEntry, type Sct } from './structures.js';

/** Signs to-be-signed bytes with the log key; resolves with the DER ECDSA signature. */
export type TbsSigner = (tbs: Uint8Array) => Promise<Uint8Array>;

export interface CtLogOptions {
  store: LogStore;
  roots: readonly X509Certificate[];
  /** DER SubjectPublicKeyInfo of the log key. */
  logKeySpki: Uint8Array;
  sign: TbsSigner;
  now?: () => number;
}

/** Most entries one get-entries answer holds (a client asks again for the rest). */
export const MAX_ENTRIES_PER_ANSWER = 256;

export class CtLogRangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CtLogRangeError';
  }
}

export class CtLog {
  readonly logId: Uint8Array;
  private readonly now: () => number;
  private readonly pending = new Map<string, Promise<Sct>>();
  private signingHead: Promise<StoredTreeHead> | undefined;

  constructor(private readonly o: CtLogOptions) {
    this.logId = logIdOf(o.logKeySpki);
    this.now = o.now ?? Date.now;
  }

  get roots(): readonly X509Certificate[] {
    return this.o.roots;
  }

  /** add-chain (`precert` false) or add-pre-chain (`precert` true); throws ChainError on a bad chain. */
  submit(chainDer: readonly Uint8Array[], precert: boolean): Promise<Sct> {
    const valid = validateChain(chainDer, this.o.roots, precert);
    const entry: LogEntry = precert
      ? { type: 'precert', issuerKeyHash: issuerKeyHash(new Uint8Array(valid.issuer.publicKey.export({ type: 'spki', format: 'der' }))), tbsCertificate: tbsWithoutPoison(valid.leafTbs) }
      : { type: 'x509', certificate: valid.leaf };
    const identity = entryIdentity(entry);
    const issued = this.o.store.sctFor(identity);
    if (issued) return Promise.resolve(issued);
    // Concurrent submissions of one entry share one signature.
    let running = this.pending.get(identity);
    if (!running) {
      running = this.issue(entry, valid.chain).finally(() => this.pending.delete(identity));
      this.pending.set(identity, running);
    }
    return running;
  }

  private async issue(entry: LogEntry, chain: Uint8Array[]): Promise<Sct> {
    const timestamp = this.now();
    const extensions = new Uint8Array(0);
    const signature = await this.o.sign(sctSignatureInput(timestamp, entry, extensions));
    const sct: Sct = { logId: this.logId, timestamp, extensions, signature };
    return this.o.store.append({ leaf: merkleTreeLeaf(timestamp, entry, extensions), chain, sct: encodeSct(sct) });
  }

  /** get-entries: leaves start..end (inclusive), at most MAX_ENTRIES_PER_ANSWER of them. */
  entries(start: number, end: number): { leafInput: Uint8Array; extraData: Uint8Array }[] {
    const size = this.o.store.treeSize;
    if (start > end) throw new CtLogRangeError(`start ${start} is after end ${end}`);
    if (start >= size) throw new CtLogRangeError(`start ${start} is beyond the tree (size ${size})`);
    const last = Math.min(end, size - 1, start + MAX_ENTRIES_PER_ANSWER - 1);
    return this.o.store.range(start, last).map((e) => ({ leafInput: e.leaf, extraData: entryExtraData(decodeMerkleTreeLeaf(e.leaf).entry.type, e.chain) }));
  }

  /** get-sth: the stored head while it covers every entry, else a newly signed one. */
  async treeHead(): Promise<StoredTreeHead> {
    const stored = await this.o.store.readTreeHead();
    if (stored && stored.treeSize === this.o.store.treeSize) return stored;
    this.signingHead ??= this.signHead(stored).finally(() => (this.signingHead = undefined));
    return this.signingHead;
  }

  private async signHead(previous: StoredTreeHead | undefined): Promise<StoredTreeHead> {
    const treeSize = this.o.store.treeSize;
    const rootHash = merkleRoot(this.o.store.leavesUpTo(treeSize));
    // Tree head timestamps only move forward, whatever the clock does.
    const timestamp = Math.max(this.now(), (previous?.timestamp ?? 0) + 1);
    const signature = await this.o.sign(treeHeadSignatureInput({ timestamp, treeSize, rootHash }));
    const head = { treeSize, timestamp, rootHash, signature };
    await this.o.store.writeTreeHead(head);
    return head;
  }
}
