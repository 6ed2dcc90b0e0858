/**
 * A malicious party tampers with its messages, and the honest parties must catch it.
 *
 * Two parties (2-of-2), the malicious party at index 2, then at index 1: for every message type of
 * key generation, refresh, presigning, pair re-setup and the online round, every field of it
 * (flipped byte, truncation, missing field, off-curve and identity points, out-of-range scalars,
 * wrong-length polynomials) and every envelope mistake, the honest party aborts with the reason
 * the field's check gives, naming the malicious party as the culprit. The exception is the
 * explicit allow-list SIGNATURE_ONLY (ψ, w, u): a well-formed change there is caught only by
 * verifying the combined signature, which cannot tell the signers apart, so nobody is named and
 * the suspects are exactly the signing subset.
 *
 * Three parties (3-of-3), the malicious party at index 2, then at index 3: equivocation in every
 * broadcast — it sends one honest peer (the victim) another well-formed value (from another
 * session) of a field every peer must receive identically, and, for key generation and refresh,
 * a whole second, self-consistent dealing that only the echo round can catch. A disagreement
 * between the victim's view and a peer's (context-mismatch, broadcast-inconsistent) cannot be
 * pinned on one peer when there are several: the suspects are exactly the victim's peers.
 *
 * Every protocol starts with the nonce round (session.ts): its nonce and the context every later
 * message carries are tampered with like any field (wire round r + 1 is protocol round r).
 *
 * Detection point: every tamper is caught inside the protocol it hits, except the base-OT
 * messages (CAUGHT_BY_PRESIGN): a different valid point there only corrupts the OT-extension
 * state of the pair, which the first presignature exposes; the test follows the key's life
 * until it is.
 *
 * In every case: the victim produces nothing from the tampered run (no key share, no
 * presignature, no signature; a tampered ψ spoils exactly the presignature it touches), no
 * honest party names an honest one as the culprit (except 'missing-message' from an honest party
 * that had itself stopped on a detection: silence is all its peers see), and no secret of the
 * cluster under test (key shares, polynomial coefficients, zero-sharing seeds, OT Δ and seeds,
 * presignature r, φ, u, v, …) appears in any error, in any encoding (test/secret-scan.ts).
 *
 * The cases are independent and CPU-bound: they run in two worker threads (`Jobs`), each `it`
 * reporting every problem of its round at once.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { KeyDealingSession } from '../../src/protocol/dkg.js';
import { ProtocolAbort, type AbortReason } from '../../src/protocol/errors.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { decodeKeyShare, encodeKeyShare } from '../../src/protocol/keyshare-codec.js';
import { runSessions, type Interceptor } from '../../src/protocol/local-network.js';
import { nobleBackend, POINT_BYTES } from '../../src/protocol/math/curve.js';
import { N, scalarToBytes, SCALAR_BYTES } from '../../src/protocol/math/scalar.js';
import { bytesEqual, type ProtocolMessage, type ProtocolName } from '../../src/protocol/message.js';
import { COMBINER } from '../../src/protocol/online.js';
import { PairSetupSession } from '../../src/protocol/pair-setup.js';
import { Party } from '../../src/protocol/party.js';
import { PresignSession, type Presignature } from '../../src/protocol/presign.js';
import { systemRng, type Rng } from '../../src/protocol/rng.js';
import type { Session } from '../../src/protocol/session.js';
import { SecretScan } from '../secret-scan.js';
import { Cluster, sha256 } from './harness.js';

const KEY = 'adv';

/** Every party holds a share and signs (threshold = parties). */
interface Setup {
  parties: number;
  malicious: number;
}
const partiesOf = (s: Setup) => Array.from({ length: s.parties }, (_, k) => k + 1);
const honestOf = (s: Setup) => partiesOf(s).filter((i) => i !== s.malicious);

// ---------------------------------------------------------------------------------------------
// What each check catches.

/** Fields holding points, and the offset of the first one. */
const POINT_FIELDS: Record<string, number> = { coefficients: 0, proof: 0, baseOt: 0, nonces: 0, keyShares: 0, gammaU: 0, gammaV: 0, nonce: 0 };
/** Fields holding scalars, and the offset of the first one. */
const SCALAR_FIELDS: Record<string, number> = { share: 0, proof: POINT_BYTES, psi: 0, eta: 0, tau: 0, w: 0, u: 0 };

/**
 * The allow-list: fields whose well-formed change only the combined signature can catch (ψ is
 * public, masked by φ; w and u are the online shares). Nobody can be named: the suspects are
 * the signing subset.
 */
const SIGNATURE_ONLY: Partial<Record<ProtocolName, string[]>> = { presign: ['psi'], sign: ['w', 'u'] };

/** Fields whose well-formed change is caught only by the first presign with the pair (see the header). */
const CAUGHT_BY_PRESIGN: Partial<Record<ProtocolName, string[]>> = { dkg: ['baseOt'], refresh: ['baseOt'], 'pair-setup': ['baseOt'] };
/**
 * What that presign reports: a failed OT or VOLE check, or the malicious party falling silent
 * (its own corrupted state fails its own check first, and it stops).
 */
const PRESIGN_CHECKS: AbortReason[] = ['ot-check-failed', 'vole-check-failed', 'missing-message'];

