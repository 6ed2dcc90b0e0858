/**
 * Base OT: κ = 128 random OTs at once, the endemic OT of Masny–Rindal in the form analysed by
 * Zhou, Zhang, Xue, Liu, Hong and Chen, "Endemic Oblivious Transfer via Random Oracles,
 * Revisited" (eprint 2022/1525), over P-256 with RFC 9380 hash-to-curve as the random oracle
 * into the group.
 *
 *   Receiver (choice c_i):  sk_i ← Z_N,  r_{i,1−c} ← G uniformly,  r_{i,c} = sk_i·G − H(i, r_{i,1−c})
 *                           ──── (r_{i,0}, r_{i,1})_i ────▶
 *   Sender:                 pk_{i,b} = r_{i,b} + H(i, r_{i,1−b}),  a_i ← Z_N,  z_i = a_i·G
 *                           k_{i,b} = K(i, b, r_{i,0}, r_{i,1}, z_i, a_i·pk_{i,b})
 *                           ◀──── (z_i)_i ────
 *   Receiver:               k_{i,c} = K(i, c, r_{i,0}, r_{i,1}, z_i, sk_i·z_i)
 *
 * (pk_{i,c} = sk_i·G, so a_i·pk_{i,c} = sk_i·z_i.) H and K both take the caller's context
 * `ctx` (key id, session id, sender, receiver), so keys of different sessions, pairs or
 * directions are independent. The keys are 32 bytes.
 *
 * Wire formats: receiver → sender κ·66 bytes, (r_{i,0} ‖ r_{i,1}) for i = 0..127, each point
 * 33-byte compressed SEC1; sender → receiver κ·33 bytes, z_0 ‖ … ‖ z_127. Every received
 * point is validated (on the curve, canonical, not the identity) before use.
 *
 * Cost: receiver 2 base multiplications, 1 hash-to-curve, 1 addition per instance, then 1
 * variable-base multiplication; sender 2 hash-to-curve, 2 additions, 1 base and 2 variable-base
 * multiplications per instance. This runs once per ordered pair of parties at key generation /
 * refresh, not per signature.
 *
 * Each step runs in the native addon when it is loaded (native/base-ot.cc, one call for all κ
 * instances: native hash-to-curve, points kept decoded, the choice bits selecting by mask, the
 * keys derived there so the shared points never reach JavaScript); the TypeScript below is the
 * reference (@noble/curves hash-to-curve over the curve backend), used only without the addon
 * and tested against it (test/native/base-ot.test.ts). Both draw the same random bytes in the
 * same order and give the same messages and keys.
 */
import { p256_hasher } from '@noble/curves/nist.js';
import { abort } from '../errors.js';
import type { Rng } from '../rng.js';
import { taggedHash, transcriptPrefix } from '../transcript.js';
import { add, decodePoint, mul, mulBase, POINT_BYTES } from '../math/curve.js';
import { loadNative, registerKernel } from '../math/kernels.js';
import { SCALAR_BYTES } from '../math/scalar.js';
import { randomSecret, type SecretScalar } from '../math/secret-scalar.js';

/** Number of OT instances in a batch (the computational security parameter κ). */
export const BASE_OT_COUNT = 128;
/** Bytes of each OT key. */
export const BASE_OT_KEY_BYTES = 32;
/** Receiver → sender message size: κ pairs of compressed points. */
export const BASE_OT_RECEIVER_MESSAGE_BYTES = BASE_OT_COUNT * 2 * POINT_BYTES;
/** Sender → receiver message size: κ compressed points. */
export const BASE_OT_SENDER_MESSAGE_BYTES = BASE_OT_COUNT * POINT_BYTES;

const H2C_DST = 'quorumkey/v1/base-ot/h2c';
const CTX_DOMAIN = 'quorumkey/v1/base-ot/ctx';
const KEY_DOMAIN = 'quorumkey/v1/base-ot/key';

