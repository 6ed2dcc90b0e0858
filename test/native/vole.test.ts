/**
 * The native VOLE kernel (native/scalar.h and native/vole.cc) against the TypeScript
 * reference kernel of src/protocol/vole.ts: the same bytes and scalars for random inputs and edge
 * values, the same ProtocolAbort for out-of-range received scalars, and the exact wide
 * reduction BigInt(48 bytes) mod n.
 *
 * As in curve.test.ts, a missing addon is a FAILURE, never a skip; with QUORUMKEY_NATIVE=0 the
 * product runs on the reference and the addon is loaded directly so that it is still checked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { ProtocolAbort } from '../../src/protocol/errors.js';
import { N, bytesToBigInt, mod, randomScalar, reduceWide, scalarToBytes, SCALAR_BYTES } from '../../src/protocol/math/scalar.js';
import type { Payload } from '../../src/protocol/message.js';
import { otExtSetupReceiverRespond, otExtSetupSenderFinish, otExtSetupSenderStart, type OtExtReceiverSetup, type OtExtSenderSetup } from '../../src/protocol/ot/extension.js';
import { seededRng, type Rng } from '../../src/protocol/rng.js';
import {
  nativeVoleBackend,
  nativeVoleKernel,
  typescriptVoleKernel,
  useVoleBackend,
  voleAliceRespond,
  voleBackend,
  voleBobFinish,
  voleBobStart,
  VOLE_OTS,
  type NativeVole,
  type VoleKernel,
} from '../../src/protocol/vole.js';

const ADDON_PATH = '../../../build/Release/quorumkey_native.node'; // from dist/test/native/
const nativeDisabled = process.env.QUORUMKEY_NATIVE === '0';
const productKernelAtLoad = voleBackend().name;
const WIDE = 48;
const OUTPUT_BYTES = 3 * WIDE;
const enc = new TextEncoder();
const ALICE = 2;
const BOB = 6;

function loadAddonDirectly(): NativeVole {
  const require = createRequire(import.meta.url);
  try {
    return require(ADDON_PATH) as NativeVole;
  } catch (err) {
    throw new Error(`native addon not loadable from build/Release/quorumkey_native.node — run \`npm install\`: ${(err as Error).message}`);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const big = (v: bigint, bytes: number): Uint8Array => new Uint8Array(Buffer.from(v.toString(16).padStart(2 * bytes, '0'), 'hex'));

/** Everything a kernel returns for one VOLE, public and secret, as comparable strings. */
interface Run {
  chi: string[];
  tau: string;
  eta: string;
  aliceCheck: string;
  aliceShares: string[];
  bobCheck: string;
  bobShares: string[];
}

interface Inputs {
  count: number;
  bobOutputs: Uint8Array;
  outputs0: Uint8Array;
  outputs1: Uint8Array;
  choices: Uint8Array;
  alpha: bigint[][];
  thetas: [bigint, bigint][];
}

/** Runs the four kernel steps. Bob's outputs are arbitrary here (not Alice's chosen ones): the arithmetic is compared, not the protocol. */
function runKernel(kernel: VoleKernel, x: Inputs): Run {
  const bob = kernel.bobExpand(x.bobOutputs.slice(), x.choices, x.count);
  const alice = kernel.aliceCorrect(x.outputs0.slice(), x.outputs1.slice(), alphaBytes(x.alpha));
  const finish = kernel.aliceFinish(alice.own, x.thetas);
  const bobEnd = kernel.bobFinish(bob.pads, x.choices, alice.tau, finish.eta, x.thetas, ALICE);
  return {
    chi: scalarsHex(bob.chi),
    tau: hex(alice.tau),
    eta: hex(finish.eta),
    aliceCheck: hex(finish.checkValues),
    aliceShares: scalarsHex(finish.shares),
    bobCheck: hex(bobEnd.checkValues),
    bobShares: scalarsHex(bobEnd.shares),
  };
}

/** Alice's inputs (a_b0, a_b1, â_b) as the kernels take them: 96 bytes per instance, each value below N. */
function alphaBytes(alpha: readonly (readonly bigint[])[]): Uint8Array {
  const out = new Uint8Array(alpha.length * 3 * SCALAR_BYTES);
  alpha.flat().forEach((a, i) => out.set(scalarToBytes(a), i * SCALAR_BYTES));
  return out;
}

