/**
 * HTTP on 127.0.0.1 only (whatever host cluster.json names); HTTPS when HTTP signing uses mTLS.
 *
 *   GET  /metrics   Prometheus text format (own registry).
 *   GET  /healthz   200 {"status":"ok"|"degraded", audit:{head:{seq,hash}, writable}, signers:{…},
 *                   keys:{…}, conflicts:[…]}; 503 {"status":"unavailable",…} when the audit log
 *                   cannot be written (its latest append failed), or keys exist and none of them can
 *                   reach quorum (no keys yet: 200 "ok"). Per key: healthy holders, its pair conflicts and its subsets
 *                   {total: C(N,T), usable: without a conflicting pair, available: usable with every
 *                   member up and not quarantined}; a key with no available subset has no quorum.
 *   POST /v1/sign   Off unless cluster.json coordinator.httpSign enables it (a bearer token or mTLS
 *                   client certificates: http-access.ts, with the Host and Content-Type checks).
 *                   JSON {key_id, hash | tbs, context?, digest_alg?}
 *                   - hash: the digest, hex (even number of hex digits) or base64; raw-digest policy.
 *                   - tbs: the to-be-signed bytes, base64; classified and checked against the policy.
 *                   - context: optional; if given it must equal what the content is.
 *                   - digest_alg: "sha256" (default), "sha384", "sha512" (also "SHA-256" etc.).
 *                   → 200 {r, s (hex), signature (DER hex), pubkey (compressed hex), quorum, precompute_id (hex),
 *                          timestamp (ms), context, key_id, epoch, audit_seq}
 *                   Errors: {error, message} with 400 invalid input (bad JSON, unknown field, wrong type, bad
 *                   encoding, wrong digest length), 413 body over 64 KiB, 404 unknown key, 403 policy refused,
 *                   409 quorum insufficient, 424 pool depleted (inline presign impossible), 504 deadline
 *                   (10 s), 500 internal; 405 wrong method, 404 unknown path; 404 HTTP signing off,
 *                   421 wrong Host, 401 no or wrong token / client certificate, 403 identity not allowed,
 *                   415 Content-Type not application/json.
 *   /console/*      The operator console, for admin identities only: src/console/routes.ts.
 *   /ct/v1/*        The CT log (RFC 6962), when one is configured: src/ct/http.ts.
 *   POST /ocsp, GET /ocsp/{req}, GET /crl   the CA's OCSP responder and CRL (pki/ocsp/http.ts).
 * Caller identity for policy and audit: "http-token" (token) or the client certificate's CN (mTLS).
 */
import type { AuditLog } from '../audit/log.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { admitSignRequest, allowedHosts, HttpRefusal, type HttpAccess } from './http-access.js';
import type { AdminService } from './admin.js';
import { CONTEXTS } from '../policy/classify.js';
import { asCoordinatorError, CoordinatorError, errorName, httpStatus } from './errors.js';
import type { KeyStore } from './keys.js';
import type { Logger } from './log.js';
import type { CoordinatorMetrics } from './metrics.js';
import type { DigestAlg, SignService } from './sign.js';
import { CT_PREFIX, serveCt } from '../ct/http.js';
import type { CtService } from '../ct/service.js';
import { handleCaRoute, isCaRoute } from '../pki/ocsp/http.js';
import type { OcspResponder } from '../pki/ocsp/responder.js';
import type { CaPaths } from '../pki/ca/store.js';
import { CONSOLE_PREFIX, type ConsoleRoutes } from '../console/routes.js';

export const MAX_BODY_BYTES = 64 * 1024;
/** Bodies beyond this are not even drained: the connection is closed. */
const DRAIN_LIMIT_BYTES = 4 * 1024 * 1024;
export const HTTP_SIGN_DEADLINE_MS = 10_000;

export interface HttpSignRequest {
  keyId: string;
  tbs?: Uint8Array;
  digest?: Uint8Array;
  digestAlg: DigestAlg;
  context?: string;
}

const FIELDS = new Set(['key_id', 'hash', 'tbs', 'context', 'digest_alg']);
const HEX = /^(?:[0-9a-fA-F]{2})+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

const invalid = (message: string): never => {
  throw new CoordinatorError('invalid', message);
};

function decodeBase64(text: string, field: string): Uint8Array {
  if (BASE64.test(text)) return Uint8Array.from(Buffer.from(text, 'base64'));
  if (BASE64URL.test(text) && text.length % 4 !== 1) return Uint8Array.from(Buffer.from(text, 'base64url'));
  return invalid(`${field} is not valid base64`);
}

/** hash: hex when it is an even run of hex digits, else base64. */
function decodeHash(text: string): Uint8Array {
  if (HEX.test(text)) return Uint8Array.from(Buffer.from(text, 'hex'));
  return decodeBase64(text, 'hash (hex or base64)');
}

