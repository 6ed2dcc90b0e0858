/**
 * src/protocol/session.ts: the round driver's envelope checks, exercised through a real protocol,
 * PresignSession (cheap to start, so every case gets fresh sessions), and the parameter checks
 * of keyGenSession (KeyDealingSession) and PresignSession.
 */
import assert from 'node:assert/strict';
import { keyGenSession } from '../../src/protocol/dkg.js';
import { ProtocolAbort, type AbortReason } from '../../src/protocol/errors.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { runSessions } from '../../src/protocol/local-network.js';
import type { ProtocolMessage } from '../../src/protocol/message.js';
import { PresignSession } from '../../src/protocol/presign.js';
import { seededRng } from '../../src/protocol/rng.js';
import { mulBase } from '../../src/protocol/math/curve.js';
import { otExtReceiverSetupFromBaseOt, otExtSenderSetupFromBaseOt, KAPPA, type OtExtReceiverSetup, type OtExtSenderSetup } from '../../src/protocol/ot/extension.js';
import { evaluate, randomPolynomial } from '../../src/protocol/polynomial.js';

const KEY = 'key-session-test';
const PARTIES = [1, 2, 3];
let sidCounter = 0;
const ids = seededRng('session/ids');
const newSid = (): Uint8Array => {
  sidCounter++;
  return ids(32);
};

function dkg(self: number, sid: Uint8Array, parties: readonly number[] = PARTIES, threshold = 2) {
  return keyGenSession({ keyId: KEY, sessionId: sid, self, parties, threshold, rng: seededRng(`session/party-${self}/${sidCounter}`) });
}

function catchAbort(fn: () => unknown): ProtocolAbort {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ProtocolAbort');
}

function expectAbort(fn: () => unknown, reason: AbortReason, culprit: number | undefined, ...mentions: string[]): ProtocolAbort {
  const e = catchAbort(fn);
  assert.equal(e.reason, reason, e.message);
  assert.equal(e.culprit, culprit, e.message);
  for (const m of mentions) assert.ok(e.message.includes(m), `'${e.message}' should mention '${m}'`);
  return e;
}

/**
 * 3-of-3 shares of a trusted dealer: Shamir shares with consistent public shares, symmetric
 * zero-sharing seeds and consistent OT-extension set-ups (Bob's k_{i,Δ_i} = Alice's s_i) built
 * straight from random keys. The driver is what is under test here; a DKG run would cost
 * 128 base OTs per ordered pair (seconds on the TypeScript curve backend) for nothing more.
 */
const shares = new Map<number, KeyShare>();
function presign(self: number, sid: Uint8Array, subset: readonly number[] = PARTIES, count = 1): PresignSession {
  return new PresignSession({ share: shares.get(self)!, sessionId: sid, subset, count, rng: seededRng(`session/presign-${self}/${sidCounter}`) });
}

function ensureShares(): void {
  if (shares.size) return;
  const rng = seededRng('session/dealer');
  const f = randomPolynomial(PARTIES.length - 1, rng);
  const publicShares = new Map(PARTIES.map((j) => [j, mulBase(evaluate(f, j))]));
  const zeroSeeds = new Map(PARTIES.map((i) => [i, new Map<number, Uint8Array>()]));
  const otSender = new Map(PARTIES.map((i) => [i, new Map<number, OtExtSenderSetup>()]));
  const otReceiver = new Map(PARTIES.map((i) => [i, new Map<number, OtExtReceiverSetup>()]));
  for (const a of PARTIES) {
    for (const b of PARTIES) {
      if (a === b) continue;
      if (a < b) {
        const seed = rng(32);
        zeroSeeds.get(a)!.set(b, seed);
        zeroSeeds.get(b)!.set(a, seed);
      }
      // a is the OT-extension sender (Alice) towards b.
      const delta = rng(KAPPA / 8);
      const keys0 = Array.from({ length: KAPPA }, () => rng(32));
      const keys1 = Array.from({ length: KAPPA }, () => rng(32));
      const chosen = keys0.map((k0, i) => ((delta[i >> 3]! >> (i & 7)) & 1 ? keys1[i]! : k0));
      otSender.get(a)!.set(b, otExtSenderSetupFromBaseOt(delta, chosen));
      otReceiver.get(b)!.set(a, otExtReceiverSetupFromBaseOt(keys0, keys1));
    }
  }
  for (const i of PARTIES) {
    shares.set(i, {
      keyId: KEY,
      epoch: 0,
      threshold: PARTIES.length,
      parties: PARTIES,
      self: i,
      secretShare: evaluate(f, i),
      publicKey: mulBase(f[0]!),
      publicShares,
      zeroSeeds: zeroSeeds.get(i)!,
      otSender: otSender.get(i)!,
      otReceiver: otReceiver.get(i)!,
      retiredPeers: new Set(),
      policy: new Uint8Array(0),
    });
  }
}