/** The check a well-formed change of each field (a flipped byte) fails. */
const FIELD_CHECKS: Record<string, AbortReason[]> = {
  nonce: ['context-mismatch'], // the nonce round: the two parties' contexts differ from then on
  context: ['context-mismatch'],
  commitment: ['commitment-mismatch'],
  seedCommitment: ['commitment-mismatch'],
  nonceCommitment: ['commitment-mismatch'],
  coefficients: ['commitment-mismatch'],
  salt: ['commitment-mismatch'],
  seed: ['commitment-mismatch'],
  seedSalt: ['commitment-mismatch'],
  nonces: ['commitment-mismatch'],
  nonceSalt: ['commitment-mismatch'],
  share: ['share-inconsistent'],
  proof: ['proof-invalid'],
  echo: ['broadcast-inconsistent'],
  ote: ['ot-check-failed'],
  tau: ['vole-check-failed'],
  eta: ['vole-check-failed'],
  check: ['vole-check-failed'],
  gammaU: ['vole-check-failed'],
  gammaV: ['vole-check-failed'],
  keyShares: ['vole-check-failed'],
};

function checkOf(protocol: ProtocolName, name: string): AbortReason[] {
  if (protocol === 'sign' && name === 'nonce') return ['nonce-inconsistent']; // the echoed R'
  const found = FIELD_CHECKS[name];
  if (!found) throw new Error(`no expectation for field '${name}' of ${protocol}: add it to FIELD_CHECKS`);
  return found;
}

/** The offset of the first point of a field that holds points (the nonce round's nonce is bytes). */
function pointOffset(protocol: ProtocolName, name: string): number | undefined {
  return name === 'nonce' && protocol !== 'sign' ? undefined : POINT_FIELDS[name];
}

// ---------------------------------------------------------------------------------------------
// Tampers.

interface Tamper {
  name: string;
  /** Rewrites (or drops, returning undefined) the message. */
  apply: (m: ProtocolMessage) => ProtocolMessage | undefined;
  /** The reasons the victim may abort with. */
  reasons: readonly AbortReason[];
  /** Nobody named: the suspects must be exactly these. Otherwise the culprit must be the malicious party. */
  suspects?: readonly number[];
  /** Caught by the first presign after the protocol, not inside it. */
  caughtByPresign?: boolean;
  /** Caught only by the combined signature of the presignature with this index in the batch (presign ψ). */
  spoilsInstance?: number;
}

function offCurvePoint(): Uint8Array {
  for (let x = 1; ; x++) {
    const candidate = new Uint8Array(POINT_BYTES);
    candidate[0] = 2;
    candidate[POINT_BYTES - 1] = x;
    if (!nobleBackend.isValid(candidate)) return candidate;
  }
}

function withField(m: ProtocolMessage, name: string, edit: (v: Uint8Array) => Uint8Array): ProtocolMessage {
  return { ...m, payload: { ...m.payload, [name]: edit(m.payload[name]!.slice()) } };
}
function overwrite(at: number, bytes: Uint8Array) {
  return (v: Uint8Array) => (v.set(bytes, at), v);
}

/** Whether the point of `v` holding byte `at` (points from `offset` on) is still on the curve. */
function onCurve(v: Uint8Array, offset: number, at: number): boolean {
  const start = offset + Math.floor((at - offset) / POINT_BYTES) * POINT_BYTES;
  return nobleBackend.isValid(v.subarray(start, start + POINT_BYTES));
}

/**
 * A byte flipped in the middle of the field. In a point it may leave the curve (then decoding
 * refuses it: 'invalid-point'; checked on the message actually sent), else the field's own
 * check catches the change.
 */
function flippedByte(protocol: ProtocolName, name: string, value: Uint8Array, signers: readonly number[], batch: number): Tamper {
  const at = value.length >> 1;
  const offset = pointOffset(protocol, name);
  let leftTheCurve = false;
  const apply = (m: ProtocolMessage) =>
    withField(m, name, (v) => {
      v[at]! ^= 0x01;
      leftTheCurve = offset !== undefined && at >= offset && !onCurve(v, offset, at);
      return v;
    });
  const tamper = { name: `flipped byte in '${name}'`, apply };
  if (SIGNATURE_ONLY[protocol]?.includes(name)) {
    return { ...tamper, reasons: ['signature-invalid'], suspects: signers, ...(protocol === 'presign' ? { spoilsInstance: Math.floor(at / (value.length / batch)) } : {}) };
  }
  const caughtByPresign = CAUGHT_BY_PRESIGN[protocol]?.includes(name) ?? false;
  const checks = caughtByPresign ? PRESIGN_CHECKS : checkOf(protocol, name);
  return {
    ...tamper,
    caughtByPresign,
    get reasons(): AbortReason[] {
      return leftTheCurve ? ['invalid-point'] : checks;
    },
  };
}

