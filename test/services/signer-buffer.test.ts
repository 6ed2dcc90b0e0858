/** The signer's buffer for peer messages of sessions that have not started yet: bounded, expiring. */
import assert from 'node:assert/strict';
import type { ProtocolMessage } from '../../src/protocol/message.js';
import { PendingBuffer, type BufferLimits } from '../../signer-node/sessions.js';

const LIMITS: BufferLimits = { perPeerMessages: 3, perPeerBytes: 1000, totalMessages: 5, totalBytes: 1500, perSessionPeerMessages: 2 };

const msg = (from: number, round = 1): ProtocolMessage => ({
  protocol: 'presign',
  keyId: 'k',
  sessionId: new Uint8Array(32),
  round,
  from,
  to: 1,
  payload: {},
});

describe('signer-node PendingBuffer', () => {
  it('keeps messages per session until taken, in arrival order', () => {
    const b = new PendingBuffer(LIMITS, 1000);
    assert.equal(b.add('s1', 2, msg(2), 10, 0), 'buffered');
    assert.equal(b.add('s1', 3, msg(3), 10, 0), 'buffered');
    assert.equal(b.add('s2', 2, msg(2), 10, 0), 'buffered');
    assert.equal(b.size, 3);
    assert.deepEqual(
      b.take('s1').map((i) => i.sender),
      [2, 3],
    );
    assert.equal(b.size, 1);
    assert.deepEqual(b.take('s1'), []);
  });

  it('bounds per (session, peer), per peer (count and bytes) and in total', () => {
    const b = new PendingBuffer(LIMITS, 1000);
    assert.equal(b.add('a', 2, msg(2), 10, 0), 'buffered');
    assert.equal(b.add('a', 2, msg(2, 2), 10, 0), 'buffered');
    assert.equal(b.add('a', 2, msg(2, 3), 10, 0), 'dropped-session-limit');
    assert.equal(b.add('b', 2, msg(2), 10, 0), 'buffered');
    assert.equal(b.add('c', 2, msg(2), 10, 0), 'dropped-peer-limit', 'fourth message of peer 2');
    assert.equal(b.add('c', 3, msg(3), 990, 0), 'buffered');
    assert.equal(b.add('d', 3, msg(3), 20, 0), 'dropped-peer-limit', 'peer 3 over its byte budget');
    assert.equal(b.add('d', 4, msg(4), 10, 0), 'buffered');
    assert.equal(b.add('e', 5, msg(5), 10, 0), 'dropped-total-limit', 'sixth message overall');
    // Taking a session frees its budget.
    b.take('a');
    assert.equal(b.add('c', 2, msg(2), 10, 0), 'buffered');
  });

  it('expires messages after the session timeout', () => {
    const b = new PendingBuffer(LIMITS, 1000);
    b.add('old', 2, msg(2), 10, 0);
    b.add('new', 3, msg(3), 10, 900);
    assert.equal(b.sweep(999), 0);
    assert.equal(b.sweep(1000), 1);
    assert.deepEqual(b.take('old'), []);
    assert.equal(b.take('new').length, 1);
    assert.equal(b.size, 0);
  });
});
