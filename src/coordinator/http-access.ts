/**
 * Who may use POST /v1/sign (http.ts): the door's configuration and its checks.
 *
 * - off (the default): POST /v1/sign answers 404; /metrics and /healthz are served as always.
 * - token: `Authorization: Bearer <token>`, compared in constant time with the token read once at
 *   start from a file that must be a regular file of the coordinator's user with mode 0600 (0400
 *   too: no bit for group or others); caller identity `http-token`.
 * - mtls: the listener speaks HTTPS with the coordinator's certificate and asks for a client
 *   certificate of the cluster CA; POST /v1/sign needs a verified one, caller identity = its CN
 *   (signer identities are refused). /metrics and /healthz do not need one.
 *
 * Every POST /v1/sign must also name this listener in its Host header (127.0.0.1:<port>,
 * localhost:<port> or a configured name: a page on another site that rebinds its DNS name to
 * 127.0.0.1 sends its own name) and carry `Content-Type: application/json` (what an HTML form can
 * send without a CORS preflight is urlencoded, multipart or text/plain). Refusals: 421 wrong Host,
 * 401 no or wrong credentials, 403 identity not allowed, 415 wrong Content-Type — checked in that
 * order, before the body is read. The token never appears in a log line or an answer.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, constants as fsc } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isAbsolute, resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { HttpSignConfig } from '../cluster/config.js';

export const HTTP_TOKEN_CALLER = 'http-token';
/** Shortest token accepted (characters). */
export const MIN_TOKEN_LENGTH = 32;
const MAX_TOKEN_FILE_BYTES = 4096;

export type HttpAccess =
  | { mode: 'off' }
  | { mode: 'token'; tokenFile: string; digest: Buffer }
  | { mode: 'mtls' };

export class HttpRefusal extends Error {
  constructor(
    readonly status: 401 | 403 | 404 | 415 | 421,
    readonly error: string,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

/**
 * Reads the bearer token. Refuses (throws, naming the file) a file that is not a regular file, is
 * readable or writable by group or others, or belongs to another user; a token shorter than
 * MIN_TOKEN_LENGTH or with characters outside visible ASCII.
 */
export function loadTokenFile(file: string, what = 'HTTP sign token file'): Buffer {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${what} ${file}: ${code === 'ENOENT' ? 'does not exist' : code === 'ELOOP' ? 'is a symbolic link' : `cannot be opened (${code})`}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${what} ${file} is not a regular file`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0 || (mode & 0o400) === 0) {
      throw new Error(`${what} ${file} has mode 0${mode.toString(8)}; it must be 0600 (chmod 600 ${file})`);
    }
    const uid = process.geteuid?.();
    if (uid !== undefined && st.uid !== uid) throw new Error(`${what} ${file} belongs to uid ${st.uid}, not to the coordinator's user (uid ${uid})`);
    if (st.size > MAX_TOKEN_FILE_BYTES) throw new Error(`${what} ${file} is larger than ${MAX_TOKEN_FILE_BYTES} bytes`);
    const buf = Buffer.alloc(MAX_TOKEN_FILE_BYTES);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const token = buf.subarray(0, n).toString('latin1').replace(/[\r\n]+$/, '');
    buf.fill(0);
    if (!/^[\x21-\x7e]*$/.test(token)) throw new Error(`${what} ${file}: the token must be one line of visible ASCII characters`);
    if (token.length < MIN_TOKEN_LENGTH) throw new Error(`${what} ${file}: the token is shorter than ${MIN_TOKEN_LENGTH} characters`);
    return sha256(token);
  } finally {
    closeSync(fd);
  }
}

/** The door's configuration from cluster.json, with the token loaded. */
export function httpAccessFrom(config: HttpSignConfig | undefined, clusterDir: string): HttpAccess {
  const mode = config?.mode ?? 'off';
  if (mode === 'off') return { mode: 'off' };
  if (mode === 'mtls') return { mode: 'mtls' };
  if (mode === 'token') {
    const file = (config as { tokenFile?: unknown }).tokenFile;
    if (typeof file !== 'string' || !file) throw new Error('cluster.json: coordinator.httpSign.tokenFile is required with mode "token"');
    const path = isAbsolute(file) ? file : resolve(clusterDir, file);
    return { mode: 'token', tokenFile: path, digest: loadTokenFile(path) };
  }
  throw new Error(`cluster.json: coordinator.httpSign.mode must be "off", "token" or "mtls", got ${JSON.stringify(mode)}`);
}

/** The Host values that name this listener. */
export function allowedHosts(port: number, names: readonly string[] | undefined, tls: boolean): Set<string> {
  const out = new Set<string>();
  const defaultPort = tls ? 443 : 80;
  for (const raw of ['127.0.0.1', 'localhost', ...(names ?? [])]) {
    const name = raw.trim().toLowerCase();
    if (!name) continue;
    if (/:\d+$/.test(name)) out.add(name);
    else {
      out.add(`${name}:${port}`);
      if (port === defaultPort) out.add(name);
    }
  }
  return out;
}

export function checkHost(req: IncomingMessage, hosts: Set<string>): void {
  const host = req.headers.host;
  if (!host) throw new HttpRefusal(421, 'misdirected_request', 'no-host', 'the request has no Host header');
  if (!hosts.has(host.toLowerCase().replace(/\.(?=:\d+$)|\.$/, ''))) {
    throw new HttpRefusal(421, 'misdirected_request', 'wrong-host', `Host '${host.slice(0, 100)}' is not this listener (accepted: ${[...hosts].join(', ')})`);
  }
}

function checkContentType(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpRefusal(415, 'unsupported_media_type', 'content-type', `Content-Type must be application/json, got '${type.slice(0, 60) || '(none)'}'`);
  }
}

