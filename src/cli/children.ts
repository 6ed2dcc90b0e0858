/** Child processes of `quorumkey up`: start, wait for a ready line, record the pid. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { paths } from '../cluster/config.js';

const READY_TIMEOUT_MS = 60_000;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface Child {
  name: string;
  process: ChildProcess;
  readyLine: string;
}

export function startChild(name: string, command: string, args: string[], dir: string, readyPrefix: string, env?: NodeJS.ProcessEnv): Promise<Child> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  mkdirSync(join(paths(dir).root, 'run'), { recursive: true, mode: 0o700 });
  writeFileSync(join(paths(dir).root, 'run', `${name}.pid`), `${child.pid}\n`);
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr.push(chunk.toString());
    if (stderr.length > 50) stderr.shift();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not become ready within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith(readyPrefix)) {
        clearTimeout(timer);
        resolve({ name, process: child, readyLine: line });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const last = stderr.join('').trim().split('\n').slice(-3).join('\n');
      reject(new Error(`${name} exited (${signal ?? `code ${code}`}) before it was ready${last ? `:\n${last}` : ''}`));
    });
  });
}

