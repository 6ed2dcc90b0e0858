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
 * Cost (pure TypeScript curve backend): receiver 2 base multiplications, 1 hash-to-curve, 1
 * addition per instance, then 1 variable-base multiplication; sender 2 hash-to-curve, 2
 * additions, 1 base and 2 variable-base multiplications per instance. This runs once per
 * ordered pair of parties at key generation / refresh, not per signature.
 */
import { p256_hasher } from '@noble/curves/nist.js';
import { abort } from '../errors.js';
import type { Rng } from '../rng.js';
import { taggedHash } from '../transcript.js';
import { add, decodePoint, mul, mulBase, POINT_BYTES } from '../math/curve.js';
import { randomScalar } from '../math/scalar.js';

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
  /** sk_i. */
  readonly secrets: readonly bigint[];
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

/** Receiver, step 1: commits to the choice bits (κ bits, packed LSB-first). */
export function baseOtReceiverStart(ctx: Uint8Array, choiceBits: Uint8Array, rng: Rng): { message: Uint8Array; state: BaseOtReceiverState } {
  checkChoiceBits(choiceBits);
  const cd = contextDigest(ctx);
  const message = new Uint8Array(BASE_OT_RECEIVER_MESSAGE_BYTES);
  const secrets: bigint[] = [];
  for (let i = 0; i < BASE_OT_COUNT; i++) {
    const c = choiceBit(choiceBits, i);
    const sk = randomScalar(rng);
    const other = mulBase(randomScalar(rng)); // r_{i,1−c}: a uniform group element
    const mine = add(mulBase(sk), negate(hashToGroup(cd, i, other))); // r_{i,c}
    const base = i * 2 * POINT_BYTES;
    message.set(c === 0 ? mine : other, base);
    message.set(c === 0 ? other : mine, base + POINT_BYTES);
    secrets.push(sk);
  }
  return { message, state: { choiceBits: choiceBits.slice(), secrets, sent: message.slice() } };
}

/** Sender: validates the receiver's points and derives both keys of every instance. */
export function baseOtSenderRespond(ctx: Uint8Array, message: Uint8Array, peer: number, rng: Rng): BaseOtSenderResult {
  if (message.length !== BASE_OT_RECEIVER_MESSAGE_BYTES) {
    abort('wrong-length', `base OT receiver message: expected ${BASE_OT_RECEIVER_MESSAGE_BYTES} bytes, got ${message.length}`, peer);
  }
  const points: Uint8Array[] = [];
  for (let k = 0; k < 2 * BASE_OT_COUNT; k++) {
    points.push(decodePoint(message.subarray(k * POINT_BYTES, (k + 1) * POINT_BYTES), `base OT r[${k >>> 1}][${k & 1}]`, peer));
  }
  const cd = contextDigest(ctx);
  const reply = new Uint8Array(BASE_OT_SENDER_MESSAGE_BYTES);
  const keys0: Uint8Array[] = [];
  const keys1: Uint8Array[] = [];
  for (let i = 0; i < BASE_OT_COUNT; i++) {
    const r0 = points[2 * i]!;
    const r1 = points[2 * i + 1]!;
    const pk0 = add(r0, hashToGroup(cd, i, r1));
    const pk1 = add(r1, hashToGroup(cd, i, r0));
    const a = randomScalar(rng);
    const z = mulBase(a);
    reply.set(z, i * POINT_BYTES);
    keys0.push(deriveKey(cd, i, 0, r0, r1, z, mul(pk0, a)));
    keys1.push(deriveKey(cd, i, 1, r0, r1, z, mul(pk1, a)));
  }
  return { message: reply, keys0, keys1 };
}

/** Receiver, step 2: validates the sender's points; returns k_{i,c_i} for every instance. */
export function baseOtReceiverFinish(ctx: Uint8Array, state: BaseOtReceiverState, message: Uint8Array, peer: number): Uint8Array[] {
  if (message.length !== BASE_OT_SENDER_MESSAGE_BYTES) {
    abort('wrong-length', `base OT sender message: expected ${BASE_OT_SENDER_MESSAGE_BYTES} bytes, got ${message.length}`, peer);
  }
  const zs: Uint8Array[] = [];
  for (let i = 0; i < BASE_OT_COUNT; i++) zs.push(decodePoint(message.subarray(i * POINT_BYTES, (i + 1) * POINT_BYTES), `base OT z[${i}]`, peer));
  const cd = contextDigest(ctx);
  const keys: Uint8Array[] = [];
  for (let i = 0; i < BASE_OT_COUNT; i++) {
    const base = i * 2 * POINT_BYTES;
    const r0 = state.sent.subarray(base, base + POINT_BYTES);
    const r1 = state.sent.subarray(base + POINT_BYTES, base + 2 * POINT_BYTES);
    const z = zs[i]!;
    keys.push(deriveKey(cd, i, choiceBit(state.choiceBits, i), r0, r1, z, mul(z, state.secrets[i]!)));
  }
  return keys;
}
