/**
 * KeyPolicy validation, normal form, canonical encoding and digest.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import {
  DEFAULT_RATE,
  MAX_POLICY_BYTES,
  PolicyError,
  decodeKeyPolicy,
  encodeKeyPolicy,
  keyPolicyDigest,
  normaliseKeyPolicy,
  type KeyPolicy,
} from '../../src/policy/key-policy.js';

const X509 = { dnsSuffixes: ['example.com'], ipRanges: ['10.0.0.0/8'], maxValidityDays: 90, allowCa: false, extendedKeyUsages: ['serverAuth'] };

function policyError(input: unknown, field: string, message: RegExp): void {
  assert.throws(
    () => normaliseKeyPolicy(input),
    (e: unknown) => {
      assert.ok(e instanceof PolicyError, String(e));
      assert.equal(e.field, field, e.message);
      assert.match(e.message, message);
      return true;
    },
  );
}

function x509(over: Record<string, unknown>): unknown {
  return { contexts: ['x509-cert'], x509: { ...X509, ...over } };
}

describe('key policy', () => {
  describe('normaliseKeyPolicy', () => {
    it('fills defaults: tls-server only, the default rate', () => {
      assert.deepEqual(normaliseKeyPolicy({}), { contexts: ['tls-server'], rate: DEFAULT_RATE });
    });

    it('orders contexts as CONTEXTS and drops duplicates', () => {
      assert.deepEqual(normaliseKeyPolicy({ contexts: ['sct', 'ocsp', 'tls-server', 'ocsp'] }).contexts, ['tls-server', 'ocsp', 'sct']);
    });

    it('raw-digest stands alone: beside it, other contexts would restrict nothing', () => {
      assert.deepEqual(normaliseKeyPolicy({ contexts: ['raw-digest', 'raw-digest'] }).contexts, ['raw-digest']);
      policyError({ contexts: ['raw-digest', 'tls-server'] }, 'contexts', /raw-digest signs any digest, so it stands alone \(give a separate key for tls-server\)/);
    });

    it('refuses unknown or empty contexts and unknown fields, naming them', () => {
      policyError({ contexts: [] }, 'contexts', /non-empty list/);
      policyError({ contexts: ['tls-client'] }, 'contexts', /unknown context "tls-client"/);
      policyError({ contexts: 'tls-server' }, 'contexts', /non-empty list/);
      policyError({ context: ['tls-server'] }, 'policy', /unknown field 'context'/);
      policyError(null, 'policy', /must be an object/);
      policyError([], 'policy', /must be an object/);
    });

    it('x509 constraints exactly when contexts include x509-cert', () => {
      policyError({ contexts: ['x509-cert'] }, 'x509', /needs its constraints/);
      policyError({ contexts: ['tls-server'], x509: X509 }, 'x509', /only for keys whose contexts include x509-cert/);
      assert.deepEqual(normaliseKeyPolicy(x509({})).x509, X509);
    });

    it('sorts and deduplicates constraint lists, lowercases suffixes and drops a leading dot', () => {
      const p = normaliseKeyPolicy(x509({ dnsSuffixes: ['b.example', '.A.Example', 'b.example'], extendedKeyUsages: ['serverAuth', 'clientAuth', 'serverAuth'] }));
      assert.deepEqual(p.x509!.dnsSuffixes, ['a.example', 'b.example']);
      assert.deepEqual(p.x509!.extendedKeyUsages, ['clientAuth', 'serverAuth']);
    });

    it('refuses DNS suffixes that are not host names, case-folding ASCII only', () => {
      for (const bad of ['*.example.com', 'exa mple.com', 'example..com', '-a.example', 'example.com.', '']) {
        policyError(x509({ dnsSuffixes: [bad] }), 'x509.dnsSuffixes[0]', /is not a DNS name suffix/);
      }
      // U+212A KELVIN SIGN would lowercase to "k" with toLowerCase().
      policyError(x509({ dnsSuffixes: ['\u212Aexample.com'] }), 'x509.dnsSuffixes[0]', /is not a DNS name suffix/);
    });

    it('normalises CIDR ranges to canonical text and refuses host bits', () => {
      const p = normaliseKeyPolicy(x509({ ipRanges: ['2001:DB8:0:0::/32', '10.0.0.0/8', '::ffff:0:0/96', '0.0.0.0/0', '192.0.2.1/32'] }));
      assert.deepEqual(p.x509!.ipRanges, ['0.0.0.0/0', '10.0.0.0/8', '192.0.2.1/32', '2001:db8::/32', '::ffff:0:0/96']);
      policyError(x509({ ipRanges: ['10.0.0.1/8'] }), 'x509.ipRanges[0]', /host bits set \(did you mean 10\.0\.0\.0\/8\?\)/);
      policyError(x509({ ipRanges: ['2001:db8::1/32'] }), 'x509.ipRanges[0]', /did you mean 2001:db8::\/32\?/);
    });

    it('refuses what is no CIDR range', () => {
      for (const bad of ['10.0.0.0', '10.0.0.0/33', '::/129', '1.2.3.4:5/8', ':::/8', '1:2:3/64', '010.0.0.0/8', 'fe80::1%eth0/64', '10.0.0.0/-1']) {
        policyError(x509({ ipRanges: [bad] }), 'x509.ipRanges[0]', /is not a CIDR range/);
      }
    });

    it('accepts the known extended key usage names and dotted OIDs, and nothing else', () => {
      const names = ['serverAuth', 'clientAuth', 'codeSigning', 'emailProtection', 'timeStamping', 'OCSPSigning', 'anyExtendedKeyUsage', '1.3.6.1.4.1.99999.1', '2.999.3'];
      assert.deepEqual(normaliseKeyPolicy(x509({ extendedKeyUsages: names })).x509!.extendedKeyUsages, [...names].sort());
      for (const bad of ['serverauth', 'ServerAuth', 'constructor', 'toString', '1', '3.1.2', '1.40', '1.2.03', '1..2', '']) {
        policyError(x509({ extendedKeyUsages: [bad] }), 'x509.extendedKeyUsages[0]', /is not an extended key usage/);
      }
    });

    it('validates maxValidityDays, allowCa and the rate, naming the field', () => {
      policyError(x509({ maxValidityDays: 0 }), 'x509.maxValidityDays', /integer from 1 to 36500, got 0/);
      policyError(x509({ maxValidityDays: 1.5 }), 'x509.maxValidityDays', /got 1\.5/);
      policyError(x509({ allowCa: 'no' }), 'x509.allowCa', /true or false/);
      policyError(x509({ colour: 'red' }), 'x509', /unknown field 'colour'/);
      policyError({ rate: { perSecond: 10, perHour: 5 } }, 'rate.perHour', /at least rate\.perSecond \(10\)/);
      policyError({ rate: { perSecond: 0, perHour: 5 } }, 'rate.perSecond', /got 0/);
      policyError({ rate: { perSecond: 1 } }, 'rate.perHour', /got undefined/);
      assert.deepEqual(normaliseKeyPolicy({ rate: { perSecond: 5, perHour: 5 } }).rate, { perSecond: 5, perHour: 5 });
    });

    it('limits list lengths', () => {
      const many = Array.from({ length: 65 }, (_, k) => `h${k}.example`);
      policyError(x509({ dnsSuffixes: many }), 'x509.dnsSuffixes', /at most 64/);
      policyError(x509({ ipRanges: [7] }), 'x509.ipRanges[0]', /must be a string/);
    });
  });

  describe('canonical encoding and digest', () => {
    const full: KeyPolicy = normaliseKeyPolicy({ contexts: ['x509-cert', 'tls-server'], x509: X509, rate: { perSecond: 10, perHour: 1000 } });

    it('round-trips through encode/decode', () => {
      const bytes = encodeKeyPolicy(full);
      assert.deepEqual(decodeKeyPolicy(bytes), full);
      assert.equal(
        Buffer.from(bytes).toString(),
        '{"contexts":["tls-server","x509-cert"],"rate":{"perHour":1000,"perSecond":10},"x509":{"allowCa":false,"dnsSuffixes":["example.com"],"extendedKeyUsages":["serverAuth"],"ipRanges":["10.0.0.0/8"],"maxValidityDays":90}}',
      );
    });

    it('equal policies written differently have equal bytes and digest', () => {
      const other = normaliseKeyPolicy({
        rate: { perHour: 1000, perSecond: 10 },
        x509: { ...X509, dnsSuffixes: ['EXAMPLE.COM', 'example.com'] },
        contexts: ['tls-server', 'x509-cert', 'tls-server'],
      });
      assert.deepEqual(encodeKeyPolicy(other), encodeKeyPolicy(full));
      assert.deepEqual(keyPolicyDigest(other), keyPolicyDigest(full));
    });

    it('the digest is SHA-256 over a domain label and the canonical bytes, and changes with the policy', () => {
      const expected = createHash('sha256').update('quorumkey-policy-v1\n').update(encodeKeyPolicy(full)).digest();
      assert.deepEqual(Buffer.from(keyPolicyDigest(full)), expected);
      assert.deepEqual(keyPolicyDigest(encodeKeyPolicy(full)), keyPolicyDigest(full));
      const wider = normaliseKeyPolicy({ ...full, x509: { ...full.x509!, allowCa: true } });
      assert.notDeepEqual(keyPolicyDigest(wider), keyPolicyDigest(full));
    });

    it('decode refuses anything but the canonical form', () => {
      const text = Buffer.from(encodeKeyPolicy(full)).toString();
      const refuse = (bytes: Uint8Array, message: RegExp) =>
        assert.throws(
          () => decodeKeyPolicy(bytes),
          (e: unknown) => e instanceof PolicyError && e.field === 'encoding' && message.test(e.message),
        );
      refuse(Buffer.from(text.replace(',', ', ')), /not canonical/);
      refuse(Buffer.from(JSON.stringify(JSON.parse(text), null, 1)), /not canonical/);
      refuse(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), /not canonical/);
      refuse(Buffer.from(text.replace('"example.com"', '"EXAMPLE.COM"')), /not canonical/);
      refuse(Buffer.from(text.replace('{', '{"rate":{"perHour":1,"perSecond":1},')), /not canonical/);
      refuse(Buffer.from([0xff, 0xfe]), /not UTF-8 JSON/);
      refuse(Buffer.from('{"contexts":'), /not UTF-8 JSON/);
      refuse(new Uint8Array(0), /1 to 16384 bytes, got 0/);
      refuse(new Uint8Array(MAX_POLICY_BYTES + 1), /got 16385/);
      // Valid JSON, invalid policy: the validation error itself.
      assert.throws(() => decodeKeyPolicy(Buffer.from('{"contexts":["nope"]}')), (e: unknown) => e instanceof PolicyError && e.field === 'contexts');
    });
  });
});
