/**
 * The CT log's HTTP API (RFC 6962 §4) on the coordinator's HTTP listener:
 *   POST /ct/v1/add-chain      {"chain": [base64 DER, …]}  → {sct_version, id, timestamp, extensions, signature}
 *   POST /ct/v1/add-pre-chain  {"chain": [precertificate, issuer, …]} → the same
 *   GET  /ct/v1/get-sth        → {tree_size, timestamp, sha256_root_hash, tree_head_signature}
 *   GET  /ct/v1/get-roots      → {certificates: [base64 DER, …]}
 *   GET  /ct/v1/get-entries?start=N&end=M → {entries: [{leaf_input, extra_data}, …]} (at most 256)
 * Like any CT log the door is open: a submission is authorised by its chain (it must end at an
 * accepted root, so the log only vouches for what an accepted CA already signed) and a
 * resubmission costs no signature; the log key's rate limit bounds the rest. Errors are
 * {error, message}: 400 malformed JSON / base64 / DER, a chain that does not validate or an entry
 * range outside the tree, 404 no
 * log configured, 405 wrong method, 413 body too large; signing errors as POST /v1/sign has them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CoordinatorError } from '../coordinator/errors.js';
import { ChainError, MAX_CHAIN_CERTIFICATES } from './chain.js';
import { CtConfigError } from './config.js';
import { CtLogRangeError } from './log.js';
import { LogStoreError } from './log-store.js';
import { PrecertError } from './precert.js';
import type { CtService } from './service.js';
import { encodeDigitallySigned, type Sct } from './structures.js';
import { TlsDecodeError } from './tls-encoding.js';

export const CT_PREFIX = '/ct/v1/';

/** The coordinator's HTTP helpers the routes answer with. */
export interface HttpIo {
  readBody(req: IncomingMessage, res: ServerResponse): Promise<string | undefined>;
  send(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void;
  sendError(res: ServerResponse, status: number, error: string, message: string, headers?: Record<string, string>): void;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const invalid = (message: string): never => {
  throw new CoordinatorError('invalid', message);
};

/** Validates an add-chain / add-pre-chain body: exactly {"chain": [non-empty base64, …]}. */
export function parseChainBody(text: string): Uint8Array[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return invalid('body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) invalid('body must be a JSON object {"chain": [...]}');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'chain') invalid(`unknown field '${k.slice(0, 64)}' (allowed: chain)`);
  if (!Array.isArray(o.chain)) return invalid('chain (an array of base64 DER certificates) is required');
  if (o.chain.length === 0 || o.chain.length > MAX_CHAIN_CERTIFICATES) invalid(`chain must hold 1 to ${MAX_CHAIN_CERTIFICATES} certificates, got ${o.chain.length}`);
  return o.chain.map((c, k) => {
    if (typeof c !== 'string' || c.length === 0 || !BASE64.test(c)) return invalid(`chain[${k}] is not a base64 string`);
    return Uint8Array.from(Buffer.from(c, 'base64'));
  });
}

export function sctJson(sct: Sct): Record<string, unknown> {
  return { sct_version: 0, id: b64(sct.logId), timestamp: sct.timestamp, extensions: b64(sct.extensions), signature: b64(encodeDigitallySigned(sct.signature)) };
}

const ROUTES: Record<string, 'GET' | 'POST'> = { 'add-chain': 'POST', 'add-pre-chain': 'POST', 'get-sth': 'GET', 'get-roots': 'GET', 'get-entries': 'GET' };
const INDEX = /^(?:0|[1-9]\d{0,15})$/;

/** get-entries' start and end: decimal indices, both required. */
export function parseEntryRange(query: URLSearchParams): { start: number; end: number } {
  const index = (name: string): number => {
    const v = query.get(name);
    if (v === null || !INDEX.test(v) || !Number.isSafeInteger(Number(v))) return invalid(`${name} must be a decimal entry index`);
    return Number(v);
  };
  return { start: index('start'), end: index('end') };
}

/** Answers a request whose path starts with CT_PREFIX. */
export async function serveCt(req: IncomingMessage, res: ServerResponse, path: string, ct: CtService, io: HttpIo): Promise<void> {
  const name = path.slice(CT_PREFIX.length);
  const method = Object.hasOwn(ROUTES, name) ? ROUTES[name] : undefined;
  if (!method) return io.sendError(res, 404, 'not_found', `no CT route ${path.slice(0, 200)} (${Object.keys(ROUTES).join(', ')})`);
  if (req.method !== method && !(method === 'GET' && req.method === 'HEAD')) return io.sendError(res, 405, 'method_not_allowed', `use ${method}`, { allow: method });
  let log;
  try {
    log = await ct.front();
  } catch (e) {
    // A bad ct.json or a damaged entries file: the log is unavailable until the operator acts.
    if (e instanceof CtConfigError || e instanceof LogStoreError) return io.sendError(res, 503, 'unavailable', e.message);
    throw e;
  }
  if (!log) return io.sendError(res, 404, 'not_found', "no CT log on this coordinator: configure one with 'quorumkey ct init'");
  if (name === 'get-roots') return io.send(res, 200, { certificates: log.roots.map((r) => b64(r.raw)) });
  if (name === 'get-entries') {
    const { start, end } = parseEntryRange(new URL(req.url ?? '/', 'http://log').searchParams);
    let entries;
    try {
      entries = log.entries(start, end);
    } catch (e) {
      if (e instanceof CtLogRangeError) invalid(e.message);
      throw e;
    }
    return io.send(res, 200, { entries: entries.map((e) => ({ leaf_input: b64(e.leafInput), extra_data: b64(e.extraData) })) });
  }
  if (name === 'get-sth') {
    const head = await log.treeHead();
    return io.send(res, 200, { tree_size: head.treeSize, timestamp: head.timestamp, sha256_root_hash: b64(head.rootHash), tree_head_signature: b64(encodeDigitallySigned(head.signature)) });
  }
  const text = await io.readBody(req, res);
  if (text === undefined) return;
  const chain = parseChainBody(text);
  let sct: Sct;
  try {
    sct = await log.submit(chain, name === 'add-pre-chain');
  } catch (e) {
    if (e instanceof ChainError || e instanceof PrecertError || e instanceof TlsDecodeError || e instanceof RangeError) invalid(e.message);
    throw e;
  }
  return io.send(res, 200, sctJson(sct));
}
