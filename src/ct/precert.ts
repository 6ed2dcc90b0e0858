/**
 * Precertificates (RFC 6962 §3.1) and embedded SCTs (§3.3), as TBSCertificate edits. Pure: no I/O.
 *
 * The precertificate is the final TBSCertificate plus the critical poison extension; the log
 * signs that TBS without the poison; the final certificate carries the SCT list extension in the
 * poison's place. A client recovers the signed TBS from the final certificate by removing the SCT
 * list, so everything else — extension order included — stays byte for byte. Every input must
 * be DER (it must re-encode to its own bytes), so the edits cannot change anything else.
 */
import { createHash } from 'node:crypto';
import { AsnConvert, AsnParser, OctetString } from '@peculiar/asn1-schema';
import { Certificate, ExtendedKeyUsage, Extension, Extensions, id_ce_extKeyUsage, TBSCertificate, Version } from '@peculiar/asn1-x509';
import { encodeSctList, type Sct } from './structures.js';

/** id-ce-criticalPoison (RFC 6962 §3.1). */
export const POISON_OID = '1.3.6.1.4.1.11129.2.4.3';
/** id-ce-embeddedSctList (RFC 6962 §3.3). */
export const SCT_LIST_OID = '1.3.6.1.4.1.11129.2.4.2';
/** Precertificate Signing Certificate EKU (RFC 6962 §3.1): not supported by this log. */
export const PRECERT_SIGNING_EKU = '1.3.6.1.4.1.11129.2.4.4';
const ASN1_NULL = Uint8Array.of(0x05, 0x00);

export class PrecertError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrecertError';
  }
}

function parseDer<T>(bytes: Uint8Array, type: new () => T, what: string): T {
  let value: T;
  try {
    value = AsnParser.parse(bytes, type);
  } catch (e) {
    throw new PrecertError(`${what} does not parse (${e instanceof Error ? e.message.slice(0, 120) : 'error'})`);
  }
  if (!Buffer.from(AsnConvert.serialize(value)).equals(bytes)) throw new PrecertError(`${what} is not DER (it does not re-encode to the same ${bytes.length} bytes)`);
  return value;
}

const serialize = (v: unknown) => new Uint8Array(AsnConvert.serialize(v));
const indexOf = (tbs: TBSCertificate, oid: string) => (tbs.extensions ?? []).findIndex((e) => e.extnID === oid);

function parseTbs(der: Uint8Array): TBSCertificate {
  const tbs = parseDer(der, TBSCertificate, 'TBSCertificate');
  if (tbs.version !== Version.v3) throw new PrecertError(`a precertificate is a v3 certificate, this TBSCertificate is v${tbs.version + 1}`);
  return tbs;
}

/** The precertificate TBS: `tbs` (DER, v3, without poison or SCT list) with the critical poison appended. */
export function addPoison(tbsDer: Uint8Array): Uint8Array {
  const tbs = parseTbs(tbsDer);
  if (indexOf(tbs, POISON_OID) >= 0) throw new PrecertError('the TBSCertificate already has the CT poison extension');
  if (indexOf(tbs, SCT_LIST_OID) >= 0) throw new PrecertError('the TBSCertificate already has an embedded SCT list');
  const poison = new Extension({ extnID: POISON_OID, critical: true, extnValue: new OctetString(ASN1_NULL) });
  tbs.extensions = new Extensions([...(tbs.extensions ?? []), poison]);
  return serialize(tbs);
}

function poisonIndex(tbs: TBSCertificate): number {
  const at = indexOf(tbs, POISON_OID);
  if (at < 0) throw new PrecertError('not a precertificate: the CT poison extension is missing');
  const poison = tbs.extensions![at]!;
  if (!poison.critical) throw new PrecertError('the CT poison extension must be critical');
  if (!Buffer.from(poison.extnValue.buffer).equals(ASN1_NULL)) throw new PrecertError('the CT poison extension value must be ASN.1 NULL');
  if ((tbs.extensions ?? []).filter((e) => e.extnID === POISON_OID).length > 1) throw new PrecertError('the CT poison extension appears twice');
  if (indexOf(tbs, SCT_LIST_OID) >= 0) throw new PrecertError('a precertificate carries no embedded SCT list');
  return at;
}

/** The TBS a log signs for a precertificate (the precert_entry's tbs_certificate): the poison removed. */
export function tbsWithoutPoison(precertTbsDer: Uint8Array): Uint8Array {
  const tbs = parseTbs(precertTbsDer);
  const at = poisonIndex(tbs);
  const rest = tbs.extensions!.filter((_, k) => k !== at);
  tbs.extensions = rest.length ? new Extensions(rest) : undefined;
  return serialize(tbs);
}

/** The final TBS: the precertificate's TBS with the SCT list extension in the poison's place. */
export function embedScts(precertTbsDer: Uint8Array, scts: readonly Sct[]): Uint8Array {
  const tbs = parseTbs(precertTbsDer);
  const at = poisonIndex(tbs);
  // extnValue wraps the DER OCTET STRING that holds the TLS-encoded list.
  const list = new Extension({ extnID: SCT_LIST_OID, critical: false, extnValue: new OctetString(serialize(new OctetString(encodeSctList(scts)))) });
  tbs.extensions = new Extensions(tbs.extensions!.map((e, k) => (k === at ? list : e)));
  return serialize(tbs);
}

/** A certificate's TBSCertificate (DER) and whether it is a precertificate (has the poison). */
export function splitCertificate(certDer: Uint8Array, what = 'certificate'): { tbs: Uint8Array; precert: boolean; ekus: string[] } {
  const cert = parseDer(certDer, Certificate, what);
  const tbs = cert.tbsCertificate;
  const ekuExt = tbs.extensions?.find((e) => e.extnID === id_ce_extKeyUsage);
  const ekus = ekuExt ? [...parseDer(new Uint8Array(ekuExt.extnValue.buffer), ExtendedKeyUsage, `${what} extendedKeyUsage`)] : [];
  return { tbs: serialize(tbs), precert: indexOf(tbs, POISON_OID) >= 0, ekus };
}

/** Whether a certificate carries an embedded SCT list. */
export function hasEmbeddedScts(certDer: Uint8Array): boolean {
  return indexOf(parseDer(certDer, Certificate, 'certificate').tbsCertificate, SCT_LIST_OID) >= 0;
}

/** issuer_key_hash: SHA-256 of the issuer's DER SubjectPublicKeyInfo. */
export function issuerKeyHash(issuerSpkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(issuerSpkiDer).digest());
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm (the TBS's own), signatureValue BIT STRING }. */
export function assembleCertificate(tbsDer: Uint8Array, signatureDer: Uint8Array): Uint8Array {
  const tbs = parseDer(tbsDer, TBSCertificate, 'TBSCertificate');
  const cert = new Certificate({ tbsCertificate: tbs, signatureAlgorithm: tbs.signature, signatureValue: Uint8Array.from(signatureDer).buffer });
  return serialize(cert);
}