/** A buffer of 32-byte scalars as hex strings, one per scalar. */
function scalarsHex(bytes: Uint8Array): string[] {
  return Array.from({ length: bytes.length / SCALAR_BYTES }, (_, i) => hex(bytes.subarray(i * SCALAR_BYTES, (i + 1) * SCALAR_BYTES)));
}

function randomInputs(rng: Rng, count: number): Inputs {
  const m = VOLE_OTS * count;
  return {
    count,
    bobOutputs: rng(m * OUTPUT_BYTES),
    outputs0: rng(m * OUTPUT_BYTES),
    outputs1: rng(m * OUTPUT_BYTES),
    choices: rng(Math.ceil(m / 8)),
    alpha: Array.from({ length: count }, () => [randomScalar(rng), randomScalar(rng), randomScalar(rng)]),
    thetas: Array.from({ length: count }, () => [randomScalar(rng), randomScalar(rng)] as [bigint, bigint]),
  };
}

/** 48-byte big-endian values that stress the wide reduction. */
const WIDE_EDGES: bigint[] = [
  0n,
  1n,
  N - 1n,
  N,
  N + 1n,
  2n * N - 1n,
  2n * N,
  (1n << 256n) - 1n,
  1n << 256n,
  (1n << 256n) + N - 1n,
  (1n << 384n) - 1n,
  ((1n << 128n) - 1n) * N, // the largest multiple of N that fits
  ((1n << 128n) - 1n) * N - 1n,
  ((1n << 128n) - 1n) * N + N - 1n,
  (1n << 383n) + 12345n,
  ((1n << 128n) - 1n) << 256n, // hi all ones, lo zero
  (((1n << 128n) - 1n) << 256n) + N, // hi all ones, lo = N
  (((1n << 128n) - 1n) << 256n) + N - 1n,
  (1n << 128n) * N - 1n,
  // hi·2^256 mod n just below n (hi = ⌊k·n / c⌋, c = 2^256 mod n), with lo ≥ n: the sum of the two
  // reduced halves needs the final subtraction, and lo must be reduced first.
  ...[1n, 2n, 1000n].flatMap((k) => {
    const hi = (k * N) / ((1n << 256n) - N);
    return [(hi << 256n) + (1n << 256n) - 1n, (hi << 256n) + N, (hi << 256n) + N - 1n];
  }),
];

/** Fills a buffer of `count` 48-byte values cycling through `values`, from `offset` in the list. */
function wideBuffer(values: readonly bigint[], count: number, offset: number): Uint8Array {
  const out = new Uint8Array(count * WIDE);
  for (let i = 0; i < count; i++) out.set(big(values[(i + offset) % values.length]!, WIDE), i * WIDE);
  return out;
}

function expectSameAbort(run: () => unknown, reference: () => unknown, field: 'tau' | 'eta'): void {
  let expected: ProtocolAbort | undefined;
  try {
    reference();
  } catch (e) {
    expected = e as ProtocolAbort;
  }
  assert.ok(expected instanceof ProtocolAbort, 'the reference kernel must abort');
  assert.equal(expected.reason, 'invalid-scalar');
  assert.ok(expected.message.includes(`${field}:`), expected.message);
  assert.throws(run, (e: unknown) => {
    assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
    assert.equal(e.reason, expected!.reason);
    assert.equal(e.culprit, expected!.culprit);
    assert.equal(e.message, expected!.message);
    assert.equal(e.isBlame, expected!.isBlame);
    return true;
  });
}

