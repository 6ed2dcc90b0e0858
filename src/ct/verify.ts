/** Checks an SCT or a signed tree head against a log's key (DER SubjectPublicKeyInfo). Pure. */
import { createPublicKey, verify } from 'node:crypto';
import { logIdOf, sctSignatureInput, treeHeadSignatureInput, type LogEntry, type Sct, type TreeHead } from './structures.js';

function signatureValid(input: Uint8Array, signatureDer: Uint8Array, logSpki: Uint8Array): boolean {
  const key = createPublicKey({ key: Buffer.from(logSpki), format: 'der', type: 'spki' });
  return verify('sha256', input, { key, dsaEncoding: 'der' }, signatureDer);
}

/** The SCT names this log and its signature covers `entry`. */
export function sctValid(sct: Sct, entry: LogEntry, logSpki: Uint8Array): boolean {
  if (!Buffer.from(sct.logId).equals(logIdOf(logSpki))) return false;
  return signatureValid(sctSignatureInput(sct.timestamp, entry, sct.extensions), sct.signature, logSpki);
}

export function treeHeadValid(head: TreeHead & { signature: Uint8Array }, logSpki: Uint8Array): boolean {
  return signatureValid(treeHeadSignatureInput(head), head.signature, logSpki);
}
