/**
 * The OCSP responder (RFC 6960) of the CA in <cluster dir>/ca/ (store.ts): answers good,
 * revoked or unknown from the issued-certificate database, signed by the delegated responder key
 * through the threshold (the injected signer: the coordinator's SignService with the caller
 * identity `ocsp-responder`, which the key's client ACL names).
 *
 * Signatures are the scarce resource (each costs a presignature), so:
 * - a response without a nonce is cached per set of CertIDs until shortly before its nextUpdate,
 *   and concurrent queries for the same set share one signing (a burst costs one signature);
 * - a response with a nonce is signed fresh, at most NONCE_RESPONSES_PER_SECOND a second; beyond
 *   that the cached response without the nonce is served (RFC 8954 §2.1 lets a responder omit it);
 * - a cache miss (a new set of CertIDs, e.g. random serials) is signed at most
 *   FRESH_RESPONSES_PER_SECOND a second; beyond that the answer is tryLater, unsigned;
 * - any change of issued.json (issue, revoke) drops the cache, so a revocation shows at once.
 * respond() never throws: every failure is an unsigned OCSP error status.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, type SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { RateLimiter } from '../../policy/rate-limit.js';
import { derFrom } from '../ca/certificate.js';
import { caInitialised, issuedVersion, readCaConfig, readIssued, type CaConfig, type CaPaths, type IssuedCertificate } from '../ca/store.js';
import {
  buildResponseData,
  certIdKey,
  errorResponse,
  namesIssuer,
  OcspRequestError,
  OCSPResponseStatus,
  parseOcspRequest,
  serialHex,
  successfulResponse,
  type CertState,
  type ParsedRequest,
} from './messages.js';

export const NONCE_RESPONSES_PER_SECOND = 5;
export const FRESH_RESPONSES_PER_SECOND = 20;
const MAX_CACHED = 10_000;
/** A cached response is replaced this long before its nextUpdate (at most a quarter of its life). */
const REFRESH_MARGIN_MS = 5 * 60_000;

export type ResponderSigner = (keyId: string, tbs: Uint8Array) => Promise<Uint8Array>;

export interface OcspAnswer {
  der: Uint8Array;
  /** Seconds a cache (HTTP) may keep it; 0: do not cache. */
  maxAgeSeconds: number;
  status: OCSPResponseStatus;
}

interface CaState {
  version: string;
  config: CaConfig;
  issuerName: Uint8Array;
  issuerKey: SubjectPublicKeyInfo;
  responderCert: Uint8Array;
  responderKeyHash: Uint8Array;
  issued: Map<string, IssuedCertificate>;
}

interface Cached {
  answer: Promise<OcspAnswer>;
  refreshAt: number;
}

export interface ResponderLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export class OcspResponder {
  private state: CaState | undefined;
  private readonly cache = new Map<string, Cached>();
  private readonly nonceLimiter: RateLimiter;
  private readonly freshLimiter: RateLimiter;

  constructor(
    private readonly paths: CaPaths,
    private readonly sign: ResponderSigner,
    private readonly log: ResponderLog,
    private readonly now: () => number = Date.now,
  ) {
    const perSecond = (n: number) => new RateLimiter({ perSecond: n, perHour: n * 3600 }, now);
    this.nonceLimiter = perSecond(NONCE_RESPONSES_PER_SECOND);
    this.freshLimiter = perSecond(FRESH_RESPONSES_PER_SECOND);
  }

