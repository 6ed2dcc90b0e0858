#!/usr/bin/env node
/**
 * Coordinator process:  node dist/src/coordinator/main.js --dir DIR [--log-level debug|info|warn|error]
 * (the log level may also come from QUORUMKEY_LOG_LEVEL, like the signer nodes).
 *
 * Reads DIR/cluster.json and the TLS identity `coordinator` from DIR/pki; keeps its state in
 * DIR/coordinator/ (keys.json, audit.log). Serves Coordinator on the unix socket
 * (coordinator.socket: mode 0600, or 0660 for coordinator.socketGroup — socket.ts), Coordinator +
 * Admin over mTLS on coordinator.grpc, and HTTP on 127.0.0.1:<port of coordinator.http> (HTTPS
 * when coordinator.httpSign is mtls; POST /v1/sign only when httpSign enables it —
 * http-access.ts). When serving it prints exactly one line on stdout:
 *
 *   coordinator ready sign=unix:<path> grpc=<host:port> http=http[s]://<host:port>
 *
 * Logs are JSON lines on stderr. SIGTERM / SIGINT drain (in-flight requests get 10 s), close
 * the audit log and exit 0 (a second signal exits 1 at once). If it cannot start: one JSON error
 * line ("coordinator failed to start") and exit 1; bad arguments: usage on stderr, exit 2.
 */
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { Coordinator } from './service.js';
import { jsonLogger, type Level } from './log.js';

function usage(message?: string): never {
  if (message) process.stderr.write(`coordinator: ${message}\n`);
  process.stderr.write('usage: node dist/src/coordinator/main.js --dir DIR [--log-level debug|info|warn|error]\n');
  process.exit(2);
}

function parseArgs(argv: string[]): { dir: string; level: Level } {
  let dir: string | undefined;
  const fromEnv = process.env.QUORUMKEY_LOG_LEVEL;
  let level: Level = fromEnv && ['debug', 'info', 'warn', 'error'].includes(fromEnv) ? (fromEnv as Level) : 'info';
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!;
    const value = () => argv[++k] ?? usage(`${a} needs a value`);
    if (a === '--dir') dir = value();
    else if (a.startsWith('--dir=')) dir = a.slice(6);
    else if (a === '--log-level') level = value() as Level;
    else if (a.startsWith('--log-level=')) level = a.slice(12) as Level;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument '${a}'`);
  }
  if (!dir) usage('--dir is required');
  if (!['debug', 'info', 'warn', 'error'].includes(level)) usage(`unknown log level '${level}'`);
  return { dir, level };
}

async function main(): Promise<void> {
  const { dir, level } = parseArgs(process.argv.slice(2));
  // Files and the socket are created private; the socket is then opened to its group, if any.
  process.umask(0o077);
  const log = jsonLogger('coordinator', level);
  // grpc-js writes its own diagnostics to stderr: keep stderr JSON-only.
  grpc.setLogger({ error: (...args: unknown[]) => log.debug('grpc-js', { detail: format(...args) }) } as unknown as Console);
  process.on('uncaughtException', (e) => {
    log.error('uncaught exception', { error: e.stack ?? e.message });
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log.error('unhandled rejection', { error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    process.exit(1);
  });
  let coordinator: Coordinator;
  try {
    coordinator = await Coordinator.start({ dir, log });
  } catch (e) {
    log.error('coordinator failed to start', { error: (e as Error).message });
    process.exit(1);
  }
  let signals = 0;
  const shutdown = (signal: string) => {
    if (++signals > 1) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    log.info('shutting down', { signal });
    coordinator.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error('shutdown failed', { error: (e as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.stdout.write(coordinator.readyLine + '\n');
}

void main();
