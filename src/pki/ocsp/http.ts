/**
 * The CA's HTTP routes on the coordinator's listener (mounted by coordinator/http.ts). Public by
 * nature, like every OCSP responder and CRL distribution point: they answer about certificates,
 * sign only OCSP responses (through the responder key's policy and ACL), and take no secret.
 *
 *   POST /ocsp            body: DER OCSPRequest (Content-Type application/ocsp-request), at most 16 KiB
 *   GET  /ocsp/{request}  RFC 6960 Appendix A.1: the URL-encoded base64 of the DER OCSPRequest
 *   GET  /crl             the latest CRL (DER, application/pkix-crl), as `quorumkey crl` made it
 *
 * OCSP answers are application/ocsp-response; errors inside OCSP are OCSP error statuses (HTTP
 * 200), errors of HTTP itself (method, size, encoding) are HTTP errors.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CaPaths } from '../ca/store.js';
import type { OcspResponder } from './responder.js';

export const MAX_OCSP_REQUEST_BYTES = 16 * 1024;

export function isCaRoute(path: string): boolean {
  return path === '/ocsp' || path.startsWith('/ocsp/') || path === '/crl';
}

function plain(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(`${message}\n`);
}

function readRaw(req: IncomingMessage): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_OCSP_REQUEST_BYTES) {
        resolve(undefined);
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function decodeGetRequest(tail: string): Uint8Array | undefined {
  let text: string;
  try {
    text = decodeURIComponent(tail);
  } catch {
    return undefined;
  }
  if (text.length === 0 || text.length > (MAX_OCSP_REQUEST_BYTES * 4) / 3 + 4 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64'));
}

export async function handleCaRoute(req: IncomingMessage, res: ServerResponse, path: string, responder: OcspResponder, paths: CaPaths): Promise<void> {
  if (path === '/crl') {
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'use GET', { allow: 'GET' });
    const crl = await readFile(paths.crlDer).catch(() => undefined);
    if (!crl) return plain(res, 404, "no CRL yet: run 'quorumkey crl'");
    res.writeHead(200, { 'content-type': 'application/pkix-crl', 'content-length': crl.length, 'cache-control': 'no-cache' });
    return void res.end(crl);
  }
  let request: Uint8Array | undefined;
  if (req.method === 'POST' && path === '/ocsp') {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/ocsp-request') return plain(res, 415, 'Content-Type must be application/ocsp-request');
    request = await readRaw(req);
    if (!request) return plain(res, 413, `an OCSP request is at most ${MAX_OCSP_REQUEST_BYTES} bytes`, { connection: 'close' });
  } else if (req.method === 'GET' && path.startsWith('/ocsp/')) {
    // The raw path: base64 may hold '/', which a client sends as is or as %2F.
    request = decodeGetRequest((req.url ?? '').split('?')[0]!.slice('/ocsp/'.length));
    if (!request) return plain(res, 400, 'GET /ocsp/{url-encoded base64 of the DER OCSPRequest}');
  } else {
    return plain(res, 405, 'POST /ocsp (application/ocsp-request) or GET /ocsp/{base64 request}', { allow: path === '/ocsp' ? 'POST' : 'GET' });
  }
  const answer = await responder.respond(request);
  res.writeHead(200, {
    'content-type': 'application/ocsp-response',
    'content-length': answer.der.length,
    'cache-control': answer.maxAgeSeconds > 0 ? `max-age=${answer.maxAgeSeconds}, public, no-transform, must-revalidate` : 'no-store',
  });
  res.end(answer.der);
}
