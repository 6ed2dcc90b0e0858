/**
 * Two-party random vector OLE from OT extension: DKLs19 Protocol 1 as used by DKLs23 (Bob's
 * input is random, χ = ⟨g, β⟩ for random choice bits β; Fiat–Shamir replaces Bob's challenge).
 *
 * Bob (OT-extension receiver) → Alice: the OT-extension message for ξ·B random choice bits.
 * Alice (OT-extension sender), inputs a_b = (a_b0, a_b1) for each of the B instances, adds a
 * random mask â_b and sends per OT the corrections τ = h0 − h1 + (a_b0, a_b1, â_b), the opened
 * combination η_b = â_b + θ_b0·a_b0 + θ_b1·a_b1 and a digest of her side of the check values.
 * Afterwards c_b + d_b = χ_b · a_b, with c_b at Alice and d_b at Bob. A failed check is a blame.
 *
 * The check uses one mask per instance for both inputs (ℓ + 1 correlations per OT rather than
 * 2ℓ): a deviation (e_0, e_1, ê) in any OT passes only if θ_0·e_0 + θ_1·e_1 + ê = 0, which for
 * challenges derived after τ is fixed happens with probability 1/n.
 *
 * The arithmetic mod n (expanding OT outputs into scalars, τ, η, the check values, the gadget
 * sums) runs through a VoleKernel: the TypeScript bigint code below is the reference, and the
 * native addon (native/vole.cc) is used when it is built — the same pattern as
 * the curve backends of math/curve.ts. The transcripts (θ, the check digest), the message
 * fields and their validation stay here, shared by both kernels, so both produce the same bytes
 * (test/native/vole.test.ts compares them).
 *
 * Secrets cross this module as byte buffers (secret-scalar.ts): Alice's inputs and masks, χ and
 * the shares c_b, d_b are 32-byte big-endian scalars, never bigints, so with the native kernel
 * no secret of a VOLE becomes a JS BigInt. The public challenges θ stay bigints.
 */
import { abort } from './errors.js';
import { loadNative, registerKernel } from './math/kernels.js';
import { randomSecret, wipe, type SecretScalar } from './math/secret-scalar.js';
import { bytesEqual, concatBytes, field, type Payload } from './message.js';
import { otExtReceive, otExtSend, type OtExtReceiverSetup, type OtExtSenderSetup } from './ot/extension.js';
import './ot/native-hasher.js'; // installs the native OT row hasher when the addon is built
import { bytesToBigInt, decodeScalar, mod, reduceWide, scalarToBytes, SCALAR_BYTES } from './math/scalar.js';
import type { Rng } from './rng.js';
import { Transcript } from './transcript.js';

/** Bits of the field (κ) plus twice the statistical security parameter s = 80: DKLs19's ξ. */
export const VOLE_OTS = 256 + 2 * 80;
/** Correlations per OT: the two inputs (r, sk) and Alice's check mask. */
const CORRELATIONS = 3;
const WIDE = 48;
const OUTPUT_BYTES = CORRELATIONS * WIDE;

const GADGET: readonly bigint[] = Array.from({ length: VOLE_OTS }, (_, j) =>
  j < 256 ? mod(1n << BigInt(j)) : new Transcript('vole-gadget').append('index', j).challengeScalar(),
);

// ---------------------------------------------------------------------------------------------
// Kernels.

/**
 * The arithmetic of one VOLE, in four steps around the two transcript hashes. Vectors over the
 * m = ξ·B OTs are OT-major (OT b·ξ + j, then correlation k); `outputs` are the OT-extension
 * outputs as one buffer of m·144 bytes; byte vectors of scalars are 32-byte big-endian. `Pads`
 * and `Own` are the kernel's private representation of Bob's pads and Alice's shares of the
 * correlations: only the kernel that made them may read them.
 */
