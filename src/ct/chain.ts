/**
 * Submission chains (RFC 6962 §4.1, §4.2): the leaf first, each certificate signed by the next,
 * ending at — or issued by — one of the log's accepted roots. This is the log's authorisation:
 * it signs statements only about certificates an accepted CA has already signed. Pure: no I/O.
 */
import { X509Certificate } from 'node:crypto';
import { PRECERT_SIGNING_EKU, PrecertError, splitCertificate } from './precert.js';

export const MAX_CHAIN_CERTIFICATES = 8;
export const MAX_CERTIFICATE_BYTES = 16 * 1024;

export class ChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainError';
  }
}

export interface ValidChain {
  /** The submitted leaf (certificate or precertificate), DER. */
  leaf: Uint8Array;
  /** The leaf's TBSCertificate, DER. */
  leafTbs: Uint8Array;
  /** The certificate that signed the leaf (for a precertificate: whose key hash the entry names). */
  issuer: X509Certificate;
  /** The chain as stored: the submission, with the accepted root appended when it was left out. */
  chain: Uint8Array[];
}

const der = (c: X509Certificate) => new Uint8Array(c.raw);
const subjectOf = (c: X509Certificate) => c.subject.replace(/\n/g, ', ').slice(0, 200);

function certificate(bytes: Uint8Array, at: number): { cert: X509Certificate; parts: ReturnType<typeof splitCertificate> } {
  const what = at === 0 ? 'chain[0] (the leaf)' : `chain[${at}]`;
  if (bytes.length > MAX_CERTIFICATE_BYTES) throw new ChainError(`${what} is ${bytes.length} bytes; at most ${MAX_CERTIFICATE_BYTES}`);
  try {
    const parts = splitCertificate(bytes, what);
    return { cert: new X509Certificate(Buffer.from(bytes)), parts };
  } catch (e) {
    throw new ChainError(e instanceof PrecertError ? e.message : `${what} is not a DER X.509 certificate`);
  }
}

function signedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/**
 * Checks a chain for add-chain (`precert` false: the leaf must not carry the poison) or
 * add-pre-chain (`precert` true: it must, and be signed by the CA itself).
 */
export function validateChain(chainDer: readonly Uint8Array[], roots: readonly X509Certificate[], precert: boolean): ValidChain {
  if (chainDer.length === 0) throw new ChainError('chain is empty: it starts with the leaf certificate');
  if (chainDer.length > MAX_CHAIN_CERTIFICATES) throw new ChainError(`chain has ${chainDer.length} certificates; at most ${MAX_CHAIN_CERTIFICATES}`);
  const parsed = chainDer.map(certificate);
  const certs = parsed.map((p) => p.cert);
  const leaf = parsed[0]!.parts;
  if (precert && !leaf.precert) throw new ChainError('chain[0] is not a precertificate (no CT poison extension): submit it with add-chain');
  if (!precert && leaf.precert) throw new ChainError('chain[0] is a precertificate (it has the CT poison extension): submit it with add-pre-chain');
  for (let k = 1; k < certs.length; k++) {
    if (!certs[k]!.ca) throw new ChainError(`chain[${k}] (${subjectOf(certs[k]!)}) is not a CA certificate`);
    if (!signedBy(certs[k - 1]!, certs[k]!)) throw new ChainError(`chain[${k - 1}] is not signed by chain[${k}] (${subjectOf(certs[k]!)})`);
  }
  const last = certs[certs.length - 1]!;
  const chain = [...chainDer];
  if (!roots.some((r) => Buffer.from(r.raw).equals(last.raw))) {
    const root = roots.find((r) => signedBy(last, r));
    if (!root) throw new ChainError(`the chain does not end at an accepted root (its last certificate ${subjectOf(last)} is neither one nor issued by one; see get-roots)`);
    certs.push(root);
    chain.push(der(root));
  }
  // A lone accepted root submitted as the leaf is its own issuer.
  const issuer = certs[1] ?? certs[0]!;
  const issuerEkus = parsed[1]?.parts.ekus ?? splitCertificate(der(issuer), 'the issuer').ekus;
  if (precert && issuerEkus.includes(PRECERT_SIGNING_EKU)) {
    throw new ChainError('precertificates signed by a Precertificate Signing Certificate are not supported: the CA signs its precertificates itself');
  }
  return { leaf: chainDer[0]!, leafTbs: leaf.tbs, issuer, chain };
}
