#!/usr/bin/env node
/**
 * quorumkey signer node.
 *
 *   node dist/signer-node/main.js --dir DIR --index I
 *
 * Reads DIR/cluster.json, its TLS identity signer-I from DIR/pki and its data from DIR/signer-I
 * (created with mode 0700), unseals every share, then serves the Signer and Peer gRPC services
 * (mutual TLS) and HTTP /metrics, /healthz. When serving it prints exactly one line on stdout:
 *
 *   signer I ready grpc=<host:port> http=<host:port>
 *
 * and logs JSON lines on stderr (QUORUMKEY_LOG_LEVEL=debug|info|warn|error). A startup problem
 * is one line on stderr and exit code 2. SIGTERM / SIGINT: stop accepting, close, exit 0.
 *
 * Before anything else it checks that the native kernels are in use (DESIGN §3, constant time
 * by construction; docs/constant-time.md): it refuses to start, naming the addon, when
 * build/Release/quorumkey_native.node does not load, when QUORUMKEY_NATIVE=0 is set, or when any
 * kernel is the TypeScript reference (which exists for tests only).
 */
import * as grpc from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { format } from 'node:util';
import { auditRotateBytes, paths, readClusterConfig, signerCompute, type ClusterConfig } from '../src/cluster/config.js';
import { loadIdentity, signerName } from '../src/pki/cluster-ca.js';
import { nativeKernelsProblem } from '../src/protocol/math/kernels.js';
// Every module with a secret-handling kernel, so that each has registered before the check.
import '../src/protocol/math/curve.js';
import '../src/protocol/math/secret-scalar.js';
import '../src/protocol/ot/bits.js';
import '../src/protocol/ot/native-hasher.js';
import '../src/protocol/vole.js';
import { createLogger, logLevelFromEnv } from './log.js';
import { SignerNode } from './node.js';
import { openSignerAudit } from './sign-gate.js';
import { createKek, ensureSignerDir, ShareStore, StartupError, type KekSetup } from './shares.js';

const EXIT_STARTUP = 2;

const USAGE = 'usage: node dist/signer-node/main.js --dir DIR --index I';

interface Arguments {
  dir: string;
  index: number;
}

function parseArguments(argv: readonly string[]): Arguments {
  let dir: string | undefined;
  let index: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const [name, inline] = arg.startsWith('--') && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new StartupError(`${name} needs a value (${USAGE})`);
      return v;
    };
    if (name === '--dir') dir = value();
    else if (name === '--index') index = value();
    else if (name === '--help' || name === '-h') throw new StartupError(USAGE);
    else throw new StartupError(`unknown argument '${arg}' (${USAGE})`);
  }
  if (!dir) throw new StartupError(`--dir is required (${USAGE})`);
  if (!index) throw new StartupError(`--index is required (${USAGE})`);
  if (!/^[1-9][0-9]{0,3}$/.test(index)) throw new StartupError(`--index must be a positive integer, got '${index}'`);
  return { dir, index: Number(index) };
}

function checkConfig(config: ClusterConfig, index: number): void {
  if (!config || !Array.isArray(config.signers)) throw new StartupError('cluster.json has no "signers" list');
  const seen = new Set<number>();
  for (const s of config.signers) {
    if (!Number.isInteger(s?.index) || s.index < 1 || s.index > 255) throw new StartupError(`cluster.json: signer index ${JSON.stringify(s?.index)} is not an integer in 1..255`);
    if (seen.has(s.index)) throw new StartupError(`cluster.json: signer ${s.index} appears twice`);
    seen.add(s.index);
    if (typeof s.endpoint !== 'string' || typeof s.http !== 'string') throw new StartupError(`cluster.json: signer ${s.index} needs "endpoint" and "http" (host:port)`);
  }
  if (!seen.has(index)) throw new StartupError(`signer ${index} is not in the cluster configuration (signers: ${[...seen].join(',') || 'none'})`);
  try {
    signerCompute(config);
  } catch (e) {
    throw new StartupError((e as Error).message);
  }
}

async function start(args: Arguments): Promise<{ node: SignerNode; kek: KekSetup }> {
  const { dir, index } = args;
  const p = paths(dir);
  if (!existsSync(p.root)) throw new StartupError(`cluster directory ${p.root} does not exist`);
  let config: ClusterConfig;
  try {
    config = readClusterConfig(dir);
  } catch (e) {
    throw new StartupError(e instanceof SyntaxError ? `${p.config} is not valid JSON: ${e.message}` : (e as Error).message);
  }
  checkConfig(config, index);
  const me = config.signers.find((s) => s.index === index)!;
  let identity;
  try {
    identity = loadIdentity(p.pki, signerName(index));
  } catch (e) {
    throw new StartupError((e as Error).message);
  }
  try {
    ensureSignerDir(dir, index);
  } catch (e) {
    throw new StartupError(`cannot create data directory ${p.signer(index)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }

  const log = createLogger({ signer: index }, logLevelFromEnv(process.env.QUORUMKEY_LOG_LEVEL));
  // grpc-js writes its own diagnostics to stderr: keep them in the structured log instead.
  grpc.setLogger({ error: (...args: unknown[]) => log.debug('grpc-js', { detail: format(...args) }) } as unknown as Console);
  const kek = createKek(dir, index, me.seal);
  for (const w of kek.warnings) log.warn(w);
  const store = new ShareStore(dir, index, kek);
  const created = await store.checkKek();
  const { shares, pending, ignored } = await store.loadAll();
  for (const name of ignored) log.warn('ignoring unexpected file in the shares directory', { file: name });

  const audit = await openSignerAudit(p.signerAudit(index), log, auditRotateBytes(config));
  const node = new SignerNode({ index, config, identity, store, audit, log });
  await node.installShares(shares, pending);
  let addresses;
  try {
    addresses = await node.listen();
  } catch (e) {
    await node.stop(0).catch(() => undefined);
    throw new StartupError((e as Error).message);
  }
  log.info('signer ready', {
    boot_id: node.bootId,
    grpc: addresses.grpc,
    http: addresses.http,
    seal: kek.description,
    seal_check: created ? 'created' : 'verified',
    keys: shares.map((s) => `${s.keyId}@${s.epoch}`),
    pending: pending.map((s) => `${s.keyId}@${s.epoch}`),
    session_timeout_ms: config.sessionTimeoutMs,
  });
  process.stdout.write(`signer ${index} ready grpc=${addresses.grpc} http=${addresses.http}\n`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    node
      .stop()
      .then(() => audit.close())
      .catch((e) => log.error('error while shutting down', { error: (e as Error)?.message }))
      .finally(() => {
        kek.dispose();
        log.info('stopped');
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('uncaughtException', (e) => {
    log.error('uncaught exception', { error: e?.message, stack: e?.stack });
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log.error('unhandled rejection', { error: (e as Error)?.message ?? String(e) });
  });
  return { node, kek };
}

function fail(message: string): never {
  process.stderr.write(`quorumkey signer: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(EXIT_STARTUP);
}

async function main(): Promise<void> {
  const kernels = nativeKernelsProblem();
  if (kernels) return fail(kernels);
  let args: Arguments;
  try {
    args = parseArguments(process.argv.slice(2));
  } catch (e) {
    return fail((e as Error).message);
  }
  try {
    await start(args);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    fail(`signer ${args.index}: ${message}`);
  }
}

void main();
