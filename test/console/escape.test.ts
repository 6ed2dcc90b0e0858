/** The console's template escaping and its token / session checks, without a server. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleAccess, ensureConsoleToken, SESSION_COOKIE } from '../../src/console/access.js';
import { HttpRefusal } from '../../src/coordinator/http-access.js';
import { html } from '../../src/console/html.js';

const HOSTS = new Set(['127.0.0.1:8080']);
const request = (headers: Record<string, string>) => ({ headers: { host: '127.0.0.1:8080', ...headers }, socket: { encrypted: false } }) as unknown as IncomingMessage;
const refusal = (f: () => unknown): number => {
  try {
    f();
  } catch (e) {
    if (e instanceof HttpRefusal) return e.status;
    throw e;
  }
  return 0;
};

describe('console: escaping', () => {
  it('escapes every interpolated value, in text and in attributes, but not nested templates', () => {
    const hostile = `<script>alert("x")</script>' onload='x' &amp;`;
    const out = html`<p title="${hostile}">${hostile}${[html`<b>${hostile}</b>`]}</p>`.text;
    assert.ok(!out.includes('<script>') && !out.includes(`'x'`) && !out.includes('"x"'), out);
    assert.equal(out.match(/&lt;script&gt;/g)?.length, 3);
    assert.ok(out.includes('<b>') && out.includes('&amp;amp;'));
  });
});

describe('console: access', () => {
  let dir: string;
  let token: string;
  let digest: Buffer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qk-console-token-'));
    digest = await ensureConsoleToken(join(dir, 'console.token'));
    token = readFileSync(join(dir, 'console.token'), 'utf8').trim();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('makes the token once, 0600, and refuses a file others can read', async () => {
    assert.ok(token.length >= 32);
    assert.deepEqual(await ensureConsoleToken(join(dir, 'console.token')), digest);
    chmodSync(join(dir, 'console.token'), 0o644);
    await assert.rejects(ensureConsoleToken(join(dir, 'console.token')), /console token file .* has mode 0644; it must be 0600/);
    chmodSync(join(dir, 'console.token'), 0o600);
  });

  it('admits the bearer token and a session from a same-origin login, until the session expires', () => {
    let now = 1_000_000;
    const access = new ConsoleAccess(digest, () => now);
    assert.equal(refusal(() => access.admit(request({}), HOSTS)), 401);
    assert.equal(refusal(() => access.admit(request({ authorization: 'Bearer wrong' }), HOSTS)), 401);
    assert.equal(access.admit(request({ authorization: `Bearer ${token}` }), HOSTS), 'console-token');
    assert.equal(refusal(() => access.admit(request({ host: 'evil.example', authorization: `Bearer ${token}` }), HOSTS)), 421);
    assert.equal(refusal(() => access.login(request({ origin: 'http://evil.example' }), HOSTS, token)), 403);
    assert.equal(refusal(() => access.login(request({ 'sec-fetch-site': 'cross-site' }), HOSTS, token)), 403);
    assert.equal(refusal(() => access.login(request({ origin: 'http://127.0.0.1:8080' }), HOSTS, 'wrong')), 401);
    const session = access.login(request({ origin: 'http://127.0.0.1:8080', 'sec-fetch-site': 'same-origin' }), HOSTS, token);
    const cookie = { cookie: `other=1; ${SESSION_COOKIE}=${session}` };
    assert.equal(access.admit(request(cookie), HOSTS), 'console-token');
    assert.equal(refusal(() => access.admit(request({ cookie: `${SESSION_COOKIE}=${session}x` }), HOSTS)), 401);
    now += 8 * 3600_000;
    assert.equal(refusal(() => access.admit(request(cookie), HOSTS)), 401);
  });
});