/** Three presign sessions, started; the round-1 messages by (from, to). */
function started() {
  const sid = newSid();
  const sessions = new Map(PARTIES.map((i) => [i, presign(i, sid)]));
  const messages = new Map<string, ProtocolMessage>();
  for (const [, s] of sessions) for (const m of s.start()) messages.set(`${m.from}->${m.to}`, m);
  const msg = (from: number, to: number): ProtocolMessage => messages.get(`${from}->${to}`)!;
  /** Another started session of party 1 in the same session, for the peers' same messages. */
  const another = (): PresignSession => {
    const s = presign(1, sid);
    s.start();
    return s;
  };
  return { sid, sessions, msg, s1: sessions.get(1)!, another };
}

describe('session driver: envelope checks', function () {
  this.timeout(20000);
  before(ensureShares);

  it('start emits one round-1 message per peer, correctly addressed', () => {
    const { sid, s1, msg } = started();
    assert.equal(s1.currentRound, 1);
    assert.deepEqual(s1.peers, [2, 3]);
    for (const to of [2, 3]) {
      const m = msg(1, to);
      assert.equal(m.protocol, 'presign');
      assert.equal(m.keyId, KEY);
      assert.deepEqual(m.sessionId, sid);
      assert.equal(m.round, 1);
      assert.equal(m.from, 1);
      assert.equal(m.to, to);
    }
    assert.equal(s1.ready, false);
  });

  it('receive before start → wrong-round naming the sender', () => {
    const { sid, msg } = started();
    const fresh = presign(1, sid);
    expectAbort(() => fresh.receive(msg(2, 1), 2), 'wrong-round', 2, 'round 1', 'round 0');
  });

  it('a message in the wrong round → wrong-round naming the sender', () => {
    const { s1, msg, another } = started();
    for (const round of [0, 2, 3, 4, -1]) {
      expectAbort(() => another().receive({ ...msg(2, 1), round }, 2), 'wrong-round', 2, `round ${round}`, 'round 1');
    }
    // A round-1 message after the session moved on to round 2 is also out of round.
    s1.receive(msg(2, 1), 2);
    s1.receive(msg(3, 1), 3);
    s1.advance();
    assert.equal(s1.currentRound, 2);
    expectAbort(() => s1.receive(msg(2, 1), 2), 'wrong-round', 2, 'round 1', 'round 2');
  });

  it('a duplicate message → duplicate-message naming the sender', () => {
    const { s1, msg } = started();
    s1.receive(msg(2, 1), 2);
    expectAbort(() => s1.receive(msg(2, 1), 2), 'duplicate-message', 2, 'round 1');
  });

  it('a second, different message from the same sender in a round is a duplicate too', () => {
    const { s1, msg } = started();
    s1.receive(msg(2, 1), 2);
    expectAbort(() => s1.receive({ ...msg(2, 1), payload: { other: new Uint8Array(1) } }, 2), 'duplicate-message', 2);
  });

  it('an unknown peer → wrong-sender without a culprit among the parties', () => {
    const { msg, another } = started();
    for (const stranger of [4, 0, 17, 255]) {
      expectAbort(() => another().receive({ ...msg(2, 1), from: stranger }, stranger), 'wrong-sender', undefined, `party ${stranger}`, 'not a peer');
    }
  });

  it('a message from self → wrong-sender', () => {
    const { s1, msg } = started();
    expectAbort(() => s1.receive({ ...msg(2, 1), from: 1 }, 1), 'wrong-sender', undefined, 'party 1');
  });

  it('sender mismatch (header names another party than the channel) → wrong-sender blaming the channel', () => {
    const { s1, msg } = started();
    expectAbort(() => s1.receive(msg(3, 1), 2), 'wrong-sender', 2, 'party 3');
  });

  it('wrong key id, session id, receiver, protocol and payload → their named reasons', () => {
    const cases: [(m: ProtocolMessage) => ProtocolMessage, AbortReason, string][] = [
      [(m) => ({ ...m, keyId: 'another-key' }), 'wrong-key-id', 'another-key'],
      [(m) => ({ ...m, sessionId: newSid() }), 'wrong-session-id', 'another session'],
      [(m) => ({ ...m, sessionId: 'not bytes' as unknown as Uint8Array }), 'wrong-session-id', 'another session'],
      [(m) => ({ ...m, to: 3 }), 'wrong-receiver', 'party 3'],
      [(m) => ({ ...m, protocol: 'sign' }), 'malformed-message', "'sign'"],
      [(m) => ({ ...m, protocol: 'dkg' }), 'malformed-message', "'dkg'"],
      [(m) => ({ ...m, payload: null as unknown as ProtocolMessage['payload'] }), 'malformed-message', 'payload'],
    ];
    const { msg, another } = started();
    for (const [edit, reason, mention] of cases) {
      expectAbort(() => another().receive(edit(msg(2, 1)), 2), reason, 2, mention);
    }
  });

  it('a message bound to another context: the sender is the culprit when it is the only peer; with several, nobody and every peer a suspect', () => {
    // Party 2 sends party 1 another nonce than it uses itself (and sends party 3).
    const otherNonceTo1 = (m: ProtocolMessage) => (m.round === 1 && m.from === 2 && m.to === 1 ? { ...m, payload: { nonce: new Uint8Array(32).fill(7) } } : m);
    // Three parties: 1 and 3 now hold different contexts, and each sees the difference first in
    // a message of whichever peer it reads first — which may be the honest one.
    const sid = newSid();
    const three = runSessions(new Map(PARTIES.map((i) => [i, presign(i, sid)])), otherNonceTo1);
    for (const i of [1, 3]) {
      const e = three.aborts.get(i)!;
      assert.equal(e?.reason, 'context-mismatch', `party ${i}`);
      assert.equal(e.culprit, undefined, e.message);
      assert.deepEqual(e.suspects, PARTIES.filter((j) => j !== i), e.message);
    }
    // Two parties: the only peer is the one that disagrees.
    const sid2 = newSid();
    const two = runSessions(new Map([1, 2].map((i) => [i, dkg(i, sid2, [1, 2], 2)])), otherNonceTo1);
    assert.equal(two.aborts.get(1)?.reason, 'context-mismatch');
    assert.equal(two.aborts.get(1)!.culprit, 2);
  });

  it('advance() with a missing message → missing-message naming the missing peer', () => {
    const { msg, another } = started();
    const a = another();
    a.receive(msg(2, 1), 2);
    assert.equal(a.ready, false);
    expectAbort(() => a.advance(), 'missing-message', 3, 'round-1');

    const b = another();
    b.receive(msg(3, 1), 3);
    expectAbort(() => b.advance(), 'missing-message', 2);

    expectAbort(() => another().advance(), 'missing-message', 2, 'no round-1 message');

    // In round 2 as well: both round-1 messages arrive, then only one round-2 message.
    const c = another();
    c.receive(msg(2, 1), 2);
    c.receive(msg(3, 1), 3);
    assert.equal(c.ready, true);
    c.advance();
    expectAbort(() => c.advance(), 'missing-message', 2, 'no round-2 message');
  });

  it('after an abort every further call rethrows the same abort', () => {
    const { s1, msg } = started();
    const failure = expectAbort(() => s1.receive(msg(3, 1), 2), 'wrong-sender', 2);
    assert.equal(s1.aborted, failure);
    assert.equal(s1.ready, false);
    for (let k = 0; k < 3; k++) {
      assert.throws(() => s1.receive(msg(2, 1), 2), (e: unknown) => e === failure);
      assert.throws(() => s1.receive(msg(3, 1), 3), (e: unknown) => e === failure);
      assert.throws(() => s1.advance(), (e: unknown) => e === failure);
    }
    assert.throws(() => s1.output, /no output/);
    assert.equal(s1.done, false);
  });

  it('an abort before start makes start() rethrow it', () => {
    const { sid, msg } = started();
    const fresh = presign(1, sid);
    const failure = catchAbort(() => fresh.receive(msg(2, 1), 2));
    assert.throws(() => fresh.start(), (e: unknown) => e === failure);
  });

  it('fail() from outside stops the session; the first failure wins', () => {
    const { s1, msg } = started();
    const first = new ProtocolAbort('peer-blamed', 'party 3 was blamed in another session', 3);
    s1.fail(first);
    s1.fail(new ProtocolAbort('peer-blamed', 'later', 2));
    assert.equal(s1.aborted, first);
    assert.throws(() => s1.receive(msg(2, 1), 2), (e: unknown) => e === first);
    assert.throws(() => s1.advance(), (e: unknown) => e === first);
  });

  it('start twice and advance before start are programming errors, not aborts', () => {
    const { s1 } = started();
    assert.throws(() => s1.start(), (e: unknown) => !(e instanceof ProtocolAbort) && /already started/.test(String(e)));
    assert.equal(s1.aborted, undefined);
    const fresh = presign(1, newSid());
    assert.throws(() => fresh.advance(), (e: unknown) => !(e instanceof ProtocolAbort) && /not started/.test(String(e)));
    assert.equal(fresh.aborted, undefined);
  });

  it('an honest run completes: ready/advance through every round, then done, and later messages are out of round', () => {
    const sid = newSid();
    const sessions = new Map(PARTIES.map((i) => [i, presign(i, sid)]));
    const result = runSessions(sessions);
    assert.equal(result.aborts.size, 0);
    assert.equal(result.outputs.size, 3);
    const nonces = [...result.outputs.values()].map((p) => Buffer.from(p[0]!.nonce).toString('hex'));
    assert.equal(new Set(nonces).size, 1);
    // Wire round 1 is the nonce round; the presign's own two rounds follow.
    assert.deepEqual(new Set(result.transcript.map((m) => m.round)), new Set([1, 2, 3]));
    const s1 = sessions.get(1)!;
    assert.equal(s1.done, true);
    assert.equal(s1.ready, false);
    assert.equal(s1.output.length, 1);
    const last = result.transcript.find((m) => m.to === 1 && m.from === 2 && m.round === 3)!;
    expectAbort(() => s1.receive(last, 2), 'wrong-round', 2);
  });
});