/** Every tamper of one field of a message of `protocol`; `signers` is the subset (for ψ, w, u). */
function fieldTampers(protocol: ProtocolName, name: string, value: Uint8Array, signers: readonly number[], batch: number): Tamper[] {
  const tampers: Tamper[] = [
    flippedByte(protocol, name, value, signers, batch),
    { name: `truncated '${name}'`, apply: (m) => withField(m, name, (v) => v.subarray(0, v.length - 1)), reasons: ['wrong-length'] },
    { name: `missing '${name}'`, apply: (m) => ({ ...m, payload: Object.fromEntries(Object.entries(m.payload).filter(([k]) => k !== name)) }), reasons: ['malformed-message'] },
  ];
  const offset = pointOffset(protocol, name);
  if (offset !== undefined && value.length >= offset + POINT_BYTES) {
    const at = offset;
    tampers.push(
      { name: `off-curve point in '${name}'`, apply: (m) => withField(m, name, overwrite(at, offCurvePoint())), reasons: ['invalid-point'] },
      { name: `identity point in '${name}'`, apply: (m) => withField(m, name, overwrite(at, new Uint8Array(POINT_BYTES))), reasons: ['invalid-point'] },
    );
  }
  if (name in SCALAR_FIELDS && value.length >= SCALAR_FIELDS[name]! + SCALAR_BYTES) {
    const at = SCALAR_FIELDS[name]!;
    const tooLarge = scalarToBytes(N - 1n).map((b, i) => (i === 31 ? 0xff : b));
    tampers.push({ name: `out-of-range scalar in '${name}'`, apply: (m) => withField(m, name, overwrite(at, tooLarge)), reasons: ['invalid-scalar'] });
  }
  if (name === 'coefficients') {
    const count = value.length / POINT_BYTES;
    tampers.push(
      { name: 'polynomial one coefficient short', apply: (m) => withField(m, name, (v) => v.subarray(0, (count - 1) * POINT_BYTES)), reasons: ['wrong-length'] },
      { name: 'polynomial one coefficient long', apply: (m) => withField(m, name, (v) => Uint8Array.from([...v, ...v.subarray(0, POINT_BYTES)])), reasons: ['wrong-length'] },
    );
  }
  return tampers;
}

/** No party of any setup has this index. */
const STRANGER = 9;

function envelopeTampers(protocol: ProtocolName, donor: ProtocolMessage): Tamper[] {
  return [
    { name: 'wrong session id', apply: (m) => ({ ...m, sessionId: m.sessionId.map((b, i) => (i === 0 ? b ^ 1 : b)) }), reasons: ['wrong-session-id'] },
    { name: 'wrong key id', apply: (m) => ({ ...m, keyId: 'other' }), reasons: ['wrong-key-id'] },
    { name: 'wrong round', apply: (m) => ({ ...m, round: m.round + 1 }), reasons: ['wrong-round'] },
    { name: 'wrong sender', apply: (m) => ({ ...m, from: STRANGER }), reasons: ['wrong-sender'] },
    { name: 'wrong receiver', apply: (m) => ({ ...m, to: STRANGER }), reasons: ['wrong-receiver'] },
    { name: 'replayed from another session', apply: () => donor, reasons: ['wrong-session-id'] },
    // Another session's payload carries its own context (its own nonce in the nonce round, whose
    // context then differs); another online share carries its own nonce.
    { name: 'replayed payload under this session’s header', apply: (m) => ({ ...m, payload: donor.payload }), reasons: protocol === 'sign' ? ['nonce-inconsistent'] : ['context-mismatch'] },
    { name: 'missing message', apply: () => undefined, reasons: ['missing-message'] },
  ];
}

// ---------------------------------------------------------------------------------------------
// Secrets of the cluster under test.

type SecretValue = bigint | Uint8Array;

function shareSecrets(share: KeyShare): [string, SecretValue][] {
  const who = `party ${share.self} epoch ${share.epoch}`;
  const out: [string, SecretValue][] = [[`${who} key share`, share.secretShare]];
  for (const [peer, seed] of share.zeroSeeds) out.push([`${who} zero-sharing seed with ${peer}`, seed]);
  for (const [peer, s] of share.otSender) out.push([`${who} OT Δ with ${peer}`, s.delta], ...s.seeds.map((x, k) => [`${who} OT sender seed ${k} with ${peer}`, x] as [string, SecretValue]));
  for (const [peer, r] of share.otReceiver) {
    out.push(...[...r.seeds0, ...r.seeds1].map((x, k) => [`${who} OT receiver seed ${k} with ${peer}`, x] as [string, SecretValue]));
  }
  return out;
}

function presignatureSecrets(p: Presignature): [string, SecretValue][] {
  const who = `party ${p.self} presignature`;
  return [[`${who} φ`, p.phi], [`${who} u`, p.u], [`${who} v`, p.v]];
}

/** The secret state of a running session, read from its private fields (never changed). */
function sessionSecrets(session: Session<unknown>): [string, SecretValue][] {
  const state = session as unknown as Record<string, unknown>;
  const who = `party ${session.self} ${session.protocol}`;
  const out: [string, SecretValue][] = [];
  if (session instanceof KeyDealingSession) {
    (state.polynomial as bigint[]).forEach((c, k) => out.push([`${who} coefficient ${k}`, c]));
    for (const [peer, c] of state.seedContributions as Map<number, { value: Uint8Array }>) out.push([`${who} zero-seed contribution to ${peer}`, c.value]);
    for (const [peer, seed] of state.zeroSeeds as Map<number, Uint8Array>) out.push([`${who} zero-sharing seed with ${peer}`, seed]);
    const dealt = state.dealt as { secretShare: bigint } | undefined;
    if (dealt) out.push([`${who} new key share`, dealt.secretShare]);
  }
  if (session instanceof PresignSession) {
    (state.instances as { r: Uint8Array; phi: Uint8Array; sk: Uint8Array }[]).forEach((x, b) => out.push([`${who} r[${b}]`, x.r], [`${who} φ[${b}]`, x.phi], [`${who} sk[${b}]`, x.sk]));
    for (const [peer, bob] of state.bobStates as Map<number, { chi: Uint8Array[]; choices: Uint8Array }>) {
      out.push([`${who} VOLE choice bits with ${peer}`, bob.choices], ...bob.chi.map((c, b) => [`${who} VOLE χ[${b}] with ${peer}`, c] as [string, SecretValue]));
    }
    for (const [peer, shares] of state.aliceShares as Map<number, [Uint8Array, Uint8Array][]>) {
      shares.forEach(([cu, cv], b) => out.push([`${who} VOLE share cᵘ[${b}] with ${peer}`, cu], [`${who} VOLE share cᵛ[${b}] with ${peer}`, cv]));
    }
  }
  if (session instanceof KeyDealingSession || session instanceof PairSetupSession) {
    const ot = state.ot as {
      pending: Map<number, { baseOt: { choiceBits: Uint8Array; secrets: bigint[] } }>;
      sender: Map<number, { delta: Uint8Array; seeds: Uint8Array[] }>;
      receiver: Map<number, { seeds0: Uint8Array[]; seeds1: Uint8Array[] }>;
    };
    for (const [peer, p] of ot.pending) out.push([`${who} OT Δ (base-OT choice bits) with ${peer}`, p.baseOt.choiceBits], ...p.baseOt.secrets.map((x, k) => [`${who} base-OT secret ${k} with ${peer}`, x] as [string, SecretValue]));
    for (const [peer, s] of ot.sender) out.push([`${who} OT Δ with ${peer}`, s.delta], ...s.seeds.map((x, k) => [`${who} OT sender seed ${k} with ${peer}`, x] as [string, SecretValue]));
    for (const [peer, r] of ot.receiver) out.push(...[...r.seeds0, ...r.seeds1].map((x, k) => [`${who} OT receiver seed ${k} with ${peer}`, x] as [string, SecretValue]));
  }
  return out;
}

