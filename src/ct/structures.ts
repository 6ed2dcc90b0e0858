/**
 * RFC 6962 structures (v1): what a log signs (§3.2 certificate_timestamp, §3.5 tree_hash), the
 * Merkle tree leaf (§3.4), the SCT and its list (§3.2, §3.3), a log's id (§3.2). Pure: no I/O.
 * Only SHA-256 with ECDSA is produced (the log key is a threshold P-256 key).
 */
import { createHash } from 'node:crypto';
import { TlsDecodeError, TlsReader, TlsWriter } from './tls-encoding.js';

/** What a log entry certifies: a certificate, or a precertificate's TBS without its poison. */
export type LogEntry = { type: 'x509'; certificate: Uint8Array } | { type: 'precert'; issuerKeyHash: Uint8Array; tbsCertificate: Uint8Array };

export interface Sct {
  /** SHA-256 of the log's SubjectPublicKeyInfo. */
  logId: Uint8Array;
  /** Milliseconds since the epoch. */
  timestamp: number;
  extensions: Uint8Array;
  /** DER ECDSA-Sig-Value over sctSignatureInput. */
  signature: Uint8Array;
}

export interface TreeHead {
  timestamp: number;
  treeSize: number;
  rootHash: Uint8Array;
}

const V1 = 0;
const CERTIFICATE_TIMESTAMP = 0;
const TREE_HASH = 1;
const TIMESTAMPED_ENTRY = 0;
const X509_ENTRY = 0;
const PRECERT_ENTRY = 1;
// RFC 5246 §7.4.1.4.1 HashAlgorithm sha256, SignatureAlgorithm ecdsa.
const HASH_SHA256 = 4;
const SIG_ECDSA = 3;
const MAX_U24 = 0xffffff;
const MAX_U16 = 0xffff;
export const HASH_BYTES = 32;

/** The log id: SHA-256 of the DER SubjectPublicKeyInfo of its key. */
export function logIdOf(spkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(spkiDer).digest());
}

function checkEntry(entry: LogEntry): void {
  const body = entry.type === 'x509' ? entry.certificate : entry.tbsCertificate;
  if (body.length < 1 || body.length > MAX_U24) throw new RangeError(`a log entry's certificate is 1 to ${MAX_U24} bytes, got ${body.length}`);
  if (entry.type === 'precert' && entry.issuerKeyHash.length !== HASH_BYTES) throw new RangeError('issuer_key_hash is 32 bytes');
}

/** entry_type ‖ signed_entry, as both the signed struct and the TimestampedEntry carry it. */
function writeEntry(w: TlsWriter, entry: LogEntry): TlsWriter {
  checkEntry(entry);
  if (entry.type === 'x509') return w.uint(X509_ENTRY, 2).vector(entry.certificate, 3);
  return w.uint(PRECERT_ENTRY, 2).bytes(entry.issuerKeyHash).vector(entry.tbsCertificate, 3);
}

function checkExtensions(extensions: Uint8Array): void {
  if (extensions.length > MAX_U16) throw new RangeError('CtExtensions are at most 65535 bytes');
}

/** §3.2: the digitally-signed input of an SCT (signature_type certificate_timestamp). */
export function sctSignatureInput(timestamp: number, entry: LogEntry, extensions: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkExtensions(extensions);
  const w = new TlsWriter().uint(V1, 1).uint(CERTIFICATE_TIMESTAMP, 1).uint(timestamp, 8);
  return writeEntry(w, entry).vector(extensions, 2).finish();
}

/** §3.5: the digitally-signed input of a signed tree head (signature_type tree_hash). */
export function treeHeadSignatureInput(head: TreeHead): Uint8Array {
  if (head.rootHash.length !== HASH_BYTES) throw new RangeError('sha256_root_hash is 32 bytes');
  return new TlsWriter().uint(V1, 1).uint(TREE_HASH, 1).uint(head.timestamp, 8).uint(head.treeSize, 8).bytes(head.rootHash).finish();
}

/** §3.4: MerkleTreeLeaf { v1, timestamped_entry, TimestampedEntry } — the bytes the tree hashes. */
export function merkleTreeLeaf(timestamp: number, entry: LogEntry, extensions: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkExtensions(extensions);
  const w = new TlsWriter().uint(V1, 1).uint(TIMESTAMPED_ENTRY, 1).uint(timestamp, 8);
  return writeEntry(w, entry).vector(extensions, 2).finish();
}

