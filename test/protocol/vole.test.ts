/**
 * src/protocol/vole.ts: random VOLE over OT extension (DKLs19 Protocol 1 as DKLs23 uses it).
 * Alice = OT-extension sender with inputs a_b = (a_b0, a_b1); Bob = receiver with random χ_b.
 * Afterwards c_b + d_b = χ_b · a_b; any deviation by Alice fails Bob's check, a blame.
 */
import assert from 'node:assert/strict';
import { ProtocolAbort, type AbortReason } from '../../src/protocol/errors.js';
import { bytesToBigInt, mod, N, randomScalar, scalarToBytes, SCALAR_BYTES } from '../../src/protocol/math/scalar.js';
import type { Payload } from '../../src/protocol/message.js';
import {
  otExtMessageBytes,
  otExtSetupReceiverRespond,
  otExtSetupSenderFinish,
  otExtSetupSenderStart,
  type OtExtReceiverSetup,
  type OtExtSenderSetup,
} from '../../src/protocol/ot/extension.js';
import { seededRng, systemRng, type Rng } from '../../src/protocol/rng.js';
import { voleAliceRespond, voleBobFinish, voleBobStart, VOLE_OTS } from '../../src/protocol/vole.js';

const enc = new TextEncoder();

/** The VOLE takes and returns secrets as 32-byte buffers; these tests reason in bigints. */
const pairs = (inputs: readonly (readonly [bigint, bigint])[]) => inputs.map(([a, b]) => [scalarToBytes(mod(a)), scalarToBytes(mod(b))] as const);
const bigPairs = (shares: readonly (readonly [Uint8Array, Uint8Array])[]): [bigint, bigint][] => shares.map(([a, b]) => [bytesToBigInt(a), bytesToBigInt(b)]);
function respond(sender: OtExtSenderSetup, ctx: Uint8Array, inputs: readonly (readonly [bigint, bigint])[], payload: Payload, bob: number, rng: Rng): { payload: Payload; shares: [bigint, bigint][] } {
  const r = voleAliceRespond(sender, ctx, pairs(inputs), payload, bob, rng);
  return { payload: r.payload, shares: bigPairs(r.shares) };
}
const finishBob = (...args: Parameters<typeof voleBobFinish>): [bigint, bigint][] => bigPairs(voleBobFinish(...args));
const chiOf = (bob: ReturnType<typeof voleBobStart>): bigint[] => bob.state.chi.map(bytesToBigInt);

const ALICE = 2;
const BOB = 6;
const SETUP_CTX = enc.encode('key-5|dkg-session|alice-2|bob-6');
const CORRELATIONS = 3;

let sessionCounter = 0;
/** A fresh VOLE context per run (the OT-extension PRG streams depend on it: never reuse one). */
const freshContext = (): Uint8Array => enc.encode(`key-5|presign-session-${++sessionCounter}|alice-2|bob-6`);

function expectAbort(fn: () => unknown, reason: AbortReason, culprit: number, blame: boolean, ...mentions: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.culprit, culprit);
    assert.equal(e.isBlame, blame);
    for (const m of mentions) assert.ok(e.message.includes(m), `'${e.message}' should mention '${m}'`);
    return true;
  });
}

function setUp(rng: Rng): { sender: OtExtSenderSetup; receiver: OtExtReceiverSetup } {
  const start = otExtSetupSenderStart(SETUP_CTX, rng);
  const response = otExtSetupReceiverRespond(SETUP_CTX, start.message, ALICE, rng);
  const sender = otExtSetupSenderFinish(SETUP_CTX, start.state, response.message, BOB);
  return { sender, receiver: response.setup };
}

interface Run {
  ctx: Uint8Array;
  inputs: [bigint, bigint][];
  bob: ReturnType<typeof voleBobStart>;
  alice: ReturnType<typeof respond>;
}

function runToAlice(sender: OtExtSenderSetup, receiver: OtExtReceiverSetup, count: number, rng: Rng = systemRng): Run {
  const ctx = freshContext();
  const inputs = Array.from({ length: count }, () => [randomScalar(rng), randomScalar(rng)] as [bigint, bigint]);
  const bob = voleBobStart(receiver, ctx, count, rng);
  const alice = respond(sender, ctx, inputs, bob.payload, BOB, rng);
  return { ctx, inputs, bob, alice };
}

function withField(payload: Payload, name: string, edit: (b: Uint8Array) => Uint8Array | void): Payload {
  const copy = payload[name]!.slice();
  const replaced = edit(copy);
  return { ...payload, [name]: replaced ?? copy };
}