/** Message fields that carry a secret to their receiver. */
const SECRET_FIELDS = ['share', 'seed'];

// ---------------------------------------------------------------------------------------------
// One case: a fresh cluster, one tamper.

class Case {
  readonly cluster: Cluster;
  readonly secrets = new SecretScan();
  /** Every error raised in the case, by any party or the combiner: each is scanned for secrets. */
  readonly errors: unknown[] = [];
  /** Values already recorded: bigints by value, buffers by identity (state is harvested at every round). */
  private readonly seen = new Set<SecretValue>();
  private round = '';

  constructor(
    readonly setup: Setup,
    readonly victim: number,
    shares?: ReadonlyMap<number, KeyShare>,
  ) {
    this.cluster = new Cluster(setup.parties);
    // Copies (through the sealing codec): a blame wipes the retired pair's OT state in place,
    // which must not reach the next case.
    for (const [i, share] of shares ?? []) this.cluster.party(i).installShare(decodeKeyShare(encodeKeyShare(share)));
  }

  /**
   * The interceptor of a run: records the secrets every session holds when a new round starts
   * (before any of them is wiped), and those a message carries; then applies `edit`.
   */
  watch(edit?: Interceptor): Interceptor {
    return (m) => {
      const round = `${m.protocol}/${toHexShort(m.sessionId)}/${m.round}`;
      if (round !== this.round) {
        this.round = round;
        this.harvest();
      }
      for (const name of SECRET_FIELDS) if (m.payload[name]) this.add([[`party ${m.from} '${name}' to ${m.to}`, m.payload[name]]]);
      return edit ? edit(m) : m;
    };
  }

  /** Records every secret the cluster holds now: shares, and the state of every session it ran. */
  harvest(): void {
    for (const party of this.cluster.parties.values()) {
      try {
        this.add(shareSecrets(party.share(KEY)));
      } catch {
        // no share of the key (yet)
      }
    }
    for (const session of this.cluster.sessions) this.add(sessionSecrets(session));
  }

  add(entries: [string, SecretValue][]): void {
    for (const [label, value] of entries) {
      if (this.seen.has(value)) continue;
      this.seen.add(value);
      this.secrets.add(label, value);
    }
  }

  /** Records a run's aborts and outputs. */
  record<T>(run: { aborts: Map<number, ProtocolAbort>; outputs: Map<number, T> }): typeof run {
    this.errors.push(...run.aborts.values());
    for (const out of run.outputs.values()) if (Array.isArray(out)) for (const p of out as Presignature[]) this.add(presignatureSecrets(p));
    this.harvest();
    return run;
  }

  presign(count: number, edit?: Interceptor) {
    return this.record(this.cluster.presign(KEY, partiesOf(this.setup), count, this.watch(edit)));
  }

  /** Signs with one presignature; the combiner's refusal is returned (and recorded), a signature is an assertion failure. */
  signFails(presignature: Presignature, edit: Interceptor | undefined, what: string): unknown {
    try {
      this.cluster.sign(KEY, presignature, sha256('message'), this.watch(edit));
    } catch (err) {
      this.errors.push(err);
      return err;
    }
    assert.fail(`a signature was produced ${what}`);
  }

  /** The victim's abort of a run, or, for a tamper caught later, of the first presign / signature after it. */
  detected<T>(run: { aborts: Map<number, ProtocolAbort>; outputs: Map<number, T> }, tamper: Tamper): unknown {
    const failure = run.aborts.get(this.victim);
    if (failure) return failure;
    assert.ok(tamper.caughtByPresign, 'not detected: the victim finished the tampered run');
    const presign = this.presign(1);
    const later = presign.aborts.get(this.victim);
    if (later) return later;
    assert.ok(presign.outputs.get(this.victim)?.[0], 'the presign after the tamper produced nothing and named nobody');
    return this.signFails(presign.outputs.get(this.victim)![0]!, undefined, 'after a tampered base OT');
  }
}

const toHexShort = (b: Uint8Array) => Buffer.from(b.subarray(0, 8)).toString('hex');

// ---------------------------------------------------------------------------------------------
// Stages: one protocol run each, with the tamper; each returns the victim's failure.

interface Stage {
  protocol: ProtocolName;
  /** Wire rounds, the nonce round included. */
  rounds: number;
  /** Whether the cluster starts with the key (everything but key generation). */
  needsKey: boolean;
  attack(c: Case, edit: Interceptor, tamper: Tamper): unknown;
}

