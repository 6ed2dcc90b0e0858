/** src/protocol/math/scalar.ts: arithmetic mod N, encodings, decoding of received scalars, sampling. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ProtocolAbort, type AbortReason } from '../../src/protocol/errors.js';
import {
  bytesToBigInt,
  decodeScalar,
  invert,
  mod,
  N,
  randomScalar,
  reduceWide,
  SCALAR_BYTES,
  scalarToBytes,
} from '../../src/protocol/math/scalar.js';
import { seededRng, systemRng } from '../../src/protocol/rng.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytesOf = (v: bigint): Uint8Array => new Uint8Array(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));

function expectAbort(fn: () => unknown, reason: AbortReason, culprit: number | undefined, ...mentions: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
    assert.equal(e.reason, reason);
    assert.equal(e.culprit, culprit);
    for (const m of mentions) assert.ok(e.message.includes(m), `'${e.message}' should mention '${m}'`);
    return true;
  });
}

describe('scalar: constants', () => {
  it('N is the P-256 group order', () => {
    assert.equal(N, BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'));
    assert.equal(SCALAR_BYTES, 32);
  });
});

describe('scalar: mod and invert', () => {
  it('mod maps every integer into [0, N)', () => {
    const cases: [bigint, bigint][] = [
      [0n, 0n],
      [1n, 1n],
      [N - 1n, N - 1n],
      [N, 0n],
      [N + 1n, 1n],
      [-1n, N - 1n],
      [-N, 0n],
      [-N - 1n, N - 1n],
      [-(N * 5n) + 3n, 3n],
      [(1n << 512n) - 1n, ((1n << 512n) - 1n) % N],
      [-((1n << 512n) - 1n), N - (((1n << 512n) - 1n) % N)],
    ];
    for (const [input, expected] of cases) assert.equal(mod(input), expected, `mod(${input})`);
  });

  it('invert(a)·a = 1 for edge values', () => {
    for (const a of [1n, 2n, 3n, N - 1n, N - 2n, (N - 1n) / 2n, 1n << 255n]) {
      assert.equal(mod(invert(a) * a), 1n, `a = ${a}`);
    }
    assert.equal(invert(1n), 1n);
    assert.equal(invert(N - 1n), N - 1n);
    assert.equal(invert(2n), (N + 1n) / 2n);
  });

  it('invert reduces its input first (negative and ≥ N)', () => {
    assert.equal(invert(-1n), N - 1n);
    assert.equal(invert(N + 2n), invert(2n));
    assert.equal(invert(-2n), mod(-invert(2n)));
  });

  it('invert(a)·a = 1 for random a', () => {
    const rng = seededRng('scalar/invert');
    for (let i = 0; i < 200; i++) {
      const a = randomScalar(rng);
      assert.equal(mod(invert(a) * a), 1n);
    }
  });
});

describe('scalar: encodings', () => {
  it('scalarToBytes is 32-byte big-endian, known answers', () => {
    assert.equal(hex(scalarToBytes(0n)), '00'.repeat(32));
    assert.equal(hex(scalarToBytes(1n)), '00'.repeat(31) + '01');
    assert.equal(hex(scalarToBytes(0x0102n)), '00'.repeat(30) + '0102');
    assert.equal(hex(scalarToBytes(N - 1n)), 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550');
  });

  it('bytesToBigInt is big-endian over any length', () => {
    assert.equal(bytesToBigInt(new Uint8Array(0)), 0n);
    assert.equal(bytesToBigInt(Uint8Array.of(1)), 1n);
    assert.equal(bytesToBigInt(Uint8Array.of(1, 0)), 256n);
    assert.equal(bytesToBigInt(Uint8Array.of(0, 0, 0, 1)), 1n);
    assert.equal(bytesToBigInt(new Uint8Array(64).fill(0xff)), (1n << 512n) - 1n);
  });

  it('bytesToBigInt reads exactly the view it is given (subarrays at any offset)', () => {
    const backing = Uint8Array.of(0xaa, 0xbb, 0xcc, 0x01, 0x02, 0x03, 0x04, 0xdd, 0xee);
    assert.equal(bytesToBigInt(backing.subarray(3, 7)), 0x01020304n);
    assert.equal(bytesToBigInt(backing.subarray(8)), 0xeen);
    assert.equal(bytesToBigInt(backing.subarray(4, 4)), 0n);
    const wide = new Uint8Array(100).fill(0x11);
    wide.set(scalarToBytes(N - 1n), 37);
    assert.equal(bytesToBigInt(wide.subarray(37, 69)), N - 1n);
  });

  it('scalarToBytes refuses values that do not fit 32 bytes instead of truncating them', () => {
    // Truncation would silently encode 2^256 as 0 and −1 as 2^256 − 1.
    for (const bad of [1n << 256n, (1n << 256n) + 5n, -1n, -N]) {
      assert.throws(() => scalarToBytes(bad), (e: unknown) => e instanceof RangeError && e.message === 'scalar does not fit in 32 bytes', `scalarToBytes(${bad}) must throw`);
    }
    assert.equal(hex(scalarToBytes((1n << 256n) - 1n)), 'ff'.repeat(32));
  });

  it('round trips 0, 1, N−1 and random scalars', () => {
    const rng = seededRng('scalar/roundtrip');
    for (const s of [0n, 1n, 255n, 256n, N - 1n, N - 2n, ...Array.from({ length: 100 }, () => randomScalar(rng))]) {
      const b = scalarToBytes(s);
      assert.equal(b.length, 32);
      assert.equal(bytesToBigInt(b), s);
      assert.equal(hex(scalarToBytes(bytesToBigInt(b))), hex(b));
    }
  });
});

describe('scalar: decodeScalar (received values)', () => {
  const SENDER = 7;

  it('accepts 1, N−1 and random values in range, and zero only when allowed', () => {
    assert.equal(decodeScalar(bytesOf(1n), 'z', SENDER), 1n);
    assert.equal(decodeScalar(bytesOf(N - 1n), 'z', SENDER), N - 1n);
    assert.equal(decodeScalar(new Uint8Array(32), 'z', SENDER, true), 0n);
    for (let i = 0; i < 50; i++) {
      const s = randomScalar(systemRng);
      assert.equal(decodeScalar(scalarToBytes(s), 'z', SENDER), s);
    }
  });

  it('rejects wrong lengths as wrong-length, naming field, sender and both lengths', () => {
    for (const len of [0, 1, 31, 33, 64]) {
      expectAbort(() => decodeScalar(new Uint8Array(len).fill(1), 'share', SENDER), 'wrong-length', SENDER, 'share', 'expected 32 bytes', `got ${len}`, `party ${SENDER}`);
    }
    // Length is checked before value: 31 zero bytes are a length error even with allowZero.
    expectAbort(() => decodeScalar(new Uint8Array(31), 'eta', 3, true), 'wrong-length', 3, 'eta');
  });

  it('rejects N, N+1, 2^256−1 as invalid-scalar, naming field and sender', () => {
    for (const v of [N, N + 1n, N + 0xffffn, (1n << 256n) - 1n]) {
      expectAbort(() => decodeScalar(bytesOf(v), 'proof.z', SENDER), 'invalid-scalar', SENDER, 'proof.z', 'group order', `party ${SENDER}`);
      expectAbort(() => decodeScalar(bytesOf(v), 'proof.z', SENDER, true), 'invalid-scalar', SENDER, 'proof.z');
    }
  });

  it('rejects zero unless allowed', () => {
    expectAbort(() => decodeScalar(new Uint8Array(32), 'psi', 12), 'invalid-scalar', 12, 'psi', 'zero', 'party 12');
    assert.equal(decodeScalar(new Uint8Array(32), 'psi', 12, true), 0n);
  });

  it('is not a blame (a malformed scalar is not an OT/VOLE check failure)', () => {
    try {
      decodeScalar(bytesOf(N), 'x', 2);
      assert.fail('expected an abort');
    } catch (e) {
      assert.ok(e instanceof ProtocolAbort);
      assert.equal(e.isBlame, false);
      assert.deepEqual(e.suspects, [2]);
    }
  });
});

describe('scalar: sampling', () => {
  it('reduceWide needs at least 48 bytes and equals the integer mod N', () => {
    for (const len of [0, 32, 47]) assert.throws(() => reduceWide(new Uint8Array(len)), /at least 48 bytes/);
    for (const len of [48, 64, 100]) {
      const b = new Uint8Array(randomBytes(len));
      assert.equal(reduceWide(b), BigInt('0x' + hex(b)) % N);
    }
    assert.equal(reduceWide(new Uint8Array(48)), 0n);
    assert.equal(reduceWide(new Uint8Array(48).fill(0xff)), ((1n << 384n) - 1n) % N);
  });

  it('randomScalar lies in [1, N) and is deterministic under seededRng', () => {
    const a = seededRng('scalar/random');
    const b = seededRng('scalar/random');
    const c = seededRng('scalar/other');
    const seen = new Set<bigint>();
    for (let i = 0; i < 200; i++) {
      const x = randomScalar(a);
      assert.ok(x >= 1n && x < N);
      assert.equal(randomScalar(b), x);
      seen.add(x);
    }
    assert.equal(seen.size, 200);
    assert.notEqual(randomScalar(c), randomScalar(seededRng('scalar/random')));
  });

  it('randomScalar consumes 48 bytes per draw and retries on zero', () => {
    const lengths: number[] = [];
    let calls = 0;
    const rng = (length: number): Uint8Array => {
      lengths.push(length);
      calls++;
      // First draw is N·k exactly (reduces to zero), the second is 1.
      return calls === 1 ? new Uint8Array(Buffer.from((N << 128n).toString(16).padStart(96, '0'), 'hex')) : bytesOf48(1n);
    };
    assert.equal(randomScalar(rng), 1n);
    assert.deepEqual(lengths, [48, 48]);
  });
});

function bytesOf48(v: bigint): Uint8Array {
  return new Uint8Array(Buffer.from(v.toString(16).padStart(96, '0'), 'hex'));
}