export interface VoleKernel<Pads = unknown, Own = unknown> {
  readonly name: 'typescript' | 'native';
  /**
   * Bob, after the OT extension: χ_b = Σ_j β_bj·g_j (B scalars of 32 bytes in one buffer) and
   * his pads (the OT outputs as scalars).
   */
  bobExpand(outputs: Uint8Array, choices: Uint8Array, count: number): { chi: Uint8Array; pads: Pads };
  /**
   * Alice, before the challenge: τ = h0 − h1 + α_b per correlation (m·3 scalars, the wire field)
   * and her state. alpha holds B groups of (a_b0, a_b1, â_b), 32 bytes each (B·96 bytes), each
   * below N; the kernel keeps a reference to it, and aliceDiscard wipes it.
   */
  aliceCorrect(outputs0: Uint8Array, outputs1: Uint8Array, alpha: Uint8Array): { tau: Uint8Array; own: Own };
  /**
   * Alice, after the challenge: η (B scalars), her check values (m scalars) and her shares c_b
   * (B pairs (c_b0, c_b1), 64 bytes each, in one buffer).
   */
  aliceFinish(own: Own, thetas: readonly (readonly [bigint, bigint])[]): { eta: Uint8Array; checkValues: Uint8Array; shares: Uint8Array };
  /** Wipes Alice's state where the representation allows it (after aliceFinish). */
  aliceDiscard(own: Own): void;
  /**
   * Bob: range-checks τ and η (throwing exactly the ProtocolAbort of decodeScalar, naming
   * `alice`, for the first scalar ≥ N in the order η_b, τ of instance b, b = 0, 1, …), then
   * his check values (m scalars) and his shares d_b.
   */
  bobFinish(
    pads: Pads,
    choices: Uint8Array,
    tau: Uint8Array,
    eta: Uint8Array,
    thetas: readonly (readonly [bigint, bigint])[],
    alice: number,
  ): { checkValues: Uint8Array; shares: Uint8Array };
}

function bit(bits: Uint8Array, index: number): number {
  return (bits[index >> 3]! >> (index & 7)) & 1;
}

/** The three correlations of OT `ot` of a contiguous output buffer. */
function expand(outputs: Uint8Array, ot: number): bigint[] {
  const at = ot * OUTPUT_BYTES;
  return [0, 1, 2].map((k) => reduceWide(outputs.subarray(at + k * WIDE, at + (k + 1) * WIDE)));
}

/** Σ_j g_j·t_j for one instance, reduced once at the end. */
function gadgetSum(terms: readonly bigint[], offset: number): bigint {
  let acc = 0n;
  for (let j = 0; j < VOLE_OTS; j++) acc += GADGET[j]! * terms[offset + j]!;
  return mod(acc);
}

interface TypescriptAliceOwn {
  /** own[k][ot] = −h0 of correlation k. */
  readonly own: bigint[][];
  readonly alpha: readonly (readonly bigint[])[];
  readonly alphaBytes: Uint8Array;
}

/** B·k scalars of a buffer as bigints, k per instance. */
function groups(bytes: Uint8Array, k: number): bigint[][] {
  const count = bytes.length / (k * SCALAR_BYTES);
  return Array.from({ length: count }, (_, b) => Array.from({ length: k }, (_, i) => bytesToBigInt(bytes.subarray((b * k + i) * SCALAR_BYTES, (b * k + i + 1) * SCALAR_BYTES))));
}

