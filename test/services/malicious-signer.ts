#!/usr/bin/env node
/**
 * TEST ONLY — a malicious signer: a real signer node (signer-node/node.ts, started the way
 * signer-node/main.ts starts it, same arguments, same ready line) whose messages are tampered
 * with from the outside.
 *
 *   QK_MALICIOUS_MODE=presign-tau node dist/test/services/malicious-signer.js --dir DIR --index I
 *
 * The mode is read here, by this wrapper, never by product code. A comma-separated list of:
 *
 *   presign-tau    in every presign message it sends that carries the VOLE correction `tau`
 *                  (Alice's round-2 message), the first scalar of `tau` is changed (+1 mod n):
 *                  still a well-formed scalar, so only the VOLE consistency check can catch it
 *                  (vole-check-failed → the receiver blames this signer).
 *   presign-gamma  likewise Γᵘ: the first point of `gammaU` becomes Γᵘ + G (a valid point that
 *                  fails χ·R_j = Γᵘ + dᵘ·G → vole-check-failed).
 *   finish-w       the online share `w` of every Finish answer is changed (+1 mod n): the
 *                  combined signature does not verify (the coordinator must not return it).
 *   finish-nonce   the nonce R' echoed in every online share is replaced by R' + G (a valid point,
 *                  not the one of the presignature): the combiner names this signer
 *                  (nonce-inconsistent) and the coordinator quarantines it.
 *   finish-fail    every Finish is computed (the presignature is used up) and then answered with
 *                  INTERNAL instead of the share.
 *   finish-slow    every Finish answer is held back for QK_MALICIOUS_DELAY_MS (default 6000 ms,
 *                  longer than the coordinator's 5 s Finish deadline).
 *   presign-hold   its last message of every presign (the one carrying ψ) is held back, and the
 *                  session's streams left open, until the process gets SIGUSR2 (which releases
 *                  everything held): a test decides when the peer's last step starts
 *                  (test/services/signer-offload.test.ts). Logged as tampered, fields ["hold"].
 *   accuse-all     a false accuser: every Presign request is answered ABORTED with metadata
 *                  qk-abort-reason=ot-check-failed, qk-blame=1 and qk-culprit = another member of
 *                  the requested subset (without taking part in the session), and every Health
 *                  answer lists every other signer of the cluster in retired_peers, for every key.
 *   replay-collude the colluding peer of a coordinator that replays presign labels: on a label
 *                  it saw before it replays its own draws with its VOLE choice bits flipped,
 *                  and it records the VOLE messages it receives (OBSERVED_FILE) for the test's
 *                  extraction arithmetic (test/services/replay.test.ts). Its presign sessions
 *                  are built on its compute thread by malicious-compute.ts.
 *   refresh-drop   the first refresh echo (protocol round 3, wire round 4) it sends to its lowest-numbered
 *                  peer is not sent at all (a lost message: that peer's refresh times out).
 *   refresh-hold   every successful Refresh answer is held back for QK_MALICIOUS_DELAY_MS after
 *                  the pending share is sealed (a test kills the coordinator meanwhile).
 *   keygen-block   its compute thread stops in the step of every key generation that gets the
 *                  first peer message, until the test writes a file (blocking-compute.ts): the
 *                  thread is busy for as long as the test wants (signer-offload-dealing.test.ts).
 *   none           behave honestly.
 *
 * Default: presign-tau. Key generation messages are never touched; refresh only as above.
 *
 * Seams (composition only, nothing in signer-node/ knows about tampering):
 *  - outgoing peer messages: SignerNodeOptions.createPeerTransport, an ordinary dependency-injection
 *    parameter of SignerNode (default `new PeerTransport(...)`). This file passes a subclass of
 *    PeerTransport whose per-session SessionStreams rewrite messages before they are encoded.
 *  - sessions on the compute thread (replay-collude, keygen-block): SignerNodeOptions.compute,
 *    the compute thread's entry module (malicious-compute.ts builds the colluding sessions
 *    there, blocking-compute.ts the waiting key generations).
 *  - online shares: SignerNode exposes its Party (`node.party`); this file decorates that
 *    instance's `sign` method, so the Finish handler returns the tampered message.
 *  - answers, their timing and failures: while SignerNode is constructed, grpc-js
 *    `Server.addService` is wrapped for this process so that the Signer service's Finish / Presign /
 *    Health handlers it registers are decorated (public grpc-js API; restored right after).
 *
 * Every tampering is logged on stderr as a JSON line with msg "malicious: tampered" so that tests
 * can check it happened.
 */
