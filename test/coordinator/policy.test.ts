/** The coordinator's own access decision (the client ACL, default deny), key ids and signer lists. */
import { strict as assert } from 'node:assert';
import { formatSigners } from '../../src/coordinator/errors.js';
import { CLIENT_PATTERN, KEY_ID_PATTERN, mayUse } from '../../src/coordinator/policy.js';

describe('coordinator access', () => {
  it('allows exactly the clients a key lists, and says how to grant another', () => {
    const key = { id: 'tls', clients: ['provider', 'unix'] };
    assert.deepEqual(mayUse(key, 'provider'), { allowed: true });
    assert.deepEqual(mayUse(key, 'unix'), { allowed: true });
    assert.deepEqual(mayUse(key, 'http-token'), {
      allowed: false,
      message: "policy refused: client 'http-token' may not use key 'tls' (allowed: provider, unix; grant with 'quorumkey key grant tls http-token')",
    });
    assert.equal(mayUse(key, 'Provider').allowed, false, 'identities are compared exactly');
  });

  it('an empty ACL allows nobody (default deny)', () => {
    const r = mayUse({ id: 'ca', clients: [] }, 'admin');
    assert.ok(!r.allowed && /allowed: nobody/.test(r.message));
  });

  it('key ids, client identities and signer lists', () => {
    for (const ok of ['tls', 'a', 'A.b-c_9', 'x'.repeat(64)]) assert.ok(KEY_ID_PATTERN.test(ok) && CLIENT_PATTERN.test(ok), ok);
    for (const bad of ['', 'x'.repeat(65), 'a b', 'a/b', '../x', 'é', 'a\n']) assert.ok(!KEY_ID_PATTERN.test(bad) && !CLIENT_PATTERN.test(bad), bad);
    assert.equal(formatSigners([1, 2, 3, 4, 5]), '[1..5]');
    assert.equal(formatSigners([2, 1]), '[1,2]');
    assert.equal(formatSigners([1, 3, 4, 5, 7]), '[1,3..5,7]');
    assert.equal(formatSigners([]), '[]');
  });
});
