/**
 * The native P-256 kernels (native/curve.cc) against the TypeScript reference (@noble/curves).
 *
 * The addon is built by `npm install` (node-gyp) and the product uses it by default, so a
 * missing or unloadable addon is a test FAILURE here, never a skip. With QUORUMKEY_NATIVE=0 the
 * product deliberately runs on the TypeScript path; the addon is then loaded directly so that it
 * is still checked.
 */
import assert from 'node:assert/strict';
import { createECDH, createSign, createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  IDENTITY,
  POINT_BYTES,
  curveBackend,
  nativeBackend,
  nativeCurveBackend,
  nobleBackend,
  type CurveBackend,
  type NativeCurve,
} from '../../src/protocol/math/curve.js';
import { N, bytesToBigInt, mod, randomScalar } from '../../src/protocol/math/scalar.js';
import { seededRng } from '../../src/protocol/rng.js';

/** P-256 field prime. */
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;

const ADDON_PATH = '../../../build/Release/quorumkey_native.node'; // from dist/test/native/
const nativeDisabled = process.env.QUORUMKEY_NATIVE === '0';
const productBackendAtLoad = curveBackend().name;

function loadAddonDirectly(): NativeCurve {
  const require = createRequire(import.meta.url);
  try {
    return require(ADDON_PATH) as NativeCurve;
  } catch (err) {
    throw new Error(
      `native addon not loadable from build/Release/quorumkey_native.node — run \`npm install\` ` +
        `(it runs node-gyp rebuild): ${(err as Error).message}`,
    );
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function xBytes(x: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let v = x;
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function compressed(prefix: number, x: bigint): Uint8Array {
  const out = new Uint8Array(POINT_BYTES);
  out[0] = prefix;
  out.set(xBytes(x), 1);
  return out;
}

function negate(point: Uint8Array): Uint8Array {
  const out = point.slice();
  out[0] = out[0] === 2 ? 3 : 2;
  return out;
}

/** Smallest x ≥ start for which validity under the reference equals `wanted`. */
function findX(start: bigint, wanted: boolean): bigint {
  for (let x = start; ; x++) if (nobleBackend.isValid(compressed(2, x)) === wanted) return x;
}

describe('native P-256 addon', () => {
  let raw: NativeCurve;
  let native: CurveBackend;
  const noble = nobleBackend;
  const seed = process.env.QUORUMKEY_TEST_SEED ?? randomBytes(8).toString('hex');

  before(() => {
    raw = loadAddonDirectly();
    const viaProduct = nativeCurveBackend();
    if (viaProduct) {
      native = viaProduct;
    } else if (nativeDisabled) {
      native = nativeBackend(raw);
    } else {
      assert.fail('the addon loads directly but src/protocol/math/curve.ts did not pick it up');
    }
  });

  it('is the backend the product uses (unless QUORUMKEY_NATIVE=0)', () => {
    assert.equal(native.name, 'native');
    if (nativeDisabled) {
      assert.equal(nativeCurveBackend(), undefined);
      assert.equal(productBackendAtLoad, 'noble');
    } else {
      assert.equal(productBackendAtLoad, 'native');
    }
  });

  it('exports the P-256 surface', () => {
    const exported = Object.keys(raw);
    for (const name of ['p256Add', 'p256IsValid', 'p256Mul', 'p256MulBase']) assert.ok(exported.includes(name), `${name} is not exported`);
  });

  it(`matches the reference on 250 random scalars and points (seed ${seed})`, () => {
    const rng = seededRng(seed);
    for (let i = 0; i < 250; i++) {
      const k1 = randomScalar(rng);
      const k2 = randomScalar(rng);
      const ctx = `seed ${seed} iteration ${i}`;
      const p1 = noble.mulBase(k1);
      const p2 = noble.mulBase(k2);
      assert.deepEqual(native.mulBase(k1), p1, `mulBase ${ctx}`);
      assert.deepEqual(native.mul(p1, k2), noble.mul(p1, k2), `mul ${ctx}`);
      assert.deepEqual(native.add(p1, p2), noble.add(p1, p2), `add ${ctx}`);
      assert.deepEqual(native.add(p1, p1), noble.add(p1, p1), `add (doubling) ${ctx}`);
      assert.equal(native.isValid(p1), true, `isValid ${ctx}`);
      // Random x: about half have a point; both backends must agree.
      const candidate = new Uint8Array(POINT_BYTES);
      candidate.set(rng(POINT_BYTES));
      candidate[0] = 2 + (candidate[0]! & 1);
      assert.equal(native.isValid(candidate), noble.isValid(candidate), `isValid(random x) ${ctx}: ${hex(candidate)}`);
    }
  });

  it('agrees on edge scalars 0, 1, 2, n−1, n−2', () => {
    const g = noble.mulBase(1n);
    const q = noble.mulBase(0x1234567890abcdefn);
    for (const k of [0n, 1n, 2n, N - 1n, N - 2n]) {
      assert.deepEqual(native.mulBase(k), noble.mulBase(k), `mulBase(${k})`);
      assert.deepEqual(native.mul(g, k), noble.mul(g, k), `mul(G, ${k})`);
      assert.deepEqual(native.mul(q, k), noble.mul(q, k), `mul(Q, ${k})`);
    }
    assert.deepEqual(native.mulBase(0n), IDENTITY);
    assert.deepEqual(native.mulBase(N - 1n), negate(g));
  });

  it('reduces scalars ≥ n mod n', () => {
    const g = noble.mulBase(1n);
    for (const k of [N, N + 1n, N + 2n, 2n ** 256n - 1n, 2n ** 255n + 12345n]) {
      const expected = noble.mulBase(mod(k)); // mod(N) = 0 → identity
      assert.deepEqual(native.mulBase(k), expected, `mulBase(${k})`);
      assert.deepEqual(native.mul(g, k), expected, `mul(G, ${k})`);
    }
  });

  it('handles the identity (33 zero bytes) in and out', () => {
    const p = noble.mulBase(0xdeadbeefn);
    assert.deepEqual(native.mul(p, 0n), IDENTITY, 'mul by 0');
    assert.deepEqual(native.mul(IDENTITY, 7n), IDENTITY, 'mul of identity');
    assert.deepEqual(native.add(IDENTITY, p), p, 'identity + P');
    assert.deepEqual(native.add(p, IDENTITY), p, 'P + identity');
    assert.deepEqual(native.add(IDENTITY, IDENTITY), IDENTITY, 'identity + identity');
    assert.deepEqual(native.add(p, negate(p)), IDENTITY, 'P + (−P)');
    assert.deepEqual(noble.add(p, negate(p)), IDENTITY, 'reference P + (−P)');
    assert.equal(native.isValid(IDENTITY), false);
    assert.equal(raw.p256IsValid(IDENTITY), false);
  });

  describe('rejects invalid encodings', () => {
    const g = nobleBackend.mulBase(1n);
    const gx = bytesToBigInt(g.subarray(1));
    const noPointX = findX(1n, false);
    // Non-canonical: x ≥ p whose reduction x − p is the x of a real point (a lax decoder would
    // accept it), and the largest 32-byte x.
    const wrappedX = P + findX(1n, true);
    const uncompressed = uncompressedG(); // a real 04 ‖ x ‖ y encoding of G

    const invalid: Array<[string, Uint8Array]> = [
      ['empty', new Uint8Array(0)],
      ['32 bytes', g.subarray(1)],
      ['34 bytes', Uint8Array.from([...g, 0])],
      ['65 bytes (uncompressed form)', uncompressed],
      ['prefix 04, 33 bytes', compressed(4, gx)],
      ['prefix 00', compressed(0, gx)],
      ['prefix 01', compressed(1, gx)],
      ['prefix 05', compressed(5, gx)],
      ['prefix 06', compressed(6, gx)],
      [`x with no curve point (x = ${noPointX})`, compressed(2, noPointX)],
      ['x = p', compressed(2, P)],
      ['x = p + (valid x)', compressed(2, wrappedX)],
      ['x = p + (valid x), prefix 03', compressed(3, wrappedX)],
      ['x = 2^256 − 1', compressed(3, 2n ** 256n - 1n)],
    ];

    it('isValid is false, never throws (native and reference agree)', () => {
      for (const [label, bytes] of invalid) {
        assert.equal(native.isValid(bytes), false, `native: ${label}`);
        assert.equal(raw.p256IsValid(bytes), false, `raw addon: ${label}`);
        assert.equal(nobleBackend.isValid(bytes), false, `reference: ${label}`);
      }
      assert.equal(raw.p256IsValid(IDENTITY), false);
      assert.equal(native.isValid(g), true);
      assert.equal(native.isValid(negate(g)), true);
    });

    it('mul and add throw TypeError on invalid points', () => {
      for (const [label, bytes] of invalid) {
        assert.throws(() => native.mul(bytes, 5n), TypeError, `mul: ${label}`);
        assert.throws(() => native.add(bytes, g), TypeError, `add (first): ${label}`);
        assert.throws(() => native.add(g, bytes), TypeError, `add (second): ${label}`);
      }
      assert.throws(() => native.mul(compressed(2, noPointX), 5n), /not a valid compressed P-256 point/);
    });
  });

  it('throws TypeError on wrong argument types and lengths (raw addon)', () => {
    const g = nobleBackend.mulBase(1n);
    const k = new Uint8Array(32);
    k[31] = 3;
    const call = (fn: unknown, ...args: unknown[]) => () => (fn as (...a: unknown[]) => unknown)(...args);
    assert.throws(call(raw.p256MulBase), TypeError);
    assert.throws(call(raw.p256MulBase, new Uint8Array(31)), TypeError);
    assert.throws(call(raw.p256MulBase, new Uint8Array(33)), TypeError);
    assert.throws(call(raw.p256MulBase, Array.from(k)), TypeError);
    assert.throws(call(raw.p256MulBase, new Uint16Array(16)), TypeError);
    assert.throws(call(raw.p256MulBase, 'abc'), TypeError);
    assert.throws(call(raw.p256MulBase, k, k), TypeError);
    assert.throws(call(raw.p256Mul, g), TypeError);
    assert.throws(call(raw.p256Mul, k, g), TypeError);
    assert.throws(call(raw.p256Mul, g, null), TypeError);
    assert.throws(call(raw.p256Add, g), TypeError);
    assert.throws(call(raw.p256Add, g, 42), TypeError);
    for (const bad of [undefined, null, 42, 'x', [2, 3], new Uint16Array(33), {}]) {
      assert.equal((raw.p256IsValid as (x: unknown) => boolean)(bad), false);
    }
    // Buffers are Uint8Arrays and accepted; outputs are plain 33-byte Uint8Arrays.
    const out = raw.p256MulBase(Buffer.from(k));
    assert.ok(out instanceof Uint8Array && !Buffer.isBuffer(out));
    assert.deepEqual(out, nobleBackend.mulBase(3n));
    // Inputs are not modified.
    const gCopy = g.slice();
    raw.p256Add(g, g);
    raw.p256Mul(g, k);
    assert.deepEqual(g, gCopy);
  });

  // Smoke test only: node:crypto also clears the (shared, per-thread) OpenSSL error queue before
  // its own operations, so a leak from the addon would not show here; the addon restores the
  // queue on every return regardless.
  it('node:crypto still works after the addon rejected inputs', () => {
    for (let i = 0; i < 10; i++) {
      raw.p256IsValid(compressed(2, P));
      assert.throws(() => raw.p256Add(compressed(2, P), compressed(2, P)), TypeError);
    }
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const sig = createSign('sha256').update('quorumkey').sign(privateKey);
    assert.equal(createVerify('sha256').update('quorumkey').verify(publicKey, sig), true);
  });
});

/** 65-byte uncompressed SEC1 encoding of the generator, from OpenSSL via node:crypto. */
function uncompressedG(): Uint8Array {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(xBytes(1n)));
  return new Uint8Array(ecdh.getPublicKey());
}
