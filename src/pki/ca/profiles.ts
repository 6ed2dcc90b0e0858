/**
 * The extension lists of what the CA issues (RFC 5280 §4.2), one per profile. Pure.
 *
 * - root            basicConstraints CA (critical), keyUsage keyCertSign + cRLSign (critical), SKI.
 * - server          CA:FALSE, digitalSignature, serverAuth, the CSR's subjectAltName, SKI, AKI,
 *                   AIA (OCSP responder URL) and CRL distribution point.
 * - ocsp-responder  CA:FALSE, digitalSignature, id-kp-OCSPSigning, id-pkix-ocsp-nocheck (RFC 6960
 *                   §4.2.2.2.1: clients do not ask for the responder's own status), SKI, AKI.
 */
import { createHash } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AccessDescription,
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  BasicConstraints,
  CRLDistributionPoints,
  DistributionPoint,
  DistributionPointName,
  ExtendedKeyUsage,
  Extension,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_cRLDistributionPoints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_pe_authorityInfoAccess,
} from '@peculiar/asn1-x509';

export const PROFILES = ['server', 'ocsp-responder'] as const;
export type Profile = (typeof PROFILES)[number];

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const ID_AD_OCSP = '1.3.6.1.5.5.7.48.1';
const ID_PKIX_OCSP_NOCHECK = '1.3.6.1.5.5.7.48.1.5';
const DER_NULL = new Uint8Array([0x05, 0x00]);

function extension(extnID: string, critical: boolean, value: unknown): Extension {
  const der = value instanceof Uint8Array ? value : new Uint8Array(AsnConvert.serialize(value));
  return new Extension({ extnID, critical, extnValue: new OctetString(der) });
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bits. */
export function keyIdentifier(spki: SubjectPublicKeyInfo): Uint8Array {
  return new Uint8Array(createHash('sha1').update(new Uint8Array(spki.subjectPublicKey)).digest());
}

const ski = (spki: SubjectPublicKeyInfo) => extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyIdentifier(spki)));
const aki = (issuer: SubjectPublicKeyInfo) =>
  extension(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyIdentifier(issuer)) }));
const endEntity = () => extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false }));
const digitalSignature = () => extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature));

export function rootExtensions(spki: SubjectPublicKeyInfo): Extension[] {
  return [
    extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: true })),
    extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)),
    ski(spki),
  ];
}

/** The AIA OCSP and CRL distribution point extensions for `urls`. */
export function revocationPointers(urls: { ocspUrl: string; crlUrl: string }): Extension[] {
  return [
    extension(id_pe_authorityInfoAccess, false, new AuthorityInfoAccessSyntax([new AccessDescription({ accessMethod: ID_AD_OCSP, accessLocation: new GeneralName({ uniformResourceIdentifier: urls.ocspUrl }) })])),
    extension(
      id_ce_cRLDistributionPoints,
      false,
      new CRLDistributionPoints([new DistributionPoint({ distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: urls.crlUrl })] }) })]),
    ),
  ];
}

export interface ProfileInput {
  subject: SubjectPublicKeyInfo;
  issuer: SubjectPublicKeyInfo;
  /** The names to certify (server): the CSR's subjectAltName. */
  sans: GeneralName[];
  ocspUrl: string;
  crlUrl: string;
}

export function profileExtensions(profile: Profile, input: ProfileInput): Extension[] {
  if (profile === 'server') {
    if (input.sans.length === 0) throw new Error('a server certificate needs subjectAltName names: put them in the CSR (e.g. -addext subjectAltName=DNS:host)');
    return [
      endEntity(),
      digitalSignature(),
      extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage([SERVER_AUTH])),
      extension(id_ce_subjectAltName, false, new SubjectAlternativeName(input.sans)),
      ski(input.subject),
      aki(input.issuer),
      ...revocationPointers(input),
    ];
  }
  return [endEntity(), digitalSignature(), extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage([OCSP_SIGNING])), extension(ID_PKIX_OCSP_NOCHECK, false, DER_NULL), ski(input.subject), aki(input.issuer)];
}