function tokenCaller(req: IncomingMessage, digest: Buffer): string {
  const auth = req.headers.authorization;
  if (!auth) throw new HttpRefusal(401, 'unauthorized', 'no-token', 'a bearer token is required (Authorization: Bearer <token>)');
  const m = /^Bearer +(\S+) *$/i.exec(auth);
  if (!m) throw new HttpRefusal(401, 'unauthorized', 'not-bearer', 'the Authorization header must be "Bearer <token>"');
  // Constant time: both sides are hashed to 32 bytes first, so neither the content nor the
  // length of the expected token shapes the comparison.
  if (!timingSafeEqual(sha256(m[1]!), digest)) throw new HttpRefusal(401, 'unauthorized', 'wrong-token', 'the bearer token is not valid');
  return HTTP_TOKEN_CALLER;
}

function certificateCaller(req: IncomingMessage): string {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted) throw new HttpRefusal(401, 'unauthorized', 'no-tls', 'HTTPS with a client certificate is required');
  if (!socket.authorized) {
    const why = socket.authorizationError ? ` (${String(socket.authorizationError).slice(0, 80)})` : '';
    throw new HttpRefusal(401, 'unauthorized', 'no-certificate', `a client certificate of the cluster CA is required${why}`);
  }
  const cn = socket.getPeerCertificate()?.subject?.CN;
  if (typeof cn !== 'string' || !cn) throw new HttpRefusal(401, 'unauthorized', 'no-cn', 'the client certificate has no single common name');
  if (cn.startsWith('signer-')) throw new HttpRefusal(403, 'forbidden', 'identity', `identity '${cn}' may not request signatures`);
  return cn;
}

/**
 * Checks a POST /v1/sign before its body is read; returns the caller identity for the sign
 * service, or throws HttpRefusal.
 */
export function admitSignRequest(req: IncomingMessage, access: HttpAccess, hosts: Set<string>): string {
  if (access.mode === 'off') {
    throw new HttpRefusal(404, 'not_found', 'off', 'HTTP signing is off (cluster.json coordinator.httpSign; quorumkey up --http-sign token|mtls)');
  }
  checkHost(req, hosts);
  const caller = access.mode === 'token' ? tokenCaller(req, access.digest) : certificateCaller(req);
  checkContentType(req);
  return caller;
}
