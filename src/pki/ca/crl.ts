/** A v2 CRL (RFC 5280 §5) from the issued-certificate database's revocations. Pure apart from the injected signer. */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  CRLNumber,
  CRLReason,
  Extension,
  KeyIdentifier,
  Name,
  RevokedCertificate,
  SubjectPublicKeyInfo,
  TBSCertList,
  Time,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
} from '@peculiar/asn1-x509';
import { assembleSigned, ecdsaWithSha256, type TbsSigner } from './certificate.js';
import { keyIdentifier } from './profiles.js';
import { REVOCATION_REASONS, type Revocation } from './reasons.js';

export interface CrlFields {
  issuer: Name;
  issuerSpki: SubjectPublicKeyInfo;
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: number;
  revoked: { serial: string; revocation: Revocation }[];
}

const ext = (extnID: string, value: unknown) => new Extension({ extnID, critical: false, extnValue: new OctetString(AsnConvert.serialize(value)) });

export function buildTbsCertList(f: CrlFields): Uint8Array {
  const revoked = f.revoked.map(
    ({ serial, revocation }) =>
      new RevokedCertificate({
        userCertificate: Uint8Array.from(Buffer.from(serial, 'hex')).buffer,
        revocationDate: new Time(new Date(revocation.at)),
        // RFC 5280 §5.3.1: reasonCode unspecified SHOULD be absent.
        crlEntryExtensions: revocation.reason === 'unspecified' ? undefined : [ext(id_ce_cRLReasons, new CRLReason(REVOCATION_REASONS[revocation.reason]))],
      }),
  );
  const tbs = new TBSCertList({
    version: Version.v2,
    signature: ecdsaWithSha256(),
    issuer: f.issuer,
    thisUpdate: new Time(f.thisUpdate),
    nextUpdate: new Time(f.nextUpdate),
    revokedCertificates: revoked.length ? revoked : undefined,
    crlExtensions: [
      ext(id_ce_authorityKeyIdentifier, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyIdentifier(f.issuerSpki)) })),
      ext(id_ce_cRLNumber, new CRLNumber(f.crlNumber)),
    ],
  });
  return new Uint8Array(AsnConvert.serialize(tbs));
}

export async function signCrl(tbs: Uint8Array, sign: TbsSigner): Promise<Uint8Array> {
  return assembleSigned(tbs, await sign(tbs));
}
