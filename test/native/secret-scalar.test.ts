/**
 * The native secret-scalar kernels (native/scalar.cc) against the bigint reference
 * of src/protocol/math/secret-scalar.ts and against plain BigInt arithmetic mod n: element-wise
 * and broadcast operands, edge values (0, 1, n−1, n and above, 2^256−1), in-place outputs, the
 * exact wide reduction, and randomSecret drawing the same scalars as scalar.ts randomScalar.
 *
 * A missing addon is a FAILURE, never a skip; with QUORUMKEY_NATIVE=0 the addon is loaded directly.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { bytesToBigInt, mod, N, randomScalar, scalarToBytes } from '../../src/protocol/math/scalar.js';
import {
  fromWide,
  isZero,
  nativeScalarKernel,
  randomSecret,
  scalarKernel,
  typescriptScalarKernel,
  type NativeScalar,
  type ScalarKernel,
} from '../../src/protocol/math/secret-scalar.js';
import { seededRng, type Rng } from '../../src/protocol/rng.js';

const ADDON_PATH = '../../../build/Release/quorumkey_native.node'; // from dist/test/native/
const nativeDisabled = process.env.QUORUMKEY_NATIVE === '0';

const big32 = (v: bigint): Uint8Array => new Uint8Array(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));
const toBig = (b: Uint8Array, i = 0): bigint => bytesToBigInt(b.subarray(32 * i, 32 * i + 32));
const concat = (xs: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(xs));

const EDGES = [0n, 1n, 2n, N - 2n, N - 1n, N, N + 1n, (1n << 256n) - 1n, 1n << 255n, (1n << 255n) - 1n];

function randomValues(rng: Rng, k: number): bigint[] {
  return Array.from({ length: k }, (_, i) => (i % 5 === 0 ? EDGES[(i / 5) % EDGES.length]! : bytesToBigInt(rng(32))));
}

type Op = 'scalarAdd' | 'scalarSub' | 'scalarMul' | 'scalarMulAdd';
const EXPECT: Record<Op, (x: bigint[]) => bigint> = {
  scalarAdd: ([a, b]) => a! + b!,
  scalarSub: ([a, b]) => a! - b!,
  scalarMul: ([a, b]) => a! * b!,
  scalarMulAdd: ([a, b, c]) => a! * b! + c!,
};
const ARITY: Record<Op, number> = { scalarAdd: 2, scalarSub: 2, scalarMul: 2, scalarMulAdd: 3 };

function call(kernel: ScalarKernel, op: Op, out: Uint8Array, args: Uint8Array[]): void {
  (kernel[op] as (...a: Uint8Array[]) => void)(out, ...args);
}

describe('native secret-scalar kernels', function () {
  this.timeout(60_000);
  let native: ScalarKernel;
  let raw: NativeScalar;
  const seed = process.env.QUORUMKEY_TEST_SEED ?? randomBytes(8).toString('hex');

  before(() => {
    try {
      raw = createRequire(import.meta.url)(ADDON_PATH) as NativeScalar;
    } catch (err) {
      throw new Error(`native addon not loadable from build/Release/quorumkey_native.node — run \`npm install\`: ${(err as Error).message}`);
    }
    native = nativeScalarKernel(raw);
  });

  it('is the kernel the product uses (unless QUORUMKEY_NATIVE=0)', () => {
    assert.equal(scalarKernel().name, nativeDisabled ? 'typescript' : 'native');
  });

  for (const op of Object.keys(EXPECT) as Op[]) {
    it(`${op}: native == reference == BigInt mod n, element-wise and broadcast, edge values (seed ${seed})`, () => {
      const rng = seededRng(`${op} ${seed}`);
      for (const k of [1, 2, 7, 64]) {
        const values = Array.from({ length: ARITY[op] }, () => randomValues(rng, k));
        // Each operand either k scalars or one broadcast scalar.
        for (let pattern = 0; pattern < 1 << ARITY[op]; pattern++) {
          if (k === 1 && pattern > 0) break;
          const args = values.map((v, j) => ((pattern >> j) & 1 ? big32(v[0]!) : concat(v.map(big32))));
          const expected = Array.from({ length: k }, (_, i) => mod(EXPECT[op](values.map((v, j) => mod((pattern >> j) & 1 ? v[0]! : v[i]!)))));
          for (const kernel of [native, typescriptScalarKernel]) {
            const out = new Uint8Array(32 * k);
            call(kernel, op, out, args);
            assert.deepEqual(Array.from({ length: k }, (_, i) => toBig(out, i)), expected, `${kernel.name} k=${k} pattern=${pattern}`);
          }
        }
      }
    });
  }

  it('every pair of edge values (add, sub, mul, mulAdd)', () => {
    const k = EDGES.length * EDGES.length;
    const a = concat(EDGES.flatMap((x) => EDGES.map(() => big32(x))));
    const b = concat(EDGES.flatMap(() => EDGES.map((y) => big32(y))));
    for (const op of Object.keys(EXPECT) as Op[]) {
      const args = ARITY[op] === 2 ? [a, b] : [a, b, b];
      const got = new Uint8Array(32 * k);
      const ref = new Uint8Array(32 * k);
      call(native, op, got, args);
      call(typescriptScalarKernel, op, ref, args);
      assert.deepEqual(got, ref, op);
    }
  });

  it('the output may be one of the operands', () => {
    const rng = seededRng(`alias ${seed}`);
    const a = concat(randomValues(rng, 5).map((v) => big32(mod(v))));
    const b = concat(randomValues(rng, 5).map((v) => big32(mod(v))));
    const c = big32(mod(bytesToBigInt(rng(32))));
    const expected = new Uint8Array(160);
    typescriptScalarKernel.scalarMulAdd(expected, a, b, a);
    const inPlace = a.slice();
    raw.scalarMulAdd(inPlace, inPlace, b, inPlace);
    assert.deepEqual(inPlace, expected);
    const broadcastOut = c.slice();
    raw.scalarMulAdd(broadcastOut, broadcastOut, broadcastOut, broadcastOut);
    assert.equal(toBig(broadcastOut), mod(toBig(c) * toBig(c) + toBig(c)));
  });

  it('scalarFromWide is exactly BigInt(48 bytes) mod n', () => {
    const rng = seededRng(`wide ${seed}`);
    const wides = [0n, 1n, N - 1n, N, (1n << 256n) - 1n, 1n << 256n, (1n << 384n) - 1n, ((1n << 128n) - 1n) * N, ((1n << 128n) - 1n) * N - 1n];
    const buf = concat([...wides.map((v) => new Uint8Array(Buffer.from(v.toString(16).padStart(96, '0'), 'hex'))), rng(48 * 50)]);
    const k = buf.length / 48;
    for (const kernel of [native, typescriptScalarKernel]) {
      const out = new Uint8Array(32 * k);
      kernel.scalarFromWide(out, buf);
      for (let i = 0; i < k; i++) assert.equal(toBig(out, i), bytesToBigInt(buf.subarray(48 * i, 48 * i + 48)) % N, `${kernel.name} ${i}`);
    }
    assert.equal(toBig(fromWide(buf.subarray(0, 96)), 1), 1n);
  });

  it('randomSecret draws the same scalars from the same rng bytes as randomScalar', () => {
    const a = seededRng(`random ${seed}`);
    const b = seededRng(`random ${seed}`);
    for (let i = 0; i < 50; i++) assert.equal(toBig(randomSecret(a)), randomScalar(b));
  });

  it('isZero', () => {
    assert.equal(isZero(new Uint8Array(32)), 1);
    for (let i = 0; i < 32; i++) {
      const x = new Uint8Array(32);
      x[i] = 0x80;
      assert.equal(isZero(x), 0);
    }
    assert.equal(isZero(scalarToBytes(N - 1n)), 0);
  });

  it('throws TypeError on bad arguments', () => {
    const s = new Uint8Array(32);
    const f = (fn: unknown, ...args: unknown[]) => () => (fn as (...a: unknown[]) => unknown)(...args);
    assert.throws(f(raw.scalarAdd, s, s), TypeError);
    assert.throws(f(raw.scalarAdd, new Uint8Array(0), s, s), TypeError);
    assert.throws(f(raw.scalarAdd, new Uint8Array(33), s, s), TypeError);
    assert.throws(f(raw.scalarAdd, new Uint8Array(64), s, new Uint8Array(96)), TypeError);
    assert.throws(f(raw.scalarMul, s, s, new Uint16Array(16)), TypeError);
    assert.throws(f(raw.scalarMulAdd, s, s, s), TypeError);
    assert.throws(f(raw.scalarFromWide, s, new Uint8Array(32)), TypeError);
    assert.throws(f(raw.scalarFromWide, new Uint8Array(64), new Uint8Array(48)), TypeError);
  });
});