describe('vole', function () {
  this.timeout(20000);
  let sender: OtExtSenderSetup;
  let receiver: OtExtReceiverSetup;

  before(() => {
    ({ sender, receiver } = setUp(seededRng('vole/setup')));
  });

  for (const count of [1, 3]) {
    it(`count ${count}: c_b + d_b = χ_b·a_b for both components`, () => {
      const run = runToAlice(sender, receiver, count);
      const d = finishBob(run.bob.state, run.ctx, run.alice.payload, ALICE);
      assert.equal(run.alice.shares.length, count);
      assert.equal(d.length, count);
      assert.equal(run.bob.state.chi.length, count);
      for (let b = 0; b < count; b++) {
        const chi = chiOf(run.bob)[b]!;
        for (const k of [0, 1] as const) {
          const c = run.alice.shares[b]![k];
          assert.ok(c >= 0n && c < N && d[b]![k] >= 0n && d[b]![k] < N);
          assert.equal(mod(c + d[b]![k]), mod(chi * run.inputs[b]![k]), `instance ${b}, component ${k}`);
        }
      }
    });
  }

  it('message sizes follow the documented layout', () => {
    const count = 3;
    const run = runToAlice(sender, receiver, count);
    assert.equal(run.bob.payload.ote!.length, otExtMessageBytes(VOLE_OTS * count));
    assert.equal(run.alice.payload.tau!.length, VOLE_OTS * count * CORRELATIONS * SCALAR_BYTES);
    assert.equal(run.alice.payload.eta!.length, count * SCALAR_BYTES);
    assert.equal(run.alice.payload.check!.length, 32);
  });

  it("Bob's χ are nonzero and not all equal, and differ between sessions", () => {
    const a = chiOf(voleBobStart(receiver, freshContext(), 3, systemRng));
    const b = chiOf(voleBobStart(receiver, freshContext(), 3, systemRng));
    assert.equal(new Set([...a, ...b]).size, 6);
    for (const chi of [...a, ...b]) assert.ok(chi > 0n && chi < N);
  });

  it('is deterministic under seededRng (same set-up, same context)', () => {
    const ctx = enc.encode('key-5|deterministic|alice-2|bob-6');
    const go = () => {
      const rng = seededRng('vole/deterministic');
      const inputs: [bigint, bigint][] = [[5n, 7n]];
      const bob = voleBobStart(receiver, ctx, 1, rng);
      const alice = respond(sender, ctx, inputs, bob.payload, BOB, rng);
      return { chi: chiOf(bob)[0], c: alice.shares[0], d: finishBob(bob.state, ctx, alice.payload, ALICE)[0] };
    };
    assert.deepEqual(go(), go());
  });

  it('works with zero and N−1 inputs', () => {
    const ctx = freshContext();
    const inputs: [bigint, bigint][] = [[0n, N - 1n], [1n, 0n]];
    const bob = voleBobStart(receiver, ctx, 2, systemRng);
    const alice = respond(sender, ctx, inputs, bob.payload, BOB, systemRng);
    const d = finishBob(bob.state, ctx, alice.payload, ALICE);
    for (let b = 0; b < 2; b++) for (const k of [0, 1] as const) assert.equal(mod(alice.shares[b]![k] + d[b]![k]), mod(chiOf(bob)[b]! * inputs[b]![k]));
  });

  describe("tampering with Alice's message is caught by Bob and blames Alice", () => {
    let run: Run;
    before(() => {
      run = runToAlice(sender, receiver, 3);
    });
    const finish = (payload: Payload, ctx = run.ctx) => finishBob(run.bob.state, ctx, payload, ALICE);

    it('the untouched message passes', () => {
      assert.doesNotThrow(() => finish(run.alice.payload));
    });

    it('a flipped byte of tau → vole-check-failed (blame), wherever it is', () => {
      const total = run.alice.payload.tau!.length / SCALAR_BYTES;
      // First, last and a middle scalar of the first, a middle and the last OT; low byte so the value stays < N.
      for (const scalarIndex of [0, 1, 2, CORRELATIONS * 200 + 1, total - 1]) {
        const at = scalarIndex * SCALAR_BYTES + SCALAR_BYTES - 1;
        const bad = withField(run.alice.payload, 'tau', (b) => void (b[at]! ^= 0x01));
        expectAbort(() => finish(bad), 'vole-check-failed', ALICE, true, 'VOLE');
      }
    });

    it('a flipped byte of eta → vole-check-failed (blame), for every instance', () => {
      for (let b = 0; b < 3; b++) {
        const bad = withField(run.alice.payload, 'eta', (x) => void (x[b * SCALAR_BYTES + 31]! ^= 0x04));
        expectAbort(() => finish(bad), 'vole-check-failed', ALICE, true);
      }
    });

    it('a flipped byte of check → vole-check-failed (blame)', () => {
      for (const i of [0, 17, 31]) {
        const bad = withField(run.alice.payload, 'check', (x) => void (x[i]! ^= 0x80));
        expectAbort(() => finish(bad), 'vole-check-failed', ALICE, true);
      }
    });

    it('a tau scalar ≥ N → invalid-scalar naming tau (not a blame: a malformed message)', () => {
      for (const v of [N, N + 1n, (1n << 256n) - 1n]) {
        const bytes = new Uint8Array(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));
        const bad = withField(run.alice.payload, 'tau', (b) => b.set(bytes, 5 * SCALAR_BYTES));
        expectAbort(() => finish(bad), 'invalid-scalar', ALICE, false, 'tau');
      }
    });

    it('an eta scalar ≥ N → invalid-scalar naming eta', () => {
      const bad = withField(run.alice.payload, 'eta', (b) => b.set(new Uint8Array(SCALAR_BYTES).fill(0xff), 0));
      expectAbort(() => finish(bad), 'invalid-scalar', ALICE, false, 'eta');
    });

    it('wrong lengths of tau, eta, check → wrong-length naming the field', () => {
      for (const name of ['tau', 'eta', 'check']) {
        const original = run.alice.payload[name]!;
        for (const len of [0, original.length - 1, original.length + 1, original.length + SCALAR_BYTES]) {
          const b = new Uint8Array(len);
          b.set(original.subarray(0, Math.min(len, original.length)));
          expectAbort(() => finish({ ...run.alice.payload, [name]: b }), 'wrong-length', ALICE, false, `'${name}'`, `expected ${original.length} bytes`);
        }
      }
    });

    it('a missing field → malformed-message naming the field', () => {
      for (const name of ['tau', 'eta', 'check']) {
        const { [name]: _omitted, ...rest } = run.alice.payload;
        void _omitted;
        expectAbort(() => finish(rest), 'malformed-message', ALICE, false, `'${name}'`);
      }
    });

    it('a message of another VOLE instance (same pair, other session) fails the check', () => {
      const other = runToAlice(sender, receiver, 3);
      expectAbort(() => finish(other.alice.payload), 'vole-check-failed', ALICE, true);
    });

    it("a different context on Bob's side at the finish fails the check", () => {
      expectAbort(() => finish(run.alice.payload, freshContext()), 'vole-check-failed', ALICE, true);
    });
  });

  it("Alice and Bob on different contexts: Alice's OT-extension check blames Bob", () => {
    const bob = voleBobStart(receiver, freshContext(), 1, systemRng);
    expectAbort(() => respond(sender, freshContext(), [[1n, 2n]], bob.payload, BOB, systemRng), 'ot-check-failed', BOB, true);
  });

  it("Bob's message: missing or wrong length → malformed-message / wrong-length naming Bob", () => {
    const ctx = freshContext();
    const bob = voleBobStart(receiver, ctx, 1, systemRng);
    expectAbort(() => respond(sender, ctx, [[1n, 2n]], {}, BOB, systemRng), 'malformed-message', BOB, false, "'ote'");
    const short = bob.payload.ote!.subarray(0, bob.payload.ote!.length - 1);
    expectAbort(() => respond(sender, ctx, [[1n, 2n]], { ote: short }, BOB, systemRng), 'wrong-length', BOB, false);
    // A message for count 1 answered as if for count 3.
    expectAbort(() => respond(sender, ctx, [[1n, 2n], [3n, 4n], [5n, 6n]], bob.payload, BOB, systemRng), 'wrong-length', BOB, false);
  });

  describe("a corrupted OT-extension set-up on Alice's side", () => {
    /** Either Alice's own OT-extension check aborts (blaming Bob, whom she cannot tell apart from a fault of hers) or Bob's VOLE check fails. */
    function expectFailure(corrupt: OtExtSenderSetup): void {
      const ctx = freshContext();
      const bob = voleBobStart(receiver, ctx, 1, systemRng);
      let alice: ReturnType<typeof respond>;
      try {
        alice = respond(corrupt, ctx, [[randomScalar(systemRng), randomScalar(systemRng)]], bob.payload, BOB, systemRng);
      } catch (e) {
        assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
        assert.equal(e.reason, 'ot-check-failed');
        assert.equal(e.culprit, BOB);
        assert.equal(e.isBlame, true);
        return;
      }
      expectAbort(() => finishBob(bob.state, ctx, alice.payload, ALICE), 'vole-check-failed', ALICE, true);
    }

    for (const i of [0, 63, 127]) {
      it(`one seed changed (seed ${i}) makes the run fail`, () => {
        const seeds = sender.seeds.map((s) => s.slice());
        seeds[i]![0]! ^= 1;
        expectFailure({ delta: sender.delta, seeds });
      });
    }

    it('Δ changed in one bit makes the run fail', () => {
      const delta = sender.delta.slice();
      delta[3]! ^= 0x10;
      expectFailure({ delta, seeds: sender.seeds });
    });
  });
});
