/**
 * Helpers for the provider tests: building quorumkey.so (plain and ASan), openssl.cnf files that
 * load it, and running the real `openssl` binary against them.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
export { freePort } from '../../src/cli/children.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const BUILD_DIR = join(REPO, 'build-provider');
export const ASAN_BUILD_DIR = join(REPO, 'build-provider-asan');
export const MODULE = join(BUILD_DIR, 'quorumkey.so');
export const ASAN_MODULE = join(ASAN_BUILD_DIR, 'quorumkey.so');

/** What a sanitizer prints when it finds something. */
export const SANITIZER_MARKERS = /AddressSanitizer|LeakSanitizer|runtime error:/;

/**
 * Runs one of the provider's C check programs (provider/tests, plain or ASan build) with an
 * openssl.cnf; it must exit 0 with no sanitizer report. Returns its stdout.
 */
export function runCheckProgram(name: string, args: string[], options: { cwd: string; conf: string; asan: boolean }): string {
  const r = spawnSync(join(options.asan ? ASAN_BUILD_DIR : BUILD_DIR, name), args, {
    cwd: options.cwd,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, OPENSSL_CONF: options.conf, ...(options.asan ? { ASAN_OPTIONS: 'detect_leaks=1' } : {}) },
  });
  const out = `${r.stdout}\n${r.stderr}`;
  if (SANITIZER_MARKERS.test(out)) throw new Error(`${name}: sanitizer report\n${out}`);
  if (r.status !== 0) throw new Error(`${name} exited ${r.status ?? r.signal}\n${out}`);
  return r.stdout;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
}

/** Configures and builds the provider (incremental: quick when up to date). */
export function buildProvider(asan = false): string {
  const dir = asan ? ASAN_BUILD_DIR : BUILD_DIR;
  run('cmake', ['-S', '.', '-B', dir, ...(asan ? ['-DQUORUMKEY_ASAN=ON'] : [])]);
  run('cmake', ['--build', dir, '-j2']);
  return join(dir, 'quorumkey.so');
}

/** The runtime libraries an uninstrumented `openssl` needs to load the ASan build. */
export function sanitizerPreload(): string {
  const lib = (name: string) => spawnSync('gcc', [`-print-file-name=${name}`], { encoding: 'utf8' }).stdout.trim();
  return [lib('libasan.so'), lib('libubsan.so')].filter((p) => p.startsWith('/') && existsSync(p)).join(' ');
}

/** Writes `base` (the output of `quorumkey openssl-conf`) with another module path and deadline. */
export function writeConf(path: string, base: string, module: string, deadlineMs?: number): string {
  let text = base.replace(/^module = .*$/m, `module = ${module}`);
  if (deadlineMs !== undefined) text = text.replace(/^deadline_ms = .*$/m, `deadline_ms = ${deadlineMs}`);
  writeFileSync(path, text);
  return path;
}

export interface Ossl {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface OsslOptions {
  conf: string;
  cwd: string;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export function openssl(args: string[], o: OsslOptions): Ossl {
  const started = Date.now();
  const r: SpawnSyncReturns<string> = spawnSync('openssl', args, {
    cwd: o.cwd,
    input: o.input,
    encoding: 'utf8',
    timeout: o.timeoutMs ?? 60_000,
    env: { ...process.env, OPENSSL_CONF: o.conf, ...o.env },
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: Date.now() - started };
}

export function expectOk(r: Ossl, what: string): Ossl {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}


/** A long-running openssl s_server; stderr is collected. */
export class SServer {
  child: ChildProcess | undefined;
  stderr = '';
  stdout = '';

  constructor(
    readonly port: number,
    readonly args: string[],
    readonly conf: string,
    readonly cwd: string,
    readonly env: NodeJS.ProcessEnv = {},
  ) {}

  async start(): Promise<void> {
    const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${this.port}`, ...this.args], {
      cwd: this.cwd,
      env: { ...process.env, OPENSSL_CONF: this.conf, ...this.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    child.stdout!.on('data', (c: Buffer) => (this.stdout += c.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s_server not accepting:\n${this.stderr}`)), 20_000);
      const check = () => {
        if (this.stdout.includes('ACCEPT')) {
          clearTimeout(timer);
          resolve();
        } else setTimeout(check, 50);
      };
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s_server exited with ${code}:\n${this.stderr}`));
      });
      check();
    });
  }

  /** Stops it and waits until its pipes are closed (everything it wrote has been read). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.kill('SIGTERM');
    await closed;
  }

  /**
   * What it has written to stderr since offset `from`, once that matches `pattern` (its stderr
   * reaches us through a pipe, so a line logged during a handshake may arrive after it).
   */
  async logged(pattern: RegExp, from = 0): Promise<string> {
    const end = Date.now() + 30_000;
    for (;;) {
      const text = this.stderr.slice(from);
      if (pattern.test(text)) return text;
      if (Date.now() > end) throw new Error(`s_server did not log ${pattern}:\n${text}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** True once process `pid` has exited (gone, or a zombie not yet reaped by its parent). */
export function exited(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  return / Z /.test(readText(`/proc/${pid}/stat`).replace(/^.*\)/, ' '));
}

export function readText(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
