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
 */
import { abort } from './errors.js';
import { bytesEqual, concatBytes, field, type Payload } from './message.js';
import { otExtReceive, otExtSend, type OtExtReceiverSetup, type OtExtSenderSetup } from './ot/extension.js';
import { decodeScalar, mod, randomScalar, reduceWide, scalarToBytes, SCALAR_BYTES } from './math/scalar.js';
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

function expand(output: Uint8Array): bigint[] {
  return [0, 1, 2].map((k) => reduceWide(output.subarray(k * WIDE, (k + 1) * WIDE)));
}

function bit(bits: Uint8Array, index: number): number {
  return (bits[index >> 3]! >> (index & 7)) & 1;
}

function challenges(context: Uint8Array, bobMessage: Uint8Array, tau: Uint8Array, count: number): [bigint, bigint][] {
  const digest = new Transcript('vole-challenge').append('context', context).append('bob', bobMessage).append('tau', tau).digest();
  return Array.from({ length: count }, (_, b) => [0, 1].map((k) => new Transcript('vole-theta').append('seed', digest).append('instance', b).append('k', k).challengeScalar()) as [bigint, bigint]);
}

function checkDigest(context: Uint8Array, values: readonly bigint[]): Uint8Array {
  return new Transcript('vole-check').append('context', context).append('values', concatBytes(values.map(scalarToBytes))).digest();
}

/** Σ_j g_j·t_j for one instance, reduced once at the end. */
function gadgetSum(terms: readonly bigint[], offset: number): bigint {
  let acc = 0n;
  for (let j = 0; j < VOLE_OTS; j++) acc += GADGET[j]! * terms[offset + j]!;
  return mod(acc);
}

export interface VoleBobState {
  readonly count: number;
  readonly choices: Uint8Array;
  readonly message: Uint8Array;
  /** χ_b, Bob's random inputs. */
  readonly chi: readonly bigint[];
  readonly pads: readonly bigint[][];
}

export function voleBobStart(setup: OtExtReceiverSetup, context: Uint8Array, count: number, rng: Rng): { payload: Payload; state: VoleBobState } {
  const m = VOLE_OTS * count;
  const choices = rng(Math.ceil(m / 8));
  const { message, outputs } = otExtReceive(setup, context, choices, m, OUTPUT_BYTES, rng);
  const chi = Array.from({ length: count }, (_, b) => {
    let acc = 0n;
    for (let j = 0; j < VOLE_OTS; j++) if (bit(choices, b * VOLE_OTS + j)) acc += GADGET[j]!;
    return mod(acc);
  });
  const pads = outputs.map(expand);
  return { payload: { ote: message }, state: { count, choices, message, chi, pads } };
}

/** Alice's round: returns her message and her shares c_b (two per instance). */
export function voleAliceRespond(
  setup: OtExtSenderSetup,
  context: Uint8Array,
  inputs: readonly (readonly [bigint, bigint])[],
  bobPayload: Payload,
  bob: number,
  rng: Rng,
): { payload: Payload; shares: [bigint, bigint][] } {
  const count = inputs.length;
  const m = VOLE_OTS * count;
  const bobMessage = field(bobPayload, 'ote', bob);
  const { outputs0, outputs1 } = otExtSend(setup, context, m, OUTPUT_BYTES, bobMessage, bob);
  const masks = inputs.map(() => randomScalar(rng));
  const tau = new Uint8Array(m * CORRELATIONS * SCALAR_BYTES);
  const own: bigint[][] = [[], [], []];
  for (let b = 0; b < count; b++) {
    const alpha = [inputs[b]![0], inputs[b]![1], masks[b]!];
    for (let j = 0; j < VOLE_OTS; j++) {
      const ot = b * VOLE_OTS + j;
      const h0 = expand(outputs0[ot]!);
      const h1 = expand(outputs1[ot]!);
      for (let k = 0; k < CORRELATIONS; k++) {
        tau.set(scalarToBytes(mod(h0[k]! - h1[k]! + alpha[k]!)), (ot * CORRELATIONS + k) * SCALAR_BYTES);
        own[k]!.push(mod(-h0[k]!));
      }
    }
  }
  const thetas = challenges(context, bobMessage, tau, count);
  const eta = new Uint8Array(count * SCALAR_BYTES);
  const checkValues: bigint[] = [];
  for (let b = 0; b < count; b++) {
    const [t0, t1] = thetas[b]!;
    eta.set(scalarToBytes(mod(masks[b]! + t0 * inputs[b]![0] + t1 * inputs[b]![1])), b * SCALAR_BYTES);
    for (let j = 0; j < VOLE_OTS; j++) {
      const ot = b * VOLE_OTS + j;
      checkValues.push(mod(-(own[2]![ot]! + t0 * own[0]![ot]! + t1 * own[1]![ot]!)));
    }
  }
  const shares = Array.from({ length: count }, (_, b) => [gadgetSum(own[0]!, b * VOLE_OTS), gadgetSum(own[1]!, b * VOLE_OTS)] as [bigint, bigint]);
  return { payload: { tau, eta, check: checkDigest(context, checkValues) }, shares };
}

/** Bob's output d_b (two per instance) after verifying Alice's check; aborts with a blame otherwise. */
export function voleBobFinish(state: VoleBobState, context: Uint8Array, alicePayload: Payload, alice: number): [bigint, bigint][] {
  const { count, choices, pads } = state;
  const m = VOLE_OTS * count;
  const tau = field(alicePayload, 'tau', alice, m * CORRELATIONS * SCALAR_BYTES);
  const etaBytes = field(alicePayload, 'eta', alice, count * SCALAR_BYTES);
  const check = field(alicePayload, 'check', alice, 32);
  const thetas = challenges(context, state.message, tau, count);
  const own: bigint[][] = [[], [], []];
  const checkValues: bigint[] = [];
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
      checkValues.push(mod(own[2]![ot]! + t0 * own[0]![ot]! + t1 * own[1]![ot]! - (chosen ? eta : 0n)));
    }
  }
  if (!bytesEqual(checkDigest(context, checkValues), check)) abort('vole-check-failed', 'multiplication (VOLE) consistency check failed', alice);
  return Array.from({ length: count }, (_, b) => [gadgetSum(own[0]!, b * VOLE_OTS), gadgetSum(own[1]!, b * VOLE_OTS)] as [bigint, bigint]);
}
