/**
 * The unix socket's access control: the file system decides who may connect.
 *
 * - Without a socket group: the socket is 0600 and its directory 0700 — the coordinator's user
 *   only (root passes anyway).
 * - With a socket group G (cluster.json `coordinator.socketGroup`, `quorumkey up --socket-group`):
 *   the socket is 0660 and its directory 0750, both group-owned by G, so exactly the members of G
 *   (e.g. nginx workers started with `user www-data G;`) may connect. When the socket directory
 *   sits directly in the cluster directory (the default `<dir>/socket/`), the cluster directory
 *   gets group G with the traverse bit only (0710): members of G may pass through it but not list
 *   it, and every other entry in it keeps its own 0700/0600 mode.
 *
 * The socket's directory belongs to the coordinator: it is created when missing, and an existing
 * one must be a real directory of the coordinator's user holding nothing but the socket (a stale
 * one after kill -9), so the coordinator never changes the mode of a shared directory such as /tmp
 * or /run. Other directories above it are only checked; when members of G could not traverse one
 * of them, a warning names it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from './log.js';

export interface SocketGroup {
  name: string;
  gid: number;
}

const GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

/** Resolves a group name (through NSS: `getent group`, else /etc/group) or a numeric gid. */
export function resolveSocketGroup(spec: string): SocketGroup {
  if (/^\d{1,10}$/.test(spec)) return { name: spec, gid: Number(spec) };
  if (!GROUP_NAME.test(spec)) throw new Error(`socket group '${spec.slice(0, 40)}' is not a valid group name`);
  let line: string | undefined;
  try {
    line = execFileSync('getent', ['group', spec], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
  } catch (e) {
    // getent exits 2 for an unknown group; when it is missing altogether, read /etc/group.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      line = readFileSync('/etc/group', 'utf8')
        .split('\n')
        .find((l) => l.split(':')[0] === spec);
    }
  }
  const gid = line?.split(':')[2];
  if (!line || gid === undefined || !/^\d+$/.test(gid)) throw new Error(`socket group '${spec}' does not exist (create it, e.g. groupadd --system ${spec})`);
  return { name: spec, gid: Number(gid) };
}

const octal = (mode: number) => '0' + (mode & 0o7777).toString(8).padStart(3, '0');

/** May a member of `gid` (not the owner) search directory `st`? */
function traversable(st: { mode: number; gid: number }, gid: number): boolean {
  return (st.mode & 0o001) !== 0 || (st.gid === gid && (st.mode & 0o010) !== 0);
}

/**
 * Makes the socket's directory and sets its owner group and mode; the cluster directory gets the
 * group's traverse bit when it is the socket directory's parent. Throws with a reason when the
 * directory cannot be the socket's own.
 */
export function prepareSocketDirectory(socketPath: string, clusterDir: string, group: SocketGroup | undefined, log: Logger): void {
  const dir = dirname(resolve(socketPath));
  const uid = process.geteuid?.() ?? 0;
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory()) throw new Error(`the socket directory ${dir} is not a directory`);
    if (st.uid !== uid) throw new Error(`the socket directory ${dir} belongs to uid ${st.uid}, not to the coordinator's user (uid ${uid}); give the socket a directory of its own`);
    const others = readdirSync(dir).filter((name) => name !== basename(socketPath));
    if (others.length > 0) {
      throw new Error(`the socket directory ${dir} holds other files (${others.slice(0, 3).join(', ')}${others.length > 3 ? ', …' : ''}); the coordinator sets its mode, so give the socket a directory of its own`);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  const setGroup = (path: string, gid: number) => {
    try {
      chownSync(path, -1, gid);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(`cannot give ${path} to the socket group '${group!.name}' (gid ${gid}): ${code === 'EPERM' ? "the coordinator's user is not a member of that group" : code}`);
    }
  };
  if (!group) {
    chmodSync(dir, 0o700);
    return;
  }
  // Group first, then the mode: the directory never opens to the previous group.
  chmodSync(dir, 0o700);
  setGroup(dir, group.gid);
  chmodSync(dir, 0o750);
  const root = resolve(clusterDir);
  for (let up = dirname(dir); ; up = dirname(up)) {
    const st = statSync(up);
    if (!traversable(st, group.gid)) {
      if (up === root && st.uid === uid) {
        setGroup(up, group.gid);
        chmodSync(up, (st.mode & 0o7707) | 0o010);
      } else {
        log.warn('members of the socket group cannot reach the socket: a directory above it is not traversable for them', {
          socket: socketPath,
          group: group.name,
          directory: up,
          mode: octal(st.mode),
          owner_uid: st.uid,
          owner_gid: st.gid,
        });
      }
    }
    if (up === dirname(up)) break;
  }
}

/** After bind: 0660 and the group's, or 0600. */
export function openSocketTo(socketPath: string, group: SocketGroup | undefined): void {
  if (!group) {
    chmodSync(socketPath, 0o600);
    return;
  }
  chmodSync(socketPath, 0o600);
  try {
    chownSync(socketPath, -1, group.gid);
  } catch (e) {
    throw new Error(`cannot give the socket ${socketPath} to group '${group.name}': ${(e as NodeJS.ErrnoException).code}`);
  }
  chmodSync(socketPath, 0o660);
}

/** Removes a stale socket file; refuses when something else is there or a process still listens. */
export async function removeStaleSocket(path: string): Promise<void> {
  if (Buffer.byteLength(path) > 100) throw new Error(`unix socket path ${path} is too long (> 100 bytes)`);
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((res) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });
  if (live) throw new Error(`another process is serving on ${path}`);
  unlinkSync(path);
}