import * as grpc from '@grpc/grpc-js';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';
import { auditRotateBytes, paths, readClusterConfig, type ClusterConfig } from '../../src/cluster/config.js';
import { loadIdentity, signerName, type TlsIdentity } from '../../src/pki/cluster-ca.js';
import { add, mulBase, POINT_BYTES } from '../../src/protocol/math/curve.js';
import { bytesToBigInt, mod, scalarToBytes, SCALAR_BYTES } from '../../src/protocol/math/scalar.js';
import { toHex, type ProtocolMessage } from '../../src/protocol/message.js';
import { services } from '../../src/transport/proto.js';
import { createLogger, logLevelFromEnv, type Logger } from '../../signer-node/log.js';
import { SignerNode } from '../../signer-node/node.js';
import { openSignerAudit } from '../../signer-node/sign-gate.js';
import { PeerTransport, SessionStreams, type PeerAddress } from '../../signer-node/peers.js';
import { createKek, ensureSignerDir, ShareStore } from '../../signer-node/shares.js';

export const MALICIOUS_MODE_ENV = 'QK_MALICIOUS_MODE';
/** Delay of finish-slow, ms. */
export const MALICIOUS_DELAY_ENV = 'QK_MALICIOUS_DELAY_MS';
export type Tamper = 'presign-tau' | 'presign-gamma' | 'presign-hold' | 'finish-w' | 'finish-nonce' | 'finish-fail' | 'finish-slow' | 'accuse-all' | 'replay-collude' | 'refresh-drop' | 'refresh-hold' | 'keygen-block';
const TAMPERS: readonly string[] = ['presign-tau', 'presign-gamma', 'presign-hold', 'finish-w', 'finish-nonce', 'finish-fail', 'finish-slow', 'accuse-all', 'replay-collude', 'refresh-drop', 'refresh-hold', 'keygen-block'];
/** replay-collude: the file (in this signer's data directory) of the VOLE messages it received. */
export const OBSERVED_FILE = 'observed-vole.jsonl';
/** replay-collude: the compute thread's entry, whose presign sessions collude (malicious-compute.ts). */
const COLLUDING_COMPUTE = new URL('./malicious-compute.js', import.meta.url);
/** keygen-block: the compute thread's entry whose key generations wait for the test (blocking-compute.ts). */
const BLOCKING_COMPUTE = new URL('./blocking-compute.js', import.meta.url);
/** keygen-block: written by the compute thread when it stopped (the key's id), and by the test to let it go; in the data directory. */
export const KEYGEN_BLOCKED_FILE = 'keygen-blocked';
export const KEYGEN_RELEASE_FILE = 'keygen-release';

function parseMode(value: string | undefined): Set<Tamper> {
  const items = (value ?? 'presign-tau').split(',').map((s) => s.trim()).filter(Boolean);
  const out = new Set<Tamper>();
  for (const item of items) {
    if (item === 'none') continue;
    if (!TAMPERS.includes(item)) throw new Error(`${MALICIOUS_MODE_ENV}: unknown mode '${item}' (one of none, ${TAMPERS.join(', ')})`);
    out.add(item as Tamper);
  }
  return out;
}

/** The first 32-byte scalar of a field, plus one mod n (still in range). */
function bumpFirstScalar(field: Uint8Array): Uint8Array {
  const out = new Uint8Array(field);
  const first = bytesToBigInt(out.subarray(0, SCALAR_BYTES));
  out.set(scalarToBytes(mod(first + 1n)), 0);
  return out;
}

/** The first compressed point of a field, plus G (still a valid point). */
function bumpFirstPoint(field: Uint8Array): Uint8Array {
  const out = new Uint8Array(field);
  out.set(add(out.subarray(0, POINT_BYTES), mulBase(1n)), 0);
  return out;
}

/** A copy of a message with one payload field replaced (the original is left alone). */
function withField(m: ProtocolMessage, name: string, value: Uint8Array): ProtocolMessage {
  return { ...m, payload: { ...m.payload, [name]: value } };
}

/** Releases of everything presign-hold holds back, run at SIGUSR2. */
const heldBack: (() => void)[] = [];