/** Receiver's secret state between its two steps. Use once; never send or persist it. */
export interface BaseOtReceiverState {
  /** The κ choice bits, packed LSB-first (16 bytes). */
  readonly choiceBits: Uint8Array;
  /** sk_i: 32-byte views into one buffer of κ·32 bytes. */
  readonly secrets: readonly SecretScalar[];
  /** The receiver's own message (bound into every key). */
  readonly sent: Uint8Array;
}

export interface BaseOtSenderResult {
  /** κ·33 bytes for the receiver. */
  readonly message: Uint8Array;
  /** k_{i,0}, 32 bytes each. */
  readonly keys0: Uint8Array[];
  /** k_{i,1}, 32 bytes each. */
  readonly keys1: Uint8Array[];
}

function choiceBit(bits: Uint8Array, i: number): 0 | 1 {
  return ((bits[i >>> 3]! >>> (i & 7)) & 1) as 0 | 1;
}

function contextDigest(ctx: Uint8Array): Uint8Array {
  return taggedHash(CTX_DOMAIN, [['ctx', ctx]]);
}

/** H(ctx, i, r): RFC 9380 hash-to-curve (P256_XMD:SHA-256_SSWU_RO_) of ctxDigest ‖ i ‖ r. */
function hashToGroup(ctxDigest: Uint8Array, i: number, r: Uint8Array): Uint8Array {
  const msg = new Uint8Array(32 + 4 + POINT_BYTES);
  msg.set(ctxDigest, 0);
  new DataView(msg.buffer).setUint32(32, i);
  msg.set(r, 36);
  return p256_hasher.hashToCurve(msg, { DST: H2C_DST }).toBytes(true);
}

/** −P for a compressed point: flip the parity prefix 02 ↔ 03. */
function negate(point: Uint8Array): Uint8Array {
  const out = point.slice();
  out[0] = point[0] === 2 ? 3 : 2;
  return out;
}

function deriveKey(ctxDigest: Uint8Array, i: number, b: 0 | 1, r0: Uint8Array, r1: Uint8Array, z: Uint8Array, shared: Uint8Array): Uint8Array {
  return taggedHash(KEY_DOMAIN, [
    ['ctx', ctxDigest],
    ['index', i],
    ['bit', b],
    ['r0', r0],
    ['r1', r1],
    ['z', z],
    ['shared', shared],
  ]);
}

function checkChoiceBits(choiceBits: Uint8Array): void {
  if (choiceBits.length !== BASE_OT_COUNT / 8) {
    abort('bad-parameters', `base OT: expected ${BASE_OT_COUNT / 8} bytes of choice bits, got ${choiceBits.length}`);
  }
}

interface Secrets {
  /** κ scalars of 32 bytes in one buffer. */
  readonly packed: Uint8Array;
  /** A view of each. */
  readonly views: SecretScalar[];
}

/**
 * `kinds` sets of κ secret scalars from rng, drawn as randomScalar draws them and in the order
 * of the reference: instance by instance, every kind of an instance in turn.
 */
function drawSecrets(rng: Rng, kinds: number): Secrets[] {
  const sets = Array.from({ length: kinds }, () => ({ packed: new Uint8Array(BASE_OT_COUNT * SCALAR_BYTES), views: [] as SecretScalar[] }));
  for (let i = 0; i < BASE_OT_COUNT; i++) {
    for (const set of sets) {
      const view = set.packed.subarray(i * SCALAR_BYTES, (i + 1) * SCALAR_BYTES);
      const s = randomSecret(rng);
      view.set(s);
      s.fill(0);
      set.views.push(view);
    }
  }
  return sets;
}

const packedOf = (views: readonly SecretScalar[]): Uint8Array => new Uint8Array(views[0]!.buffer, views[0]!.byteOffset, BASE_OT_COUNT * SCALAR_BYTES);

// ---------------------------------------------------------------------------------------------
// The reference.

