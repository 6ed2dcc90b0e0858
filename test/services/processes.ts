/** Real child processes of the service tests: start one, wait for its ready line, stop it by PID. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { strict as assert } from 'node:assert';

export interface Proc {
  name: string;
  proc: ChildProcess;
  pid: number;
  stdout: string[];
  stderr: string[];
  exited: Promise<void>;
  /** Capture groups of the ready line. */
  ready: RegExpExecArray;
}

/** Every process started by `launch` that has not exited yet (after() hooks stop them). */
export const running = new Set<Proc>();

export async function launch(name: string, script: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp, timeoutMs = 30_000): Promise<Proc> {
  const proc = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { name, proc, pid: proc.pid!, stdout: [] as string[], stderr: [] as string[], exited: new Promise<void>((r) => proc.once('exit', () => r())) } as Proc;
  running.add(p);
  void p.exited.then(() => running.delete(p));
  const collect = (stream: NodeJS.ReadableStream, into: string[]) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      into.push(...lines);
      if (into.length > 5000) into.splice(0, into.length - 5000);
      proc.emit('qk-line');
    });
  };
  collect(proc.stdout!, p.stdout);
  collect(proc.stderr!, p.stderr);
  p.ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not ready after ${timeoutMs} ms; stderr:\n${p.stderr.slice(-20).join('\n')}`)), timeoutMs);
    const check = () => {
      const m = p.stdout.map((l) => ready.exec(l)).find((x) => x);
      if (!m) return;
      clearTimeout(timer);
      proc.off('qk-line', check);
      resolve(m);
    };
    proc.on('qk-line', check);
    void p.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (code ${proc.exitCode}, signal ${proc.signalCode}) before it was ready; stderr:\n${p.stderr.slice(-20).join('\n')}`));
    });
  });
  return p;
}

/** SIGTERM by PID, SIGKILL after `graceMs`; resolves with the exit code. */
export async function stop(p: Proc, graceMs = 5000): Promise<number | null> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return p.proc.exitCode;
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    return p.proc.exitCode;
  }
  const t = setTimeout(() => {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await p.exited;
  clearTimeout(t);
  return p.proc.exitCode;
}

/** Sum of the Prometheus samples of `name` whose labels include every `labels` pair (0 when none). */
export function sample(text: string, name: string, labels = ''): number {
  const want = labels.split(',').filter(Boolean);
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',');
    if (want.every((w) => have.includes(w))) sum += Number(m[3]);
  }
  return sum;
}


/** Log lines in which the test wrapper (malicious-signer.ts) reports a tampering of `what`. */
export const tampered = (p: Proc, what: 'presign' | 'finish' | 'readmit') => p.stderr.filter((l) => l.includes('"malicious: tampered"') && l.includes(`"what":"${what}"`)).length;

/**
 * Runs a node script expected to exit (e.g. a refused start); resolves with its code and output.
 * A process that prints on stdout anyway (a service's ready line) is stopped (SIGTERM by PID), so
 * an unexpected start fails the caller's assertions instead of hanging.
 */
export function runToExit(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
  });
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => proc.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** Fails (never skips) when a tool the test needs is not installed: CI installs it (bash .ci/run). */
export function requireTool(name: string, pkg: string): void {
  const found = spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
  assert.ok(found, `${name} is not installed: install Debian's '${pkg}' package (bash .ci/run does)`);
}

/** Asserts that `promtool check metrics` accepts the exposition text: exit 0 and no lint remark. */
export function assertPromtoolClean(text: string, what: string): void {
  requireTool('promtool', 'prometheus');
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.status, 0, `${what}: ${check.stdout}${check.stderr}`);
  assert.equal((check.stdout + check.stderr).trim(), '', `${what} lint: ${check.stdout}${check.stderr}`);
}

/**
 * What a sign request costs the signers, from the coordinator's /metrics: Finish calls (answered
 * or failed), inline presigns, retried attempts. Unchanged across a request = it contacted no
 * signer (e.g. the fail-fast "quorum insufficient").
 */
export function signingWork(coordinatorMetrics: string): { finishCalls: number; inlinePresigns: number; retries: number } {
  return {
    finishCalls: sample(coordinatorMetrics, 'quorumkey_signer_finish_duration_seconds_count') + sample(coordinatorMetrics, 'quorumkey_signer_failures_total', 'method="Finish"'),
    inlinePresigns: sample(coordinatorMetrics, 'quorumkey_sign_inline_presign_total'),
    retries: sample(coordinatorMetrics, 'quorumkey_sign_retries_total'),
  };
}

/** How many `method` RPCs the signer whose HTTP endpoint is `http` has answered. */
export async function signerRpcs(http: string, method: string): Promise<number> {
  return sample(await (await fetch(`http://${http}/metrics`)).text(), 'quorumkey_signer_rpc_requests_total', `method="${method}"`);
}