/** SessionStreams that rewrite (or drop: undefined) messages on their way out, or hold them back. */
class TamperingStreams extends SessionStreams {
  private holding = false;
  private endWhenReleased = false;

  constructor(
    private readonly tamper: (m: ProtocolMessage) => ProtocolMessage | undefined,
    private readonly hold: (m: ProtocolMessage) => boolean,
    ...args: ConstructorParameters<typeof SessionStreams>
  ) {
    super(...args);
  }

  override send(messages: readonly ProtocolMessage[]): void {
    const out = messages.map(this.tamper).filter((m): m is ProtocolMessage => m !== undefined);
    const later = out.filter(this.hold);
    super.send(out.filter((m) => !later.includes(m)));
    if (later.length === 0) return;
    this.holding = true;
    heldBack.push(() => {
      this.holding = false;
      super.send(later);
      if (this.endWhenReleased) super.end();
    });
  }

  override end(): void {
    if (this.holding) this.endWhenReleased = true;
    else super.end();
  }
}

/** The real peer transport, except that every session's streams are TamperingStreams. */
class TamperingTransport extends PeerTransport {
  constructor(
    private readonly modes: ReadonlySet<Tamper>,
    identity: TlsIdentity,
    self: number,
    private readonly peers: readonly PeerAddress[],
    log: Logger,
  ) {
    super(identity, self, peers, log);
  }

  override streams(label: string, deadline: Date, onPeerError: (peer: number, detail: string) => void): SessionStreams {
    return new TamperingStreams((m) => this.tamper(m), (m) => this.holds(m), this, label, deadline, onPeerError);
  }

  private holds(m: ProtocolMessage): boolean {
    if (!this.modes.has('presign-hold') || m.protocol !== 'presign' || !m.payload.psi) return false;
    this.log.warn('malicious: tampered', { what: 'presign', fields: ['hold'], round: m.round, to: m.to, session: toHex(m.sessionId).slice(0, 16) });
    return true;
  }

  private dropped = false;

  private tamper(m: ProtocolMessage): ProtocolMessage | undefined {
    // Protocol round 3 (the echo) is wire round 4 (session.ts: the nonce round comes first).
    if (m.protocol === 'refresh' && m.round === 4 && this.modes.has('refresh-drop') && !this.dropped) {
      const lowest = Math.min(...this.peers.map((p) => p.index).filter((i) => i !== this.self));
      if (m.to !== lowest) return m;
      this.dropped = true;
      this.log.warn('malicious: tampered', { what: 'refresh', fields: ['drop'], round: m.round, to: m.to, session: toHex(m.sessionId).slice(0, 16) });
      return undefined;
    }
    if (m.protocol !== 'presign') return m;
    let out = m;
    const changed: string[] = [];
    if (this.modes.has('presign-tau') && out.payload.tau && out.payload.tau.length >= SCALAR_BYTES) {
      out = withField(out, 'tau', bumpFirstScalar(out.payload.tau));
      changed.push('tau');
    }
    if (this.modes.has('presign-gamma') && out.payload.gammaU && out.payload.gammaU.length >= POINT_BYTES) {
      out = withField(out, 'gammaU', bumpFirstPoint(out.payload.gammaU));
      changed.push('gammaU');
    }
    if (changed.length) {
      this.log.warn('malicious: tampered', { what: 'presign', fields: changed, round: m.round, to: m.to, session: toHex(m.sessionId).slice(0, 16) });
    }
    return out;
  }
}

type UnaryHandler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/**
 * Runs `construct` (which builds the SignerNode) with grpc-js `Server.addService` wrapped, so that
 * the Signer service handlers it registers pass through `decorate` (undefined: left alone).
 * The original `addService` is back before this returns. Returns what `construct` returned and
 * the methods that were decorated.
 */
function withDecoratedSignerHandlers<T>(decorate: (method: string, handler: UnaryHandler) => UnaryHandler | undefined, construct: () => T): { value: T; decorated: string[] } {
  const proto = grpc.Server.prototype;
  const original = proto.addService;
  const decoratedMethods: string[] = [];
  proto.addService = function (this: grpc.Server, service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    let impl = implementation;
    if (service === services.Signer.service) {
      impl = { ...implementation };
      for (const [method, handler] of Object.entries(implementation)) {
        const decorated = decorate(method, handler as UnaryHandler);
        if (decorated) {
          impl[method] = decorated as grpc.UntypedHandleCall;
          decoratedMethods.push(method);
        }
      }
    }
    original.call(this, service, impl);
  };
  try {
    return { value: construct(), decorated: decoratedMethods };
  } finally {
    proto.addService = original;
  }
}