/** The reference: bigint arithmetic. */
export const typescriptVoleKernel: VoleKernel<bigint[][], TypescriptAliceOwn> = {
  name: 'typescript',

  bobExpand(outputs, choices, count) {
    const chi = Array.from({ length: count }, (_, b) => {
      let acc = 0n;
      for (let j = 0; j < VOLE_OTS; j++) if (bit(choices, b * VOLE_OTS + j)) acc += GADGET[j]!;
      return mod(acc);
    });
    const pads = Array.from({ length: VOLE_OTS * count }, (_, ot) => expand(outputs, ot));
    return { chi: scalarsToBytes(chi), pads };
  },

  aliceCorrect(outputs0, outputs1, alphaBytes) {
    const alpha = groups(alphaBytes, CORRELATIONS).map((a) => a.map(mod));
    const count = alpha.length;
    const tau = new Uint8Array(VOLE_OTS * count * CORRELATIONS * SCALAR_BYTES);
    const own: bigint[][] = [[], [], []];
    for (let b = 0; b < count; b++) {
      for (let j = 0; j < VOLE_OTS; j++) {
        const ot = b * VOLE_OTS + j;
        const h0 = expand(outputs0, ot);
        const h1 = expand(outputs1, ot);
        for (let k = 0; k < CORRELATIONS; k++) {
          tau.set(scalarToBytes(mod(h0[k]! - h1[k]! + alpha[b]![k]!)), (ot * CORRELATIONS + k) * SCALAR_BYTES);
          own[k]!.push(mod(-h0[k]!));
        }
      }
    }
    return { tau, own: { own, alpha, alphaBytes } };
  },

  aliceFinish({ own, alpha }, thetas) {
    const count = alpha.length;
    const eta = new Uint8Array(count * SCALAR_BYTES);
    const checkValues: Uint8Array[] = [];
    for (let b = 0; b < count; b++) {
      const [t0, t1] = thetas[b]!;
      eta.set(scalarToBytes(mod(alpha[b]![2]! + t0 * alpha[b]![0]! + t1 * alpha[b]![1]!)), b * SCALAR_BYTES);
      for (let j = 0; j < VOLE_OTS; j++) {
        const ot = b * VOLE_OTS + j;
        checkValues.push(scalarToBytes(mod(-(own[2]![ot]! + t0 * own[0]![ot]! + t1 * own[1]![ot]!))));
      }
    }
    const shares = scalarsToBytes(Array.from({ length: count }, (_, b) => [gadgetSum(own[0]!, b * VOLE_OTS), gadgetSum(own[1]!, b * VOLE_OTS)]).flat());
    return { eta, checkValues: concatBytes(checkValues), shares };
  },

  aliceDiscard({ alphaBytes }) {
    alphaBytes.fill(0); // the bigints cannot be wiped
  },

  bobFinish(pads, choices, tau, etaBytes, thetas, alice) {
    const count = thetas.length;
    const own: bigint[][] = [[], [], []];
    const checkValues: Uint8Array[] = [];
    for (let b = 0; b < count; b++) {
      const [t0, t1] = thetas[b]!;
      const eta = decodeScalar(etaBytes.subarray(b * SCALAR_BYTES, (b + 1) * SCALAR_BYTES), 'eta', alice, true);
      for (let j = 0; j < VOLE_OTS; j++) {
        const ot = b * VOLE_OTS + j;
        const chosen = bit(choices, ot);
        for (let k = 0; k < CORRELATIONS; k++) {
          const at = (ot * CORRELATIONS + k) * SCALAR_BYTES;
          const correction = decodeScalar(tau.subarray(at, at + SCALAR_BYTES), 'tau', alice, true);
          own[k]!.push(chosen ? mod(pads[ot]![k]! + correction) : pads[ot]![k]!);
        }
        checkValues.push(scalarToBytes(mod(own[2]![ot]! + t0 * own[0]![ot]! + t1 * own[1]![ot]! - (chosen ? eta : 0n))));
      }
    }
    const shares = scalarsToBytes(Array.from({ length: count }, (_, b) => [gadgetSum(own[0]!, b * VOLE_OTS), gadgetSum(own[1]!, b * VOLE_OTS)]).flat());
    return { checkValues: concatBytes(checkValues), shares };
  },
};

/** The native addon's VOLE surface (native/vole.cc). */
export interface NativeVole {
  voleInit(gadget: Uint8Array): void;
  voleBobExpand(outputs: Uint8Array, choices: Uint8Array, count: number): { chi: Uint8Array; pads: Uint8Array };
  voleAliceCorrect(outputs0: Uint8Array, outputs1: Uint8Array, alpha: Uint8Array): { tau: Uint8Array; own: Uint8Array };
  voleAliceFinish(own: Uint8Array, alpha: Uint8Array, thetas: Uint8Array): { eta: Uint8Array; check: Uint8Array; shares: Uint8Array };
  voleBobFinish(
    pads: Uint8Array,
    choices: Uint8Array,
    tau: Uint8Array,
    eta: Uint8Array,
    thetas: Uint8Array,
  ): { badField: 'eta' | 'tau'; badIndex: number } | { check: Uint8Array; shares: Uint8Array };
}

interface NativeAliceOwn {
  readonly own: Uint8Array;
  readonly alpha: Uint8Array;
}

