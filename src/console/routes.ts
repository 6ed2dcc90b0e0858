/**
 * The console's routes on the coordinator's HTTP listener (all GET but the login):
 *
 *   /console, /console/keys, /console/pools, /console/audit   the pages (HTML)
 *   /console/api/snapshot                                       the same data as JSON
 *   /console/assets/console.js, /console/assets/console.css     the only script and stylesheet
 *   GET /console/login (the sign-in form, no data); POST /console/login (token → session cookie)
 *
 * Everything but the sign-in form needs an admin identity (access.ts): 401 / 403 / 421 otherwise.
 * Every answer carries a strict Content-Security-Policy (own script and style only, nothing
 * inline, no framing) and is not cached.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { HttpRefusal } from '../coordinator/http-access.js';
import type { Logger } from '../coordinator/log.js';
import { ConsoleAccess } from './access.js';
import { PAGES, pagePath, renderLogin, renderPage, type PageName } from './render.js';
import { takeSnapshot, type SnapshotDeps } from './snapshot.js';

export const CONSOLE_PREFIX = '/console';
const MAX_LOGIN_BODY = 4096;

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // same-origin, not no-referrer: with no-referrer a form POST carries "Origin: null".
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

// Shipped beside the sources (tsc does not copy them): <package>/src/console/assets.
const ASSET_DIR = new URL('../../../src/console/assets/', import.meta.url);
const ASSETS: Record<string, { type: string; file: string }> = {
  '/console/assets/console.js': { type: 'text/javascript; charset=utf-8', file: 'console.js' },
  '/console/assets/console.css': { type: 'text/css; charset=utf-8', file: 'console.css' },
};

const PAGE_BY_PATH = new Map<string, PageName>(PAGES.map((p) => [pagePath(p), p]));
PAGE_BY_PATH.set('/console/', 'cluster');

export interface ConsoleDeps extends SnapshotDeps {
  access: ConsoleAccess;
  log: Logger;
}

export class ConsoleRoutes {
  private readonly assets = new Map<string, Buffer>();

  constructor(private readonly d: ConsoleDeps) {
    for (const [path, a] of Object.entries(ASSETS)) this.assets.set(path, readFileSync(fileURLToPath(new URL(a.file, ASSET_DIR))));
  }

  /** Answers a request under /console. `hosts`: the Host values naming this listener. */
  async serve(req: IncomingMessage, res: ServerResponse, url: string, hosts: Set<string>, secure: boolean): Promise<void> {
    const send = (status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
      res.writeHead(status, { ...HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const html = 'text/html; charset=utf-8';
    if (url === '/console/login') {
      if (req.method === 'GET' || req.method === 'HEAD') return send(200, html, renderLogin());
      if (req.method !== 'POST') return send(405, 'text/plain', 'use GET or POST\n', { allow: 'GET, POST' });
      return this.login(req, hosts, secure, send);
    }
    let caller: string;
    try {
      caller = this.d.access.admit(req, hosts);
    } catch (e) {
      if (!(e instanceof HttpRefusal)) throw e;
      this.d.log.warn('console refused', { status: e.status, reason: e.reason, path: url.slice(0, 100), remote: req.socket.remoteAddress });
      if (url.startsWith('/console/api/')) return send(e.status, 'application/json', JSON.stringify({ error: e.error, message: e.message }) + '\n');
      return send(e.status, html, renderLogin(e.message));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'the console is read-only: use GET\n', { allow: 'GET' });
    const asset = ASSETS[url];
    if (asset) return send(200, asset.type, this.assets.get(url)!);
    if (url === '/console/api/snapshot') return send(200, 'application/json', JSON.stringify(await takeSnapshot(this.d)) + '\n');
    const page = PAGE_BY_PATH.get(url);
    if (page) return send(200, html, renderPage(page, await takeSnapshot(this.d), caller));
    return send(404, 'text/plain', `no console page ${url.slice(0, 100)}\n`);
  }

  private async login(req: IncomingMessage, hosts: Set<string>, secure: boolean, send: (status: number, type: string, body: string, extra?: Record<string, string>) => void): Promise<void> {
    const html = 'text/html; charset=utf-8';
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') return send(415, html, renderLogin('the login form must be sent as application/x-www-form-urlencoded'));
    const body = await readSmallBody(req);
    if (body === undefined) return send(413, html, renderLogin(`the login form is larger than ${MAX_LOGIN_BODY} bytes`), { connection: 'close' });
    try {
      const session = this.d.access.login(req, hosts, new URLSearchParams(body).get('token') ?? '');
      this.d.log.info('console login', { remote: req.socket.remoteAddress });
      return send(303, 'text/plain', 'signed in\n', { location: '/console', 'set-cookie': ConsoleAccess.cookie(session, secure) });
    } catch (e) {
      if (!(e instanceof HttpRefusal)) throw e;
      this.d.log.warn('console login refused', { status: e.status, reason: e.reason, remote: req.socket.remoteAddress });
      return send(e.status, html, renderLogin(e.message));
    }
  }
}

/** The body, or undefined when it is larger than MAX_LOGIN_BODY (read on, up to 64 KiB, so that the answer can be sent). */
function readSmallBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024) req.destroy();
      else if (size <= MAX_LOGIN_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_LOGIN_BODY ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