export function parseDigestAlg(v: unknown): DigestAlg {
  if (v === undefined || v === null) return 'sha256';
  if (typeof v !== 'string') return invalid('digest_alg must be a string');
  const n = v.toLowerCase().replace(/[-_]/g, '');
  if (n === 'sha256' || n === 'sha384' || n === 'sha512') return n;
  return invalid(`digest_alg must be sha256, sha384 or sha512, got '${v.slice(0, 32)}'`);
}

/** Validates a POST /v1/sign body (already read, at most MAX_BODY_BYTES). Throws CoordinatorError('invalid'). */
export function parseSignBody(text: string): HttpSignRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return invalid('body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) invalid('body must be a JSON object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.has(k)) invalid(`unknown field '${k.slice(0, 64)}' (allowed: ${[...FIELDS].join(', ')})`);
  if (typeof o.key_id !== 'string' || o.key_id.length === 0) invalid('key_id (string) is required');
  const hasHash = o.hash !== undefined && o.hash !== null;
  const hasTbs = o.tbs !== undefined && o.tbs !== null;
  if (hasHash === hasTbs) invalid('exactly one of hash / tbs is required');
  const digestAlg = parseDigestAlg(o.digest_alg);
  const out: HttpSignRequest = { keyId: o.key_id as string, digestAlg };
  if (hasHash) {
    if (typeof o.hash !== 'string' || o.hash.length === 0) invalid('hash must be a non-empty hex or base64 string');
    out.digest = decodeHash(o.hash as string);
    const want = { sha256: 32, sha384: 48, sha512: 64 }[digestAlg];
    if (out.digest.length !== want) invalid(`hash must be ${want} bytes for ${digestAlg}, got ${out.digest.length}`);
  } else {
    if (typeof o.tbs !== 'string' || o.tbs.length === 0) invalid('tbs must be a non-empty base64 string');
    out.tbs = decodeBase64(o.tbs as string, 'tbs');
  }
  if (o.context !== undefined && o.context !== null) {
    if (typeof o.context !== 'string' || !(CONTEXTS as readonly string[]).includes(o.context)) invalid(`context must be one of ${CONTEXTS.join(', ')}`);
    out.context = o.context as string;
  }
  return out;
}

export interface HttpDeps {
  sign: SignService;
  admin: AdminService;
  keys: KeyStore;
  audit: Pick<AuditLog, 'head' | 'problem'>;
  metrics: CoordinatorMetrics;
  log: Logger;
  /** The CT log routes (absent: no /ct/v1/ routes). */
  ct?: CtService;
  /** The CA's OCSP responder and CRL (absent: no such routes). */
  ca?: { responder: OcspResponder; paths: CaPaths };
  /** The operator console (absent: no /console routes). */
  console?: ConsoleRoutes;
}

function send(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extraHeaders });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, error: string, message: string, extraHeaders: Record<string, string> = {}): void {
  send(res, status, { error, message }, extraHeaders);
}

/** Reads the body; resolves undefined (after answering 413) when it is too large. */
function readBody(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = Number.isFinite(declared) && declared > MAX_BODY_BYTES;
    const refuse = () => {
      sendError(res, 413, 'payload_too_large', `request body exceeds ${MAX_BODY_BYTES} bytes`, { connection: 'close' });
      resolve(undefined);
    };
    if (Number.isFinite(declared) && declared > DRAIN_LIMIT_BYTES) {
      refuse();
      req.destroy();
      return;
    }
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      if (size > DRAIN_LIMIT_BYTES) {
        refuse();
        req.destroy();
        return;
      }
      if (!tooLarge) chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) refuse();
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

export function healthSummary(d: Pick<HttpDeps, 'admin' | 'keys' | 'audit'>): { status: number; body: Record<string, unknown> } {
  const view = d.admin.status();
  const signers = view.signers;
  const keys: Record<string, unknown> = {};
  let reachable = 0;
  const list = d.keys.list();
  const conflictWire = (c: (typeof view.conflicts)[number]) => ({ key_id: c.keyId, a: c.a, b: c.b, reported_by: c.reportedBy, reason: c.reason });
  for (const k of list) {
    const healthy = k.signers.filter((i) => signers.find((s) => s.index === i && s.up && !s.quarantined));
    const subsets = view.subsets.find((x) => x.keyId === k.id);
    const usable = subsets?.usable ?? [];
    const available = usable.filter((s) => s.every((i) => healthy.includes(i))).length;
    const quorum = healthy.length >= k.threshold && available > 0;
    if (quorum) reachable++;
    keys[k.id] = {
      threshold: k.threshold,
      signers: k.signers,
      healthy,
      quorum,
      conflicts: view.conflicts.filter((c) => c.keyId === k.id).map(conflictWire),
      subsets: { total: subsets?.total ?? 0, usable: usable.length, available },
    };
  }
  // Nothing is signed without its audit record: an audit log that cannot be written is no service.
  const auditProblem = d.audit.problem();
  const status = auditProblem !== undefined ? 'unavailable' : list.length === 0 || reachable === list.length ? 'ok' : reachable > 0 ? 'degraded' : 'unavailable';
  return {
    status: status === 'unavailable' ? 503 : 200,
    body: {
      status,
      audit: { head: d.audit.head(), writable: auditProblem === undefined, ...(auditProblem !== undefined ? { problem: auditProblem } : {}) },
      signers: {
        up: signers.filter((s) => s.up).map((s) => s.index),
        healthy: signers.filter((s) => s.up && !s.quarantined).map((s) => s.index),
        quarantined: signers.filter((s) => s.quarantined).map((s) => s.index),
      },
      keys,
      conflicts: view.conflicts.map(conflictWire),
    },
  };
}

