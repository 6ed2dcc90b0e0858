import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { ProtocolAbort, type AbortReason } from '../../../src/protocol/errors.js';
import { seededRng, systemRng, type Rng } from '../../../src/protocol/rng.js';
import { taggedHash } from '../../../src/protocol/transcript.js';
import { baseOtReceiverFinish, baseOtReceiverStart, baseOtSenderRespond } from '../../../src/protocol/ot/base-ot.js';
import { columnParities, transposeToRows } from '../../../src/protocol/ot/bits.js';
import {
  deserializeOtExtReceiverSetup,
  deserializeOtExtSenderSetup,
  otExtMessageBytes,
  otExtReceive as otExtReceiveBytes,
  otExtReceiverSetupFromBaseOt,
  otExtSend as otExtSendBytes,
  otExtSenderSetupFromBaseOt,
  otExtSetupReceiverRespond,
  otExtSetupSenderFinish,
  otExtSetupSenderStart,
  nodeCryptoRowHasher,
  paddedRows,
  useOtRowHasher,
  serializeOtExtReceiverSetup,
  serializeOtExtSenderSetup,
  type OtExtReceiverSetup,
  type OtExtSenderSetup,
} from '../../../src/protocol/ot/extension.js';

/** The m outputs of one contiguous buffer (as the extension returns them) as views. */
const outputViews = (data: Uint8Array, outputBytes: number): Uint8Array[] =>
  Array.from({ length: data.length / outputBytes }, (_, j) => data.subarray(j * outputBytes, (j + 1) * outputBytes));

function otExtReceive(...args: Parameters<typeof otExtReceiveBytes>) {
  const r = otExtReceiveBytes(...args);
  return { message: r.message, outputs: outputViews(r.outputs, args[4]) };
}
function otExtSend(...args: Parameters<typeof otExtSendBytes>) {
  const r = otExtSendBytes(...args);
  return { outputs0: outputViews(r.outputs0, args[3]), outputs1: outputViews(r.outputs1, args[3]) };
}

const enc = new TextEncoder();
const ALICE = 1; // extension sender
const BOB = 4; // extension receiver
const SETUP_CTX = enc.encode('key-9|setup|sender-1|receiver-4');
const OUT = 144;

const OT_KAT_DIGEST = 'c584bf8b8782fe343808a51bc1cbcbfb6866bd5b9ca389379b331bbfff8cc73a';
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bit = (bits: Uint8Array, j: number): number => (bits[j >>> 3]! >>> (j & 7)) & 1;
const sessionCtx = (n: number): Uint8Array => enc.encode(`key-9|session-${n}|sender-1|receiver-4`);

function expectAbort(fn: () => unknown, reason: AbortReason, culprit: number | undefined, blame: boolean): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
    assert.equal(e.reason, reason);
    assert.equal(e.culprit, culprit);
    assert.equal(e.isBlame, blame);
    return true;
  });
}


describe('GF(2^128) and bit-matrix helpers', () => {
  it('transposes 128 × m\' matrices', () => {
    const rng = seededRng('transpose');
    for (const rows of [128, 384, 1280]) {
      const w = rows / 32;
      const cols = new Uint32Array(new Uint8Array(rng(16 * rows)).buffer);
      const blocks = rows / 32 - 1;
      const out = new Uint32Array(blocks * 128);
      transposeToRows(cols, w, blocks, out);
      const colBytes = new Uint8Array(cols.buffer);
      const outBytes = new Uint8Array(out.buffer);
      for (let j = 0; j < blocks * 32; j++) {
        for (let i = 0; i < 128; i++) {
          assert.equal(bit(outBytes.subarray(16 * j), i), bit(colBytes.subarray(i * (rows / 8)), j), `row ${j} bit ${i}`);
        }
      }
    }
  });
});

// --- The extension. ---------------------------------------------------------------------------

