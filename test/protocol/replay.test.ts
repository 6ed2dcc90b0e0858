/**
 * Attack 1 of the review, played in memory: a compromised coordinator replays a recorded
 * presign label to an honest signer H that restarted (and so forgot every label), while the
 * colluding peer M — Bob towards H — repeats its session byte for byte except that it flips all
 * its OT choice bits. Under a context made only of (key, epoch, label, alice, bob), H's two pads
 * swap between the sessions and the sum of H's two round-2 corrections for the key-share
 * correlation is 2·sk_H. With every party's fresh nonce in the context (session.ts) the pads of
 * the second session are unrelated to the first, and the same arithmetic yields nothing.
 *
 * The first test runs the extraction against the VOLE with one fixed context, to show that the
 * arithmetic recovers the secret when the context repeats; the second runs it against two real
 * presign sessions with the same label.
 */
import assert from 'node:assert/strict';
import { keyGenSession } from '../../src/protocol/dkg.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { runSessions } from '../../src/protocol/local-network.js';
import { mulBase, pointsEqual } from '../../src/protocol/math/curve.js';
import { bytesToBigInt, invert, mod, SCALAR_BYTES, scalarToBytes } from '../../src/protocol/math/scalar.js';
import { toHex, type ProtocolMessage } from '../../src/protocol/message.js';
import { Party } from '../../src/protocol/party.js';
import { seededRng, systemRng, type Rng } from '../../src/protocol/rng.js';
import { VOLE_OTS, voleAliceRespond, voleBobStart } from '../../src/protocol/vole.js';

const H = 1;
const M = 2;
const KEY = 'replay';
const CHOICE_BYTES = VOLE_OTS / 8; // one instance: ξ = 416 choice bits
const TWO_INV = invert(2n);

/** (τ + τ′)/2 for correlation k of OT `ot`: the secret input if the pads swapped. */
function extract(tau1: Uint8Array, tau2: Uint8Array, ot: number, k: number): bigint {
  const at = (ot * 3 + k) * SCALAR_BYTES;
  const a = bytesToBigInt(tau1.subarray(at, at + SCALAR_BYTES));
  const b = bytesToBigInt(tau2.subarray(at, at + SCALAR_BYTES));
  return mod((a + b) * TWO_INV);
}

/**
 * M's randomness: session 1 is recorded; session 2 replays it call by call, except that the
 * choice bits (the only draw of CHOICE_BYTES bytes) come back complemented.
 */
function colludingRng(): { rng: Rng; replay: () => void } {
  const recorded: Uint8Array[] = [];
  let replaying = false;
  let at = 0;
  const rng: Rng = (length) => {
    if (!replaying) {
      const bytes = systemRng(length);
      recorded.push(bytes.slice());
      return bytes;
    }
    const bytes = recorded[at++]!.slice();
    assert.equal(bytes.length, length, 'the colluder replays the same sequence of draws');
    return length === CHOICE_BYTES ? bytes.map((v) => v ^ 0xff) : bytes;
  };
  return { rng, replay: () => ((replaying = true), (at = 0)) };
}

let shares: Map<number, KeyShare>;

describe('replayed presign label after a restart (attack 1)', function () {
  this.timeout(60_000);

  before(() => {
    const sid = seededRng('replay/dkg')(32);
    const result = runSessions(new Map([H, M].map((i) => [i, keyGenSession({ keyId: KEY, sessionId: sid, self: i, parties: [H, M], threshold: 2 })])));
    assert.equal(result.aborts.size, 0);
    shares = result.outputs;
  });

  it('control: with a repeated VOLE context, flipped choice bits make (τ + τ′)/2 the secret input', () => {
    const context = seededRng('replay/fixed-context')(32);
    const secret = mod(bytesToBigInt(systemRng(32)));
    const inputs = [[scalarToBytes(mod(bytesToBigInt(systemRng(32)))), scalarToBytes(secret)] as const];
    const alice = shares.get(H)!.otSender.get(M)!;
    const bob = shares.get(M)!.otReceiver.get(H)!;
    const { rng, replay } = colludingRng();
    const first = voleBobStart(bob, context, 1, rng);
    const tau1 = voleAliceRespond(alice, context, inputs, first.payload, M, systemRng).payload.tau!;
    replay();
    const second = voleBobStart(bob, context, 1, rng);
    const tau2 = voleAliceRespond(alice, context, inputs, second.payload, M, systemRng).payload.tau!;
    for (const ot of [0, 1, 200, VOLE_OTS - 1]) assert.equal(extract(tau1, tau2, ot, 1), secret, `OT ${ot}`);
  });

  it('two presign sessions with the same label, the honest signer restarted in between: the extraction yields nothing', () => {
    const label = seededRng('replay/label')(32);
    const { rng, replay } = colludingRng();
    const colluder = new Party(M, rng);
    colluder.installShare(shares.get(M)!);

    const run = (honest: Party) => {
      const seen: ProtocolMessage[] = [];
      const sessions = new Map([
        [H, honest.startPresign(KEY, label, [H, M], 1)],
        [M, colluder.startPresign(KEY, label, [H, M], 1)],
      ]);
      const result = runSessions(sessions, (m) => (m.from === H && m.to === M && m.payload.tau ? (seen.push(m), m) : m));
      honest.complete(sessions.get(H)!);
      colluder.complete(sessions.get(M)!);
      assert.equal(seen.length, 1, "H's VOLE message (Alice towards M) was observed");
      return { result, message: seen[0]! };
    };

    const before = new Party(H);
    before.installShare(shares.get(H)!);
    const first = run(before);
    assert.equal(first.result.aborts.size, 0);

    // kill -9 and restart: a new Party with the same sealed share and no memory of labels.
    const restarted = new Party(H);
    restarted.installShare(shares.get(H)!);
    replay();
    const second = run(restarted);

    const tau1 = first.message.payload.tau!;
    const tau2 = second.message.payload.tau!;
    assert.notEqual(toHex(first.message.payload.context!), toHex(second.message.payload.context!), "H's fresh nonce changed the context");
    // What the extraction would have to match: H's key-share point of instance 0 in either session.
    const keyPoints = [first.message.payload.keyShares!, second.message.payload.keyShares!].map((p) => p.subarray(0, 33));
    for (const ot of [0, 1, 200, VOLE_OTS - 1]) {
      const candidate = extract(tau1, tau2, ot, 1);
      assert.notEqual(candidate, 0n);
      for (const point of keyPoints) assert.equal(pointsEqual(mulBase(candidate), point), false, `OT ${ot}: the extraction recovered H's key share`);
    }
    // Nor does the raw key share or its Lagrange-weighted form appear.
    const x = shares.get(H)!.secretShare;
    for (const ot of [0, 1]) {
      const candidate = extract(tau1, tau2, ot, 1);
      assert.notEqual(candidate, x);
      assert.notEqual(candidate, mod(2n * x));
      assert.notEqual(candidate, mod(-x));
    }
  });
});