export interface HttpOptions {
  /** Who may use POST /v1/sign (default off). */
  access?: HttpAccess;
  /** Extra names accepted in the Host header of POST /v1/sign. */
  hosts?: readonly string[];
  /** The coordinator's identity: required with access mode mtls (the listener speaks HTTPS). */
  tls?: { key: Buffer; cert: Buffer; ca: Buffer };
}

export function newHttpServer(d: HttpDeps, options: HttpOptions = {}): Server {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const access: HttpAccess = options.access ?? { mode: 'off' };
  const https = access.mode === 'mtls';
  if (https && !options.tls) throw new Error('HTTP signing with mTLS needs the coordinator identity');
  let hosts: Set<string> | undefined;
  const hostsNow = () => (hosts ??= allowedHosts((server.address() as AddressInfo).port, options.hosts, https));
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = (req.url ?? '/').split('?')[0];
      try {
        if (url === '/metrics') {
          if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'method_not_allowed', 'use GET', { allow: 'GET' });
          const text = await d.metrics.text();
          res.writeHead(200, { 'content-type': d.metrics.contentType });
          res.end(text);
          return;
        }
        if (url === '/healthz') {
          if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'method_not_allowed', 'use GET', { allow: 'GET' });
          const h = healthSummary(d);
          return send(res, h.status, h.body);
        }
        if (d.ca && isCaRoute(url!)) return await handleCaRoute(req, res, url!, d.ca.responder, d.ca.paths);
        if (url === '/v1/sign') {
          // Off: 404 whatever the method.
          if (access.mode !== 'off' && req.method !== 'POST') return sendError(res, 405, 'method_not_allowed', 'use POST', { allow: 'POST' });
          let caller: string;
          try {
            caller = admitSignRequest(req, access, hostsNow());
          } catch (e) {
            if (!(e instanceof HttpRefusal)) throw e;
            // Never the Authorization header; the Host as sent (bounded), it is no secret.
            d.log[e.status === 404 ? 'debug' : 'warn']('http sign refused', { status: e.status, reason: e.reason, remote: req.socket.remoteAddress, host: req.headers.host?.slice(0, 100) });
            const extra: Record<string, string> = { connection: 'close' };
            if (e.status === 401 && access.mode === 'token') extra['www-authenticate'] = 'Bearer realm="quorumkey"';
            return sendError(res, e.status, e.error, e.message, extra);
          }
          const text = await readBody(req, res);
          if (text === undefined) return;
          const body = parseSignBody(text);
          const out = await d.sign.sign({
            keyId: body.keyId,
            tbs: body.tbs,
            digest: body.digest,
            digestAlg: body.digestAlg,
            caller,
            claimedContext: body.context,
            deadline: Date.now() + HTTP_SIGN_DEADLINE_MS,
          });
          return send(res, 200, {
            r: hex(out.r),
            s: hex(out.s),
            signature: hex(out.signatureDer),
            pubkey: hex(out.publicKey),
            quorum: out.quorum,
            precompute_id: hex(out.presignatureId),
            timestamp: out.timestampMs,
            context: out.context,
            key_id: out.keyId,
            epoch: out.epoch,
            audit_seq: out.auditSeq,
          });
        }
        if (d.console && (url === CONSOLE_PREFIX || url.startsWith(`${CONSOLE_PREFIX}/`))) return await d.console.serve(req, res, url, hostsNow(), https);
        if (d.ct && url?.startsWith(CT_PREFIX)) return await serveCt(req, res, url, d.ct, { readBody, send, sendError });
        return sendError(res, 404, 'not_found', `no route ${req.method} ${url?.slice(0, 200)}`);
      } catch (e) {
        const err = asCoordinatorError(e);
        if (err.kind === 'internal') d.log.error('http request failed', { path: url, message: err.message });
        if (!res.headersSent) sendError(res, httpStatus(err.kind), errorName(err.kind), err.message);
        else res.destroy();
      }
    })();
  };
  // mTLS: the certificate is asked for but not required by the handshake, so /metrics and
  // /healthz stay open and POST /v1/sign answers 401 with a reason instead of a TLS alert.
  const server: Server = https
    ? (createHttpsServer({ key: options.tls!.key, cert: options.tls!.cert, ca: options.tls!.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handler) as unknown as Server)
    : createServer(handler);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  return server;
}