function referenceReceiverStart(cd: Uint8Array, choiceBits: Uint8Array, secrets: readonly SecretScalar[], others: readonly SecretScalar[]): Uint8Array {
  const message = new Uint8Array(BASE_OT_RECEIVER_MESSAGE_BYTES);
  for (let i = 0; i < BASE_OT_COUNT; i++) {
    const c = choiceBit(choiceBits, i);
    const other = mulBase(others[i]!); // r_{i,1−c}: a uniform group element
    const mine = add(mulBase(secrets[i]!), negate(hashToGroup(cd, i, other))); // r_{i,c}
    const base = i * 2 * POINT_BYTES;
    message.set(c === 0 ? mine : other, base);
    message.set(c === 0 ? other : mine, base + POINT_BYTES);
  }
  return message;
}

function referenceSenderRespond(cd: Uint8Array, points: readonly Uint8Array[], secrets: readonly SecretScalar[]): Omit<BaseOtSenderResult, 'keys0' | 'keys1'> & { keys: [Uint8Array[], Uint8Array[]] } {
  const reply = new Uint8Array(BASE_OT_SENDER_MESSAGE_BYTES);
  const keys: [Uint8Array[], Uint8Array[]] = [[], []];
  for (let i = 0; i < BASE_OT_COUNT; i++) {
    const r0 = points[2 * i]!;
    const r1 = points[2 * i + 1]!;
    const pk0 = add(r0, hashToGroup(cd, i, r1));
    const pk1 = add(r1, hashToGroup(cd, i, r0));
    const a = secrets[i]!;
    const z = mulBase(a);
    reply.set(z, i * POINT_BYTES);
    keys[0].push(deriveKey(cd, i, 0, r0, r1, z, mul(pk0, a)));
    keys[1].push(deriveKey(cd, i, 1, r0, r1, z, mul(pk1, a)));
  }
  return { message: reply, keys };
}

