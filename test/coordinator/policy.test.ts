/** Policy decisions and policy validation (pure). */
import { strict as assert } from 'node:assert';
import { CONTEXTS } from '../../src/policy/classify.js';
import { formatSigners } from '../../src/coordinator/errors.js';
import { decide, DEFAULT_POLICY, KEY_ID_PATTERN, normalisePolicy } from '../../src/coordinator/policy.js';

describe('coordinator policy', () => {
  it('defaults to tls-server only (raw-digest is off by default)', () => {
    assert.deepEqual(normalisePolicy([]), ['tls-server']);
    assert.deepEqual(normalisePolicy(undefined), [...DEFAULT_POLICY]);
    assert.ok(!normalisePolicy([]).includes('raw-digest'));
  });

  it('validates, deduplicates and orders policy names', () => {
    assert.deepEqual(normalisePolicy(['sct', 'ocsp', 'sct', 'tls-server']), ['tls-server', 'ocsp', 'sct']);
    assert.deepEqual(normalisePolicy([...CONTEXTS].reverse()), [...CONTEXTS]);
    assert.throws(() => normalisePolicy(['tls-client']), /unknown policy context 'tls-client'/);
    assert.throws(() => normalisePolicy(['TLS-SERVER']), /unknown policy context/);
  });

  it('allows only contexts in the policy, with the message the operator sees', () => {
    const tls = { id: 'tls', policy: normalisePolicy([]) };
    assert.deepEqual(decide(tls, 'tls-server', 'unix'), { allowed: true });
    assert.deepEqual(decide(tls, 'x509-cert', 'unix'), { allowed: false, message: "policy refused: key 'tls' allows tls-server, request is x509-cert" });
    assert.equal(decide(tls, 'raw-digest', 'unix').allowed, false);
    const r = decide(tls, 'unknown', 'unix');
    assert.ok(!r.allowed && /request is unrecognised content/.test(r.message));
    const ca = { id: 'ca', policy: normalisePolicy(['x509-cert', 'ocsp', 'x509-csr']) };
    for (const c of ['x509-cert', 'ocsp', 'x509-csr'] as const) assert.equal(decide(ca, c, 'admin').allowed, true);
    for (const c of ['tls-server', 'sct', 'raw-digest', 'unknown'] as const) assert.equal(decide(ca, c, 'admin').allowed, false);
    // unknown content is never allowed, whatever the policy says.
    assert.equal(decide({ id: 'all', policy: normalisePolicy([...CONTEXTS]) }, 'unknown', 'unix').allowed, false);
  });

  it('applies a key client list when one is set', () => {
    const key = { id: 'tls', policy: normalisePolicy([]), clients: ['provider', 'unix'] };
    assert.equal(decide(key, 'tls-server', 'provider').allowed, true);
    assert.equal(decide(key, 'tls-server', 'unix').allowed, true);
    const r = decide(key, 'tls-server', 'http');
    assert.ok(!r.allowed && r.message === "policy refused: caller 'http' may not use key 'tls'");
  });

  it('key ids and signer lists', () => {
    for (const ok of ['tls', 'a', 'A.b-c_9', 'x'.repeat(64)]) assert.ok(KEY_ID_PATTERN.test(ok), ok);
    for (const bad of ['', 'x'.repeat(65), 'a b', 'a/b', '../x', 'é', 'a\n']) assert.ok(!KEY_ID_PATTERN.test(bad), bad);
    assert.equal(formatSigners([1, 2, 3, 4, 5]), '[1..5]');
    assert.equal(formatSigners([2, 1]), '[1,2]');
    assert.equal(formatSigners([1, 3, 4, 5, 7]), '[1,3..5,7]');
    assert.equal(formatSigners([]), '[]');
  });
});
