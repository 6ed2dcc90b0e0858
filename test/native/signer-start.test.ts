/**
 * The signer refuses to start without the native kernels (DESIGN §3; signer-node/main.ts):
 * real `node dist/signer-node/main.js` processes with QUORUMKEY_NATIVE=0 and with the addon made
 * unloadable (Node's own --no-addons, through NODE_OPTIONS, so the build is left alone) exit
 * quickly with code 2 and one stderr line naming the addon and how to build it. A child process
 * that selects the reference kernels (useReferenceKernelsForTests) is refused by the same check,
 * and the loader reports a failed location.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_FILE, loadAddonFrom, nativeAddonStatus, nativeKernelsProblem } from '../../src/protocol/math/kernels.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)); // from dist/test/native/
const MAIN = join(ROOT, 'dist/signer-node/main.js');
const KERNELS = join(ROOT, 'dist/src/protocol/math/kernels.js');
const nativeDisabled = process.env.QUORUMKEY_NATIVE === '0';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<Exit> {
  const start = Date.now();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} still running after ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - start });
    });
  });
}

/** The environment of a signer without the switches under test. */
function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.QUORUMKEY_NATIVE;
  delete env.NODE_OPTIONS;
  return env;
}

describe('the signer refuses to start without the native kernels', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-native-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** One stderr line naming the addon file and the build command; exit 2; nothing on stdout. */
  function assertRefused(exit: Exit, mentions: string[]): void {
    assert.equal(exit.code, 2, `exit code; stderr: ${exit.stderr}`);
    assert.equal(exit.stdout, '');
    const lines = exit.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, exit.stderr);
    assert.ok(lines[0]!.startsWith('quorumkey signer: '), lines[0]);
    for (const m of [ADDON_FILE, 'npm install', ...mentions]) assert.ok(lines[0]!.includes(m), `'${lines[0]}' should mention '${m}'`);
    assert.ok(exit.ms < 15_000, `took ${exit.ms} ms`);
  }

  it('QUORUMKEY_NATIVE=0 → exit 2 at once, naming the addon', async () => {
    const exit = await run([MAIN, '--dir', join(dir, 'cluster'), '--index', '1'], { ...baseEnv(), QUORUMKEY_NATIVE: '0' });
    assertRefused(exit, ['QUORUMKEY_NATIVE=0']);
  });

  it('the addon cannot be loaded (node --no-addons via NODE_OPTIONS) → exit 2, naming the addon and why', async () => {
    const exit = await run([MAIN, '--dir', join(dir, 'cluster'), '--index', '1'], { ...baseEnv(), NODE_OPTIONS: '--no-addons' });
    assertRefused(exit, ['did not load', 'ERR_DLOPEN_DISABLED']);
  });

  it('the check runs before the arguments are parsed (even --help is refused)', async () => {
    const exit = await run([MAIN, '--help'], { ...baseEnv(), QUORUMKEY_NATIVE: '0' });
    assertRefused(exit, []);
  });

  it('with the addon, the same invocation passes the check and fails on the missing cluster directory instead', async () => {
    const exit = await run([MAIN, '--dir', join(dir, 'cluster'), '--index', '1'], baseEnv());
    assert.equal(exit.code, 2, exit.stderr);
    assert.ok(exit.stderr.includes('does not exist'), exit.stderr);
    assert.ok(!exit.stderr.includes(ADDON_FILE), exit.stderr);
  });

  it('a process that selected the reference kernels (useReferenceKernelsForTests) is refused by the check', async () => {
    const script = [
      `const k = await import(${JSON.stringify(KERNELS)});`,
      `await import(${JSON.stringify(join(ROOT, 'dist/src/protocol/vole.js'))});`,
      `await import(${JSON.stringify(join(ROOT, 'dist/src/protocol/math/secret-scalar.js'))});`,
      `const before = k.nativeKernelsProblem();`,
      `k.useReferenceKernelsForTests();`,
      `console.log(JSON.stringify({ before: before ?? null, after: k.nativeKernelsProblem() ?? null, kernels: k.activeKernels() }));`,
    ].join('\n');
    const exit = await run(['--input-type=module', '-e', script], baseEnv());
    assert.equal(exit.code, 0, exit.stderr);
    const r = JSON.parse(exit.stdout) as { before: string | null; after: string | null; kernels: Record<string, string> };
    assert.equal(r.before, null, 'all kernels native before the switch');
    assert.ok(r.after?.includes('useReferenceKernelsForTests') && r.after.includes(ADDON_FILE), String(r.after));
    assert.deepEqual(r.kernels, { p256: 'noble', vole: 'typescript', 'ot-bits': 'typescript', 'ot-row-hash': 'node:crypto', 'secret-scalar': 'typescript', 'base-ot': 'typescript' });
  });

  it('a kernel module that was never loaded counts as not native', async () => {
    const script = `const k = await import(${JSON.stringify(KERNELS)}); console.log(k.nativeKernelsProblem());`;
    const exit = await run(['--input-type=module', '-e', script], baseEnv());
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stdout, /kernels not native: p256=not loaded, vole=not loaded/);
  });

  it("the loader's failure path: a location that does not exist, then one that does", () => {
    const missing = loadAddonFrom<unknown>([join(dir, 'nowhere', 'quorumkey_native.node')]);
    assert.equal(missing.addon, undefined);
    assert.equal(missing.reason, 'not built');
    assert.ok(missing.path.endsWith('quorumkey_native.node'));
    const found = loadAddonFrom<Record<string, unknown>>([join(dir, 'nowhere.node'), join(ROOT, ADDON_FILE)]);
    assert.equal(typeof found.addon?.scalarMulAdd, 'function');
    assert.equal(found.reason, undefined);
  });

  it('this (test) process: status and check agree with QUORUMKEY_NATIVE', () => {
    const status = nativeAddonStatus();
    assert.equal(status.loaded, !nativeDisabled);
    if (nativeDisabled) assert.match(nativeKernelsProblem()!, /QUORUMKEY_NATIVE=0/);
  });
});