function scalarsToBytes(values: readonly bigint[]): Uint8Array {
  const out = new Uint8Array(values.length * SCALAR_BYTES);
  values.forEach((v, i) => out.set(scalarToBytes(v), i * SCALAR_BYTES));
  return out;
}

const thetaBytes = (thetas: readonly (readonly [bigint, bigint])[]): Uint8Array => scalarsToBytes(thetas.flat());

/** The native kernel over a loaded addon (sets the addon's gadget vector). */
export function nativeVoleKernel(addon: NativeVole): VoleKernel<Uint8Array, NativeAliceOwn> {
  addon.voleInit(scalarsToBytes(GADGET));
  return {
    name: 'native',

    bobExpand(outputs, choices, count) {
      return addon.voleBobExpand(outputs, choices, count);
    },

    aliceCorrect(outputs0, outputs1, alpha) {
      const { tau, own } = addon.voleAliceCorrect(outputs0, outputs1, alpha);
      return { tau, own: { own, alpha } };
    },

    aliceFinish({ own, alpha }, thetas) {
      const r = addon.voleAliceFinish(own, alpha, thetaBytes(thetas));
      return { eta: r.eta, checkValues: r.check, shares: r.shares };
    },

    aliceDiscard({ own, alpha }) {
      own.fill(0);
      alpha.fill(0);
    },

    bobFinish(pads, choices, tau, eta, thetas, alice) {
      const r = addon.voleBobFinish(pads, choices, tau, eta, thetaBytes(thetas));
      if ('badField' in r) {
        const bytes = r.badField === 'eta' ? eta : tau;
        const at = r.badIndex * SCALAR_BYTES;
        decodeScalar(bytes.subarray(at, at + SCALAR_BYTES), r.badField, alice, true); // throws the abort
        throw new Error(`native VOLE kernel: ${r.badField}[${r.badIndex}] reported out of range but is not`);
      }
      return { checkValues: r.check, shares: r.shares };
    },
  };
}

const addon = loadNative<NativeVole>();
const nativeKernel: VoleKernel | undefined = addon ? nativeVoleKernel(addon) : undefined;
let active: VoleKernel = nativeKernel ?? typescriptVoleKernel;

export function voleBackend(): VoleKernel {
  return active;
}
/** Switches the kernel (tests compare both; benchmarks measure both). */
export function useVoleBackend(kernel: VoleKernel): void {
  active = kernel;
}
export function nativeVoleBackend(): VoleKernel | undefined {
  return nativeKernel;
}
registerKernel({ name: 'vole', active: () => active.name, useReference: () => (active = typescriptVoleKernel) });

// ---------------------------------------------------------------------------------------------
// The protocol.

function challenges(context: Uint8Array, bobMessage: Uint8Array, tau: Uint8Array, count: number): [bigint, bigint][] {
  const digest = new Transcript('vole-challenge').append('context', context).append('bob', bobMessage).append('tau', tau).digest();
  return Array.from({ length: count }, (_, b) => [0, 1].map((k) => new Transcript('vole-theta').append('seed', digest).append('instance', b).append('k', k).challengeScalar()) as [bigint, bigint]);
}

/** Digest of the check values, given as the concatenation of their 32-byte encodings. */
function checkDigest(context: Uint8Array, values: Uint8Array): Uint8Array {
  return new Transcript('vole-check').append('context', context).append('values', values).digest();
}

export interface VoleBobState {
  readonly count: number;
  readonly choices: Uint8Array;
  readonly message: Uint8Array;
  /** χ_b, Bob's random inputs: 32-byte views into one buffer (secret; wipe with wipeVoleBob). */
  readonly chi: readonly SecretScalar[];
  /** The kernel that expanded the pads; it also finishes. */
  readonly kernel: VoleKernel;
  /** Bob's pads, in `kernel`'s representation. */
  readonly pads: unknown;
}

export function voleBobStart(setup: OtExtReceiverSetup, context: Uint8Array, count: number, rng: Rng): { payload: Payload; state: VoleBobState } {
  const m = VOLE_OTS * count;
  const choices = rng(Math.ceil(m / 8));
  const { message, outputs } = otExtReceive(setup, context, choices, m, OUTPUT_BYTES, rng);
  const kernel = active;
  const expanded = kernel.bobExpand(outputs, choices, count);
  outputs.fill(0);
  const chi = pairsOrSingles(expanded.chi, 1).map(([x]) => x!);
  return { payload: { ote: message }, state: { count, choices, message, chi, kernel, pads: expanded.pads } };
}

