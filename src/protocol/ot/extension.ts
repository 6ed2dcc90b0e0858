/**
 * Random-OT extension: KOS15 (Keller–Orsini–Scholl, eprint 2015/546) with the corrected
 * consistency check of SoftSpokenOT (Roy, eprint 2022/192) for k = 1: the subspace-VOLE check of
 * its Figure 7 ("Consistency check"), which the revised KOS15 adopts. The original KOS15 check
 * combined all κ columns into one pair (x, t) ∈ GF(2^κ)² and tested q = t + x·Δ with a field
 * multiplication; the lemma behind its soundness is false (Roy 2022, §1.2). The corrected check
 * hashes each column separately with the same universal hash and compares them one by one, so a
 * receiver inconsistent in any column is caught unless it guessed that column's bit of Δ.
 * κ = 128, challenges by Fiat–Shamir over the session context and the receiver's message.
 *
 * Set-up, once per ordered pair (extension sender "Alice", extension receiver "Bob"), from 128
 * base OTs with the roles reversed: Alice is the base-OT receiver with choice bits Δ and keeps
 * s_i = k_{i,Δ_i}; Bob is the base-OT sender and keeps both k_{i,0}, k_{i,1}.
 *
 * One extension of m OTs (a "session", named by the caller's `ctx`, which must be fresh for the
 * set-up: session.ts derives it from every party's fresh nonce, so no stream repeats):
 *
 *   m' = m + PAD rounded up to a multiple of 128 (PAD = 256 ≥ κ + s extra rows, whose random
 *        choice bits hide the κ linear combinations of Bob's real choice bits that the check
 *        reveals).
 *   Bob:   b ∈ {0,1}^m' (m real choice bits, then random),
 *          t^0_i = PRG(k_{i,0}, ctx), t^1_i = PRG(k_{i,1}, ctx), u_i = t^0_i ⊕ t^1_i ⊕ b,
 *          challenge columns chi_0 … chi_127 ∈ {0,1}^m' = FS-PRG(ctx, u)   (row j of this
 *          matrix is the universal-hash coefficient χ_j ∈ GF(2^128)),
 *          x̃ = Σ_j χ_j·b_j and t̃_i = Σ_j χ_j·t^0_{i,j} for each column i — over GF(2) that is
 *          bit c of x̃ = ⟨b, chi_c⟩ and bit c of t̃_i = ⟨t^0_i, chi_c⟩ (bits.ts columnParities),
 *          sends u ‖ x̃ ‖ t̃_0 … t̃_127; outputs v_j = Hout(ctx, j, t_j) for j < m.
 *   Alice: q_i = PRG(s_i, ctx) ⊕ Δ_i·u_i  (so column q_i = t^0_i ⊕ Δ_i·b),
 *          q̃_i = Σ_j χ_j·q_{i,j}; checks q̃_i == t̃_i ⊕ Δ_i·x̃ for every i (no branch on Δ) —
 *          failure is a blame, and the pair's correlation is retired (a failure can depend on
 *          one bit of Δ: selective failure),
 *          outputs v_{j,0} = Hout(ctx, j, q_j), v_{j,1} = Hout(ctx, j, q_j ⊕ Δ) for j < m.
 *
 * Primitives (all via node:crypto, so OpenSSL's AES-NI / optimised Keccak):
 * - PRG(seed, ctx): AES-256-CTR, zero IV, key = SHA-256(taggedHash(PRG domain, ctx) ‖ seed). The
 *   key is fresh per (seed, session), so a counter stream is never reused.
 * - FS-PRG(ctx, u): AES-256-CTR, zero IV, key = taggedHash(CHI domain, ctx, u); chi_c is bytes
 *   [c·m'/8, (c+1)·m'/8) of the stream.
 * - Hout(ctx, j, row): SHAKE256(taggedHash(OUT domain, ctx, outputBytes) ‖ u32be(j) ‖ row),
 *   `outputBytes` long — a tweakable correlation-robust hash in the random-oracle model.
 *
 * Wire format of Bob's message: u_0 ‖ … ‖ u_127 (each m'/8 bytes, bit j of u_i at byte j>>3,
 * bit j&7) ‖ x̃ (16 bytes) ‖ t̃_0 … t̃_127 (16 bytes each; bit c of a value at byte c>>3, bit
 * c&7): 16·m' + 16 + 2048 bytes in total.
 *
 * Outputs: ONE contiguous buffer of m·outputBytes bytes (output j at [j·outputBytes,
 * (j+1)·outputBytes)), so a caller can hand it to native code or wipe it at once.
 *
 * The column work (PRG expansion, u, q, the check's parities, the transposition) and Hout run in
 * the native addon through bits.ts and native-hasher.ts; this file keeps the protocol.
 */
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { abort } from '../errors.js';
import type { Rng } from '../rng.js';
import { taggedHash } from '../transcript.js';
import { BASE_OT_KEY_BYTES, baseOtReceiverFinish, baseOtReceiverStart, baseOtSenderRespond, type BaseOtReceiverState } from './base-ot.js';
import { columnParities, receiverColumns, senderColumns, transposeToRows } from './bits.js';

