/**
 * A PKCS#10 certificate request as the CA takes it (RFC 2986): its self-signature must verify
 * (proof of possession), and only the subject, the public key and the requested subjectAltName
 * are taken from it; every other extension comes from the issuing profile. Pure.
 */
import { verify } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { Extensions, GeneralName, Name, SubjectAlternativeName, SubjectPublicKeyInfo, id_ce_subjectAltName } from '@peculiar/asn1-x509';
import { derFrom } from './certificate.js';

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SIGNATURE_HASHES: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};

export class CsrError extends Error {
  constructor(message: string) {
    super(`certificate request: ${message}`);
    this.name = 'CsrError';
  }
}

export interface CertificateRequest {
  subject: Name;
  spki: SubjectPublicKeyInfo;
  sans: GeneralName[];
}

/** Parses a PEM or DER CSR and checks its signature. Throws CsrError. */
export function parseCsr(bytes: Uint8Array): CertificateRequest {
  let csr: CertificationRequest;
  try {
    csr = AsnConvert.parse(derFrom(bytes, 'CERTIFICATE REQUEST'), CertificationRequest);
  } catch (e) {
    throw new CsrError(`not a PKCS#10 request (${(e as Error).message})`);
  }
  const info = csr.certificationRequestInfoRaw ? new Uint8Array(csr.certificationRequestInfoRaw) : new Uint8Array(AsnConvert.serialize(csr.certificationRequestInfo));
  const spki = csr.certificationRequestInfo.subjectPKInfo;
  const hash = SIGNATURE_HASHES[csr.signatureAlgorithm.algorithm];
  if (!hash) throw new CsrError(`signature algorithm ${csr.signatureAlgorithm.algorithm} is not ECDSA or RSA PKCS#1 v1.5 with SHA-2`);
  let ok = false;
  try {
    ok = verify(hash, info, { key: Buffer.from(AsnConvert.serialize(spki)), format: 'der', type: 'spki' }, Buffer.from(csr.signature));
  } catch (e) {
    throw new CsrError(`its public key cannot be used (${(e as Error).message})`);
  }
  if (!ok) throw new CsrError('its signature does not verify with its own public key (no proof of possession)');
  const sans: GeneralName[] = [];
  for (const attribute of csr.certificationRequestInfo.attributes) {
    if (attribute.type !== EXTENSION_REQUEST) continue;
    for (const value of attribute.values) {
      for (const ext of AsnConvert.parse(value, Extensions)) {
        if (ext.extnID === id_ce_subjectAltName) sans.push(...AsnConvert.parse(ext.extnValue, SubjectAlternativeName));
      }
    }
  }
  return { subject: csr.certificationRequestInfo.subject, spki, sans };
}
