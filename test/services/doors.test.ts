/**
 * The coordinator's client doors with real processes, as the unprivileged local user `nobody`
 * (runuser) and as root: a real coordinator in front of three real signer processes, restarted
 * with each door configuration.
 *
 * - Defaults: POST /v1/sign answers 404 to anyone (/metrics and /healthz still answer); the unix
 *   socket is 0600 in a 0700 directory, so nobody cannot connect and root signs as "unix".
 * - mTLS gRPC: the `provider` certificate gets PERMISSION_DENIED from every Admin method; its Sign
 *   calls carry the caller "provider", checked against each key's clients; signer and foreign
 *   certificates are refused.
 * - Bearer token and socket group: the coordinator refuses to start with a token file readable by
 *   others (naming the file and its mode), a missing or short one; the socket is 0660 in a 0750
 *   directory of the group and the cluster directory 0710; nobody outside the group cannot connect,
 *   nobody with the group can; nobody cannot read the token, without it or with a wrong one gets
 *   401; root with it signs as "http-token"; a wrong Host (DNS rebinding) is 421 and a text/plain
 *   or form POST 415 even with the token; refusals are logged with their reason, never the token.
 * - mTLS HTTP: HTTPS; a cluster certificate signs as its CN, none or a foreign one is 401, a signer
 *   identity 403; Host and Content-Type are checked there too.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { paths, writeClusterConfig } from '../../src/cluster/config.js';
import { tls13CertificateVerifyContent } from '../../src/policy/classify.js';
import { ensureClusterPki } from '../../src/pki/cluster-ca.js';
import { expectStatus, socketClient, tlsClient, unary, verifyTbs, waitFor, type AnyClient, type ClusterStatusWire, type KeyInfoWire, type SignResponseWire } from '../coordinator/clients.js';
import { launch, runToExit, stop, type Proc } from './processes.js';
import { createTestCluster, startSigner, stopSigner, type SignerProcess, type TestCluster } from './signer-cluster.js';
import { cannotSwitchUser, connectAs, curl, ensureGroup, removeGroup, runAs, TEST_SOCKET_GROUP, UNPRIVILEGED_USER } from './unprivileged.js';

const COORDINATOR_MAIN = fileURLToPath(new URL('../../src/coordinator/main.js', import.meta.url));
const READY = /^coordinator ready sign=unix:(\S+) grpc=(\S+) http=(https?):\/\/(\S+)$/;
const NOBODY = UNPRIVILEGED_USER;
const GROUP = TEST_SOCKET_GROUP;

const cv = () => Buffer.from(tls13CertificateVerifyContent(randomBytes(32)));
const gidOf = (name: string) => Number(runAs(undefined, 'getent', ['group', name]).stdout.split(':')[2]);
const mode = (path: string) => statSync(path).mode & 0o7777;

describe('coordinator doors: who may sign, as root and as an unprivileged local user', function () {
  this.timeout(600_000);
  let cluster: TestCluster;
  const signers: SignerProcess[] = [];
  let coordinator: Proc | undefined;
  let ep: { socket: string; grpc: string; scheme: string; http: string };
  let admin: AnyClient;
  let door: KeyInfoWire;
  let createdGroup = false;
  const auditLog = () => join(paths(cluster.dir).coordinator, 'audit.log');
  const records = (): { caller: string; key_id: string }[] => {
    let text = '';
    try {
      text = readFileSync(auditLog(), 'utf8');
    } catch {
      return [];
    }
    return text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).record);
  };
  const lastCaller = () => records().at(-1)?.caller;
  const env = () => ({ ...cluster.env, QUORUMKEY_LOG_LEVEL: 'info' });

  /** Writes the coordinator's door settings into cluster.json and (re)starts it. */
  const startCoordinator = async (doors: Partial<TestCluster['config']['coordinator']>) => {
    admin?.close();
    if (coordinator) await stop(coordinator);
    const c = cluster.config.coordinator;
    delete c.httpSign;
    delete c.socketGroup;
    delete c.httpHosts;
    Object.assign(c, doors);
    writeClusterConfig(cluster.dir, cluster.config);
    coordinator = await launch('coordinator', COORDINATOR_MAIN, ['--dir', cluster.dir], env(), READY);
    ep = { socket: coordinator.ready[1]!, grpc: coordinator.ready[2]!, scheme: coordinator.ready[3]!, http: coordinator.ready[4]! };
    admin = tlsClient('Admin', cluster.pki, ep.grpc, 'admin');
    await waitFor('signers up at the coordinator', async () => (await unary<ClusterStatusWire>(admin, 'Status', {})).signers.every((s) => s.up));
  };
  const signBody = (keyId = 'door') => JSON.stringify({ key_id: keyId, tbs: cv().toString('base64') });

  before(async function () {
    // Run as root (as .ci/run does): a test that cannot act as another user fails, it is not skipped.
    const why = cannotSwitchUser();
    if (why) throw new Error(`these tests act as an unprivileged local user and cannot here: ${why}`);
    createdGroup = ensureGroup(GROUP);
    cluster = await createTestCluster({ signers: [1, 2, 3], sessionTimeoutMs: 20_000 });
    ensureClusterPki(cluster.pki, ['admin', 'provider']);
    cluster.config.pool = { target: 4, batch: 4, refillConcurrency: 1, subsets: 2 };
    for (const i of [1, 2, 3]) signers.push(await startSigner(cluster, i));
    await startCoordinator({});
    // Explicit client lists: the doors' identities, checked against each key (default deny or not).
    door = await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'door', threshold: 2, signer_count: 3, policy: ['tls-server'], clients: ['unix', 'http-token', 'provider'] }, 180_000);
    await unary<KeyInfoWire>(admin, 'CreateKey', { key_id: 'unix-only', threshold: 2, signer_count: 3, policy: ['tls-server'], clients: ['unix'] }, 180_000);
  });

  after(async () => {
    admin?.close();
    if (coordinator) await stop(coordinator);
    for (const s of signers) await stopSigner(s);
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
    if (createdGroup) removeGroup(GROUP);
  });

  describe('defaults: no HTTP signing, a socket for the owner only', () => {
    it('POST /v1/sign answers 404 "HTTP signing is off" to nobody (with or without a token); /metrics and /healthz answer', () => {
      const before = records().length;
      const url = `http://${ep.http}/v1/sign`;
      const plain = curl(NOBODY, ['-H', 'Content-Type: application/json', '--data', signBody(), url]);
      assert.equal(plain.status, 404, plain.text + plain.stderr);
      assert.equal(plain.json.error, 'not_found');
      assert.match(plain.json.message as string, /^HTTP signing is off/);
      const withToken = curl(NOBODY, ['-H', 'Content-Type: application/json', '-H', `Authorization: Bearer ${randomBytes(32).toString('hex')}`, '--data', signBody(), url]);
      assert.equal(withToken.status, 404);
      assert.equal(curl(NOBODY, [url]).status, 404, 'GET too');
      assert.equal(records().length, before, 'nothing was signed');
      const metrics = curl(NOBODY, [`http://${ep.http}/metrics`]);
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /^quorumkey_sign_requests_total|^# HELP quorumkey_/m);
      assert.equal(curl(NOBODY, [`http://${ep.http}/healthz`]).status, 200);
    });

    it('the socket is 0600 in a 0700 directory: nobody cannot connect (EACCES), root signs as "unix"', async () => {
      assert.equal(ep.socket, paths(cluster.dir).socket);
      assert.equal(mode(ep.socket), 0o600);
      assert.equal(mode(dirname(ep.socket)), 0o700);
      assert.equal(connectAs(NOBODY, ep.socket), 'EACCES');
      // A group does not help: none is configured.
      assert.equal(connectAs(NOBODY, ep.socket, [GROUP]), 'EACCES');
      const client = socketClient(ep.socket);
      try {
        const tbs = cv();
        const res = await unary<SignResponseWire>(client, 'Sign', { key_id: 'door', tbs }, 60_000);
        assert.ok(verifyTbs(door.spki_der, tbs, res.signature_der));
        assert.equal(lastCaller(), 'unix');
      } finally {
        client.close();
      }
    });

    it('mTLS: the provider certificate gets PERMISSION_DENIED from every Admin method', async () => {
      const provider = tlsClient('Admin', cluster.pki, ep.grpc, 'provider');
      try {
        const calls: [string, unknown][] = [
          ['CreateKey', { key_id: 'stolen', threshold: 2, signer_count: 3, clients: ['provider'] }],
          ['RefreshKey', { key_id: 'door' }],
          ['ListKeys', {}],
          ['Status', {}],
          ['Quarantine', { index: 1 }],
          ['Readmit', { index: 1 }],
          ['ReconcilePair', { key_id: 'door', a: 1, b: 2 }],
        ];
        for (const [method, req] of calls) {
          await expectStatus(unary(provider, method, req), grpc.status.PERMISSION_DENIED, /^identity 'provider' may not use the Admin service$/);
        }
      } finally {
        provider.close();
      }
      // Nothing changed; the admin identity still may (positive control).
      const { keys } = await unary<{ keys: KeyInfoWire[] }>(admin, 'ListKeys', {});
      assert.deepEqual(keys.map((k) => k.key_id).sort(), ['door', 'unix-only']);
      assert.ok((await unary<ClusterStatusWire>(admin, 'Status', {})).signers.every((s) => !s.quarantined));
    });

    it('mTLS: every Sign carries the verified certificate CN as caller, checked against the key; signer and foreign certificates are refused', async () => {
      const provider = tlsClient('Coordinator', cluster.pki, ep.grpc, 'provider');
      const unix = socketClient(ep.socket);
      try {
        for (let n = 0; n < 3; n++) {
          const tbs = cv();
          const res = await unary<SignResponseWire>(provider, 'Sign', { key_id: 'door', tbs }, 60_000);
          assert.ok(verifyTbs(door.spki_der, tbs, res.signature_der));
          assert.equal(lastCaller(), 'provider');
          // The same connection, a key whose clients omit "provider": refused on this call.
          await expectStatus(unary(provider, 'Sign', { key_id: 'unix-only', tbs: cv() }), grpc.status.PERMISSION_DENIED, /client 'provider' may not use key 'unix-only'/);
        }
        // Metadata claiming another identity changes nothing.
        const md = new grpc.Metadata();
        md.set('x-quorumkey-caller', 'unix');
        await expectStatus(
          new Promise((resolve, reject) =>
            (provider as unknown as Record<string, Function>).Sign!({ key_id: 'unix-only', tbs: cv() }, md, { deadline: Date.now() + 30_000 }, (e: unknown, r: unknown) => (e ? reject(e) : resolve(r))),
          ),
          grpc.status.PERMISSION_DENIED,
          /client 'provider'/,
        );
        // The unix socket's caller may use it.
        const tbs = cv();
        await unary<SignResponseWire>(unix, 'Sign', { key_id: 'unix-only', tbs }, 60_000);
        assert.equal(lastCaller(), 'unix');
      } finally {
        provider.close();
        unix.close();
      }
      const rogue = tlsClient('Coordinator', cluster.pki, ep.grpc, 'signer-1');
      await expectStatus(unary(rogue, 'Sign', { key_id: 'door', tbs: cv() }), grpc.status.PERMISSION_DENIED, /identity 'signer-1' may not request signatures/).finally(() => rogue.close());
      const outsider = tlsClient('Coordinator', cluster.otherPki, ep.grpc, 'outsider');
      await expectStatus(unary(outsider, 'Sign', { key_id: 'door', tbs: cv() }, 10_000), grpc.status.UNAVAILABLE).finally(() => outsider.close());
    });
  });

  describe('bearer token and a socket group', () => {
    let token: string;
    let tokenFile: string;

    it('refuses to start with a token file others may read (naming the file and its mode), a missing, short or symlinked one', async () => {
      token = randomBytes(32).toString('base64url');
      tokenFile = join(cluster.root, 'http-sign.token');
      writeFileSync(tokenFile, token + '\n', { mode: 0o644 });
      chmodSync(tokenFile, 0o644);
      await stop(coordinator!);
      coordinator = undefined;
      const attempt = async (file: string) => {
        cluster.config.coordinator.httpSign = { mode: 'token', tokenFile: file };
        writeClusterConfig(cluster.dir, cluster.config);
        const r = await runToExit(COORDINATOR_MAIN, ['--dir', cluster.dir], env());
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.equal(r.stdout, '', 'no ready line');
        assert.ok(!r.stderr.includes(token), 'the token is not in the output');
        return JSON.parse(r.stderr.trim().split('\n').at(-1)!) as { msg: string; error: string };
      };
      const wide = await attempt(tokenFile);
      assert.equal(wide.msg, 'coordinator failed to start');
      assert.equal(wide.error, `HTTP sign token file ${tokenFile} has mode 0644; it must be 0600 (chmod 600 ${tokenFile})`);
      chmodSync(tokenFile, 0o640);
      assert.match((await attempt(tokenFile)).error, /has mode 0640; it must be 0600/);
      assert.match((await attempt(join(cluster.root, 'missing.token'))).error, /missing\.token: does not exist/);
      const short = join(cluster.root, 'short.token');
      writeFileSync(short, 'abc\n', { mode: 0o600 });
      assert.match((await attempt(short)).error, /short\.token: the token is shorter than 32 characters/);
      const link = join(cluster.root, 'link.token');
      chmodSync(tokenFile, 0o600);
      symlinkSync(tokenFile, link);
      assert.match((await attempt(link)).error, /link\.token: is a symbolic link/);
    });

    it('starts with a 0600 token file and the socket group: socket 0660 and its directory 0750 of the group, the cluster directory 0710, the rest private', async () => {
      await startCoordinator({ httpSign: { mode: 'token', tokenFile }, socketGroup: GROUP });
      const gid = gidOf(GROUP);
      assert.equal(mode(ep.socket), 0o660);
      assert.equal(statSync(ep.socket).gid, gid);
      assert.equal(mode(dirname(ep.socket)), 0o750);
      assert.equal(statSync(dirname(ep.socket)).gid, gid);
      assert.equal(mode(cluster.dir), 0o710);
      assert.equal(statSync(cluster.dir).gid, gid);
      for (const name of readdirSync(cluster.dir)) {
        const path = join(cluster.dir, name);
        if (path === dirname(ep.socket)) continue;
        const st = lstatSync(path);
        assert.equal(st.mode & 0o077, 0, `${name} is private (mode 0${(st.mode & 0o777).toString(8)})`);
      }
      // The test's temporary root above the cluster directory is 0700: the coordinator says so.
      const warning = coordinator!.stderr.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => /cannot reach the socket/.test(l.msg as string));
      assert.ok(warning, 'a warning names the directory the group cannot traverse');
      assert.equal(warning.directory, cluster.root);
      assert.equal(warning.mode, '0700');
      chmodSync(cluster.root, 0o755);
    });

    it('nobody outside the socket group cannot connect (EACCES); nobody with it as a supplementary group can', () => {
      assert.equal(connectAs(NOBODY, ep.socket), 'EACCES');
      assert.equal(connectAs(NOBODY, ep.socket, [GROUP]), 'connected');
    });

    it('as nobody: the token file is unreadable; no token, a wrong one, or Basic auth → 401; nothing is signed', () => {
      const cat = runAs(NOBODY, 'cat', [tokenFile]);
      assert.notEqual(cat.status, 0);
      assert.match(cat.stderr, /Permission denied/);
      const before = records().length;
      const url = `http://${ep.http}/v1/sign`;
      const none = curl(NOBODY, ['-H', 'Content-Type: application/json', '--data', signBody(), url]);
      assert.equal(none.status, 401, none.text + none.stderr);
      assert.deepEqual(none.json, { error: 'unauthorized', message: 'a bearer token is required (Authorization: Bearer <token>)' });
      const wrong = curl(NOBODY, ['-H', 'Content-Type: application/json', '-H', `Authorization: Bearer ${randomBytes(32).toString('base64url')}`, '--data', signBody(), url]);
      assert.equal(wrong.status, 401);
      assert.deepEqual(wrong.json, { error: 'unauthorized', message: 'the bearer token is not valid' });
      // One character off.
      const near = curl(NOBODY, ['-H', 'Content-Type: application/json', '-H', `Authorization: Bearer ${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`, '--data', signBody(), url]);
      assert.equal(near.status, 401);
      const basic = curl(NOBODY, ['-u', 'user:pass', '-H', 'Content-Type: application/json', '--data', signBody(), url]);
      assert.equal(basic.status, 401);
      assert.match(basic.json.message as string, /must be "Bearer <token>"/);
      assert.equal(records().length, before, 'nothing was signed');
    });

    it('with the token (root reads the file): 200, the signature verifies with OpenSSL, caller "http-token"; a key whose clients omit it → 403', () => {
      const bearer = `Authorization: Bearer ${readFileSync(tokenFile, 'utf8').trim()}`;
      const url = `http://${ep.http}/v1/sign`;
      for (const host of [ep.http, `localhost:${ep.http.split(':')[1]}`]) {
        const tbs = cv();
        const ok = curl(undefined, ['-H', `Host: ${host}`, '-H', bearer, '-H', 'Content-Type: application/json; charset=utf-8', '--data', JSON.stringify({ key_id: 'door', tbs: tbs.toString('base64') }), url]);
        assert.equal(ok.status, 200, ok.text + ok.stderr);
        assert.ok(verifyTbs(door.spki_der, tbs, Buffer.from(ok.json.signature as string, 'hex')), 'signature verifies');
        assert.equal(lastCaller(), 'http-token');
      }
      const refused = curl(undefined, ['-H', bearer, '-H', 'Content-Type: application/json', '--data', signBody('unix-only'), url]);
      assert.equal(refused.status, 403);
      assert.equal(refused.json.error, 'policy_refused');
      assert.match(refused.json.message as string, /client 'http-token' may not use key 'unix-only'/);
    });

    it('a wrong Host (DNS rebinding) → 421, a text/plain or form POST (what a browser form sends) → 415, even with the token', () => {
      const bearer = `Authorization: Bearer ${token}`;
      const url = `http://${ep.http}/v1/sign`;
      const before = records().length;
      for (const host of ['evil.example', `evil.example:${ep.http.split(':')[1]}`, `127.0.0.1:1`]) {
        const r = curl(NOBODY, ['-H', `Host: ${host}`, '-H', bearer, '-H', 'Content-Type: application/json', '--data', signBody(), url]);
        assert.equal(r.status, 421, `Host ${host}: ${r.text}`);
        assert.equal(r.json.error, 'misdirected_request');
        assert.match(r.json.message as string, new RegExp(`^Host '${host.replace(/\./g, '\\.')}' is not this listener`));
      }
      const text = curl(NOBODY, ['-H', bearer, '-H', 'Content-Type: text/plain', '--data', signBody(), url]);
      assert.equal(text.status, 415);
      assert.deepEqual(text.json, { error: 'unsupported_media_type', message: "Content-Type must be application/json, got 'text/plain'" });
      // curl --data sends application/x-www-form-urlencoded, like an HTML form.
      const form = curl(NOBODY, ['-H', bearer, '--data', signBody(), url]);
      assert.equal(form.status, 415);
      assert.match(form.json.message as string, /got 'application\/x-www-form-urlencoded'/);
      const multipart = curl(NOBODY, ['-H', bearer, '-F', `body=${signBody()}`, url]);
      assert.equal(multipart.status, 415);
      // A browser form has no Authorization header at all.
      assert.equal(curl(NOBODY, ['-H', 'Content-Type: text/plain', '--data', signBody(), url]).status, 401);
      assert.equal(records().length, before, 'nothing was signed');
    });

    it('logs every refusal with its reason and never the token', async () => {
      await waitFor('refusals logged', () => coordinator!.stderr.filter((l) => l.includes('"http sign refused"')).length >= 10);
      const refusals = coordinator!.stderr.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'http sign refused');
      const reasons = new Set(refusals.map((l) => l.reason));
      for (const reason of ['no-token', 'wrong-token', 'not-bearer', 'wrong-host', 'content-type']) assert.ok(reasons.has(reason), `a refusal with reason ${reason}`);
      assert.ok(refusals.every((l) => l.level === 'warn' && typeof l.status === 'number'));
      assert.ok(coordinator!.stderr.every((l) => !l.includes(token) && !l.includes(token.slice(0, 16))), 'the token never appears in the log');
    });
  });

  describe('mTLS client certificates on the HTTP listener (HTTPS)', () => {
    let pki: string;
    const cert = (dir: string, name: string) => ['--cert', join(dir, `${name}.crt`), '--key', join(dir, `${name}.key`)];
    const https = (args: string[], path = '/v1/sign') => curl(undefined, ['--cacert', join(pki, 'ca.crt'), ...args, `https://${ep.http}${path}`]);
    const json = ['-H', 'Content-Type: application/json'];

    before(async () => {
      pki = cluster.pki;
      await startCoordinator({ httpSign: { mode: 'mtls' } });
    });

    it('speaks HTTPS: /healthz and /metrics need no certificate, plain HTTP gets no answer', () => {
      assert.equal(ep.scheme, 'https');
      assert.equal(https([], '/healthz').status, 200);
      assert.equal(https([], '/metrics').status, 200);
      const plain = curl(undefined, [...json, '--data', signBody(), `http://${ep.http}/v1/sign`]);
      // The TLS listener closes on a plaintext request: no HTTP answer at all.
      assert.equal(plain.status, 0, plain.text);
      assert.notEqual(plain.exit, 0);
    });

    it('a cluster certificate signs as its CN; none or a foreign CA → 401, a signer identity → 403, a CN the key omits → 403', () => {
      const tbs = cv();
      const ok = https([...cert(pki, 'provider'), ...json, '--data', JSON.stringify({ key_id: 'door', tbs: tbs.toString('base64') })]);
      assert.equal(ok.status, 200, ok.text + ok.stderr);
      assert.ok(verifyTbs(door.spki_der, tbs, Buffer.from(ok.json.signature as string, 'hex')));
      assert.equal(lastCaller(), 'provider');
      const before = records().length;
      const none = https([...json, '--data', signBody()]);
      assert.equal(none.status, 401);
      assert.match(none.json.message as string, /^a client certificate of the cluster CA is required/);
      const foreign = https([...cert(cluster.otherPki, 'outsider'), ...json, '--data', signBody()]);
      assert.equal(foreign.status, 401, foreign.text + foreign.stderr);
      assert.match(foreign.json.message as string, /^a client certificate of the cluster CA is required \(/);
      const signer = https([...cert(pki, 'signer-1'), ...json, '--data', signBody()]);
      assert.equal(signer.status, 403);
      assert.match(signer.json.message as string, /identity 'signer-1' may not request signatures/);
      const admin = https([...cert(pki, 'admin'), ...json, '--data', signBody()]);
      assert.equal(admin.status, 403);
      assert.match(admin.json.message as string, /client 'admin' may not use key 'door'/);
      assert.equal(records().length, before, 'nothing else was signed');
    });

    it('checks Host and Content-Type with a valid certificate too', () => {
      const before = records().length;
      const host = https([...cert(pki, 'provider'), '-H', 'Host: evil.example', ...json, '--data', signBody()]);
      assert.equal(host.status, 421);
      const text = https([...cert(pki, 'provider'), '-H', 'Content-Type: text/plain', '--data', signBody()]);
      assert.equal(text.status, 415);
      assert.equal(records().length, before);
    });
  });
});
