/**
 * The secret scan (secret-scan.ts) that the adversarial and signer-node tests rely on: it finds a
 * secret in every encoding it claims, anywhere in an error, and nothing in text without it.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { N } from '../src/protocol/math/scalar.js';
import { SecretScan } from './secret-scan.js';

describe('secret scan (test helper)', function () {
  // A scalar with a leading zero byte: its padded and unpadded hex differ.
  const scalar = (BigInt(`0x${randomBytes(31).toString('hex')}`) % N) | (1n << 200n);
  const seed = randomBytes(32);
  const scan = new SecretScan().add('the scalar', scalar).add('the seed', seed);
  const padded = scalar.toString(16).padStart(64, '0');
  const bytes = Buffer.from(padded, 'hex');

  it('finds a secret as hex (either case, padded or not), decimal, base64 and base64url, inside other text', function () {
    const forms: [string, string][] = [
      ['hex', padded],
      ['upper-case hex', padded.toUpperCase()],
      ['unpadded hex', scalar.toString(16)],
      ['unpadded upper-case hex', scalar.toString(16).toUpperCase()],
      ['decimal', scalar.toString(10)],
      ['base64', bytes.toString('base64')],
      ['base64url', bytes.toString('base64url')],
      ['seed as hex', seed.toString('hex')],
      ['seed as base64', seed.toString('base64')],
    ];
    for (const [name, form] of forms) {
      assert.ok(scan.inText(`prefix ${form} suffix`), `${name} not found`);
      assert.ok(scan.inText(`key=${form}&more`), `${name} not found between delimiters`);
    }
  });

  it('finds a secret in any property of an error: message, stack, a custom field, bytes, a cause', function () {
    const withMessage = new Error(`failed with ${padded}`);
    const withStack = Object.assign(new Error('plain'), { stack: `Error: plain\n    at ${scalar.toString(10)}` });
    const withField = Object.assign(new Error('plain'), { detail: { value: seed.toString('base64') } });
    const withBytes = Object.assign(new Error('plain'), { raw: Uint8Array.from(seed) });
    const withCause = new Error('outer', { cause: new Error(`inner ${padded.toUpperCase()}`) });
    const hidden = new Error('plain');
    Object.defineProperty(hidden, 'secret', { value: scalar.toString(16), enumerable: false });
    for (const [name, err] of Object.entries({ withMessage, withStack, withField, withBytes, withCause, hidden })) assert.ok(scan.inError(err), `${name}: not found`);
  });

  it('names the secret and the encoding, never the value', function () {
    const found = scan.inText(`x ${padded.toUpperCase()} y`)!;
    assert.equal(found, 'the scalar (hex, upper case)');
    assert.ok(!found.includes(padded) && !found.toLowerCase().includes(padded));
  });

  it('finds nothing in text without the secrets, and skips trivial values (a wiped buffer)', function () {
    assert.equal(scan.inText(`${randomBytes(32).toString('hex')} ${randomBytes(32).toString('base64')} ${(scalar + 1n).toString(10)}`), undefined);
    assert.equal(scan.inError(new Error(`${'0'.repeat(64)}: nothing here`)), undefined);
    const wiped = new SecretScan().add('wiped', new Uint8Array(32)).add('small', 12345n);
    assert.equal(wiped.size, 0);
    assert.equal(wiped.inText('0 00000000 12345'), undefined);
  });
});
