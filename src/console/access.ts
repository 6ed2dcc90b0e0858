/**
 * Who may open the console: the same people as the Admin API, never anyone else.
 *
 * - An admin client certificate of the cluster CA (CN "admin" or "admin-*"), when the HTTP
 *   listener speaks HTTPS (`up --http-sign mtls`). A verified certificate of any other identity
 *   (the provider, a signer, an HTTP sign client) is refused with 403, whatever else is sent.
 * - The console token (<dir>/coordinator/console.token, mode 0600, made by the coordinator on its
 *   first start): as `Authorization: Bearer <token>` (scripts), or given once to POST
 *   /console/login, which answers with a session cookie (HttpOnly, SameSite=Strict, path
 *   /console) for browsers.
 *
 * Every request must also name this listener in its Host header (no DNS rebinding), and a login
 * must come from a page of this origin (Origin / Sec-Fetch-Site). The token and session ids never
 * appear in a log line or an answer; sessions live in memory (a restart signs everyone out).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { isAdminIdentity } from '../coordinator/grpc.js';
import { checkHost, HttpRefusal, loadTokenFile } from '../coordinator/http-access.js';
import { writeFileAtomic } from '../storage/atomic-write.js';

export const CONSOLE_TOKEN_CALLER = 'console-token';
export const SESSION_COOKIE = 'qk_console';
const SESSION_TTL_MS = 8 * 3600_000;
const MAX_SESSIONS = 64;

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

/** The console token's file in a cluster directory. */
export const consoleTokenFile = (coordinatorDir: string) => join(coordinatorDir, 'console.token');

/** Makes the token file (random, 0600, atomically) unless it exists; returns its digest. */
export async function ensureConsoleToken(file: string): Promise<Buffer> {
  if (!existsSync(file)) await writeFileAtomic(file, Buffer.from(randomBytes(32).toString('base64url') + '\n'), 0o600);
  return loadTokenFile(file, 'console token file');
}

export class ConsoleAccess {
  /** sha256(session id) → expiry (ms). */
  private readonly sessions = new Map<string, number>();

  constructor(
    private readonly tokenDigest: Buffer,
    private readonly now: () => number = Date.now,
  ) {}

  private tokenMatches(token: string): boolean {
    // Both sides hashed to 32 bytes first: constant time whatever the lengths.
    return timingSafeEqual(sha256(token), this.tokenDigest);
  }

  /** The caller of a console request, or throws HttpRefusal (401 no credentials, 403 wrong identity, 421 wrong Host). */
  admit(req: IncomingMessage, hosts: Set<string>): string {
    checkHost(req, hosts);
    const fromCertificate = certificateIdentity(req);
    if (fromCertificate !== undefined) {
      if (!isAdminIdentity(fromCertificate)) throw new HttpRefusal(403, 'forbidden', 'identity', `identity '${fromCertificate}' may not open the console (an admin certificate may)`);
      return fromCertificate;
    }
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer +(\S+) *$/i.exec(auth);
      if (!m || !this.tokenMatches(m[1]!)) throw new HttpRefusal(401, 'unauthorized', 'wrong-token', 'the console token is not valid');
      return CONSOLE_TOKEN_CALLER;
    }
    const session = sessionCookie(req);
    if (session !== undefined && this.sessionValid(session)) return CONSOLE_TOKEN_CALLER;
    throw new HttpRefusal(401, 'unauthorized', 'no-credentials', 'sign in at /console/login with the console token, or use an admin client certificate');
  }

  /** Checks a login (token from the form) and returns a new session id, or throws HttpRefusal. */
  login(req: IncomingMessage, hosts: Set<string>, token: string): string {
    checkHost(req, hosts);
    const site = req.headers['sec-fetch-site'];
    const origin = req.headers.origin;
    const host = req.headers.host ?? '';
    if ((site !== undefined && site !== 'same-origin' && site !== 'none') || (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`)) {
      throw new HttpRefusal(403, 'forbidden', 'cross-site', 'a console login must come from the console login page');
    }
    if (!this.tokenMatches(token)) throw new HttpRefusal(401, 'unauthorized', 'wrong-token', 'the console token is not valid');
    this.expire();
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(sha256(id).toString('hex'), this.now() + SESSION_TTL_MS);
    return id;
  }

  /** The Set-Cookie value for a new session. */
  static cookie(session: string, secure: boolean): string {
    return `${SESSION_COOKIE}=${session}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}${secure ? '; Secure' : ''}`;
  }

  private sessionValid(id: string): boolean {
    const key = sha256(id).toString('hex');
    const expiry = this.sessions.get(key);
    if (expiry === undefined) return false;
    if (expiry <= this.now()) {
      this.sessions.delete(key);
      return false;
    }
    return true;
  }

  private expire(): void {
    const t = this.now();
    for (const [k, expiry] of this.sessions) if (expiry <= t) this.sessions.delete(k);
  }
}

/** The CN of a verified client certificate; undefined when none was presented. 401 for one that did not verify. */
function certificateIdentity(req: IncomingMessage): string | undefined {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted) return undefined;
  const peer = socket.getPeerCertificate();
  if (!peer || Object.keys(peer).length === 0) return undefined;
  if (!socket.authorized) throw new HttpRefusal(401, 'unauthorized', 'bad-certificate', 'the client certificate is not one of the cluster CA');
  const cn = peer.subject?.CN;
  if (typeof cn !== 'string' || !cn) throw new HttpRefusal(401, 'unauthorized', 'no-cn', 'the client certificate has no single common name');
  return cn;
}

function sessionCookie(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === SESSION_COOKIE) return rest.join('=');
  }
  return undefined;
}