/** κ: number of base OTs / columns; also the bit length of Δ and of each row. */
export const KAPPA = 128;
/** Alias of KAPPA: the computational security parameter, bits of Δ. */
export const OT_SECURITY_BITS = KAPPA;
/** Random choice bits appended by the receiver before rounding up to a multiple of κ. */
export const PAD = 256;
/** Largest m accepted (bounds memory: the message is 16·m' bytes). */
export const MAX_OTS = 1 << 24;
/** Largest outputBytes accepted. */
export const MAX_OUTPUT_BYTES = 1 << 16;

const PRG_DOMAIN = 'quorumkey/v1/ot-ext/prg';
const CHI_DOMAIN = 'quorumkey/v1/ot-ext/chi';
const OUT_DOMAIN = 'quorumkey/v1/ot-ext/out';

const SETUP_VERSION = 1;
const SENDER_TAG = 0x53; // 'S'
const RECEIVER_TAG = 0x52; // 'R'
const ZERO_IV = new Uint8Array(16);

/** Alice's long-term set-up: Δ and s_i = k_{i,Δ_i}. Secret. */
export interface OtExtSenderSetup {
  /** Δ, 128 bits packed LSB-first. */
  readonly delta: Uint8Array;
  /** s_i, 128 seeds of 32 bytes. */
  readonly seeds: readonly Uint8Array[];
}

/** Bob's long-term set-up: both base-OT keys of every instance. Secret. */
export interface OtExtReceiverSetup {
  readonly seeds0: readonly Uint8Array[];
  readonly seeds1: readonly Uint8Array[];
}

// ---------------------------------------------------------------------------------------------
// Set-up from base OTs, and its serialisation.

function checkSeeds(seeds: readonly Uint8Array[], what: string): void {
  if (seeds.length !== KAPPA || seeds.some((s) => s.length !== BASE_OT_KEY_BYTES)) {
    abort('bad-parameters', `${what}: expected ${KAPPA} seeds of ${BASE_OT_KEY_BYTES} bytes`);
  }
}

/** Alice: her set-up from her base-OT receiver outputs (choice bits Δ). Rejects Δ = 0. */
export function otExtSenderSetupFromBaseOt(delta: Uint8Array, keys: readonly Uint8Array[]): OtExtSenderSetup {
  if (delta.length !== KAPPA / 8) abort('bad-parameters', `OT extension: delta must be ${KAPPA / 8} bytes`);
  if (delta.every((v) => v === 0)) abort('bad-parameters', 'OT extension: delta is zero');
  checkSeeds(keys, 'OT extension sender set-up');
  return { delta: delta.slice(), seeds: keys.map((k) => k.slice()) };
}