const BATCH = 2;

const stages: Stage[] = [
  {
    protocol: 'dkg',
    rounds: 4,
    needsKey: false,
    attack(c, edit, tamper) {
      const failure = c.detected(c.record(c.cluster.keyGen(KEY, c.setup.parties, c.watch(edit))), tamper);
      if (!tamper.caughtByPresign) assert.throws(() => c.cluster.party(c.victim).share(KEY), /bad-parameters: no share of key/, 'the victim installed a tampered key');
      return failure;
    },
  },
  {
    protocol: 'refresh',
    rounds: 4,
    needsKey: true,
    attack(c, edit, tamper) {
      const failure = c.detected(c.record(c.cluster.refresh(KEY, c.watch(edit))), tamper);
      if (!tamper.caughtByPresign) assert.equal(c.cluster.party(c.victim).share(KEY).epoch, 0, 'the victim installed the tampered refresh');
      return failure;
    },
  },
  {
    protocol: 'presign',
    rounds: 3,
    needsKey: true,
    attack(c, edit, tamper) {
      const run = c.presign(BATCH, edit);
      if (tamper.spoilsInstance === undefined) {
        const failure = c.detected(run, tamper);
        assert.equal(c.cluster.party(c.victim).presignatureCount(KEY), 0, 'the victim keeps presignatures of an aborted batch');
        return failure;
      }
      // A tampered ψ of instance b: the batch completes; exactly presignature b fails to sign.
      const batch = run.outputs.get(c.victim);
      assert.equal(batch?.length, BATCH, 'the batch did not complete');
      let failure: unknown;
      batch!.forEach((presignature, b) => {
        if (b === tamper.spoilsInstance) failure = c.signFails(presignature, undefined, `from the presignature whose ψ was tampered (instance ${b})`);
        else c.cluster.sign(KEY, presignature, sha256(`untouched instance ${b}`), c.watch());
      });
      return failure;
    },
  },
  {
    protocol: 'pair-setup',
    rounds: 3,
    needsKey: true,
    attack: (c, edit, tamper) => c.detected(c.record(c.cluster.pairSetup(KEY, c.victim, c.setup.malicious, c.watch(edit))), tamper),
  },
  {
    protocol: 'sign',
    rounds: 1,
    needsKey: true,
    attack(c, edit) {
      const presignature = c.presign(1).outputs.get(c.victim)![0]!;
      return c.signFails(presignature, edit, 'from a tampered online share');
    },
  },
];

/** Edits only the malicious party's messages of one protocol round to the victim (or the combiner). */
function aimedAt(protocol: ProtocolName, round: number, setup: Setup, victim: number, tamper: Tamper): Interceptor {
  return (m) => (m.protocol === protocol && m.round === round && m.from === setup.malicious && (m.to === victim || m.to === COMBINER) ? tamper.apply(m) : m);
}

/** The malicious party's messages of an untampered run of the stage, by round and receiver. */
function donorMessages(setup: Setup, stage: Stage, shares: ReadonlyMap<number, KeyShare>): Map<string, ProtocolMessage> {
  const recorded = new Map<string, ProtocolMessage>();
  const record: Interceptor = (m) => {
    if (m.from === setup.malicious && m.protocol === stage.protocol) recorded.set(`${m.round}/${m.to}`, m);
    return m;
  };
  const victim = honestOf(setup)[0]!;
  const c = new Case(setup, victim, stage.needsKey ? shares : undefined);
  const noTamper: Tamper = { name: 'none', apply: (m) => m, reasons: [] };
  try {
    stage.attack(c, record, noTamper);
  } catch {
    // Untampered, every stage ends in an assertion (nothing detected, or a signature was made):
    // the messages are recorded by then.
  }
  return recorded;
}

// ---------------------------------------------------------------------------------------------
// Checks.

const partyList = (xs: readonly number[]) => `[${[...xs].sort((a, b) => a - b).join(',')}]`;

/** The problem with the victim's failure, or undefined when it is the expected one. */
function wrongFailure(failure: unknown, tamper: Tamper, setup: Setup): string | undefined {
  if (!(failure instanceof ProtocolAbort)) return `expected a ProtocolAbort, got ${failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure)}`;
  const named = `${failure.reason}, culprit ${failure.culprit ?? 'none'}, suspects ${partyList(failure.suspects)}`;
  if (!tamper.reasons.includes(failure.reason)) return `expected ${tamper.reasons.join(' | ')}, got ${named}`;
  if (tamper.suspects) {
    if (failure.culprit !== undefined || partyList(failure.suspects) !== partyList(tamper.suspects)) return `expected no culprit and suspects ${partyList(tamper.suspects)}, got ${named}`;
  } else if (failure.culprit !== setup.malicious) {
    return `expected culprit ${setup.malicious}, got ${named}`;
  }
  return undefined;
}

/**
 * The honest parties other than the victim accuse no honest party: an abort names the malicious
 * party, or suspects it among others, or is the silence of an honest party that had stopped.
 */
function falseAccusations(c: Case): string | undefined {
  const honest = c.cluster.sessions.filter((session) => honestOf(c.setup).includes(session.self));
  const stopped = new Set(honest.filter((session) => session.aborted).map((session) => session.self));
  for (const session of honest) {
    const a = session.aborted;
    if (!a || session.self === c.victim) continue;
    const accused = a.culprit ?? (a.suspects.includes(c.setup.malicious) ? undefined : a.suspects[0]);
    if (accused === undefined || accused === c.setup.malicious) continue;
    if (a.reason === 'missing-message' && stopped.has(accused)) continue;
    return `party ${session.self} accuses honest party ${accused}: ${a.reason}, culprit ${a.culprit ?? 'none'}, suspects ${partyList(a.suspects)}`;
  }
  return undefined;
}

