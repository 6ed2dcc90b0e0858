/**
 * X.509 issuance as two separate steps, so a step can sit between them (a CT precertificate
 * and its SCTs are added to the extension list before the final TBSCertificate is signed):
 * buildTbsCertificate makes the DER TBSCertificate from its fields and an extension list, and
 * signCertificate has it signed by a TbsSigner (the threshold, through the coordinator) and
 * assembles the Certificate. Pure apart from the injected signer.
 */
import { randomBytes } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate, Extension, Extensions, Name, SubjectPublicKeyInfo, TBSCertificate, Validity, Version } from '@peculiar/asn1-x509';

export const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/** Signs DER to-be-signed bytes (SHA-256, ECDSA P-256) and returns the DER ECDSA-Sig-Value. */
export type TbsSigner = (tbs: Uint8Array) => Promise<Uint8Array>;

export interface CertificateFields {
  serial: Uint8Array;
  issuer: Name;
  subject: Name;
  spki: SubjectPublicKeyInfo;
  notBefore: Date;
  notAfter: Date;
  extensions: Extension[];
}

/** 16 random bytes as a positive INTEGER (RFC 5280 §4.1.2.2: at most 20 octets, unpredictable). */
export function randomSerial(): Uint8Array {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x10;
  return new Uint8Array(serial);
}

export function ecdsaWithSha256(): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 });
}

const toArrayBuffer = (b: Uint8Array): ArrayBuffer => Uint8Array.from(b).buffer;

export function buildTbsCertificate(f: CertificateFields): Uint8Array {
  if (f.notAfter.getTime() <= f.notBefore.getTime()) throw new RangeError('notAfter must be after notBefore');
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: toArrayBuffer(f.serial),
    signature: ecdsaWithSha256(),
    issuer: f.issuer,
    validity: new Validity({ notBefore: f.notBefore, notAfter: f.notAfter }),
    subject: f.subject,
    subjectPublicKeyInfo: f.spki,
    extensions: f.extensions.length ? new Extensions(f.extensions) : undefined,
  });
  return new Uint8Array(AsnConvert.serialize(tbs));
}

/** SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }, the tbs kept byte for byte. */
export function assembleSigned(tbs: Uint8Array, signatureDer: Uint8Array): Uint8Array {
  const algorithm = new Uint8Array(AsnConvert.serialize(ecdsaWithSha256()));
  const bitString = tlv(0x03, Buffer.concat([Buffer.from([0]), signatureDer]));
  return tlv(0x30, Buffer.concat([tbs, algorithm, bitString]));
}

export function tlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return new Uint8Array(Buffer.concat([Buffer.from([tag, ...length]), content]));
}

/** Signs a TBSCertificate (from buildTbsCertificate, or any later step) and returns the DER Certificate. */
export async function signCertificate(tbs: Uint8Array, sign: TbsSigner): Promise<Uint8Array> {
  const der = assembleSigned(tbs, await sign(tbs));
  AsnConvert.parse(der, Certificate); // what was assembled is a certificate
  return der;
}

export function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

/** The DER of the first PEM block labelled `label`, or the bytes themselves when they are DER. */
export function derFrom(bytes: Uint8Array, label: string): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(text);
  if (m) return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  if (bytes[0] === 0x30) return bytes;
  throw new Error(`not a PEM ${label} nor DER`);
}
