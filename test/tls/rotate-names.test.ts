/**
 * The pure parts of `quorumkey rotate`: the new key's id, the subject and SANs of the certificate
 * being replaced (for the new CSR), and a rotation log that cannot be read.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namesOf, nextKeyId, readRotations, RotationError } from '../../src/cli/rotate.js';

/** A self-signed certificate made by OpenSSL with the subject and subjectAltName given. */
function certificate(subject: string, san?: string): X509Certificate {
  const dir = mkdtempSync(join(tmpdir(), 'qk-rot-'));
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '30', '-subj', subject];
  if (san) args.push('-addext', `subjectAltName=${san}`);
  const r = spawnSync('openssl', args, { encoding: 'utf8', env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
  assert.equal(r.status, 0, r.stderr);
  return new X509Certificate(readFileSync(join(dir, 'c.pem')));
}

describe('rotate: the new id and the names of the certificate it replaces', function () {
  this.timeout(60_000);

  it('ID-r<N>: N one more than any rotation of the same base id, whichever id is rotated', function () {
    assert.equal(nextKeyId('tls', ['tls', 'embedded-ca']), 'tls-r1');
    assert.equal(nextKeyId('tls-r1', ['tls', 'tls-r1']), 'tls-r2');
    assert.equal(nextKeyId('tls', ['tls', 'tls-r1', 'tls-r3']), 'tls-r4');
    // Another base whose name contains this one does not count, nor do regex characters match anything.
    assert.equal(nextKeyId('a.b', ['axb-r9', 'a.b-r2', 'a.b-rx']), 'a.b-r3');
  });

  it("the subject and SANs as 'openssl req -subj' and '-addext subjectAltName' take them", function () {
    assert.deepEqual(namesOf(certificate('/O=Example/CN=localhost', 'DNS:localhost,IP:127.0.0.1,DNS:www.example.com')), {
      subject: '/O=Example/CN=localhost',
      sans: 'DNS:localhost,IP:127.0.0.1,DNS:www.example.com',
    });
  });

  it('names it cannot carry over are refused by name: no SAN, an email SAN, a subject with a slash', function () {
    assert.throws(() => namesOf(certificate('/CN=localhost')), (e: Error) => e instanceof RotationError && /has no subjectAltName/.test(e.message));
    assert.throws(() => namesOf(certificate('/CN=localhost', 'email:a@example.com')), (e: Error) => e instanceof RotationError && /'email:a@example\.com' is neither DNS nor IP/.test(e.message));
    assert.throws(() => namesOf(certificate('/O=a\\/b/CN=localhost', 'DNS:localhost')), (e: Error) => e instanceof RotationError && /contains '\/'/.test(e.message));
  });

  it('a rotation log that is not JSON or not version 1 is refused by name', function () {
    const dir = mkdtempSync(join(tmpdir(), 'qk-rot-'));
    writeFileSync(join(dir, 'rotations.json'), '{"version":1,"rotat');
    assert.throws(() => readRotations(dir), (e: Error) => e instanceof RotationError && /cannot read the rotation log .*rotations\.json/.test(e.message));
    writeFileSync(join(dir, 'rotations.json'), '{"version":2,"rotations":[]}');
    assert.throws(() => readRotations(dir), (e: Error) => e instanceof RotationError && /not a quorumkey rotation log of version 1/.test(e.message));
    assert.deepEqual(readRotations(mkdtempSync(join(tmpdir(), 'qk-rot-'))), { version: 1, rotations: [] });
  });
});
