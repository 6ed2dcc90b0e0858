/** POST /v1/sign body validation (pure). */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { CoordinatorError } from '../../src/coordinator/errors.js';
import { parseDigestAlg, parseSignBody } from '../../src/coordinator/http.js';

const invalid = (text: string, re: RegExp) =>
  assert.throws(
    () => parseSignBody(text),
    (e: unknown) => e instanceof CoordinatorError && e.kind === 'invalid' && re.test(e.message),
    text.slice(0, 80),
  );

describe('coordinator HTTP sign body', () => {
  const digest = createHash('sha256').update('x').digest();

  it('accepts hash as hex or base64, tbs as base64, and digest algorithms', () => {
    const a = parseSignBody(JSON.stringify({ key_id: 'tls', hash: digest.toString('hex') }));
    assert.deepEqual(Buffer.from(a.digest!), digest);
    assert.equal(a.digestAlg, 'sha256');
    const b = parseSignBody(JSON.stringify({ key_id: 'tls', hash: digest.toString('base64') }));
    assert.deepEqual(Buffer.from(b.digest!), digest);
    const c = parseSignBody(JSON.stringify({ key_id: 'tls', hash: digest.toString('base64url') }));
    assert.deepEqual(Buffer.from(c.digest!), digest);
    const d384 = createHash('sha384').update('x').digest();
    const d = parseSignBody(JSON.stringify({ key_id: 'k', hash: d384.toString('hex'), digest_alg: 'SHA-384', context: 'raw-digest' }));
    assert.equal(d.digestAlg, 'sha384');
    assert.equal(d.context, 'raw-digest');
    const e = parseSignBody(JSON.stringify({ key_id: 'k', tbs: Buffer.from('hello').toString('base64'), context: 'tls-server' }));
    assert.equal(Buffer.from(e.tbs!).toString(), 'hello');
    assert.equal(parseDigestAlg('sha512'), 'sha512');
    assert.equal(parseDigestAlg(undefined), 'sha256');
  });

  it('rejects malformed bodies with clear messages', () => {
    invalid('{', /not valid JSON/);
    invalid('[]', /JSON object/);
    invalid('null', /JSON object/);
    invalid('{"hash":"00"}', /key_id/);
    invalid(JSON.stringify({ key_id: 5, hash: digest.toString('hex') }), /key_id/);
    invalid(JSON.stringify({ key_id: 'tls' }), /exactly one of hash \/ tbs/);
    invalid(JSON.stringify({ key_id: 'tls', hash: digest.toString('hex'), tbs: 'AAAA' }), /exactly one/);
    invalid(JSON.stringify({ key_id: 'tls', hash: 'zz$' + digest.toString('hex') }), /not valid base64/);
    invalid(JSON.stringify({ key_id: 'tls', hash: 'zz' + digest.toString('hex') }), /must be 32 bytes/);
    invalid(JSON.stringify({ key_id: 'tls', hash: digest.toString('hex').slice(2) }), /must be 32 bytes for sha256, got 31/);
    invalid(JSON.stringify({ key_id: 'tls', hash: digest.toString('hex'), digest_alg: 'sha384' }), /48 bytes/);
    invalid(JSON.stringify({ key_id: 'tls', hash: digest.toString('hex'), digest_alg: 'md5' }), /digest_alg/);
    invalid(JSON.stringify({ key_id: 'tls', hash: 1234 }), /hash must be/);
    invalid(JSON.stringify({ key_id: 'tls', tbs: { a: 1 } }), /tbs must be/);
    invalid(JSON.stringify({ key_id: 'tls', tbs: 'not base64!' }), /tbs is not valid base64/);
    invalid(JSON.stringify({ key_id: 'tls', tbs: 'AAAA', context: 'tls-client' }), /context must be one of/);
    invalid(JSON.stringify({ key_id: 'tls', tbs: 'AAAA', extra: true }), /unknown field 'extra'/);
  });
});