/** Runs one tamper; returns what is wrong, or undefined. */
function runCase(setup: Setup, victim: number, stage: Stage, tamper: Tamper, edit: Interceptor, shares: ReadonlyMap<number, KeyShare>): string | undefined {
  const c = new Case(setup, victim, stage.needsKey ? shares : undefined);
  let failure: unknown;
  let assertion: string | undefined;
  try {
    failure = stage.attack(c, edit, tamper);
  } catch (err) {
    if (err instanceof assert.AssertionError) assertion = err.message;
    else {
      failure = err;
      c.errors.push(err);
    }
  }
  // First the secret scan, so that no report below can carry a leaked secret.
  c.harvest();
  for (const err of c.errors) {
    const leak = c.secrets.inError(err);
    if (leak) return `a secret appears in an error: ${leak}`;
  }
  if (assertion) return assertion;
  const problem = wrongFailure(failure, tamper, setup);
  if (problem) return problem;
  if ((failure as ProtocolAbort).isBlame && stage.protocol !== 'sign' && !c.cluster.party(victim).share(KEY).retiredPeers.has(setup.malicious)) return 'blame without retiring the pair';
  return falseAccusations(c);
}

/** Key shares of a fresh key of the setup (every case starts from copies held by fresh parties). */
function makeKey(setup: Setup): Map<number, KeyShare> {
  const dkg = new Cluster(setup.parties).keyGen(KEY, setup.parties);
  assert.equal(dkg.aborts.size, 0);
  return dkg.outputs;
}

// ---------------------------------------------------------------------------------------------
// Three parties: equivocation.

/** The fields every peer must receive identically, by protocol and wire round. */
const BROADCASTS: Partial<Record<ProtocolName, string[][]>> = {
  dkg: [['nonce'], ['context', 'commitment'], ['context', 'coefficients', 'salt', 'proof'], ['context', 'echo']],
  refresh: [['nonce'], ['context', 'commitment'], ['context', 'coefficients', 'salt'], ['context', 'echo']],
  presign: [['nonce'], ['context', 'nonceCommitment'], ['context', 'nonces', 'nonceSalt', 'keyShares']],
};

/** What the victim reports when one broadcast field it received differs from what the others received. */
function equivocationCaughtBy(protocol: ProtocolName, name: string, peers: readonly number[]): Pick<Tamper, 'reasons' | 'suspects'> {
  // The victim's view disagrees with the peers' (its context, its echo): any peer may have lied.
  if (name === 'nonce' || name === 'context') return { reasons: ['context-mismatch'], suspects: peers };
  if (name === 'echo') return { reasons: ['broadcast-inconsistent'], suspects: peers };
  // The rest does not open the malicious party's own commitment, or fails the VOLE check with it.
  return { reasons: checkOf(protocol, name) };
}

/** Rng whose first draw (the session nonce) is `first`; every later draw is fresh. */
function nonceThen(first: Uint8Array): Rng {
  let used = false;
  return (n) => {
    if (!used && n === first.length) {
      used = true;
      return first.slice();
    }
    return systemRng(n);
  };
}

/**
 * The malicious party running two honest sessions under one nonce (so one context): the victim
 * receives the twin's messages, every other peer the primary's; both receive everything. Each
 * view is consistent on its own: only comparing views (the echo round) can catch it.
 */
function twinDealer(primary: Session<unknown>, twin: Session<unknown>, victim: number): Session<unknown> {
  const route = (a: ProtocolMessage[], b: ProtocolMessage[]) => [...a.filter((m) => m.to !== victim), ...b.filter((m) => m.to === victim)];
  const both = {
    start: () => route(primary.start(), twin.start()),
    receive: (m: ProtocolMessage, sender: number) => {
      primary.receive(m, sender);
      twin.receive(m, sender);
    },
    advance: () => route(primary.advance(), twin.advance()),
    get done() {
      return primary.done && twin.done;
    },
    get output() {
      return primary.output;
    },
  };
  return both as unknown as Session<unknown>;
}

/** A whole second dealing to the victim: every honest party must abort naming nobody, all peers suspects. */
function twinDealing(setup: Setup, victim: number, protocol: 'dkg' | 'refresh', shares: ReadonlyMap<number, KeyShare>): string[] {
  const c = new Case(setup, victim, protocol === 'refresh' ? shares : undefined);
  const sid = c.cluster.sessionId();
  const nonce = randomBytes(32);
  const twins = [new Party(setup.malicious, nonceThen(nonce)), new Party(setup.malicious, nonceThen(nonce))];
  if (protocol === 'refresh') for (const t of twins) t.installShare(decodeKeyShare(encodeKeyShare(shares.get(setup.malicious)!)));
  const start = (p: Party): Session<unknown> => (protocol === 'dkg' ? p.startKeyGen(KEY, sid, partiesOf(setup), setup.parties) : p.startRefresh(KEY, sid));
  const [primary, twin] = [start(twins[0]!), start(twins[1]!)];
  const honest = new Map(honestOf(setup).map((i) => [i, start(c.cluster.party(i))]));
  c.cluster.sessions.push(...honest.values(), primary, twin);
  const run = runSessions(new Map([...honest, [setup.malicious, twinDealer(primary, twin, victim)]]), c.watch());
  c.errors.push(...run.aborts.values());
  c.harvest();
  const leak = run.aborts.size ? [...run.aborts.values()].map((e) => c.secrets.inError(e)).find((x) => x) : undefined;
  if (leak) return [`a secret appears in an error: ${leak}`];
  return honestOf(setup).flatMap((i) => {
    const expected: Tamper = { name: 'twin dealing', apply: (m) => m, reasons: ['broadcast-inconsistent'], suspects: partiesOf(setup).filter((j) => j !== i) };
    const problem = wrongFailure(run.aborts.get(i), expected, setup) ?? (run.outputs.has(i) ? 'produced an output' : undefined);
    return problem ? [`party ${i}: ${problem}`] : [];
  });
}