/**
 * The Finish decorations of finish-fail and finish-slow, the Presign / Health decorations of
 * accuse-all (`self`: this signer's index, `cluster`: every signer index).
 */
function handlerDecorator(
  modes: ReadonlySet<Tamper>,
  delayMs: number,
  log: Logger,
  self: number,
  cluster: readonly number[],
): (method: string, handler: UnaryHandler) => UnaryHandler | undefined {
  const others = cluster.filter((i) => i !== self).sort((a, b) => a - b);
  let accusations = 0;
  return (method, handler) => {
    if (method === 'Finish' && (modes.has('finish-fail') || modes.has('finish-slow'))) {
      return (call, callback) =>
        handler(call, (err, value, ...rest) => {
          let answer: () => void = () => callback(err, value, ...rest);
          if (!err && modes.has('finish-fail')) {
            log.warn('malicious: tampered', { what: 'finish', fields: ['fail'] });
            answer = () => callback({ code: grpc.status.INTERNAL, details: 'malicious signer: the Finish answer is withheld' });
          }
          if (modes.has('finish-slow')) {
            log.warn('malicious: tampered', { what: 'finish', fields: ['delay'], delay_ms: delayMs });
            setTimeout(answer, delayMs);
          } else {
            answer();
          }
        });
    }
    if (method === 'Refresh' && modes.has('refresh-hold')) {
      return (call, callback) =>
        handler(call, (err, value, ...rest) => {
          if (err) return callback(err, value, ...rest);
          log.warn('malicious: tampered', { what: 'refresh', fields: ['hold'], delay_ms: delayMs });
          setTimeout(() => callback(err, value, ...rest), delayMs);
        });
    }
    if (method === 'Presign' && modes.has('accuse-all')) {
      return (call, callback) => {
        const req = call.request as { key_id?: string; subset?: number[] };
        const members = (req.subset ?? []).filter((i) => i !== self);
        // Rotate through the other members of the subset, so that every one gets accused.
        const culprit = members.length ? members[accusations++ % members.length]! : (others[0] ?? self);
        log.warn('malicious: tampered', { what: 'presign', fields: ['accuse'], key: req.key_id, subset: req.subset, culprit });
        const metadata = new grpc.Metadata();
        metadata.set('qk-abort-reason', 'ot-check-failed');
        metadata.set('qk-culprit', String(culprit));
        metadata.set('qk-blame', '1');
        callback({ code: grpc.status.ABORTED, details: `ot-check-failed (party ${culprit}): OT extension consistency check failed`, metadata });
      };
    }
    if (method === 'Health' && modes.has('accuse-all')) {
      return (call, callback) =>
        handler(call, (err, value, ...rest) => {
          if (err || !value) return callback(err, value, ...rest);
          const health = value as { keys?: { key_id: string; retired_peers?: number[] }[] };
          const keys = (health.keys ?? []).map((k) => ({ ...k, retired_peers: [...others] }));
          callback(null, { ...health, keys }, ...rest);
        });
    }
    return undefined;
  };
}

const USAGE = 'usage: node dist/test/services/malicious-signer.js --dir DIR --index I';

function parseArguments(argv: readonly string[]): { dir: string; index: number } {
  let dir: string | undefined;
  let index: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const [name, inline] = arg.startsWith('--') && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i] ?? fail(`${name} needs a value (${USAGE})`);
    if (name === '--dir') dir = value();
    else if (name === '--index') index = value();
    else fail(`unknown argument '${arg}' (${USAGE})`);
  }
  if (!dir || !index || !/^[1-9][0-9]{0,3}$/.test(index)) fail(USAGE);
  return { dir, index: Number(index) };
}

