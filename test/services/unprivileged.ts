/**
 * Test helpers for acting as another local user: commands through `runuser`, a test group made
 * (and removed) only when it does not exist yet, unix-socket connects and curl as that user.
 * The tests using them need root; `canSwitchUser()` says whether they can run.
 */
import { spawnSync } from 'node:child_process';

/** The unprivileged local user the tests act as. */
export const UNPRIVILEGED_USER = 'nobody';
/** The socket group the tests configure (created for the test when missing). */
export const TEST_SOCKET_GROUP = 'qk-socket-test';
/** A system user the tests make a supplementary member of the socket group (created when missing). */
export const TEST_MEMBER_USER = 'qk-worker-test';

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `runuser -u USER [-G GROUP]… -- command args` (as root); no user: the command as ourselves. */
export function runAs(user: string | undefined, command: string, args: string[], groups: string[] = []): Ran {
  const argv = user ? ['runuser', '-u', user, ...groups.flatMap((g) => ['-G', g]), '--', command, ...args] : [command, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Why the tests cannot act as another user here, or undefined when they can. */
export function cannotSwitchUser(): string | undefined {
  if (process.geteuid?.() !== 0) return 'needs root (runuser)';
  if (spawnSync('getent', ['passwd', UNPRIVILEGED_USER]).status !== 0) return `no user '${UNPRIVILEGED_USER}'`;
  const node = runAs(UNPRIVILEGED_USER, process.execPath, ['-e', 'process.exit(0)']);
  if (node.status !== 0) return `'${UNPRIVILEGED_USER}' cannot run ${process.execPath}: ${node.stderr.trim()}`;
  return undefined;
}

export const groupExists = (name: string) => spawnSync('getent', ['group', name]).status === 0;

/** Creates a system group unless it exists; true when this call created it. */
export function ensureGroup(name: string): boolean {
  if (groupExists(name)) return false;
  const r = spawnSync('groupadd', ['--system', name], { encoding: 'utf8' });
  // A concurrent run may have created it in between.
  if (r.status !== 0 && !groupExists(name)) throw new Error(`groupadd ${name}: ${r.stderr}`);
  return r.status === 0;
}

export function removeGroup(name: string): void {
  spawnSync('groupdel', [name]);
}

export const userExists = (name: string) => spawnSync('getent', ['passwd', name]).status === 0;

/**
 * A system user (no home, no login shell, its own group) with `group` as a supplementary group;
 * created unless it exists (then only the membership is added). True when this call created it.
 */
export function ensureUser(name: string, group: string): boolean {
  let created = false;
  if (!userExists(name)) {
    const r = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', '--groups', group, name], { encoding: 'utf8' });
    if (r.status !== 0 && !userExists(name)) throw new Error(`useradd ${name}: ${r.stderr}`);
    created = r.status === 0;
  }
  const r = spawnSync('usermod', ['--append', '--groups', group, name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`usermod -aG ${group} ${name}: ${r.stderr}`);
  return created;
}

/** Removes a user made by ensureUser (and its own group). */
export function removeUser(name: string): void {
  spawnSync('userdel', [name]);
  if (groupExists(name)) spawnSync('groupdel', [name]);
}

/** Tries to connect to a unix socket as `user` (with extra supplementary groups): 'connected' or the errno code. */
export function connectAs(user: string, socket: string, groups: string[] = []): string {
  const script = 'const c=require("node:net").connect(process.argv[1]);c.on("connect",()=>{console.log("connected");c.destroy()});c.on("error",(e)=>console.log(e.code))';
  const r = runAs(user, process.execPath, ['-e', script, socket], groups);
  return r.stdout.trim() || `no answer (status ${r.status}): ${r.stderr.trim()}`;
}

export interface CurlResult {
  /** HTTP status, 0 when no response came (connection refused, TLS failure). */
  status: number;
  text: string;
  json: Record<string, unknown>;
  /** curl's exit code. */
  exit: number | null;
  stderr: string;
}

/** curl (no config file) as `user` or as ourselves; the last output line is the HTTP status. */
export function curl(user: string | undefined, args: string[], groups: string[] = []): CurlResult {
  const r = runAs(user, 'curl', ['-q', '-sS', '-o', '-', '-w', '\n%{http_code}', ...args], groups);
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop() ?? 0);
  const text = lines.join('\n');
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status, text, json, exit: r.status, stderr: r.stderr };
}