/** Bob: his set-up from his base-OT sender outputs. */
export function otExtReceiverSetupFromBaseOt(keys0: readonly Uint8Array[], keys1: readonly Uint8Array[]): OtExtReceiverSetup {
  checkSeeds(keys0, 'OT extension receiver set-up');
  checkSeeds(keys1, 'OT extension receiver set-up');
  return { seeds0: keys0.map((k) => k.slice()), seeds1: keys1.map((k) => k.slice()) };
}

/** Alice's state between the two steps of the set-up. Secret; use once. */
export interface OtExtSetupSenderState {
  readonly baseOt: BaseOtReceiverState;
}

/** Alice, set-up step 1: samples Δ and starts the base OTs as their receiver. */
export function otExtSetupSenderStart(ctx: Uint8Array, rng: Rng): { message: Uint8Array; state: OtExtSetupSenderState } {
  let delta = rng(KAPPA / 8);
  while (delta.every((v) => v === 0)) delta = rng(KAPPA / 8);
  const { message, state } = baseOtReceiverStart(ctx, delta, rng);
  delta.fill(0);
  return { message, state: { baseOt: state } };
}

/** Bob, set-up: answers as the base-OT sender; his set-up is ready at once. */
export function otExtSetupReceiverRespond(ctx: Uint8Array, message: Uint8Array, peer: number, rng: Rng): { message: Uint8Array; setup: OtExtReceiverSetup } {
  const r = baseOtSenderRespond(ctx, message, peer, rng);
  return { message: r.message, setup: { seeds0: r.keys0, seeds1: r.keys1 } };
}

/** Alice, set-up step 2: finishes the base OTs. */
export function otExtSetupSenderFinish(ctx: Uint8Array, state: OtExtSetupSenderState, message: Uint8Array, peer: number): OtExtSenderSetup {
  const keys = baseOtReceiverFinish(ctx, state.baseOt, message, peer);
  return otExtSenderSetupFromBaseOt(state.baseOt.choiceBits, keys);
}

/** Sender set-up as bytes: version (1) ‖ 'S' ‖ Δ (16) ‖ s_0 … s_127 (32 each): 4,114 bytes. */
export function serializeOtExtSenderSetup(setup: OtExtSenderSetup): Uint8Array {
  checkSeeds(setup.seeds, 'OT extension sender set-up');
  const out = new Uint8Array(2 + 16 + KAPPA * BASE_OT_KEY_BYTES);
  out[0] = SETUP_VERSION;
  out[1] = SENDER_TAG;
  out.set(setup.delta, 2);
  setup.seeds.forEach((s, i) => out.set(s, 18 + i * BASE_OT_KEY_BYTES));
  return out;
}

export function deserializeOtExtSenderSetup(bytes: Uint8Array): OtExtSenderSetup {
  const expected = 2 + 16 + KAPPA * BASE_OT_KEY_BYTES;
  if (bytes.length !== expected) abort('wrong-length', `OT extension sender set-up: expected ${expected} bytes, got ${bytes.length}`);
  if (bytes[0] !== SETUP_VERSION || bytes[1] !== SENDER_TAG) abort('malformed-message', 'OT extension sender set-up: bad version or type');
  const seeds: Uint8Array[] = [];
  for (let i = 0; i < KAPPA; i++) seeds.push(bytes.slice(18 + i * BASE_OT_KEY_BYTES, 18 + (i + 1) * BASE_OT_KEY_BYTES));
  return otExtSenderSetupFromBaseOt(bytes.subarray(2, 18), seeds);
}

/** Receiver set-up as bytes: version (1) ‖ 'R' ‖ k_{i,0} (128 × 32) ‖ k_{i,1} (128 × 32): 8,194 bytes. */
export function serializeOtExtReceiverSetup(setup: OtExtReceiverSetup): Uint8Array {
  checkSeeds(setup.seeds0, 'OT extension receiver set-up');
  checkSeeds(setup.seeds1, 'OT extension receiver set-up');
  const out = new Uint8Array(2 + 2 * KAPPA * BASE_OT_KEY_BYTES);
  out[0] = SETUP_VERSION;
  out[1] = RECEIVER_TAG;
  setup.seeds0.forEach((s, i) => out.set(s, 2 + i * BASE_OT_KEY_BYTES));
  setup.seeds1.forEach((s, i) => out.set(s, 2 + (KAPPA + i) * BASE_OT_KEY_BYTES));
  return out;
}