function fail(message: string): never {
  process.stderr.write(`malicious signer: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { dir, index } = parseArguments(process.argv.slice(2));
  let modes: Set<Tamper>;
  try {
    modes = parseMode(process.env[MALICIOUS_MODE_ENV]);
  } catch (e) {
    return fail((e as Error).message);
  }
  const delayText = process.env[MALICIOUS_DELAY_ENV] ?? '6000';
  if (!/^\d{1,6}$/.test(delayText)) fail(`${MALICIOUS_DELAY_ENV}: expected milliseconds, got '${delayText}'`);
  const delayMs = Number(delayText);
  const p = paths(dir);
  if (!existsSync(p.root)) fail(`cluster directory ${p.root} does not exist`);
  const config: ClusterConfig = readClusterConfig(dir);
  const me = config.signers.find((s) => s.index === index);
  if (!me) fail(`signer ${index} is not in the cluster configuration`);
  const identity = loadIdentity(p.pki, signerName(index));
  ensureSignerDir(dir, index);

  // From here on as signer-node/main.ts, plus the two decorations.
  const log = createLogger({ signer: index, malicious: [...modes].join(',') || 'none' }, logLevelFromEnv(process.env.QUORUMKEY_LOG_LEVEL));
  grpc.setLogger({ error: (...args: unknown[]) => log.debug('grpc-js', { detail: format(...args) }) } as unknown as Console);
  const kek = createKek(dir, index, me.seal);
  const store = new ShareStore(dir, index, kek);
  await store.checkKek();
  const { shares, pending } = await store.loadAll();
  const audit = await openSignerAudit(p.signerAudit(index), log, auditRotateBytes(config));

  const { value: node, decorated } = withDecoratedSignerHandlers(
    handlerDecorator(
      modes,
      delayMs,
      log,
      index,
      config.signers.map((s) => s.index),
    ),
    () =>
      new SignerNode({
        index,
        config,
        identity,
        store,
        audit,
        log,
        createPeerTransport: (id, self, peers, l) => new TamperingTransport(modes, id, self, peers, l),
        ...(modes.has('replay-collude') ? { compute: { entry: COLLUDING_COMPUTE, extra: { observedFile: join(store.dataDir, OBSERVED_FILE) } } } : {}),
        ...(modes.has('keygen-block') ? { compute: { entry: BLOCKING_COMPUTE, extra: { blockedFile: join(store.dataDir, KEYGEN_BLOCKED_FILE), releaseFile: join(store.dataDir, KEYGEN_RELEASE_FILE) } } } : {}),
      }),
  );
  const wanted = [
    ...(modes.has('finish-fail') || modes.has('finish-slow') ? ['Finish'] : []),
    ...(modes.has('accuse-all') ? ['Presign', 'Health'] : []),
    ...(modes.has('refresh-hold') ? ['Refresh'] : []),
  ];
  const missing = wanted.filter((m) => !decorated.includes(m));
  if (missing.length) fail(`could not decorate the Signer service handlers ${missing.join(', ')} (did SignerNode stop registering them through grpc.Server.addService?)`);
  if (modes.has('finish-w') || modes.has('finish-nonce')) {
    const party = node.party;
    const honestSign = party.sign.bind(party);
    party.sign = (keyId, presignatureId, request) => {
      let message = honestSign(keyId, presignatureId, request);
      const changed: string[] = [];
      if (modes.has('finish-w') && message.payload.w) {
        message = withField(message, 'w', bumpFirstScalar(message.payload.w));
        changed.push('w');
      }
      if (modes.has('finish-nonce') && message.payload.nonce && message.payload.nonce.length >= POINT_BYTES) {
        message = withField(message, 'nonce', bumpFirstPoint(message.payload.nonce));
        changed.push('nonce');
      }
      if (changed.length) log.warn('malicious: tampered', { what: 'finish', fields: changed, key: keyId, presignature: toHex(presignatureId).slice(0, 16) });
      return message;
    };
  }
  await node.installShares(shares, pending);
  const addresses = await node.listen();
  log.warn('malicious signer ready: this process tampers with its messages (test only)', { modes: [...modes], delay_ms: delayMs, boot_id: node.bootId, keys: shares.map((s) => s.keyId) });
  process.stdout.write(`signer ${index} ready grpc=${addresses.grpc} http=${addresses.http}\n`);

  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    node
      .stop()
      .catch(() => undefined)
      .finally(() => {
        kek.dispose();
        process.exit(0);
      });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.on('SIGUSR2', () => {
    log.warn('malicious: releasing held messages', { releases: heldBack.length });
    for (const release of heldBack.splice(0)) release();
  });
}

// Runs only as a process entry, not when a test imports this module (for MALICIOUS_MODE_ENV).
const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  main().catch((e: unknown) => fail((e as Error)?.message ?? String(e)));
}