// ---------------------------------------------------------------------------------------------
// Jobs: what one `it` checks. They are independent and CPU-bound, so they run in worker threads
// (one per core, at most two); each `it` awaits its own and asserts it found no problem.

type Job =
  | { kind: 'tampers'; setup: Setup; protocol: ProtocolName; round: number }
  | { kind: 'equivocation'; setup: Setup; victim: number; protocol: ProtocolName }
  | { kind: 'twin'; setup: Setup; victim: number; protocol: 'dkg' | 'refresh' }
  | { kind: 'broadcasts'; setup: Setup }
  | { kind: 'coverage' };

const keys = new Map<string, Map<number, KeyShare>>();
const donorsCache = new Map<string, Map<string, ProtocolMessage>>();
function keyOf(setup: Setup): Map<number, KeyShare> {
  const id = `${setup.parties}/${setup.malicious}`;
  if (!keys.has(id)) keys.set(id, makeKey(setup));
  return keys.get(id)!;
}
function donorsOf(setup: Setup, stage: Stage): Map<string, ProtocolMessage> {
  const id = `${setup.parties}/${setup.malicious}/${stage.protocol}`;
  if (!donorsCache.has(id)) donorsCache.set(id, donorMessages(setup, stage, keyOf(setup)));
  return donorsCache.get(id)!;
}
const stageOf = (protocol: ProtocolName) => stages.find((s) => s.protocol === protocol)!;

/** Every problem the job finds ([] when everything holds). */
function runJob(job: Job): string[] {
  const named = (cases: { name: string; problem: () => string | undefined }[]) =>
    cases.flatMap(({ name, problem }) => {
      const p = problem();
      return p ? [`${name}: ${p}`] : [];
    });
  switch (job.kind) {
    case 'tampers': {
      const { setup, round } = job;
      const stage = stageOf(job.protocol);
      const victim = honestOf(setup)[0]!;
      const donors = donorsOf(setup, stage);
      if (donors.size !== stage.rounds) return [`the untampered run recorded ${donors.size} of ${stage.rounds} rounds`];
      const donor = donors.get(`${round}/${stage.protocol === 'sign' ? COMBINER : victim}`)!;
      const tampers = [
        ...envelopeTampers(stage.protocol, donor),
        ...Object.entries(donor.payload).flatMap(([name, value]) => fieldTampers(stage.protocol, name, value, partiesOf(setup), BATCH)),
      ];
      return named(tampers.map((t) => ({ name: t.name, problem: () => runCase(setup, victim, stage, t, aimedAt(stage.protocol, round, setup, victim, t), keyOf(setup)) })));
    }
    case 'equivocation': {
      const { setup, victim } = job;
      const stage = stageOf(job.protocol);
      const peers = partiesOf(setup).filter((i) => i !== victim);
      const donors = donorsOf(setup, stage);
      return named(
        BROADCASTS[stage.protocol]!.flatMap((fields, k) =>
          fields.map((name) => {
            const round = k + 1;
            const other = donors.get(`${round}/${victim}`)!.payload[name]!;
            const t: Tamper = { name: `round ${round} '${name}'`, apply: (m) => ({ ...m, payload: { ...m.payload, [name]: other } }), ...equivocationCaughtBy(stage.protocol, name, peers) };
            return { name: t.name, problem: () => runCase(setup, victim, stage, t, aimedAt(stage.protocol, round, setup, victim, t), keyOf(setup)) };
          }),
        ),
      );
    }
    case 'twin':
      return twinDealing(job.setup, job.victim, job.protocol, keyOf(job.setup));
    case 'broadcasts': {
      // Checks BROADCASTS against an untampered run: the fields the malicious party sends both peers identically.
      const { setup } = job;
      const problems: string[] = [];
      for (const stage of stages.filter((s) => BROADCASTS[s.protocol])) {
        const donors = donorsOf(setup, stage);
        for (let round = 1; round <= stage.rounds; round++) {
          const [a, b] = honestOf(setup).map((to) => donors.get(`${round}/${to}`)!.payload);
          const same = Object.keys(a!).filter((name) => bytesEqual(a![name]!, b![name]!)).sort().join(',');
          const listed = [...BROADCASTS[stage.protocol]![round - 1]!].sort().join(',');
          if (same !== listed) problems.push(`${stage.protocol} round ${round}: identical to every peer: ${same}; listed: ${listed}`);
        }
      }
      return problems;
    }
    case 'coverage':
      return scanCoverage();
  }
}

/**
 * The kinds of secret the scan must hold after a key's life (key generation, refresh, presign,
 * signing). A value is recorded once, under its first label: the zero-seed contribution is also
 * the message field 'seed', a presignature's φ is the session's φ.
 */
