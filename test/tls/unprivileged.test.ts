/**
 * nginx and HAProxy started by root as usual, their workers running as the unprivileged user
 * `nobody`, sign through the provider over the coordinator's unix socket because the socket group
 * (`quorumkey up --socket-group`) is their group — the one-line settings the README gives:
 * nginx `user nobody <group>;`, HAProxy `group <group>` (with `insecure-fork-wanted`, which lets the
 * unprivileged worker start the gRPC client's threads). 50 full TLS 1.3 handshakes each, one
 * tls-server audit record each, and the workers' real uid/gid read from /proc. The README's
 * alternative for nginx: a worker user that is a supplementary member of the group (a test system
 * user) with a plain `user NAME;` — 50 handshakes too. Negative controls: nginx workers without the
 * group fail the handshake and the error log says why; HAProxy with such a member user but its own
 * group fails too, because HAProxy drops supplementary groups.
 */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { waitFor } from '../coordinator/clients.js';
import { UpProcess } from '../services/cluster-harness.js';
import {
  cannotSwitchUser,
  connectAs,
  ensureGroup,
  ensureUser,
  removeGroup,
  removeUser,
  runAs,
  TEST_MEMBER_USER,
  TEST_SOCKET_GROUP,
  UNPRIVILEGED_USER,
} from '../services/unprivileged.js';
import { assertAllGood, handshake, handshakes, startHaproxy, startNginx, tlsServerRecords, type RunningServer, type ServerMaterial } from './servers.js';

const HANDSHAKES = 50;
const GROUP = TEST_SOCKET_GROUP;

interface ProcIds {
  pid: number;
  ppid: number;
  uid: number;
  gid: number;
  groups: number[];
}

function procIds(pid: number): ProcIds | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string) => (new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  return { pid, ppid: field('PPid')[0]!, uid: field('Uid')[0]!, gid: field('Gid')[0]!, groups: field('Groups') };
}

/** The live children of `pid` (the servers' workers), from /proc. */
function childrenOf(pid: number): ProcIds[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => procIds(Number(d)))
    .filter((p): p is ProcIds => p !== undefined && p.ppid === pid);
}

/** Waits until the master has forked `count` workers (they start after the port is bound). */
const workersOf = (pid: number, count: number) => waitFor(`${count} worker(s) of ${pid}`, () => (childrenOf(pid).length >= count ? childrenOf(pid) : undefined));

const idOf = (database: 'passwd' | 'group', name: string) => Number(runAs(undefined, 'getent', [database, name]).stdout.split(':')[2]);