export function deserializeOtExtReceiverSetup(bytes: Uint8Array): OtExtReceiverSetup {
  const expected = 2 + 2 * KAPPA * BASE_OT_KEY_BYTES;
  if (bytes.length !== expected) abort('wrong-length', `OT extension receiver set-up: expected ${expected} bytes, got ${bytes.length}`);
  if (bytes[0] !== SETUP_VERSION || bytes[1] !== RECEIVER_TAG) abort('malformed-message', 'OT extension receiver set-up: bad version or type');
  const seeds0: Uint8Array[] = [];
  const seeds1: Uint8Array[] = [];
  for (let i = 0; i < KAPPA; i++) {
    seeds0.push(bytes.slice(2 + i * BASE_OT_KEY_BYTES, 2 + (i + 1) * BASE_OT_KEY_BYTES));
    seeds1.push(bytes.slice(2 + (KAPPA + i) * BASE_OT_KEY_BYTES, 2 + (KAPPA + i + 1) * BASE_OT_KEY_BYTES));
  }
  return { seeds0, seeds1 };
}

// ---------------------------------------------------------------------------------------------
// The extension.

/** m' for m OTs: m + PAD rounded up to a multiple of κ. */
export function paddedRows(m: number): number {
  return Math.ceil((m + PAD) / KAPPA) * KAPPA;
}

/** Bytes of the check values in the receiver's message: x̃, then t̃_i for every column. */
const CHECK_BYTES = 16 + KAPPA * 16;

/** Size of the receiver's message for m OTs: 16·m' + 16 + 2048 bytes. */
export function otExtMessageBytes(m: number): number {
  return (KAPPA / 8) * paddedRows(m) + CHECK_BYTES;
}

function checkParams(m: number, outputBytes: number): void {
  if (!Number.isInteger(m) || m < 1 || m > MAX_OTS) abort('bad-parameters', `OT extension: m must be an integer in [1, ${MAX_OTS}]`);
  if (!Number.isInteger(outputBytes) || outputBytes < 1 || outputBytes > MAX_OUTPUT_BYTES) {
    abort('bad-parameters', `OT extension: outputBytes must be an integer in [1, ${MAX_OUTPUT_BYTES}]`);
  }
}

/** κ seeds of 32 bytes as one buffer (secret: the caller wipes it). */
function packSeeds(seeds: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(KAPPA * BASE_OT_KEY_BYTES);
  seeds.forEach((s, i) => out.set(s, i * BASE_OT_KEY_BYTES));
  return out;
}

/** The 128 challenge columns chi_c (m' bits each) from the Fiat–Shamir hash of ctx and u. */
function challenges(ctx: Uint8Array, u: Uint8Array, rows: number): Uint32Array {
  const key = taggedHash(CHI_DOMAIN, [['ctx', ctx], ['u', u]]);
  const stream = createCipheriv('aes-256-ctr', key, ZERO_IV).update(new Uint8Array(16 * rows));
  const chi = new Uint32Array(4 * rows);
  new Uint8Array(chi.buffer).set(stream);
  return chi;
}

/**
 * Hout for many rows at once: returns m·outputBytes bytes, output j being
 * SHAKE256(prefix ‖ u32be(j) ‖ (rows[16j, 16j + 16) ⊕ mask)) truncated to outputBytes, where
 * `mask` (Δ, 16 bytes) is absent for the plain rows. `rows` holds at least 16·m bytes. The
 * batch shape exists so that a native implementation can replace the per-call overhead of
 * node:crypto (which is most of the cost here) with one call per session: see useOtRowHasher.
 */
export type OtRowHasher = (prefix: Uint8Array, rows: Uint8Array, m: number, outputBytes: number, mask: Uint8Array | undefined) => Uint8Array;

