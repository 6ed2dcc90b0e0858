/**
 * RFC 6960 messages: OCSPRequest parsing and OCSPResponse building. Pure.
 *
 * A request lists CertIDs (hash algorithm, issuer name and key hashes, serial) and may carry a
 * nonce extension (RFC 8954), which the response echoes. The response is a BasicOCSPResponse
 * whose ResponseData (what the threshold signs: classify.ts recognises it as `ocsp`) names the
 * responder by key hash and carries the responder's certificate.
 */
import { createHash } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  CertID,
  CertStatus,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  ResponderID,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  KeyHash,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
} from '@peculiar/asn1-ocsp';
import { AlgorithmIdentifier, CRLReason, Extension, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { ecdsaWithSha256, tlv } from '../ca/certificate.js';
import { REVOCATION_REASONS, type Revocation } from '../ca/reasons.js';

export { OCSPResponseStatus };

/** Requests naming more certificates are refused (a response is one signature either way). */
export const MAX_CERT_IDS = 16;
const MAX_NONCE_EXTENSION_BYTES = 34; // OCTET STRING of at most 32 bytes (RFC 8954 §2.1)

export const CERT_ID_HASHES: Readonly<Record<string, 'sha1' | 'sha256' | 'sha384' | 'sha512'>> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
const HASH_OIDS = Object.fromEntries(Object.entries(CERT_ID_HASHES).map(([oid, name]) => [name, oid]));

export class OcspRequestError extends Error {
  constructor(message: string) {
    super(`malformed OCSP request: ${message}`);
    this.name = 'OcspRequestError';
  }
}

export interface ParsedRequest {
  certIds: CertID[];
  /** The request's nonce extension value (echoed as is), if any. */
  nonce?: Uint8Array;
}

export function parseOcspRequest(der: Uint8Array): ParsedRequest {
  let request: OCSPRequest;
  try {
    request = AsnConvert.parse(der, OCSPRequest);
  } catch (e) {
    throw new OcspRequestError(`not an OCSPRequest (${(e as Error).message})`);
  }
  const list = request.tbsRequest.requestList;
  if (list.length === 0) throw new OcspRequestError('it names no certificate');
  if (list.length > MAX_CERT_IDS) throw new OcspRequestError(`it names ${list.length} certificates, at most ${MAX_CERT_IDS} are answered at once`);
  const out: ParsedRequest = { certIds: list.map((r) => r.reqCert) };
  const nonce = request.tbsRequest.requestExtensions?.find((e) => e.extnID === id_pkix_ocsp_nonce);
  if (nonce) {
    const value = new Uint8Array(nonce.extnValue.buffer);
    if (value.length === 0 || value.length > MAX_NONCE_EXTENSION_BYTES) throw new OcspRequestError(`its nonce is ${value.length} bytes (RFC 8954: 1 to 32)`);
    out.nonce = value;
  }
  return out;
}

export function serialHex(id: CertID): string {
  return Buffer.from(id.serialNumber).toString('hex');
}

/** The CertID key of a request entry, for caching: its DER. */
export function certIdKey(id: CertID): string {
  return Buffer.from(AsnConvert.serialize(id)).toString('hex');
}

/** Whether `id` names the issuer with this Name DER and key, under its own hash algorithm. */
export function namesIssuer(id: CertID, issuerNameDer: Uint8Array, issuerKey: SubjectPublicKeyInfo): boolean {
  const hash = CERT_ID_HASHES[id.hashAlgorithm.algorithm];
  if (!hash) return false;
  const h = (b: Uint8Array) => createHash(hash).update(b).digest();
  return h(issuerNameDer).equals(Buffer.from(id.issuerNameHash.buffer)) && h(new Uint8Array(issuerKey.subjectPublicKey)).equals(Buffer.from(id.issuerKeyHash.buffer));
}

/** A CertID for a certificate (for clients: `ocsp staple`). */
export function certIdFor(serial: Uint8Array, issuerNameDer: Uint8Array, issuerKey: SubjectPublicKeyInfo, hash: 'sha1' | 'sha256' = 'sha1'): CertID {
  const h = (b: Uint8Array) => new OctetString(createHash(hash).update(b).digest());
  return new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: HASH_OIDS[hash]!, parameters: null }),
    issuerNameHash: h(issuerNameDer),
    issuerKeyHash: h(new Uint8Array(issuerKey.subjectPublicKey)),
    serialNumber: Uint8Array.from(serial).buffer,
  });
}

export type CertState = { status: 'good' } | { status: 'revoked'; revocation: Revocation } | { status: 'unknown' };

export interface ResponseFields {
  /** SHA-1 of the responder's public key bits (ResponderID byKey). */
  responderKeyHash: Uint8Array;
  producedAt: Date;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: { certId: CertID; state: CertState }[];
  nonce?: Uint8Array;
}

function certStatus(state: CertState): CertStatus {
  if (state.status === 'good') return new CertStatus({ good: null });
  if (state.status === 'unknown') return new CertStatus({ unknown: null });
  const reason = state.revocation.reason === 'unspecified' ? undefined : new CRLReason(REVOCATION_REASONS[state.revocation.reason]);
  return new CertStatus({ revoked: new RevokedInfo({ revocationTime: new Date(state.revocation.at), revocationReason: reason }) });
}

/** Whole seconds: GeneralizedTime without fractions, as RFC 5280 profiles it. */
const seconds = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);

export function buildResponseData(f: ResponseFields): Uint8Array {
  const data = new ResponseData({
    responderID: new ResponderID({ byKey: new KeyHash(f.responderKeyHash) }),
    producedAt: seconds(f.producedAt),
    responses: f.entries.map(
      (e) => new SingleResponse({ certID: e.certId, certStatus: certStatus(e.state), thisUpdate: seconds(f.thisUpdate), nextUpdate: seconds(f.nextUpdate) }),
    ),
    responseExtensions: f.nonce ? [new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: new OctetString(f.nonce) })] : undefined,
  });
  return new Uint8Array(AsnConvert.serialize(data));
}

/** A successful OCSPResponse: BasicOCSPResponse { ResponseData, ecdsa-with-SHA256, signature, [0] { responder certificate } }. */
export function successfulResponse(responseData: Uint8Array, signatureDer: Uint8Array, responderCertDer: Uint8Array): Uint8Array {
  const algorithm = new Uint8Array(AsnConvert.serialize(ecdsaWithSha256()));
  const signature = tlv(0x03, Buffer.concat([Buffer.from([0]), signatureDer]));
  const certs = tlv(0xa0, tlv(0x30, responderCertDer));
  const basic = tlv(0x30, Buffer.concat([responseData, algorithm, signature, certs]));
  const response = new OCSPResponse({
    responseStatus: OCSPResponseStatus.successful,
    responseBytes: new ResponseBytes({ responseType: id_pkix_ocsp_basic, response: new OctetString(basic) }),
  });
  return new Uint8Array(AsnConvert.serialize(response));
}

/** An unsigned error answer (malformedRequest, internalError, tryLater, unauthorized). */
export function errorResponse(status: Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(new OCSPResponse({ responseStatus: status })));
}