describe('nginx and HAProxy workers as an unprivileged user, through the socket group', function () {
  this.timeout(600_000);
  let up: UpProcess | undefined;
  let createdGroup = false;
  let createdUser = false;
  let material: ServerMaterial;
  let caCert: string;
  let nobodyUid: number;
  let groupGid: number;
  const servers: RunningServer[] = [];

  before(async function () {
    // Run as root (as .ci/run does): a test that cannot act as another user fails, it is not skipped.
    const why = cannotSwitchUser();
    if (why) throw new Error(`these tests act as an unprivileged local user and cannot here: ${why}`);
    createdGroup = ensureGroup(GROUP);
    createdUser = ensureUser(TEST_MEMBER_USER, GROUP);
    nobodyUid = idOf('passwd', UNPRIVILEGED_USER);
    groupGid = idOf('group', GROUP);
    up = new UpProcess();
    await up.start(['--signers', '3', '--threshold', '2', '--socket-group', GROUP]);
    // up issues the TLS key's certificate (through the provider) after its ready line.
    await up.line(/openssl s_client -connect/);
    const tls = join(up.dir, 'tls');
    material = { opensslConf: join(tls, 'openssl.cnf'), serverCert: join(tls, 'tls.crt'), keyRef: join(tls, 'tls.key.pem') };
    caCert = join(tls, 'ca.crt');
  });

  after(async () => {
    for (const s of servers) await s.stop();
    for (const s of servers) rmSync(s.prefix, { recursive: true, force: true });
    if (up) {
      await up.stop();
      rmSync(up.dir, { recursive: true, force: true });
    }
    if (createdUser) removeUser(TEST_MEMBER_USER);
    if (createdGroup) removeGroup(GROUP);
  });

  it('the socket is 0660 in a 0750 directory, both of the group; nobody alone cannot connect, nobody with the group can', () => {
    const socket = up!.config().coordinator.socket;
    assert.equal(statSync(socket).mode & 0o777, 0o660);
    assert.equal(statSync(socket).gid, groupGid);
    assert.equal(statSync(dirname(socket)).mode & 0o777, 0o750);
    assert.equal(statSync(dirname(socket)).gid, groupGid);
    assert.equal(statSync(up!.dir).mode & 0o777, 0o710);
    assert.equal(connectAs(UNPRIVILEGED_USER, socket), 'EACCES');
    assert.equal(connectAs(UNPRIVILEGED_USER, socket, [GROUP]), 'connected');
  });

  it(`nginx with \`user ${UNPRIVILEGED_USER} ${GROUP};\`: workers run as ${UNPRIVILEGED_USER} in the group, ${HANDSHAKES} handshakes, one audit record each`, async () => {
    const nginx = await startNginx(material, `${UNPRIVILEGED_USER} ${GROUP}`);
    servers.push(nginx);
    const workers = await workersOf(nginx.process.pid!, 2);
    assert.equal(workers.length, 2, 'two workers');
    for (const w of workers) {
      assert.equal(w.uid, nobodyUid, `worker ${w.pid} runs as ${UNPRIVILEGED_USER}`);
      assert.equal(w.gid, groupGid, `worker ${w.pid} has the socket group`);
    }
    const before = tlsServerRecords(up!.dir);
    assertAllGood(await handshakes(nginx.port, caCert, HANDSHAKES), HANDSHAKES, nginx.log);
    assert.equal(tlsServerRecords(up!.dir) - before, HANDSHAKES);
    await nginx.stop();
  });

  it(`negative control: nginx workers as ${UNPRIVILEGED_USER} without the group fail the handshake, and the error log says why`, async () => {
    const nginx = await startNginx(material, `${UNPRIVILEGED_USER} nogroup`);
    servers.push(nginx);
    const before = tlsServerRecords(up!.dir);
    const failed = await handshake(nginx.port, caCert);
    assert.ok(!failed.ok, `a handshake succeeded without the socket group:\n${failed.output}`);
    assert.match(nginx.log(), /SSL_do_handshake\(\) failed .*quorumkey.*coordinator unreachable/);
    assert.equal(tlsServerRecords(up!.dir), before, 'nothing was signed');
    await nginx.stop();
  });

  it(`nginx with \`user ${TEST_MEMBER_USER};\`, a supplementary member of the group: ${HANDSHAKES} handshakes, one audit record each`, async () => {
    const nginx = await startNginx(material, TEST_MEMBER_USER);
    servers.push(nginx);
    for (const w of await workersOf(nginx.process.pid!, 2)) {
      assert.equal(w.uid, idOf('passwd', TEST_MEMBER_USER));
      assert.notEqual(w.gid, groupGid, 'the primary group is the user\'s own');
      assert.ok(w.groups.includes(groupGid), `worker ${w.pid} keeps the supplementary socket group (groups ${w.groups})`);
    }
    const before = tlsServerRecords(up!.dir);
    assertAllGood(await handshakes(nginx.port, caCert, HANDSHAKES), HANDSHAKES, nginx.log);
    assert.equal(tlsServerRecords(up!.dir) - before, HANDSHAKES);
    await nginx.stop();
  });

  it(`negative control: HAProxy with \`user ${TEST_MEMBER_USER}\` and its own group drops the supplementary socket group, and its handshakes fail`, async () => {
    const haproxy = await startHaproxy(material, TEST_MEMBER_USER, TEST_MEMBER_USER);
    servers.push(haproxy);
    for (const w of await workersOf(haproxy.process.pid!, 1)) assert.ok(!w.groups.includes(groupGid), `worker ${w.pid} groups ${w.groups}`);
    const before = tlsServerRecords(up!.dir);
    const failed = await handshake(haproxy.port, caCert);
    assert.ok(!failed.ok, `a handshake succeeded without the socket group:\n${failed.output}`);
    await waitFor('HAProxy logs why', () => /quorumkey provider\[\d+\]: signing failed/.test(haproxy.log()));
    assert.equal(tlsServerRecords(up!.dir), before, 'nothing was signed');
    await haproxy.stop();
  });

  it(`HAProxy with \`user ${UNPRIVILEGED_USER}\` and \`group ${GROUP}\` (master-worker): the worker runs as ${UNPRIVILEGED_USER} in the group, ${HANDSHAKES} handshakes, one audit record each`, async () => {
    const haproxy = await startHaproxy(material, UNPRIVILEGED_USER, GROUP);
    servers.push(haproxy);
    const workers = await workersOf(haproxy.process.pid!, 1);
    for (const w of workers) {
      assert.equal(w.uid, nobodyUid, `worker ${w.pid} runs as ${UNPRIVILEGED_USER}`);
      assert.equal(w.gid, groupGid, `worker ${w.pid} has the socket group`);
      // insecure-fork-wanted (certs/haproxy.cfg.template): without it the worker's RLIMIT_NPROC is
      // 0 and the provider's gRPC client cannot create its threads.
      assert.doesNotMatch(readFileSync(`/proc/${w.pid}/limits`, 'utf8'), /^Max processes\s+0\s/m);
    }
    const before = tlsServerRecords(up!.dir);
    assertAllGood(await handshakes(haproxy.port, caCert, HANDSHAKES), HANDSHAKES, haproxy.log);
    assert.equal(tlsServerRecords(up!.dir) - before, HANDSHAKES);
    assert.equal(haproxy.process.exitCode, null, `haproxy exited:\n${haproxy.log()}`);
    await haproxy.stop();
  });
});