/** The TypeScript row hasher: one node:crypto SHAKE256 per row (cloned after the prefix). */
export const nodeCryptoRowHasher: OtRowHasher = (prefix, rows, m, outputBytes, mask) => {
  const base: Hash = createHash('shake256', { outputLength: outputBytes }).update(prefix);
  const input = new Uint8Array(4 + 16);
  const data = new Uint8Array(m * outputBytes);
  for (let j = 0, off = 0; j < m; j++, off += 16) {
    input[0] = j >>> 24;
    input[1] = (j >>> 16) & 0xff;
    input[2] = (j >>> 8) & 0xff;
    input[3] = j & 0xff;
    for (let k = 0; k < 16; k++) input[4 + k] = rows[off + k]! ^ (mask ? mask[k]! : 0);
    const digest = base.copy({ outputLength: outputBytes }).update(input).digest();
    data.set(digest, j * outputBytes);
    digest.fill(0);
  }
  input.fill(0);
  return data;
};

let rowHasher: OtRowHasher = nodeCryptoRowHasher;

/**
 * Replaces the row hasher (e.g. by a native batch SHAKE256); `undefined` restores the
 * TypeScript one. The replacement must compute exactly OtRowHasher's function.
 */
export function useOtRowHasher(hasher: OtRowHasher | undefined): void {
  rowHasher = hasher ?? nodeCryptoRowHasher;
}

/** Hout(ctx, j, row_j [⊕ Δ]) for rows [0, m) of `rows` (4 words each), in one buffer. */
function hashRows(ctx: Uint8Array, rows: Uint32Array, m: number, outputBytes: number, delta?: Uint8Array): Uint8Array {
  const prefix = taggedHash(OUT_DOMAIN, [['ctx', ctx], ['outputBytes', outputBytes]]);
  const rowBytes = new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
  const data = rowHasher(prefix, rowBytes, m, outputBytes, delta);
  if (data.length !== m * outputBytes) throw new Error('OT row hasher returned the wrong number of bytes');
  return data;
}

/**
 * Bob (extension receiver): m random OTs with the given choice bits (⌈m/8⌉ bytes, packed
 * LSB-first; bits beyond m in the last byte are ignored). Returns the message for Alice and
 * his outputs v_j = Hout(ctx, j, t_j) = Alice's output for b_j (m·outputBytes bytes).
 */
export function otExtReceive(
  setup: OtExtReceiverSetup,
  ctx: Uint8Array,
  choiceBits: Uint8Array,
  m: number,
  outputBytes: number,
  rng: Rng,
): { message: Uint8Array; outputs: Uint8Array } {
  checkParams(m, outputBytes);
  if (choiceBits.length !== Math.ceil(m / 8)) abort('bad-parameters', `OT extension: expected ${Math.ceil(m / 8)} bytes of choice bits, got ${choiceBits.length}`);
  checkSeeds(setup.seeds0, 'OT extension receiver set-up');
  checkSeeds(setup.seeds1, 'OT extension receiver set-up');
  const rows = paddedRows(m);
  const w = rows >>> 5;
  const colBytes = rows >>> 3;

  // b: the m real choice bits, then random padding bits.
  const b = new Uint32Array(w);
  const b8 = new Uint8Array(b.buffer);
  b8.set(rng(colBytes));
  const full = m >>> 3;
  b8.set(choiceBits.subarray(0, full));
  if (m & 7) {
    const lowMask = (1 << (m & 7)) - 1;
    b8[full] = (choiceBits[full]! & lowMask) | (b8[full]! & ~lowMask);
  }

  // t^0 columns (kept) and u = t^0 ⊕ t^1 ⊕ b, written straight into the message.
  const prgDigest = taggedHash(PRG_DOMAIN, [['ctx', ctx]]);
  const t0 = new Uint32Array(KAPPA * w);
  const message = new Uint8Array(KAPPA * colBytes + CHECK_BYTES);
  const seeds0 = packSeeds(setup.seeds0);
  const seeds1 = packSeeds(setup.seeds1);
  receiverColumns(prgDigest, seeds0, seeds1, b8, new Uint8Array(t0.buffer), message.subarray(0, KAPPA * colBytes));
  seeds0.fill(0);
  seeds1.fill(0);

  // Consistency-check values.
  const chi = challenges(ctx, message.subarray(0, KAPPA * colBytes), rows);
  const x = columnParities(b, 1, w, chi);
  const t = columnParities(t0, KAPPA, w, chi);
  message.set(new Uint8Array(x.buffer), KAPPA * colBytes);
  message.set(new Uint8Array(t.buffer), KAPPA * colBytes + 16);
  x.fill(0);
  t.fill(0);

  // Outputs from the first m rows of t^0.
  const rowBlocks = Math.ceil(m / 32);
  const rowWords = new Uint32Array(rowBlocks * 128);
  transposeToRows(t0, w, rowBlocks, rowWords);
  const outputs = hashRows(ctx, rowWords, m, outputBytes);

  b.fill(0);
  t0.fill(0);
  rowWords.fill(0);
  return { message, outputs };
}

