/**
 * Issuance with embedded SCTs (RFC 6962 §3.1, §3.3), for a CA whose key is a threshold key:
 * TBSCertificate → precertificate (poison, signed with the CA key) → an SCT from each log, checked
 * against the log's key → final TBSCertificate with the SCT list → the final certificate, signed
 * with the CA key. The signing and the logs are given; this module adds no door of its own.
 */
import { X509Certificate } from 'node:crypto';
import type { TbsSigner } from './log.js';
import { addPoison, assembleCertificate, embedScts, issuerKeyHash, tbsWithoutPoison } from './precert.js';
import type { LogEntry, Sct } from './structures.js';
import { sctValid } from './verify.js';

export interface SctLog {
  /** add-pre-chain: [precertificate, issuer, …] → its SCT. */
  addPreChain(chain: readonly Uint8Array[]): Promise<Sct>;
  /** DER SubjectPublicKeyInfo of the log's key: each SCT is checked before it is embedded. */
  spki: Uint8Array;
}

export interface PrecertFlow {
  /** Signs a TBSCertificate with the CA key (the threshold); resolves with the DER signature. */
  signCertificate: TbsSigner;
  /** The CA's certificate, DER (the precertificate's issuer); then the rest of its chain. */
  issuerChain: readonly Uint8Array[];
  logs: readonly SctLog[];
}

export interface IssuedWithScts {
  certificate: Uint8Array;
  precertificate: Uint8Array;
  scts: Sct[];
}

export class SctCheckError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SctCheckError';
  }
}

export async function issueWithEmbeddedScts(tbsDer: Uint8Array, flow: PrecertFlow): Promise<IssuedWithScts> {
  if (flow.logs.length === 0) throw new RangeError('embedding SCTs needs at least one log');
  const issuer = flow.issuerChain[0];
  if (!issuer) throw new RangeError('the issuer chain is empty');
  const precertTbs = addPoison(tbsDer);
  const precertificate = assembleCertificate(precertTbs, await flow.signCertificate(precertTbs));
  const issuerSpki = new Uint8Array(new X509Certificate(Buffer.from(issuer)).publicKey.export({ type: 'spki', format: 'der' }));
  const entry: LogEntry = { type: 'precert', issuerKeyHash: issuerKeyHash(issuerSpki), tbsCertificate: tbsWithoutPoison(precertTbs) };
  const scts = await Promise.all(
    flow.logs.map(async (log, k) => {
      const sct = await log.addPreChain([precertificate, ...flow.issuerChain]);
      if (!sctValid(sct, entry, log.spki)) throw new SctCheckError(`the SCT of log ${k + 1} does not verify with that log's key over this precertificate`);
      return sct;
    }),
  );
  const finalTbs = embedScts(precertTbs, scts);
  return { certificate: assembleCertificate(finalTbs, await flow.signCertificate(finalTbs)), precertificate, scts };
}
