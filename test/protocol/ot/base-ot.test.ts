import assert from 'node:assert/strict';
import { ProtocolAbort, type AbortReason } from '../../../src/protocol/errors.js';
import { seededRng, systemRng } from '../../../src/protocol/rng.js';
import { nobleBackend, POINT_BYTES } from '../../../src/protocol/math/curve.js';
import {
  BASE_OT_COUNT,
  BASE_OT_RECEIVER_MESSAGE_BYTES,
  BASE_OT_SENDER_MESSAGE_BYTES,
  baseOtReceiverFinish,
  baseOtReceiverStart,
  baseOtSenderRespond,
} from '../../../src/protocol/ot/base-ot.js';

const enc = new TextEncoder();
const CTX = enc.encode('key-1|session-7|sender-2|receiver-3');
const SENDER = 2;
const RECEIVER = 3;

function bit(bits: Uint8Array, i: number): number {
  return (bits[i >>> 3]! >>> (i & 7)) & 1;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function expectAbort(fn: () => unknown, reason: AbortReason, culprit: number | undefined): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
    assert.equal(e.reason, reason);
    assert.equal(e.culprit, culprit);
    return true;
  });
}

/** A compressed encoding 02 ‖ x of an x with no point on P-256 (x³ − 3x + b a non-residue). */
function offCurvePoint(): Uint8Array {
  for (let x = 1; ; x++) {
    const p = new Uint8Array(POINT_BYTES);
    p[0] = 2;
    new DataView(p.buffer).setUint32(29, x);
    if (!nobleBackend.isValid(p)) return p;
  }
}

function run(choices: Uint8Array, rngR = systemRng, rngS = systemRng) {
  const start = baseOtReceiverStart(CTX, choices, rngR);
  const sender = baseOtSenderRespond(CTX, start.message, RECEIVER, rngS);
  const keys = baseOtReceiverFinish(CTX, start.state, sender.message, SENDER);
  return { start, sender, keys };
}

describe('base OT (endemic OT, P-256)', function () {
  this.timeout(120_000);

  it('receiver key equals the sender key of its choice bit and differs from the other', () => {
    const choices = systemRng(16);
    const { start, sender, keys } = run(choices);
    assert.equal(start.message.length, BASE_OT_RECEIVER_MESSAGE_BYTES);
    assert.equal(BASE_OT_RECEIVER_MESSAGE_BYTES, 128 * 66);
    assert.equal(sender.message.length, BASE_OT_SENDER_MESSAGE_BYTES);
    assert.equal(BASE_OT_SENDER_MESSAGE_BYTES, 128 * 33);
    assert.equal(keys.length, BASE_OT_COUNT);
    for (let i = 0; i < BASE_OT_COUNT; i++) {
      const c = bit(choices, i);
      const mine = c ? sender.keys1[i]! : sender.keys0[i]!;
      const other = c ? sender.keys0[i]! : sender.keys1[i]!;
      assert.equal(keys[i]!.length, 32);
      assert.equal(hex(keys[i]!), hex(mine), `instance ${i}`);
      assert.notEqual(hex(keys[i]!), hex(other), `instance ${i}`);
    }
    // All 256 sender keys are distinct.
    assert.equal(new Set([...sender.keys0, ...sender.keys1].map(hex)).size, 256);
  });

  it('works for all-zero and all-one choices', () => {
    for (const fill of [0x00, 0xff]) {
      const choices = new Uint8Array(16).fill(fill);
      const { sender, keys } = run(choices);
      const expected = fill ? sender.keys1 : sender.keys0;
      keys.forEach((k, i) => assert.equal(hex(k), hex(expected[i]!)));
    }
  });

  it('is deterministic under seededRng and bound to the context', () => {
    const choices = seededRng('choices')(16);
    const a = run(choices, seededRng('r'), seededRng('s'));
    const b = run(choices, seededRng('r'), seededRng('s'));
    assert.equal(hex(a.start.message), hex(b.start.message));
    assert.equal(hex(a.sender.message), hex(b.sender.message));
    assert.deepEqual(a.keys.map(hex), b.keys.map(hex));
    assert.deepEqual(a.sender.keys0.map(hex), b.sender.keys0.map(hex));
    const c = run(seededRng('choices')(16), seededRng('r2'), seededRng('s'));
    assert.notEqual(hex(c.keys[0]!), hex(a.keys[0]!));
    // Same randomness, other context: the sender's keys do not match the receiver's any more.
    const start = baseOtReceiverStart(CTX, choices, seededRng('r'));
    const other = baseOtSenderRespond(enc.encode('another session'), start.message, RECEIVER, seededRng('s'));
    const keys = baseOtReceiverFinish(CTX, start.state, other.message, SENDER);
    for (let i = 0; i < BASE_OT_COUNT; i++) {
      assert.notEqual(hex(keys[i]!), hex(other.keys0[i]!));
      assert.notEqual(hex(keys[i]!), hex(other.keys1[i]!));
    }
  });

  it('rejects wrong message lengths (culprit = peer)', () => {
    const start = baseOtReceiverStart(CTX, new Uint8Array(16), systemRng);
    expectAbort(() => baseOtSenderRespond(CTX, start.message.subarray(1), RECEIVER, systemRng), 'wrong-length', RECEIVER);
    const longer = new Uint8Array(start.message.length + 33);
    longer.set(start.message);
    expectAbort(() => baseOtSenderRespond(CTX, longer, RECEIVER, systemRng), 'wrong-length', RECEIVER);
    const sender = baseOtSenderRespond(CTX, start.message, RECEIVER, systemRng);
    expectAbort(() => baseOtReceiverFinish(CTX, start.state, sender.message.subarray(0, 33 * 127), SENDER), 'wrong-length', SENDER);
    expectAbort(() => baseOtReceiverFinish(CTX, start.state, new Uint8Array(0), SENDER), 'wrong-length', SENDER);
  });

  it('rejects off-curve, identity and badly encoded points (culprit = peer)', () => {
    const start = baseOtReceiverStart(CTX, new Uint8Array(16), systemRng);
    const bad = offCurvePoint();
    for (const [k, point] of [
      [0, bad],
      [255, bad],
      [17, new Uint8Array(POINT_BYTES)], // identity
      [40, Uint8Array.of(4, ...start.message.subarray(1, 33))], // wrong prefix
    ] as const) {
      const msg = start.message.slice();
      msg.set(point, k * POINT_BYTES);
      expectAbort(() => baseOtSenderRespond(CTX, msg, RECEIVER, systemRng), 'invalid-point', RECEIVER);
    }
    const sender = baseOtSenderRespond(CTX, start.message, RECEIVER, systemRng);
    for (const [i, point] of [
      [5, bad],
      [127, new Uint8Array(POINT_BYTES)],
    ] as const) {
      const msg = sender.message.slice();
      msg.set(point, i * POINT_BYTES);
      expectAbort(() => baseOtReceiverFinish(CTX, start.state, msg, SENDER), 'invalid-point', SENDER);
    }
  });

  it('rejects a wrong number of choice bits (local error, no culprit)', () => {
    expectAbort(() => baseOtReceiverStart(CTX, new Uint8Array(15), systemRng), 'bad-parameters', undefined);
  });
});