const SECRET_KINDS = [
  /key share$/,
  /new key share$/,
  /coefficient \d+$/,
  /zero-seed contribution/,
  /zero-sharing seed/,
  /OT Δ with/,
  /OT Δ \(base-OT choice bits\)/,
  /base-OT secret/,
  /OT sender seed/,
  /OT receiver seed/,
  /'share' to/,
  / r\[0\]$/,
  / φ\[0\]$/,
  / sk\[0\]$/,
  /presignature u$/,
  /presignature v$/,
  /VOLE χ\[0\]/,
  /VOLE choice bits/,
  /VOLE share cᵘ/,
];

/** Control: the harvest records every kind of secret the header lists. */
function scanCoverage(): string[] {
  const setup: Setup = { parties: 2, malicious: 2 };
  const c = new Case(setup, 1);
  c.record(c.cluster.keyGen(KEY, setup.parties, c.watch()));
  c.record(c.cluster.refresh(KEY, c.watch()));
  const presignature = c.presign(1).outputs.get(1)![0]!;
  c.cluster.sign(KEY, presignature, sha256('coverage'), c.watch());
  return SECRET_KINDS.filter((kind) => !c.secrets.labels.some((l) => kind.test(l))).map((kind) => `no secret recorded of the kind ${kind}`);
}

// ---------------------------------------------------------------------------------------------
// Worker threads: a worker runs the jobs it is sent.

if (!isMainThread) {
  parentPort!.on('message', ({ id, job }: { id: number; job: Job }) => {
    let problems: string[];
    try {
      problems = runJob(job);
    } catch (err) {
      problems = [`the job failed: ${err instanceof Error ? err.stack : String(err)}`];
    }
    parentPort!.postMessage({ id, problems });
  });
}

/**
 * Jobs registered while mocha collects the tests, in the order mocha runs them. A job starts when
 * its test asks for it, and the next one with it (so the second worker is busy meanwhile): a
 * --grep run computes at most one job it does not need.
 */
class Jobs {
  private readonly jobs: Job[] = [];
  private readonly results: Promise<string[]>[] = [];
  private readonly settle: ((problems: string[]) => void)[] = [];
  private readonly queued = new Set<number>();
  private readonly queue: number[] = [];
  private readonly idle: Worker[] = [];
  private workers: Worker[] = [];

  add(job: Job): number {
    const id = this.jobs.push(job) - 1;
    this.results.push(new Promise((resolve) => (this.settle[id] = resolve)));
    return id;
  }

  start(): void {
    this.workers = Array.from({ length: Math.min(2, availableParallelism()) }, () => {
      const w = new Worker(new URL(import.meta.url));
      w.on('message', ({ id, problems }: { id: number; problems: string[] }) => {
        this.settle[id]!(problems);
        this.idle.push(w);
        this.pump();
      });
      w.on('error', (err) => this.settle.forEach((s) => s([`a worker failed: ${err.message}`])));
      return w;
    });
    this.idle.push(...this.workers);
  }

  result(id: number): Promise<string[]> {
    for (const k of [id, id + 1]) {
      if (k >= this.jobs.length || this.queued.has(k)) continue;
      this.queued.add(k);
      this.queue.push(k);
    }
    this.pump();
    return this.results[id]!;
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private pump(): void {
    while (this.idle.length && this.queue.length) {
      const id = this.queue.shift()!;
      this.idle.shift()!.postMessage({ id, job: this.jobs[id] });
    }
  }
}

async function assertNoProblems(jobs: Jobs, id: number): Promise<void> {
  const problems = await jobs.result(id);
  assert.deepEqual(problems, [], `${problems.length} problems:\n  ${problems.join('\n  ')}`);
}

if (isMainThread) {
  describe('adversarial', function () {
    const jobs = new Jobs();
    before(() => jobs.start());
    after(() => jobs.stop());

    describe('every message type, every field, every envelope mistake (2 parties)', function () {
      for (const setup of [
        { parties: 2, malicious: 2 },
        { parties: 2, malicious: 1 },
      ]) {
        describe(`malicious party ${setup.malicious}`, function () {
          for (const stage of stages) {
            for (let round = 1; round <= stage.rounds; round++) {
              const job = jobs.add({ kind: 'tampers', setup, protocol: stage.protocol, round });
              it(`${stage.protocol} round ${round}: every tamper is detected and attributed to party ${setup.malicious}`, () => assertNoProblems(jobs, job));
            }
          }
        });
      }
    });

    describe('equivocation in every broadcast (3 parties)', function () {
      const broadcasts = jobs.add({ kind: 'broadcasts', setup: { parties: 3, malicious: 2 } });
      it('the broadcast fields are exactly those every peer receives identically', () => assertNoProblems(jobs, broadcasts));
      for (const [malicious, victim] of [
        [2, 1],
        [3, 2],
      ] as const) {
        const setup: Setup = { parties: 3, malicious };
        describe(`malicious party ${malicious} equivocates towards party ${victim}`, function () {
          for (const protocol of Object.keys(BROADCASTS) as ProtocolName[]) {
            const job = jobs.add({ kind: 'equivocation', setup, victim, protocol });
            it(`${protocol}: another value of every broadcast field is caught by party ${victim}`, () => assertNoProblems(jobs, job));
          }
          for (const protocol of ['dkg', 'refresh'] as const) {
            const job = jobs.add({ kind: 'twin', setup, victim, protocol });
            it(`${protocol}: a second, self-consistent dealing to party ${victim} is caught by the echo round at every honest party, naming nobody`, () => assertNoProblems(jobs, job));
          }
        });
      }
    });

    describe('the secret scan', function () {
      const coverage = jobs.add({ kind: 'coverage' });
      it('holds every kind of secret of a key’s life (control)', () => assertNoProblems(jobs, coverage));
    });
  });
}
