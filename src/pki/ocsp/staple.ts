/**
 * What may be stapled (pure): an OCSP request for a certificate, and the check of the answer
 * before anything is written. A staple must be a successful response, signed by the issuer or
 * by a responder the issuer certified for OCSPSigning, about exactly this certificate, current
 * (thisUpdate ≤ now < nextUpdate), and good or revoked — an error status, a bad signature or
 * "unknown" is never stapleable (`openssl ocsp` writes whatever it got; this does not).
 */
import { createHash, verify, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { BasicOCSPResponse, OCSPRequest, OCSPResponse, OCSPResponseStatus, Request, TBSRequest, id_pkix_ocsp_basic } from '@peculiar/asn1-ocsp';
import { Certificate } from '@peculiar/asn1-x509';
import { certIdFor, certIdKey } from './messages.js';

const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const SIGNATURE_HASHES: Record<string, string> = { '1.2.840.10045.4.3.2': 'sha256', '1.2.840.10045.4.3.3': 'sha384', '1.2.840.10045.4.3.4': 'sha512' };

export class StapleError extends Error {
  constructor(message: string) {
    super(`not stapleable: ${message}`);
    this.name = 'StapleError';
  }
}

export interface StapleStatus {
  status: 'good' | 'revoked';
  thisUpdate: Date;
  nextUpdate: Date;
}

function certId(certDer: Uint8Array, issuerDer: Uint8Array) {
  const cert = AsnConvert.parse(certDer, Certificate).tbsCertificate;
  const issuer = AsnConvert.parse(issuerDer, Certificate).tbsCertificate;
  if (!Buffer.from(AsnConvert.serialize(cert.issuer)).equals(Buffer.from(AsnConvert.serialize(issuer.subject)))) {
    throw new StapleError('the certificate was not issued by the given issuer (its issuer name differs)');
  }
  // SHA-1 CertIDs: what nginx, HAProxy and OpenSSL compute to match a staple to its certificate.
  return certIdFor(new Uint8Array(cert.serialNumber), new Uint8Array(AsnConvert.serialize(issuer.subject)), issuer.subjectPublicKeyInfo, 'sha1');
}

/** A DER OCSPRequest for `certDer` without a nonce (a staple is shared with every client). */
export function stapleRequest(certDer: Uint8Array, issuerDer: Uint8Array): Uint8Array {
  const request = new OCSPRequest({ tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: certId(certDer, issuerDer) })] }) });
  return new Uint8Array(AsnConvert.serialize(request));
}

export function checkStaple(responseDer: Uint8Array, certDer: Uint8Array, issuerDer: Uint8Array, now: Date = new Date()): StapleStatus {
  let response: OCSPResponse;
  try {
    response = AsnConvert.parse(responseDer, OCSPResponse);
  } catch (e) {
    throw new StapleError(`the answer is not an OCSPResponse (${(e as Error).message})`);
  }
  if (response.responseStatus !== OCSPResponseStatus.successful) throw new StapleError(`the responder answered ${OCSPResponseStatus[response.responseStatus] ?? response.responseStatus}`);
  if (!response.responseBytes || response.responseBytes.responseType !== id_pkix_ocsp_basic) throw new StapleError('the response is not a BasicOCSPResponse');
  const basic = AsnConvert.parse(response.responseBytes.response, BasicOCSPResponse);
  const issuer = new X509Certificate(Buffer.from(issuerDer));
  const signer = responderOf(basic, issuer);
  const hash = SIGNATURE_HASHES[basic.signatureAlgorithm.algorithm];
  if (!hash) throw new StapleError(`signature algorithm ${basic.signatureAlgorithm.algorithm} is not ECDSA with SHA-2`);
  const tbs = basic.tbsResponseDataRaw ? Buffer.from(basic.tbsResponseDataRaw) : Buffer.from(AsnConvert.serialize(basic.tbsResponseData));
  if (!verify(hash, tbs, signer.publicKey, Buffer.from(basic.signature))) throw new StapleError('its signature does not verify with the responder key');
  const wanted = certIdKey(certId(certDer, issuerDer));
  const single = basic.tbsResponseData.responses.find((r) => certIdKey(r.certID) === wanted);
  if (!single) throw new StapleError('it does not answer for this certificate');
  if (!single.nextUpdate) throw new StapleError('it has no nextUpdate, so it never expires');
  if (single.thisUpdate.getTime() > now.getTime() + 60_000) throw new StapleError(`its thisUpdate ${single.thisUpdate.toISOString()} is in the future`);
  if (single.nextUpdate.getTime() <= now.getTime()) throw new StapleError(`it expired at ${single.nextUpdate.toISOString()}`);
  const status = single.certStatus.good !== undefined ? 'good' : single.certStatus.revoked ? 'revoked' : undefined;
  if (!status) throw new StapleError('the responder does not know the certificate (status unknown)');
  return { status, thisUpdate: single.thisUpdate, nextUpdate: single.nextUpdate };
}

/** The certificate whose key signed: the issuer itself, or an included responder certificate it issued for OCSPSigning. */
function responderOf(basic: BasicOCSPResponse, issuer: X509Certificate): X509Certificate {
  const byKey = basic.tbsResponseData.responderID.byKey;
  for (const c of basic.certs ?? []) {
    const cert = new X509Certificate(Buffer.from(AsnConvert.serialize(c)));
    if (!cert.verify(issuer.publicKey)) continue;
    if (!(cert.keyUsage ?? []).includes(OCSP_SIGNING)) continue;
    if (byKey && !Buffer.from(byKey.buffer).equals(keyHash(c))) continue;
    return cert;
  }
  if (!basic.certs?.length) return issuer;
  throw new StapleError('no included responder certificate is issued by the issuer for OCSPSigning');
}

function keyHash(c: Certificate): Buffer {
  return createHash('sha1').update(new Uint8Array(c.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey)).digest();
}