/** Wipes Bob's secrets of a VOLE (his choice bits, χ and the native pads) once he is done with them. */
export function wipeVoleBob(state: VoleBobState): void {
  state.choices.fill(0);
  for (const x of state.chi) x.fill(0);
  if (state.pads instanceof Uint8Array) state.pads.fill(0);
}

/** A buffer of B groups of k scalars as B arrays of k 32-byte views. */
function pairsOrSingles(bytes: Uint8Array, k: number): Uint8Array[][] {
  const count = bytes.length / (k * SCALAR_BYTES);
  return Array.from({ length: count }, (_, b) => Array.from({ length: k }, (_, i) => bytes.subarray((b * k + i) * SCALAR_BYTES, (b * k + i + 1) * SCALAR_BYTES)));
}

/** The shares of B instances: B pairs of 32-byte views into one buffer. */
export type VoleShares = [SecretScalar, SecretScalar][];

const asShares = (bytes: Uint8Array): VoleShares => pairsOrSingles(bytes, 2) as VoleShares;

/** Alice's round: returns her message and her shares c_b (two per instance). */
export function voleAliceRespond(
  setup: OtExtSenderSetup,
  context: Uint8Array,
  inputs: readonly (readonly [SecretScalar, SecretScalar])[],
  bobPayload: Payload,
  bob: number,
  rng: Rng,
): { payload: Payload; shares: VoleShares } {
  const count = inputs.length;
  const m = VOLE_OTS * count;
  const bobMessage = field(bobPayload, 'ote', bob);
  const { outputs0, outputs1 } = otExtSend(setup, context, m, OUTPUT_BYTES, bobMessage, bob);
  // α: (a_b0, a_b1, â_b) per instance, â_b a fresh random mask.
  const alpha = new Uint8Array(count * CORRELATIONS * SCALAR_BYTES);
  inputs.forEach(([a0, a1], b) => {
    if (a0.length !== SCALAR_BYTES || a1.length !== SCALAR_BYTES) throw new RangeError('VOLE inputs must be 32-byte scalars');
    const mask = randomSecret(rng);
    alpha.set(a0, b * CORRELATIONS * SCALAR_BYTES);
    alpha.set(a1, (b * CORRELATIONS + 1) * SCALAR_BYTES);
    alpha.set(mask, (b * CORRELATIONS + 2) * SCALAR_BYTES);
    wipe(mask);
  });
  const kernel = active;
  const { tau, own } = kernel.aliceCorrect(outputs0, outputs1, alpha);
  outputs0.fill(0);
  outputs1.fill(0);
  const thetas = challenges(context, bobMessage, tau, count);
  const { eta, checkValues, shares } = kernel.aliceFinish(own, thetas);
  kernel.aliceDiscard(own);
  alpha.fill(0);
  const check = checkDigest(context, checkValues);
  checkValues.fill(0);
  return { payload: { tau, eta, check }, shares: asShares(shares) };
}

/** Bob's output d_b (two per instance) after verifying Alice's check; aborts with a blame otherwise. */
export function voleBobFinish(state: VoleBobState, context: Uint8Array, alicePayload: Payload, alice: number): VoleShares {
  const { count, choices, kernel, pads } = state;
  const m = VOLE_OTS * count;
  const tau = field(alicePayload, 'tau', alice, m * CORRELATIONS * SCALAR_BYTES);
  const eta = field(alicePayload, 'eta', alice, count * SCALAR_BYTES);
  const check = field(alicePayload, 'check', alice, 32);
  const thetas = challenges(context, state.message, tau, count);
  const { checkValues, shares } = kernel.bobFinish(pads, choices, tau, eta, thetas, alice);
  const digest = checkDigest(context, checkValues);
  checkValues.fill(0);
  if (!bytesEqual(digest, check)) {
    shares.fill(0);
    abort('vole-check-failed', 'multiplication (VOLE) consistency check failed', alice);
  }
  return asShares(shares);
}