describe('native VOLE kernel', function () {
  this.timeout(120000);
  let raw: NativeVole;
  let native: VoleKernel;
  const reference = typescriptVoleKernel as VoleKernel;
  const seed = process.env.QUORUMKEY_TEST_SEED ?? randomBytes(8).toString('hex');

  before(() => {
    raw = loadAddonDirectly();
    const viaProduct = nativeVoleBackend();
    if (viaProduct) native = viaProduct;
    else if (nativeDisabled) native = nativeVoleKernel(raw);
    else assert.fail('the addon loads directly but src/protocol/vole.ts did not pick it up');
  });

  it('is the kernel the product uses (unless QUORUMKEY_NATIVE=0)', () => {
    assert.equal(native.name, 'native');
    if (nativeDisabled) {
      assert.equal(nativeVoleBackend(), undefined);
      assert.equal(productKernelAtLoad, 'typescript');
    } else {
      assert.equal(productKernelAtLoad, 'native');
    }
  });

  it('the addon exports the VOLE surface', () => {
    for (const name of ['voleInit', 'voleBobExpand', 'voleAliceCorrect', 'voleAliceFinish', 'voleBobFinish']) {
      assert.equal(typeof (raw as unknown as Record<string, unknown>)[name], 'function', name);
    }
  });

  it('reduces 48-byte values exactly as BigInt(bytes) mod n (edge values and random)', () => {
    const rng = seededRng(`wide ${seed}`);
    // Bob's pads are the reductions of his OT outputs, in order: 3 per OT, VOLE_OTS OTs per instance.
    const m = VOLE_OTS;
    const check = (outputs: Uint8Array, label: string) => {
      const { pads } = raw.voleBobExpand(outputs, new Uint8Array(m / 8), 1);
      for (let i = 0; i < 3 * m; i++) {
        const wide = outputs.subarray(i * WIDE, (i + 1) * WIDE);
        const got = bytesToBigInt(pads.subarray(i * SCALAR_BYTES, (i + 1) * SCALAR_BYTES));
        assert.equal(got, bytesToBigInt(wide) % N, `${label}: value ${hex(wide)}`);
        assert.equal(got, reduceWide(wide));
      }
    };
    for (let offset = 0; offset < WIDE_EDGES.length; offset++) check(wideBuffer(WIDE_EDGES, 3 * m, offset), `edges offset ${offset}`);
    // Random hi with lo near N and 2^256, and fully random values.
    const mixed: bigint[] = [];
    for (let i = 0; i < 3 * m; i++) {
      const hi = bytesToBigInt(rng(16)) << 256n;
      mixed.push(hi + [N - 1n, N, N + 1n, (1n << 256n) - 1n, 0n, bytesToBigInt(rng(32))][i % 6]!);
    }
    check(wideBuffer(mixed, 3 * m, 0), `seed ${seed} mixed`);
    check(rng(3 * m * WIDE), `seed ${seed} random`);
  });

  for (const count of [1, 2, 5]) {
    it(`matches the reference on random inputs, count ${count} (seed ${seed})`, () => {
      const x = randomInputs(seededRng(`random ${count} ${seed}`), count);
      assert.deepEqual(runKernel(native, x), runKernel(reference, x));
    });
  }

  it('matches the reference on edge values (outputs at the reduction edges; inputs and θ of 0, 1, N−1)', () => {
    const count = 3;
    const m = VOLE_OTS * count;
    const edgeScalars = [0n, 1n, N - 1n, N - 2n, 2n];
    for (let offset = 0; offset < 4; offset++) {
      const pick = (i: number) => edgeScalars[(i + offset) % edgeScalars.length]!;
      const x: Inputs = {
        count,
        bobOutputs: wideBuffer(WIDE_EDGES, 3 * m, offset),
        outputs0: wideBuffer(WIDE_EDGES, 3 * m, offset + 1),
        outputs1: wideBuffer(WIDE_EDGES, 3 * m, offset + 7),
        choices: new Uint8Array(m / 8).fill([0x00, 0xff, 0xa5, 0x5a][offset]!),
        alpha: Array.from({ length: count }, (_, b) => [pick(b), pick(b + 1), pick(b + 2)]),
        thetas: Array.from({ length: count }, (_, b) => [pick(b + 3), pick(b + 4)] as [bigint, bigint]),
      };
      assert.deepEqual(runKernel(native, x), runKernel(reference, x), `offset ${offset}`);
    }
    // All outputs ≡ 0 and all inputs zero: everything is zero.
    const zero: Inputs = {
      count: 1,
      bobOutputs: wideBuffer([((1n << 128n) - 1n) * N], 3 * VOLE_OTS, 0),
      outputs0: wideBuffer([N], 3 * VOLE_OTS, 0),
      outputs1: wideBuffer([0n], 3 * VOLE_OTS, 0),
      choices: new Uint8Array(VOLE_OTS / 8).fill(0xff),
      alpha: [[0n, 0n, 0n]],
      thetas: [[0n, 0n]],
    };
    const r = runKernel(native, zero);
    assert.deepEqual(r, runKernel(reference, zero));
    assert.ok(/^0+$/.test(r.tau) && /^0+$/.test(r.aliceCheck) && /^0+$/.test(r.bobCheck));
  });

  it('inputs are 32-byte scalars below N: the native kernel rejects N and above (TypeError), never reducing a secret silently', () => {
    const x = randomInputs(seededRng(`unreduced ${seed}`), 2);
    for (const bad of [N, N + 5n, (1n << 256n) - 1n]) {
      const alpha = alphaBytes(x.alpha);
      alpha.set(big(bad, SCALAR_BYTES), 4 * SCALAR_BYTES);
      assert.throws(() => native.aliceCorrect(x.outputs0, x.outputs1, alpha), TypeError);
    }
  });

  describe('received scalars ≥ N: the same ProtocolAbort as the reference, for the first bad one in its order', () => {
    const count = 3;
    const m = VOLE_OTS * count;
    let x: Inputs;
    let tau: Uint8Array;
    let eta: Uint8Array;
    before(() => {
      x = randomInputs(seededRng(`abort ${seed}`), count);
      const alice = typescriptVoleKernel.aliceCorrect(x.outputs0, x.outputs1, alphaBytes(x.alpha));
      tau = alice.tau;
      eta = typescriptVoleKernel.aliceFinish(alice.own, x.thetas).eta;
    });
    const finishBoth = (badTau: Uint8Array, badEta: Uint8Array) => {
      const nativePads = native.bobExpand(x.bobOutputs, x.choices, count).pads;
      const refPads = reference.bobExpand(x.bobOutputs, x.choices, count).pads;
      expectSameAbort(
        () => native.bobFinish(nativePads, x.choices, badTau, badEta, x.thetas, ALICE),
        () => reference.bobFinish(refPads, x.choices, badTau, badEta, x.thetas, ALICE),
        firstBadField(badTau, badEta),
      );
    };
    /** The field the reference reports: η_b before τ of instance b, instances in order. */
    const firstBadField = (t: Uint8Array, e: Uint8Array): 'tau' | 'eta' => {
      const bad = (bytes: Uint8Array, i: number) => bytesToBigInt(bytes.subarray(i * SCALAR_BYTES, (i + 1) * SCALAR_BYTES)) >= N;
      for (let b = 0; b < count; b++) {
        if (bad(e, b)) return 'eta';
        for (let i = b * VOLE_OTS * 3; i < (b + 1) * VOLE_OTS * 3; i++) if (bad(t, i)) return 'tau';
      }
      throw new Error('no bad scalar');
    };
    const withScalar = (bytes: Uint8Array, index: number, value: bigint) => {
      const copy = bytes.slice();
      copy.set(big(value, SCALAR_BYTES), index * SCALAR_BYTES);
      return copy;
    };

    for (const value of [N, N + 1n, (1n << 256n) - 1n]) {
      it(`tau = ${value === N ? 'N' : value === N + 1n ? 'N+1' : '2^256−1'} at the first, a middle and the last position`, () => {
        for (const index of [0, 1, 2, 3 * VOLE_OTS - 1, 3 * VOLE_OTS, (3 * m) >> 1, 3 * m - 1]) {
          finishBoth(withScalar(tau, index, value), eta);
          const r = raw.voleBobFinish(new Uint8Array(3 * m * SCALAR_BYTES), x.choices, withScalar(tau, index, value), eta, scalarPairsBytes(x.thetas));
          assert.deepEqual(r, { badField: 'tau', badIndex: index });
        }
      });
      it(`eta = ${value === N ? 'N' : value === N + 1n ? 'N+1' : '2^256−1'} for each instance`, () => {
        for (let b = 0; b < count; b++) {
          finishBoth(tau, withScalar(eta, b, value));
          const r = raw.voleBobFinish(new Uint8Array(3 * m * SCALAR_BYTES), x.choices, tau, withScalar(eta, b, value), scalarPairsBytes(x.thetas));
          assert.deepEqual(r, { badField: 'eta', badIndex: b });
        }
      });
    }

    it('several bad scalars: the first in the reference order wins (η_b before τ of instance b, before η_{b+1})', () => {
      const cases: Array<[Uint8Array, Uint8Array, 'tau' | 'eta', number]> = [
        [withScalar(tau, 3 * VOLE_OTS + 4, N), withScalar(eta, 1, N), 'eta', 1], // η_1 comes before τ of instance 1
        [withScalar(tau, 3 * VOLE_OTS - 1, N), withScalar(eta, 1, N), 'tau', 3 * VOLE_OTS - 1], // τ of instance 0 before η_1
        [withScalar(withScalar(tau, 10, N), 5, N + 9n), eta, 'tau', 5],
        [withScalar(tau, 0, N), withScalar(eta, 0, N), 'eta', 0],
      ];
      for (const [t, e, badField, badIndex] of cases) {
        finishBoth(t, e);
        assert.deepEqual(raw.voleBobFinish(new Uint8Array(3 * m * SCALAR_BYTES), x.choices, t, e, scalarPairsBytes(x.thetas)), { badField, badIndex });
      }
    });

    it('N−1 and 0 are accepted everywhere', () => {
      const t = withScalar(withScalar(tau, 0, N - 1n), 3 * m - 1, 0n);
      const e = withScalar(withScalar(eta, 0, 0n), count - 1, N - 1n);
      const nativePads = native.bobExpand(x.bobOutputs, x.choices, count).pads;
      const refPads = reference.bobExpand(x.bobOutputs, x.choices, count).pads;
      const a = native.bobFinish(nativePads, x.choices, t, e, x.thetas, ALICE);
      const b = reference.bobFinish(refPads, x.choices, t, e, x.thetas, ALICE);
      assert.equal(hex(a.checkValues), hex(b.checkValues));
      assert.deepEqual(a.shares, b.shares);
    });
  });

  describe('whole VOLE runs', () => {
    let sender: OtExtSenderSetup;
    let receiver: OtExtReceiverSetup;
    const original = voleBackend();
    before(() => {
      const rng = seededRng('native-vole/setup');
      const ctx = enc.encode('native-vole|setup');
      const start = otExtSetupSenderStart(ctx, rng);
      const response = otExtSetupReceiverRespond(ctx, start.message, ALICE, rng);
      sender = otExtSetupSenderFinish(ctx, start.state, response.message, BOB);
      receiver = response.setup;
    });
    afterEach(() => useVoleBackend(original));

    function session(bobKernel: VoleKernel, aliceKernel: VoleKernel, label: string, count: number) {
      const rng = seededRng(`native-vole/${label}`);
      const ctx = enc.encode(`native-vole|${label}`);
      const inputs = Array.from({ length: count }, () => [randomScalar(rng), randomScalar(rng)] as [bigint, bigint]);
      useVoleBackend(bobKernel);
      const bob = voleBobStart(receiver, ctx, count, rng);
      useVoleBackend(aliceKernel);
      const alice = voleAliceRespond(sender, ctx, inputs.map(([a, b]) => [scalarToBytes(a), scalarToBytes(b)] as const), bob.payload, BOB, rng);
      useVoleBackend(aliceKernel === native ? reference : native); // the state's own kernel finishes
      const d = voleBobFinish(bob.state, ctx, alice.payload, ALICE).map((p) => p.map(bytesToBigInt));
      const c = alice.shares.map((p) => p.map(bytesToBigInt));
      const chi = bob.state.chi.map(bytesToBigInt);
      for (let b = 0; b < count; b++) {
        for (const k of [0, 1] as const) assert.equal(mod(c[b]![k]! + d[b]![k]!), mod(chi[b]! * inputs[b]![k]));
      }
      const bytes = (p: Payload) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, hex(v)]));
      return { bob: bytes(bob.payload), alice: bytes(alice.payload), chi, c, d };
    }

    for (const count of [1, 4]) {
      it(`native and reference give the same messages and shares under the same seed (count ${count})`, () => {
        const a = session(native, native, `same-${count}`, count);
        const b = session(reference, reference, `same-${count}`, count);
        assert.deepEqual(a, b);
      });
    }

    it('a native Bob and a reference Alice (and the other way round) interoperate', () => {
      const a = session(native, reference, 'mixed', 2);
      const b = session(reference, native, 'mixed', 2);
      assert.deepEqual(a, b);
    });
  });

  describe('raw addon argument checks', () => {
    const m = VOLE_OTS;
    const call = (fn: unknown, ...args: unknown[]) => () => (fn as (...a: unknown[]) => unknown)(...args);

    it('throws TypeError on wrong types, lengths and counts', () => {
      const outputs = new Uint8Array(m * OUTPUT_BYTES);
      const choices = new Uint8Array(m / 8);
      assert.throws(call(raw.voleBobExpand, outputs, choices), TypeError);
      assert.throws(call(raw.voleBobExpand, outputs.subarray(1), choices, 1), TypeError);
      assert.throws(call(raw.voleBobExpand, outputs, choices.subarray(1), 1), TypeError);
      assert.throws(call(raw.voleBobExpand, outputs, choices, 2), TypeError);
      assert.throws(call(raw.voleBobExpand, outputs, choices, 0), TypeError);
      assert.throws(call(raw.voleBobExpand, outputs, choices, 1.5), TypeError);
      assert.throws(call(raw.voleBobExpand, Array.from(outputs), choices, 1), TypeError);
      assert.throws(call(raw.voleBobExpand, new Uint16Array(outputs.length / 2), choices, 1), TypeError);
      const alpha = new Uint8Array(3 * SCALAR_BYTES);
      assert.throws(call(raw.voleAliceCorrect, outputs, outputs, alpha.subarray(1)), TypeError);
      assert.throws(call(raw.voleAliceCorrect, outputs, outputs.subarray(0, 10), alpha), TypeError);
      assert.throws(call(raw.voleAliceCorrect, outputs, outputs, new Uint8Array(0)), TypeError);
      const own = new Uint8Array(3 * m * SCALAR_BYTES);
      const thetas = new Uint8Array(2 * SCALAR_BYTES);
      assert.throws(call(raw.voleAliceFinish, own, alpha, thetas.subarray(1)), TypeError);
      assert.throws(call(raw.voleAliceFinish, own.subarray(1), alpha, thetas), TypeError);
      assert.throws(call(raw.voleBobFinish, own, choices, own, new Uint8Array(32), thetas.subarray(2)), TypeError);
      assert.throws(call(raw.voleBobFinish, own, choices, own, new Uint8Array(31), thetas), TypeError);
      assert.throws(call(raw.voleBobFinish, own, choices, own, new Uint8Array(32)), TypeError);
      assert.throws(call(raw.voleInit, new Uint8Array(33)), TypeError);
      assert.throws(call(raw.voleInit, new Uint8Array(0)), TypeError);
      assert.throws(call(raw.voleInit, new Uint8Array(32).fill(0xff)), TypeError); // ≥ N: rejected before the gadget changes
    });

    it('throws TypeError when values it computes with are not below N (alpha, θ, own, pads)', () => {
      const outputs = new Uint8Array(m * OUTPUT_BYTES);
      const choices = new Uint8Array(m / 8);
      const badScalar = big(N, SCALAR_BYTES);
      const alpha = new Uint8Array(3 * SCALAR_BYTES);
      const badAlpha = alpha.slice();
      badAlpha.set(badScalar, 2 * SCALAR_BYTES);
      assert.throws(call(raw.voleAliceCorrect, outputs, outputs, badAlpha), TypeError);
      const own = new Uint8Array(3 * m * SCALAR_BYTES);
      const thetas = new Uint8Array(2 * SCALAR_BYTES);
      const badThetas = thetas.slice();
      badThetas.set(badScalar, SCALAR_BYTES);
      assert.throws(call(raw.voleAliceFinish, own, alpha, badThetas), TypeError);
      const badOwn = own.slice();
      badOwn.set(badScalar, own.length - SCALAR_BYTES);
      assert.throws(call(raw.voleAliceFinish, badOwn, alpha, thetas), TypeError);
      assert.throws(call(raw.voleBobFinish, badOwn, choices, own, new Uint8Array(32), thetas), TypeError);
      assert.throws(call(raw.voleBobFinish, own, choices, own, new Uint8Array(32), badThetas), TypeError);
      // The gadget is intact: a whole kernel run still matches the reference.
      const x = randomInputs(seededRng(`after-errors ${seed}`), 1);
      assert.deepEqual(runKernel(native, x), runKernel(reference, x));
    });

    it('does not modify its inputs', () => {
      const x = randomInputs(seededRng(`inputs ${seed}`), 2);
      const copies = [x.bobOutputs, x.outputs0, x.outputs1, x.choices].map((b) => b.slice());
      runKernel(native, x);
      assert.deepEqual([x.bobOutputs, x.outputs0, x.outputs1, x.choices], copies);
    });

    it('accepts Buffers and views at any byte offset', () => {
      const x = randomInputs(seededRng(`views ${seed}`), 1);
      const shifted = (b: Uint8Array) => {
        const host = new Uint8Array(b.length + 3);
        host.set(b, 3);
        return host.subarray(3);
      };
      const y: Inputs = { ...x, bobOutputs: Buffer.from(x.bobOutputs), outputs0: shifted(x.outputs0), outputs1: shifted(x.outputs1), choices: shifted(x.choices) };
      assert.deepEqual(runKernel(native, y), runKernel(reference, x));
    });
  });
});

function scalarPairsBytes(thetas: readonly (readonly [bigint, bigint])[]): Uint8Array {
  const out = new Uint8Array(thetas.length * 2 * SCALAR_BYTES);
  thetas.flat().forEach((t, i) => out.set(scalarToBytes(t), i * SCALAR_BYTES));
  return out;
}