/** Runs the 128 base OTs with reversed roles through the low-level helpers. */
function setupViaBaseOt(rng: Rng): { sender: OtExtSenderSetup; receiver: OtExtReceiverSetup } {
  const delta = rng(16);
  const start = baseOtReceiverStart(SETUP_CTX, delta, rng); // Alice: base-OT receiver, choices Δ
  const resp = baseOtSenderRespond(SETUP_CTX, start.message, ALICE, rng); // Bob: base-OT sender
  const keys = baseOtReceiverFinish(SETUP_CTX, start.state, resp.message, BOB);
  return { sender: otExtSenderSetupFromBaseOt(delta, keys), receiver: otExtReceiverSetupFromBaseOt(resp.keys0, resp.keys1) };
}

/** Independent re-implementation of the documented PRG, for the relation checks. */
function refPrg(seed: Uint8Array, ctx: Uint8Array, bytes: number): Uint8Array {
  const key = createHash('sha256').update(taggedHash('quorumkey/v1/ot-ext/prg', [['ctx', ctx]])).update(seed).digest();
  return new Uint8Array(createCipheriv('aes-256-ctr', key, new Uint8Array(16)).update(new Uint8Array(bytes)));
}

describe('OT extension (KOS15 / SoftSpokenOT k = 1)', function () {
  this.timeout(120_000);
  let sender: OtExtSenderSetup;
  let receiver: OtExtReceiverSetup;

  before(() => {
    ({ sender, receiver } = setupViaBaseOt(systemRng));
  });

  it('set-up: Alice holds k_{i,Δ_i} of Bob\'s pairs', () => {
    for (let i = 0; i < 128; i++) {
      const expected = bit(sender.delta, i) ? receiver.seeds1[i]! : receiver.seeds0[i]!;
      assert.equal(hex(sender.seeds[i]!), hex(expected));
    }
  });

  it('set-up through the protocol-level helpers', () => {
    const start = otExtSetupSenderStart(SETUP_CTX, systemRng);
    const resp = otExtSetupReceiverRespond(SETUP_CTX, start.message, ALICE, systemRng);
    const s = otExtSetupSenderFinish(SETUP_CTX, start.state, resp.message, BOB);
    assert.equal(s.delta.length, 16);
    assert.ok(s.delta.some((v) => v !== 0));
    const ctx = sessionCtx(1000);
    const choices = systemRng(52);
    const r = otExtReceive(resp.setup, ctx, choices, 416, 32, systemRng);
    const a = otExtSend(s, ctx, 416, 32, r.message, BOB);
    for (let j = 0; j < 416; j++) assert.equal(hex(r.outputs[j]!), hex((bit(choices, j) ? a.outputs1 : a.outputs0)[j]!));
  });

  for (const m of [1, 416, 1000]) {
    it(`m = ${m}: Bob's output is Alice's output for b_j and not the other one`, () => {
      const ctx = sessionCtx(m);
      const choices = systemRng(Math.ceil(m / 8));
      const r = otExtReceive(receiver, ctx, choices, m, OUT, systemRng);
      assert.equal(r.message.length, otExtMessageBytes(m));
      assert.equal(r.message.length, 16 * paddedRows(m) + 16 + 2048);
      assert.ok(paddedRows(m) >= m + 256 && paddedRows(m) % 128 === 0);
      const a = otExtSend(sender, ctx, m, OUT, r.message, BOB);
      assert.equal(r.outputs.length, m);
      assert.equal(a.outputs0.length, m);
      assert.equal(a.outputs1.length, m);
      for (let j = 0; j < m; j++) {
        const b = bit(choices, j);
        assert.equal(r.outputs[j]!.length, OUT);
        assert.equal(hex(r.outputs[j]!), hex((b ? a.outputs1 : a.outputs0)[j]!), `OT ${j}`);
        assert.notEqual(hex(r.outputs[j]!), hex((b ? a.outputs0 : a.outputs1)[j]!), `OT ${j}`);
      }
      // Outputs are views into one contiguous buffer.
      assert.equal(r.outputs[0]!.buffer.byteLength, m * OUT);
    });
  }

  it('sizes: m = 1 → 8,208 bytes, m = 416 → 14,352, m = 416·32 → 219,152 (u, x̃, and t̃ per column)', () => {
    assert.equal(otExtMessageBytes(1), 16 * 384 + 16 + 2048);
    assert.equal(otExtMessageBytes(416), 16 * 768 + 16 + 2048);
    assert.equal(otExtMessageBytes(416 * 32), 16 * 13568 + 16 + 2048);
  });

  it('known relations: u, x, t and the outputs match an independent bit-level recomputation', () => {
    const m = 300;
    const rows = paddedRows(m);
    const colBytes = rows / 8;
    const ctx = sessionCtx(77);
    const choices = systemRng(Math.ceil(m / 8));
    const r = otExtReceive(receiver, ctx, choices, m, OUT, systemRng);
    const u = r.message.subarray(0, 128 * colBytes);
    const t0 = receiver.seeds0.map((s) => refPrg(s, ctx, colBytes));
    const t1 = receiver.seeds1.map((s) => refPrg(s, ctx, colBytes));
    // b_j = u_i[j] ⊕ t0_i[j] ⊕ t1_i[j] must be the same for every column i, and equal the
    // choice bit for j < m.
    const b: number[] = [];
    for (let j = 0; j < rows; j++) {
      const bj = bit(u.subarray(0), j) ^ bit(t0[0]!, j) ^ bit(t1[0]!, j);
      for (let i = 1; i < 128; i++) assert.equal(bit(u.subarray(i * colBytes), j) ^ bit(t0[i]!, j) ^ bit(t1[i]!, j), bj, `row ${j} column ${i}`);
      if (j < m) assert.equal(bj, bit(choices, j));
      b.push(bj);
    }
    // The padding bits are not constant.
    assert.ok(b.slice(m).some((v) => v === 1) && b.slice(m).some((v) => v === 0));
    // x̃ and t̃_i bit by bit: bit c = XOR over rows j of (b_j or t^0_{i,j}) AND chi_c[j], where
    // chi_c is bytes [c·m'/8, (c+1)·m'/8) of the Fiat–Shamir stream.
    const chiKey = taggedHash('quorumkey/v1/ot-ext/chi', [['ctx', ctx], ['u', u]]);
    const chiStream = new Uint8Array(createCipheriv('aes-256-ctr', chiKey, new Uint8Array(16)).update(new Uint8Array(16 * rows)));
    const chiBit = (c: number, j: number) => bit(chiStream.subarray(c * colBytes), j);
    const checks = r.message.subarray(128 * colBytes);
    for (let c = 0; c < 128; c++) {
      let x = 0;
      for (let j = 0; j < rows; j++) x ^= b[j]! & chiBit(c, j);
      assert.equal(bit(checks, c), x, `x̃ bit ${c}`);
      for (const i of [0, 1, 77, 127]) {
        let t = 0;
        for (let j = 0; j < rows; j++) t ^= bit(t0[i]!, j) & chiBit(c, j);
        assert.equal(bit(checks.subarray(16 + 16 * i), c), t, `t̃_${i} bit ${c}`);
      }
    }
    const rowBit = (j: number, i: number) => bit(t0[i]!, j);
    // v_j = SHAKE256(taggedHash(out, ctx, outputBytes) ‖ u32be(j) ‖ t_j).
    const prefix = taggedHash('quorumkey/v1/ot-ext/out', [['ctx', ctx], ['outputBytes', OUT]]);
    for (const j of [0, 1, 31, 32, 150, m - 1]) {
      const input = new Uint8Array(20);
      new DataView(input.buffer).setUint32(0, j);
      for (let i = 0; i < 128; i++) input[4 + (i >> 3)]! |= rowBit(j, i) << (i & 7);
      const v = createHash('shake256', { outputLength: OUT }).update(prefix).update(input).digest();
      assert.equal(hex(r.outputs[j]!), hex(v), `output ${j}`);
    }
  });

  it('known-answer vector: a seeded set-up, context and choices give the pinned message', () => {
    const { receiver: r } = setupViaBaseOt(seededRng('ot-kat/setup'));
    const choices = seededRng('ot-kat/choices')(52);
    const { message } = otExtReceive(r, enc.encode('ot-kat/context'), choices, 416, OUT, seededRng('ot-kat/pad'));
    // Pinned when the corrected (per-column) check replaced the single (x, t) of KOS15: a change
    // here is a wire-format change and must be deliberate.
    assert.equal(createHash('sha256').update(message).digest('hex'), OT_KAT_DIGEST);
  });

  it('is deterministic under seededRng', () => {
    const ctx = sessionCtx(5);
    const choices = seededRng('c')(52);
    const a = otExtReceive(receiver, ctx, choices, 416, 48, seededRng('pad'));
    const b = otExtReceive(receiver, ctx, choices, 416, 48, seededRng('pad'));
    assert.equal(hex(a.message), hex(b.message));
    assert.deepEqual(a.outputs.map(hex), b.outputs.map(hex));
  });

  it('different contexts give unrelated outputs; a context mismatch fails the check', () => {
    const choices = seededRng('c')(52);
    const a = otExtReceive(receiver, sessionCtx(10), choices, 416, OUT, seededRng('pad'));
    const b = otExtReceive(receiver, sessionCtx(11), choices, 416, OUT, seededRng('pad'));
    const seen = new Set(a.outputs.map(hex));
    for (const v of b.outputs) assert.ok(!seen.has(hex(v)));
    // Alice's outputs in another session contain none of Bob's outputs from this one.
    const other = otExtSend(sender, sessionCtx(11), 416, OUT, b.message, BOB);
    const aliceSeen = new Set([...other.outputs0, ...other.outputs1].map(hex));
    for (const v of a.outputs) assert.ok(!aliceSeen.has(hex(v)));
    expectAbort(() => otExtSend(sender, sessionCtx(12), 416, OUT, a.message, BOB), 'ot-check-failed', BOB, true);
  });

  describe('tampering and malicious receivers', () => {
    const m = 416;
    const ctx = sessionCtx(99);
    const rows = paddedRows(m);
    let honest: Uint8Array;

    before(() => {
      honest = otExtReceive(receiver, ctx, systemRng(52), m, OUT, systemRng).message;
      otExtSend(sender, ctx, m, OUT, honest, BOB); // passes
    });

    const flip = (pos: number, mask = 1): Uint8Array => {
      const msg = honest.slice();
      msg[pos]! ^= mask;
      return msg;
    };

    // Any change to u changes every chi (Fiat–Shamir), so Bob's x and t no longer match: detected
    // whatever Δ is. (A malicious Bob who recomputes x and t for his altered u is the selective-
    // failure attack: see the seed tests below.)
    it('a flipped bit in u → ot-check-failed, blame Bob', () => {
      for (const pos of [0, 7, 16 * rows - 1, 5000]) expectAbort(() => otExtSend(sender, ctx, m, OUT, flip(pos, 0x10), BOB), 'ot-check-failed', BOB, true);
    });

    // x̃' = x̃ ⊕ e changes the right-hand side t̃_i ⊕ Δ_i·x̃' of every column with Δ_i = 1 (Δ ≠ 0).
    it('a flipped bit in x̃ → ot-check-failed', () => {
      for (const k of [0, 15]) expectAbort(() => otExtSend(sender, ctx, m, OUT, flip(16 * rows + k, 0x80), BOB), 'ot-check-failed', BOB, true);
    });

    it('a flipped bit in any t̃_i → ot-check-failed', () => {
      for (const k of [0, 9, 15, 16 * 64 + 3, 16 * 127 + 15]) expectAbort(() => otExtSend(sender, ctx, m, OUT, flip(16 * rows + 16 + k, 1), BOB), 'ot-check-failed', BOB, true);
    });

    /*
     * A receiver inconsistent in some columns S: u_i carries b ⊕ e_i instead of b for i ∈ S, and
     * Bob recomputes every check value for his altered u (new challenges), adjusting t̃_i by
     * g_i·ẽ_i for a guess g_i of Δ_i — the best he can do. Alice's q̃_i = t̃_i ⊕ Δ_i·(x̃ ⊕ ẽ_i),
     * so the corrected check passes exactly when every guess is right: caught with probability
     * 1 − 2^−|S|, and each verdict reveals the guessed bits — why a failure retires the pair.
     */
    function inconsistent(columns: ReadonlyMap<number, number>): Uint8Array {
      const colBytes = rows / 8;
      const w = rows / 32;
      const msg = honest.slice();
      const u = new Uint32Array(128 * w);
      new Uint8Array(u.buffer).set(msg.subarray(0, 128 * colBytes));
      const t0 = new Uint32Array(128 * w);
      receiver.seeds0.forEach((seed, i) => new Uint8Array(t0.buffer).set(refPrg(seed, ctx, colBytes), i * colBytes));
      const b = new Uint32Array(w);
      const t1col0 = new Uint32Array(new Uint8Array(refPrg(receiver.seeds1[0]!, ctx, colBytes)).buffer);
      for (let k = 0; k < w; k++) b[k] = u[k]! ^ t0[k]! ^ t1col0[k]!;
      const errors = new Map<number, Uint32Array>();
      for (const i of columns.keys()) {
        const e = new Uint32Array(new Uint8Array(systemRng(colBytes)).buffer);
        errors.set(i, e);
        for (let k = 0; k < w; k++) u[i * w + k]! ^= e[k]!;
      }
      const uBytes = new Uint8Array(u.buffer);
      msg.set(uBytes, 0);
      const chiKey = taggedHash('quorumkey/v1/ot-ext/chi', [['ctx', ctx], ['u', uBytes]]);
      const chi = new Uint32Array(new Uint8Array(createCipheriv('aes-256-ctr', chiKey, new Uint8Array(16)).update(new Uint8Array(16 * rows))).buffer);
      const x = columnParities(b, 1, w, chi);
      const t = columnParities(t0, 128, w, chi);
      for (const [i, guess] of columns) {
        const e = columnParities(errors.get(i)!, 1, w, chi);
        for (let k = 0; k < 4; k++) t[i * 4 + k]! ^= guess ? e[k]! : 0;
      }
      msg.set(new Uint8Array(x.buffer), 128 * colBytes);
      msg.set(new Uint8Array(t.buffer), 128 * colBytes + 16);
      return msg;
    }
    const passes = (msg: Uint8Array): boolean => {
      try {
        otExtSend(sender, ctx, m, OUT, msg, BOB);
        return true;
      } catch (e) {
        assert.ok(e instanceof ProtocolAbort && e.reason === 'ot-check-failed' && e.culprit === BOB && e.isBlame);
        return false;
      }
    };

    it('the corrected check: a receiver inconsistent in one column passes only by guessing that bit of Δ', () => {
      for (const i of [0, 5, 64, 127]) {
        const delta = bit(sender.delta, i);
        assert.equal(passes(inconsistent(new Map([[i, 1 - delta]]))), false, `column ${i}, wrong guess`);
        assert.equal(passes(inconsistent(new Map([[i, delta]]))), true, `column ${i}, right guess (the selective-failure leak)`);
      }
      // Without any adjustment (guess 0) it is caught exactly when Δ_i = 1.
      const one = indexWithDelta(1);
      assert.equal(passes(inconsistent(new Map([[one, 0]]))), false);
    });

    it('the corrected check: a receiver inconsistent in a random subset of columns is caught unless every guess is right', () => {
      const rng = systemRng;
      for (let trial = 0; trial < 6; trial++) {
        const picks = [...new Set(Array.from(rng(8 + trial), (v) => v & 127))];
        const wrongOne = picks[rng(1)[0]! % picks.length]!;
        const guesses = new Map(picks.map((i) => [i, i === wrongOne ? 1 - bit(sender.delta, i) : bit(sender.delta, i)]));
        assert.equal(passes(inconsistent(guesses)), false, `subset ${picks.join(',')}: one wrong guess (column ${wrongOne})`);
        assert.equal(passes(inconsistent(new Map(picks.map((i) => [i, bit(sender.delta, i)])))), true, `subset ${picks.join(',')}: all guesses right`);
      }
    });

    // A message of the wrong size is rejected before any secret is touched: it cannot leak Δ,
    // so it is a plain 'wrong-length' abort naming Bob, not an OT blame.
    it('a truncated or extended message → wrong-length, culprit Bob', () => {
      expectAbort(() => otExtSend(sender, ctx, m, OUT, honest.subarray(0, honest.length - 1), BOB), 'wrong-length', BOB, false);
      expectAbort(() => otExtSend(sender, ctx, m, OUT, honest.subarray(0, 16 * rows), BOB), 'wrong-length', BOB, false);
      const longer = new Uint8Array(honest.length + 16);
      longer.set(honest);
      expectAbort(() => otExtSend(sender, ctx, m, OUT, longer, BOB), 'wrong-length', BOB, false);
      // The message for another m does not fit either.
      expectAbort(() => otExtSend(sender, ctx, m + 128, OUT, honest, BOB), 'wrong-length', BOB, false);
    });

    it('an unaligned but correct message buffer is accepted', () => {
      const buf = new Uint8Array(honest.length + 3);
      buf.set(honest, 3);
      otExtSend(sender, ctx, m, OUT, buf.subarray(3), BOB);
    });

    /*
     * A Bob whose seed k_{i,β} is wrong (a malicious base-OT sender, or a corrupted set-up).
     * Alice only ever holds k_{i,Δ_i}; what the check can see:
     *  - β = Δ_i (Alice holds that seed): Bob's column t^0_i (β = 0) or his u_i (β = 1) is
     *    inconsistent with Alice's q_i by a pseudorandom vector d, so Σ chi_j q_j is off by
     *    x^i · Σ_j chi_j d_j ≠ 0 w.h.p. → detected, blame.
     *  - β = 1 − Δ_i (Alice does not hold it): Alice's q_i = PRG(k_{i,Δ_i}) ⊕ Δ_i u_i is exactly
     *    the column of a consistent execution in which Bob's own seed was the wrong one, so the
     *    check passes and the outputs still satisfy the OT relation — undetectable and harmless
     *    by design (it is equivalent to Bob having picked other base-OT keys).
     * So whether a corrupted seed is caught reveals Δ_i to Bob: this is KOS's selective-failure
     * leakage. It costs Bob an abort with probability 1/2 per guessed bit, and every abort is a
     * blame after which the pair never runs again (DESIGN §3), which is what the analysis
     * assumes. Likewise, flipping t^0_i and t^1_i by the same vector leaves u_i unchanged and only
     * garbles Bob's own outputs if he then reports honest x, t (undetectable, harmless), or is
     * caught like the first case if his x, t follow his altered rows. We test exactly this.
     */
    function corrupt(setup: OtExtReceiverSetup, i: number, which: 0 | 1): OtExtReceiverSetup {
      const seeds0 = setup.seeds0.map((s) => s.slice());
      const seeds1 = setup.seeds1.map((s) => s.slice());
      (which === 0 ? seeds0 : seeds1)[i]![0]! ^= 1;
      return { seeds0, seeds1 };
    }
    const indexWithDelta = (v: number): number => {
      for (let i = 0; i < 128; i++) if (bit(sender.delta, i) === v) return i;
      throw new Error('degenerate delta');
    };

    it('a corrupted seed that Alice holds (k_{i,Δ_i}) is detected → ot-check-failed, blame', () => {
      for (const v of [0, 1] as const) {
        const i = indexWithDelta(v);
        const bad = otExtReceive(corrupt(receiver, i, v), ctx, systemRng(52), m, OUT, systemRng);
        expectAbort(() => otExtSend(sender, ctx, m, OUT, bad.message, BOB), 'ot-check-failed', BOB, true);
      }
    });

    it('a corrupted seed that Alice does not hold (k_{i,1−Δ_i}) passes and the OTs stay correct', () => {
      for (const v of [0, 1] as const) {
        const i = indexWithDelta(v);
        const choices = systemRng(52);
        const r = otExtReceive(corrupt(receiver, i, v === 0 ? 1 : 0), ctx, choices, m, OUT, systemRng);
        const a = otExtSend(sender, ctx, m, OUT, r.message, BOB);
        for (let j = 0; j < m; j++) assert.equal(hex(r.outputs[j]!), hex((bit(choices, j) ? a.outputs1 : a.outputs0)[j]!));
      }
    });
  });

  it('set-ups survive a serialisation round trip', () => {
    const sBytes = serializeOtExtSenderSetup(sender);
    const rBytes = serializeOtExtReceiverSetup(receiver);
    assert.equal(sBytes.length, 4114);
    assert.equal(rBytes.length, 8194);
    const s2 = deserializeOtExtSenderSetup(sBytes);
    const r2 = deserializeOtExtReceiverSetup(rBytes);
    assert.equal(hex(s2.delta), hex(sender.delta));
    assert.deepEqual(s2.seeds.map(hex), sender.seeds.map(hex));
    assert.deepEqual(r2.seeds0.map(hex), receiver.seeds0.map(hex));
    assert.deepEqual(r2.seeds1.map(hex), receiver.seeds1.map(hex));
    const ctx = sessionCtx(123);
    const choices = systemRng(13);
    const r = otExtReceive(r2, ctx, choices, 100, 32, systemRng);
    const a = otExtSend(s2, ctx, 100, 32, r.message, BOB);
    for (let j = 0; j < 100; j++) assert.equal(hex(r.outputs[j]!), hex((bit(choices, j) ? a.outputs1 : a.outputs0)[j]!));

    expectAbort(() => deserializeOtExtSenderSetup(sBytes.subarray(1)), 'wrong-length', undefined, false);
    expectAbort(() => deserializeOtExtSenderSetup(rBytes), 'wrong-length', undefined, false);
    expectAbort(() => deserializeOtExtReceiverSetup(Uint8Array.of(9, ...rBytes.subarray(1))), 'malformed-message', undefined, false);
    const zeroDelta = sBytes.slice();
    zeroDelta.fill(0, 2, 18);
    expectAbort(() => deserializeOtExtSenderSetup(zeroDelta), 'bad-parameters', undefined, false);
  });

  it('rejects bad local parameters without naming a culprit', () => {
    const ctx = sessionCtx(1);
    expectAbort(() => otExtReceive(receiver, ctx, new Uint8Array(3), 416, OUT, systemRng), 'bad-parameters', undefined, false);
    expectAbort(() => otExtReceive(receiver, ctx, new Uint8Array(0), 0, OUT, systemRng), 'bad-parameters', undefined, false);
    expectAbort(() => otExtReceive(receiver, ctx, new Uint8Array(1), 1, 0, systemRng), 'bad-parameters', undefined, false);
    expectAbort(() => otExtSend(sender, ctx, 1.5, OUT, new Uint8Array(0), BOB), 'bad-parameters', undefined, false);
  });

  it('a replacement row hasher is used for both parties, and can be removed again', () => {
    const ctx = sessionCtx(31);
    const choices = seededRng('h')(13);
    const reference = otExtReceive(receiver, ctx, choices, 100, 40, seededRng('pad'));
    let calls = 0;
    try {
      useOtRowHasher((prefix, rows, m, outputBytes, mask) => {
        calls++;
        return nodeCryptoRowHasher(prefix, rows, m, outputBytes, mask);
      });
      const r = otExtReceive(receiver, ctx, choices, 100, 40, seededRng('pad'));
      const a = otExtSend(sender, ctx, 100, 40, r.message, BOB);
      assert.equal(calls, 3);
      assert.deepEqual(r.outputs.map(hex), reference.outputs.map(hex));
      for (let j = 0; j < 100; j++) assert.equal(hex(r.outputs[j]!), hex((bit(choices, j) ? a.outputs1 : a.outputs0)[j]!));
      useOtRowHasher(() => new Uint8Array(1));
      assert.throws(() => otExtReceive(receiver, ctx, choices, 100, 40, systemRng), /wrong number of bytes/);
    } finally {
      useOtRowHasher(undefined);
    }
    otExtReceive(receiver, ctx, choices, 100, 40, systemRng);
    assert.equal(calls, 3);
  });

  it('ignores choice bits beyond m in the last byte', () => {
    const ctx = sessionCtx(3);
    const a = otExtReceive(receiver, ctx, Uint8Array.of(0b0000_0101), 3, 32, seededRng('x'));
    const b = otExtReceive(receiver, ctx, Uint8Array.of(0b1111_1101), 3, 32, seededRng('x'));
    assert.equal(hex(a.message), hex(b.message));
  });
});