/** The LogEntry and timestamp a MerkleTreeLeaf holds (for serving and checking stored leaves). */
export function decodeMerkleTreeLeaf(leaf: Uint8Array): { timestamp: number; entry: LogEntry; extensions: Uint8Array } {
  const r = new TlsReader(leaf, 'MerkleTreeLeaf');
  if (r.uint(1, 'version') !== V1) throw new TlsDecodeError('MerkleTreeLeaf: version is not v1');
  if (r.uint(1, 'leaf_type') !== TIMESTAMPED_ENTRY) throw new TlsDecodeError('MerkleTreeLeaf: leaf_type is not timestamped_entry');
  const timestamp = readTimestamp(r);
  const type = r.uint(2, 'entry_type');
  let entry: LogEntry;
  if (type === X509_ENTRY) entry = { type: 'x509', certificate: r.vector(3, 'ASN.1Cert', 1) };
  else if (type === PRECERT_ENTRY) entry = { type: 'precert', issuerKeyHash: r.bytes(HASH_BYTES, 'issuer_key_hash'), tbsCertificate: r.vector(3, 'TBSCertificate', 1) };
  else throw new TlsDecodeError(`MerkleTreeLeaf: unknown entry_type ${type}`);
  const extensions = r.vector(2, 'extensions');
  r.end();
  return { timestamp, entry, extensions };
}

function readTimestamp(r: TlsReader): number {
  const t = r.uint64('timestamp');
  if (t > BigInt(Number.MAX_SAFE_INTEGER)) throw new TlsDecodeError('timestamp out of range');
  return Number(t);
}

/** DigitallySigned { SHA-256, ECDSA, opaque signature<0..2^16-1> } (RFC 5246 §4.7). */
export function encodeDigitallySigned(signatureDer: Uint8Array): Uint8Array {
  return new TlsWriter().uint(HASH_SHA256, 1).uint(SIG_ECDSA, 1).vector(signatureDer, 2).finish();
}

function readDigitallySigned(r: TlsReader): Uint8Array {
  const hash = r.uint(1, 'hash algorithm');
  const sig = r.uint(1, 'signature algorithm');
  if (hash !== HASH_SHA256 || sig !== SIG_ECDSA) throw new TlsDecodeError(`signature algorithm (${hash},${sig}) is not (sha256, ecdsa)`);
  return r.vector(2, 'signature', 1);
}

export function decodeDigitallySigned(bytes: Uint8Array): Uint8Array {
  const r = new TlsReader(bytes, 'DigitallySigned');
  const sig = readDigitallySigned(r);
  r.end();
  return sig;
}

/** §3.2 SignedCertificateTimestamp, serialized. */
export function encodeSct(sct: Sct): Uint8Array {
  if (sct.logId.length !== HASH_BYTES) throw new RangeError('LogID is 32 bytes');
  checkExtensions(sct.extensions);
  return new TlsWriter().uint(V1, 1).bytes(sct.logId).uint(sct.timestamp, 8).vector(sct.extensions, 2).bytes(encodeDigitallySigned(sct.signature)).finish();
}

export function decodeSct(bytes: Uint8Array): Sct {
  const r = new TlsReader(bytes, 'SignedCertificateTimestamp');
  if (r.uint(1, 'sct_version') !== V1) throw new TlsDecodeError('SignedCertificateTimestamp: sct_version is not v1');
  const logId = r.bytes(HASH_BYTES, 'LogID');
  const timestamp = readTimestamp(r);
  const extensions = r.vector(2, 'extensions');
  const signature = readDigitallySigned(r);
  r.end();
  return { logId, timestamp, extensions, signature };
}

/** §3.3 SignedCertificateTimestampList: SerializedSCT sct_list<1..2^16-1>, each opaque<1..2^16-1>. */
export function encodeSctList(scts: readonly Sct[]): Uint8Array {
  if (scts.length === 0) throw new RangeError('an SCT list holds at least one SCT');
  const inner = new TlsWriter();
  for (const sct of scts) inner.vector(encodeSct(sct), 2);
  const list = inner.finish();
  if (list.length > MAX_U16) throw new RangeError('the SCT list is longer than 65535 bytes');
  return new TlsWriter().vector(list, 2).finish();
}

export function decodeSctList(bytes: Uint8Array): Sct[] {
  const outer = new TlsReader(bytes, 'SignedCertificateTimestampList');
  const list = outer.vector(2, 'sct_list', 1);
  outer.end();
  const r = new TlsReader(list, 'sct_list');
  const out: Sct[] = [];
  while (r.remaining > 0) out.push(decodeSct(r.vector(2, 'SerializedSCT', 1)));
  return out;
}

/**
 * §4.6 get-entries extra_data: for an x509_entry the chain after the leaf (certificate_chain);
 * for a precert_entry PrecertChainEntry { pre_certificate, precertificate_chain }.
 */
export function entryExtraData(type: LogEntry['type'], chain: readonly Uint8Array[]): Uint8Array {
  const rest = new TlsWriter();
  for (const c of chain.slice(1)) rest.vector(c, 3);
  const w = new TlsWriter();
  if (type === 'precert') w.vector(chain[0]!, 3);
  return w.vector(rest.finish(), 3).finish();
}