function referenceReceiverFinish(cd: Uint8Array, state: BaseOtReceiverState, zs: readonly Uint8Array[]): Uint8Array[] {
  const keys: Uint8Array[] = [];
  for (let i = 0; i < BASE_OT_COUNT; i++) {
    const base = i * 2 * POINT_BYTES;
    const r0 = state.sent.subarray(base, base + POINT_BYTES);
    const r1 = state.sent.subarray(base + POINT_BYTES, base + 2 * POINT_BYTES);
    keys.push(deriveKey(cd, i, choiceBit(state.choiceBits, i), r0, r1, zs[i]!, mul(zs[i]!, state.secrets[i]!)));
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// The native kernels (native/base-ot.cc).

type BadIndex = { badIndex: number };

/** The addon's base-OT surface. */
export interface NativeBaseOt {
  baseOtReceiverStart(context: Uint8Array, dst: Uint8Array, choices: Uint8Array, secrets: Uint8Array, others: Uint8Array): Uint8Array;
  baseOtSenderRespond(context: Uint8Array, dst: Uint8Array, keyPrefix: Uint8Array, message: Uint8Array, secrets: Uint8Array): { message: Uint8Array; keys0: Uint8Array; keys1: Uint8Array } | BadIndex;
  baseOtReceiverFinish(keyPrefix: Uint8Array, sent: Uint8Array, choices: Uint8Array, secrets: Uint8Array, message: Uint8Array): Uint8Array | BadIndex;
}

const H2C_DST_BYTES = new TextEncoder().encode(H2C_DST);
const keyPrefix = (cd: Uint8Array): Uint8Array => transcriptPrefix(KEY_DOMAIN, [['ctx', cd]]);
const keyViews = (keys: Uint8Array): Uint8Array[] => Array.from({ length: BASE_OT_COUNT }, (_, i) => keys.subarray(i * BASE_OT_KEY_BYTES, (i + 1) * BASE_OT_KEY_BYTES));

const addon = loadNative<NativeBaseOt>();
let native: NativeBaseOt | undefined = addon;

/** Which implementation the base OT uses: 'native' or 'typescript'. */
export function baseOtBackend(): 'native' | 'typescript' {
  return native ? 'native' : 'typescript';
}
/** Switches the kernels: the addon's (or a directly loaded one), or undefined for the reference (tests compare both). */
export function useBaseOtKernels(kernels: NativeBaseOt | undefined): void {
  native = kernels;
}
registerKernel({ name: 'base-ot', active: baseOtBackend, useReference: () => (native = undefined) });

// ---------------------------------------------------------------------------------------------
// The steps.

/** Receiver, step 1: commits to the choice bits (κ bits, packed LSB-first). */
export function baseOtReceiverStart(ctx: Uint8Array, choiceBits: Uint8Array, rng: Rng): { message: Uint8Array; state: BaseOtReceiverState } {
  checkChoiceBits(choiceBits);
  const cd = contextDigest(ctx);
  const [secrets, others] = drawSecrets(rng, 2) as [Secrets, Secrets];
  const message = native
    ? native.baseOtReceiverStart(cd, H2C_DST_BYTES, choiceBits, secrets.packed, others.packed)
    : referenceReceiverStart(cd, choiceBits, secrets.views, others.views);
  others.packed.fill(0);
  return { message, state: { choiceBits: choiceBits.slice(), secrets: secrets.views, sent: message.slice() } };
}

/** Sender: validates the receiver's points and derives both keys of every instance. */
export function baseOtSenderRespond(ctx: Uint8Array, message: Uint8Array, peer: number, rng: Rng): BaseOtSenderResult {
  if (message.length !== BASE_OT_RECEIVER_MESSAGE_BYTES) {
    abort('wrong-length', `base OT receiver message: expected ${BASE_OT_RECEIVER_MESSAGE_BYTES} bytes, got ${message.length}`, peer);
  }
  const decode = (k: number) => decodePoint(message.subarray(k * POINT_BYTES, (k + 1) * POINT_BYTES), `base OT r[${k >>> 1}][${k & 1}]`, peer);
  const cd = contextDigest(ctx);
  if (native) {
    const [a] = drawSecrets(rng, 1) as [Secrets];
    const r = native.baseOtSenderRespond(cd, H2C_DST_BYTES, keyPrefix(cd), message, a.packed);
    a.packed.fill(0);
    if ('badIndex' in r) {
      decode(r.badIndex); // throws the abort
      throw new Error(`native base OT: point ${r.badIndex} reported invalid but is not`);
    }
    return { message: r.message, keys0: keyViews(r.keys0), keys1: keyViews(r.keys1) };
  }
  const points = Array.from({ length: 2 * BASE_OT_COUNT }, (_, k) => decode(k));
  const [a] = drawSecrets(rng, 1) as [Secrets];
  const r = referenceSenderRespond(cd, points, a.views);
  a.packed.fill(0);
  return { message: r.message, keys0: r.keys[0], keys1: r.keys[1] };
}

/** Receiver, step 2: validates the sender's points; returns k_{i,c_i} for every instance. */
export function baseOtReceiverFinish(ctx: Uint8Array, state: BaseOtReceiverState, message: Uint8Array, peer: number): Uint8Array[] {
  if (message.length !== BASE_OT_SENDER_MESSAGE_BYTES) {
    abort('wrong-length', `base OT sender message: expected ${BASE_OT_SENDER_MESSAGE_BYTES} bytes, got ${message.length}`, peer);
  }
  const decode = (i: number) => decodePoint(message.subarray(i * POINT_BYTES, (i + 1) * POINT_BYTES), `base OT z[${i}]`, peer);
  const cd = contextDigest(ctx);
  if (native) {
    const r = native.baseOtReceiverFinish(keyPrefix(cd), state.sent, state.choiceBits, packedOf(state.secrets), message);
    if ('badIndex' in r) {
      decode(r.badIndex); // throws the abort
      throw new Error(`native base OT: point ${r.badIndex} reported invalid but is not`);
    }
    return keyViews(r);
  }
  return referenceReceiverFinish(cd, state, Array.from({ length: BASE_OT_COUNT }, (_, i) => decode(i)));
}