/**
 * Alice (extension sender): checks Bob's message and returns both outputs of every OT (m·outputBytes
 * bytes each): output j of outputs0 is Hout(ctx, j, q_j), of outputs1 Hout(ctx, j, q_j ⊕ Δ). A failed
 * consistency check throws ProtocolAbort('ot-check-failed', …, peer): a blame of `peer`.
 */
export function otExtSend(
  setup: OtExtSenderSetup,
  ctx: Uint8Array,
  m: number,
  outputBytes: number,
  message: Uint8Array,
  peer: number,
): { outputs0: Uint8Array; outputs1: Uint8Array } {
  checkParams(m, outputBytes);
  checkSeeds(setup.seeds, 'OT extension sender set-up');
  if (setup.delta.length !== KAPPA / 8) abort('bad-parameters', `OT extension: delta must be ${KAPPA / 8} bytes`);
  const expected = otExtMessageBytes(m);
  if (message.length !== expected) abort('wrong-length', `OT extension message: expected ${expected} bytes, got ${message.length}`, peer);
  const rows = paddedRows(m);
  const w = rows >>> 5;
  const colBytes = rows >>> 3;
  const uBytes = message.subarray(0, KAPPA * colBytes);

  const prgDigest = taggedHash(PRG_DOMAIN, [['ctx', ctx]]);
  const q = new Uint32Array(KAPPA * w);
  const delta = setup.delta;
  const seeds = packSeeds(setup.seeds);
  senderColumns(prgDigest, seeds, delta, uBytes, new Uint8Array(q.buffer));
  seeds.fill(0);

  const chi = challenges(ctx, uBytes, rows);
  const qHat = columnParities(q, KAPPA, w, chi);
  const check = new Uint32Array(CHECK_BYTES / 4);
  new Uint8Array(check.buffer).set(message.subarray(KAPPA * colBytes));
  // check[0..4) = x̃, check[4 + 4i .. 8 + 4i) = t̃_i; q̃_i must equal t̃_i ⊕ Δ_i·x̃.
  let diff = 0;
  for (let i = 0; i < KAPPA; i++) {
    const mask = -((delta[i >>> 3]! >>> (i & 7)) & 1);
    for (let k = 0; k < 4; k++) diff |= qHat[i * 4 + k]! ^ check[4 + i * 4 + k]! ^ (check[k]! & mask);
  }
  qHat.fill(0);
  if (diff !== 0) {
    q.fill(0);
    abort('ot-check-failed', 'OT extension consistency check failed', peer);
  }

  const rowBlocks = Math.ceil(m / 32);
  const rowWords = new Uint32Array(rowBlocks * 128);
  transposeToRows(q, w, rowBlocks, rowWords);
  const outputs0 = hashRows(ctx, rowWords, m, outputBytes);
  const outputs1 = hashRows(ctx, rowWords, m, outputBytes, delta);
  q.fill(0);
  rowWords.fill(0);
  return { outputs0, outputs1 };
}