describe('session driver: bad parameters', function () {
  this.timeout(20000);
  before(ensureShares);

  function expectBad(fn: () => unknown, ...mentions: string[]): void {
    const e = expectAbort(fn, 'bad-parameters', undefined, ...mentions);
    assert.equal(e.isBlame, false);
  }

  it('threshold 1, 0, non-integer or above N', () => {
    expectBad(() => dkg(1, newSid(), PARTIES, 1), 'threshold');
    expectBad(() => dkg(1, newSid(), PARTIES, 0), 'threshold');
    expectBad(() => dkg(1, newSid(), PARTIES, 2.5), 'threshold');
    expectBad(() => dkg(1, newSid(), PARTIES, 4), 'threshold', 'got 4');
    assert.doesNotThrow(() => dkg(1, newSid(), PARTIES, 3));
  });

  it('fewer than 2 or more than 16 parties', () => {
    expectBad(() => dkg(1, newSid(), [1], 2), 'parties');
    const seventeen = Array.from({ length: 17 }, (_, i) => i + 1);
    expectBad(() => dkg(1, newSid(), seventeen, 2), '16', 'got 17');
    assert.doesNotThrow(() => dkg(1, newSid(), seventeen.slice(0, 16), 2));
  });

  it('duplicate parties, self not among them, indices outside [1, 255]', () => {
    expectBad(() => dkg(1, newSid(), [1, 2, 2, 3], 2), 'distinct');
    expectBad(() => dkg(4, newSid(), [1, 2, 3], 2), 'include self');
    expectBad(() => dkg(1, newSid(), [0, 1, 2], 2), '[1, 255]');
    expectBad(() => dkg(1, newSid(), [1, 2, 256], 2), '[1, 255]');
    expectBad(() => dkg(1, newSid(), [1, 2, 2.5], 2), '[1, 255]');
  });

  it('a session id of 31 or 33 bytes', () => {
    for (const len of [0, 31, 33]) expectBad(() => dkg(1, new Uint8Array(len)), 'session id', '32 bytes');
  });

  it('PresignSession: subset of the wrong size, a party without a share, batch size out of range', () => {
    assert.doesNotThrow(() => presign(1, newSid(), [1, 2, 3]));
    expectBad(() => presign(1, newSid(), [1, 2]), 'exactly 3 parties', 'got 2');
    expectBad(() => presign(1, newSid(), [1, 2, 3, 4]), 'exactly 3', 'got 4');
    expectBad(() => presign(1, newSid(), [1, 2, 4]), 'holds no share');
    expectBad(() => presign(1, newSid(), [1, 2, 2, 3]), 'distinct');
    expectBad(() => presign(1, newSid(), [2, 3, 4]), 'include self');
    expectBad(() => presign(1, newSid(), PARTIES, 0), 'batch size');
    expectBad(() => presign(1, newSid(), PARTIES, 257), 'batch size');
    expectBad(() => presign(1, newSid(), PARTIES, 1.5), 'batch size');
    expectBad(() => presign(1, new Uint8Array(31)), 'session id');
  });
});