  async respond(requestDer: Uint8Array): Promise<OcspAnswer> {
    const refuse = (status: Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>): OcspAnswer => ({ der: errorResponse(status), maxAgeSeconds: 0, status });
    let request: ParsedRequest;
    try {
      request = parseOcspRequest(requestDer);
    } catch (e) {
      if (e instanceof OcspRequestError) return refuse(OCSPResponseStatus.malformedRequest);
      throw e;
    }
    let state: CaState | undefined;
    try {
      state = this.current();
    } catch (e) {
      this.log.warn('ocsp: the CA state cannot be read', { error: (e as Error).message });
      return refuse(OCSPResponseStatus.internalError);
    }
    // Not authoritative for anything: no CA, or a certificate of another issuer.
    if (!state || !request.certIds.every((id) => namesIssuer(id, state.issuerName, state.issuerKey))) return refuse(OCSPResponseStatus.unauthorized);
    const entries = request.certIds.map((certId) => ({ certId, state: this.lookup(state, serialHex(certId)) }));
    try {
      if (request.nonce && this.nonceLimiter.take().ok) return { ...(await this.signed(state, entries, request.nonce)), maxAgeSeconds: 0 };
      const answer = this.cached(state, entries);
      if (!answer) return refuse(OCSPResponseStatus.tryLater);
      return await answer;
    } catch (e) {
      this.log.warn('ocsp: signing the response failed', { error: (e as Error).message });
      return refuse(OCSPResponseStatus.tryLater);
    }
  }

  private lookup(state: CaState, serial: string): CertState {
    const cert = state.issued.get(serial);
    if (!cert) return { status: 'unknown' };
    return cert.revoked ? { status: 'revoked', revocation: cert.revoked } : { status: 'good' };
  }

  /** The cached answer, or a new one signed and cached; undefined when too many were signed this second. */
  private cached(state: CaState, entries: { certId: ParsedRequest['certIds'][number]; state: CertState }[]): Promise<OcspAnswer> | undefined {
    const key = entries.map((e) => certIdKey(e.certId)).join(',');
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && hit.refreshAt > now) return hit.answer.then((a) => ({ ...a, maxAgeSeconds: Math.max(0, Math.floor((hit.refreshAt - this.now()) / 1000)) }));
    if (!this.freshLimiter.take().ok) return undefined;
    const validityMs = state.config.ocspValiditySeconds * 1000;
    const entry: Cached = { refreshAt: now + validityMs - Math.min(REFRESH_MARGIN_MS, validityMs / 4), answer: this.signed(state, entries) };
    this.cache.delete(key);
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, entry);
    entry.answer.catch(() => {
      if (this.cache.get(key) === entry) this.cache.delete(key);
    });
    return entry.answer.then((a) => ({ ...a, maxAgeSeconds: Math.max(0, Math.floor((entry.refreshAt - this.now()) / 1000)) }));
  }

  private async signed(state: CaState, entries: { certId: ParsedRequest['certIds'][number]; state: CertState }[], nonce?: Uint8Array): Promise<OcspAnswer> {
    const now = new Date(this.now());
    const data = buildResponseData({
      responderKeyHash: state.responderKeyHash,
      producedAt: now,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + state.config.ocspValiditySeconds * 1000),
      entries,
      ...(nonce ? { nonce } : {}),
    });
    const signature = await this.sign(state.config.responderKey, data);
    return { der: successfulResponse(data, signature, state.responderCert), maxAgeSeconds: 0, status: OCSPResponseStatus.successful };
  }

  /** The CA state, read again (and the cache dropped) whenever issued.json changed. */
  private current(): CaState | undefined {
    const version = issuedVersion(this.paths);
    if (this.state?.version === version) return this.state;
    if (!caInitialised(this.paths)) return undefined;
    const config = readCaConfig(this.paths);
    const root = AsnConvert.parse(derFrom(readFileSync(this.paths.rootCert), 'CERTIFICATE'), Certificate);
    const responderCert = derFrom(readFileSync(this.paths.responderCert), 'CERTIFICATE');
    const responder = AsnConvert.parse(responderCert, Certificate);
    const issued = new Map(readIssued(this.paths).certificates.map((c) => [c.serial, c]));
    this.cache.clear();
    this.state = {
      version,
      config,
      issuerName: new Uint8Array(AsnConvert.serialize(root.tbsCertificate.subject)),
      issuerKey: root.tbsCertificate.subjectPublicKeyInfo,
      responderCert,
      responderKeyHash: new Uint8Array(createHash('sha1').update(new Uint8Array(responder.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey)).digest()),
      issued,
    };
    return this.state;
  }
}
