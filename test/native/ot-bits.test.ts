/**
 * The native OT bit-matrix kernels (native/ot.cc) against the TypeScript
 * reference of src/protocol/ot/bits.ts: columnParities and transposeToRows on random inputs of
 * several shapes (ncols 1 and 128, odd word counts, one and many row blocks), at any alignment,
 * and the PRG column expansion of both sides of the extension.
 *
 * A missing addon is a FAILURE, never a skip (as in curve.test.ts); with QUORUMKEY_NATIVE=0 the
 * product runs on the reference and the addon is loaded directly so that it is still checked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  columnParities,
  otBitsBackend,
  referenceColumnParities,
  referenceReceiverColumns,
  referenceSenderColumns,
  referenceTransposeToRows,
  transposeToRows,
  type NativeOtBits,
} from '../../src/protocol/ot/bits.js';
import { seededRng, type Rng } from '../../src/protocol/rng.js';

const ADDON_PATH = '../../../build/Release/quorumkey_native.node'; // from dist/test/native/
const nativeDisabled = process.env.QUORUMKEY_NATIVE === '0';

function loadAddonDirectly(): NativeOtBits {
  try {
    return createRequire(import.meta.url)(ADDON_PATH) as NativeOtBits;
  } catch (err) {
    throw new Error(`native addon not loadable from build/Release/quorumkey_native.node — run \`npm install\`: ${(err as Error).message}`);
  }
}

const words32 = (rng: Rng, n: number): Uint32Array => new Uint32Array(new Uint8Array(rng(4 * n)).buffer);
const bytesOf = (a: Uint32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The raw addon's columnParities as a Uint32Array. */
function rawParities(raw: NativeOtBits, columns: Uint32Array, ncols: number, words: number, chi: Uint32Array): Uint32Array {
  const out = raw.otColumnParities(bytesOf(columns), ncols, words, bytesOf(chi));
  return new Uint32Array(out.buffer, out.byteOffset, out.byteLength / 4);
}

describe('native OT bit-matrix kernels', function () {
  this.timeout(120_000);
  let raw: NativeOtBits;
  const seed = process.env.QUORUMKEY_TEST_SEED ?? randomBytes(8).toString('hex');

  before(() => {
    raw = loadAddonDirectly();
  });

  it('are what the product uses (unless QUORUMKEY_NATIVE=0)', () => {
    assert.equal(otBitsBackend(), nativeDisabled ? 'typescript' : 'native');
    for (const name of ['otColumnParities', 'otTransposeToRows', 'otReceiverColumns', 'otSenderColumns']) assert.equal(typeof (raw as unknown as Record<string, unknown>)[name], 'function', name);
  });

  describe('columnParities', () => {
    // words: 1 and other odd counts (a column then starts mid-64-bit-word), even, and the
    // sizes of a one-presignature and a batch-32 VOLE (m' = 768 and 13,568 rows).
    for (const ncols of [1, 2, 3, 128]) {
      for (const words of [1, 2, 3, 5, 8, 17, 24, 424]) {
        if (ncols === 128 && words > 24 && words !== 424) continue;
        it(`native == reference, ncols ${ncols}, ${words} word(s) (seed ${seed})`, () => {
          const rng = seededRng(`parities ${ncols} ${words} ${seed}`);
          const columns = words32(rng, ncols * words);
          const chi = words32(rng, 128 * words);
          const expected = referenceColumnParities(columns, ncols, words, chi);
          assert.deepEqual([...rawParities(raw, columns, ncols, words, chi)], [...expected]);
          assert.deepEqual([...columnParities(columns, ncols, words, chi)], [...expected]);
        });
      }
    }

    it('edge values: zero, all-ones, single bits (each parity bit lands where the reference puts it)', () => {
      const words = 3;
      const chi = words32(seededRng(`edge chi ${seed}`), 128 * words);
      const cases = [new Uint32Array(2 * words), new Uint32Array(2 * words).fill(0xffffffff)];
      for (let bit = 0; bit < 32 * words; bit += 13) {
        const c = new Uint32Array(2 * words);
        c[bit >>> 5] = 1 << (bit & 31);
        c[words + ((bit * 7) % words)] = 0x80000001;
        cases.push(c);
      }
      for (const columns of cases) assert.deepEqual([...rawParities(raw, columns, 2, words, chi)], [...referenceColumnParities(columns, 2, words, chi)]);
    });

    it('reads buffers longer than needed and views at an offset', () => {
      const rng = seededRng(`views ${seed}`);
      const words = 7;
      const host = words32(rng, 3 * words + 5);
      const columns = host.subarray(5, 5 + 3 * words);
      const chiHost = words32(rng, 128 * words + 9);
      const chi = chiHost.subarray(1);
      assert.deepEqual([...columnParities(columns, 3, words, chi)], [...referenceColumnParities(columns, 3, words, chi)]);
    });

    it('does not modify its inputs', () => {
      const rng = seededRng(`inputs ${seed}`);
      const columns = words32(rng, 128 * 5);
      const chi = words32(rng, 128 * 5);
      const copies = [columns.slice(), chi.slice()];
      rawParities(raw, columns, 128, 5, chi);
      assert.deepEqual([columns, chi], copies);
    });

    it('rejects short buffers (RangeError from the dispatcher, TypeError from the raw addon)', () => {
      const columns = new Uint32Array(10);
      const chi = new Uint32Array(128 * 5);
      assert.throws(() => columnParities(columns, 3, 5, chi), RangeError);
      assert.throws(() => columnParities(new Uint32Array(15), 3, 5, chi.subarray(1)), RangeError);
      assert.throws(() => raw.otColumnParities(bytesOf(columns), 3, 5, bytesOf(chi)), TypeError);
      assert.throws(() => raw.otColumnParities(bytesOf(new Uint32Array(15)), 3, 5, bytesOf(chi).subarray(4)), TypeError);
      assert.throws(() => raw.otColumnParities(bytesOf(columns), 1, 0, bytesOf(chi)), TypeError);
      assert.throws(() => (raw.otColumnParities as (...a: unknown[]) => unknown)(columns, 1, 5, bytesOf(chi)), TypeError);
    });
  });

  describe('transposeToRows', () => {
    // w: the 32-bit words per column; rowBlocks ≤ w (odd ones end in a half 64×64 block).
    for (const [w, rowBlocks] of [
      [1, 1],
      [2, 1],
      [2, 2],
      [3, 3],
      [12, 11],
      [24, 13],
      [424, 416],
      [425, 425],
    ] as const) {
      it(`native == reference, w ${w}, ${rowBlocks} row block(s) (seed ${seed})`, () => {
        const rng = seededRng(`transpose ${w} ${rowBlocks} ${seed}`);
        const cols = words32(rng, 128 * w);
        const expected = new Uint32Array(rowBlocks * 128 + 8).fill(0xdeadbeef);
        referenceTransposeToRows(cols, w, rowBlocks, expected);
        const viaRaw = new Uint32Array(rowBlocks * 128 + 8).fill(0xdeadbeef);
        raw.otTransposeToRows(bytesOf(cols), w, rowBlocks, bytesOf(viaRaw));
        assert.deepEqual([...viaRaw], [...expected]); // also: nothing written beyond the rows
        const viaProduct = new Uint32Array(rowBlocks * 128 + 8).fill(0xdeadbeef);
        transposeToRows(cols, w, rowBlocks, viaProduct);
        assert.deepEqual([...viaProduct], [...expected]);
      });
    }

    it('zero row blocks writes nothing', () => {
      const out = new Uint32Array(128).fill(7);
      transposeToRows(new Uint32Array(128 * 2), 2, 0, out);
      assert.ok(out.every((v) => v === 7));
    });

    it('rejects bad sizes', () => {
      const cols = new Uint32Array(128 * 4);
      assert.throws(() => transposeToRows(cols, 4, 5, new Uint32Array(5 * 128)), RangeError);
      assert.throws(() => transposeToRows(cols, 3, 1, new Uint32Array(128)), RangeError);
      assert.throws(() => transposeToRows(cols, 4, 2, new Uint32Array(128)), RangeError);
      assert.throws(() => raw.otTransposeToRows(bytesOf(cols), 4, 5, new Uint8Array(5 * 512)), TypeError);
      assert.throws(() => raw.otTransposeToRows(bytesOf(cols), 4, 2, new Uint8Array(511)), TypeError);
      assert.throws(() => (raw.otTransposeToRows as (...a: unknown[]) => unknown)(bytesOf(cols), 4, 1, new Uint32Array(128)), TypeError);
    });
  });
  describe('PRG column expansion', () => {
    // Column lengths of the smallest extension (m' = 384 rows), a one-presignature VOLE (768) and
    // a batch-32 VOLE (13,568), in bytes.
    for (const colBytes of [48, 96, 1696]) {
      it(`Bob's t0 and u, and Alice's q, equal the reference (${colBytes}-byte columns, seed ${seed})`, () => {
        const rng = seededRng(`columns ${seed} ${colBytes}`);
        const prgDigest = rng(32);
        const seeds0 = rng(128 * 32);
        const seeds1 = rng(128 * 32);
        const b = rng(colBytes);
        const [t0, u, t0Ref, uRef] = [0, 1, 2, 3].map(() => new Uint8Array(128 * colBytes));
        raw.otReceiverColumns(prgDigest, seeds0, seeds1, b, t0!, u!);
        referenceReceiverColumns(prgDigest, seeds0, seeds1, b, t0Ref!, uRef!);
        assert.deepEqual([t0, u], [t0Ref, uRef]);
        for (const delta of [rng(16), new Uint8Array(16), new Uint8Array(16).fill(0xff)]) {
          const q = new Uint8Array(128 * colBytes);
          const qRef = new Uint8Array(128 * colBytes);
          raw.otSenderColumns(prgDigest, seeds0, delta, u!, q);
          referenceSenderColumns(prgDigest, seeds0, delta, u!, qRef);
          assert.deepEqual(q, qRef);
        }
        // The correlation the extension relies on: with s_i = k_{i,Δ_i}, q_i = t0_i ⊕ Δ_i·b.
        const delta = rng(16);
        const chosen = new Uint8Array(128 * 32);
        for (let i = 0; i < 128; i++) chosen.set(((delta[i >> 3]! >> (i & 7)) & 1 ? seeds1 : seeds0).subarray(32 * i, 32 * i + 32), 32 * i);
        const q = new Uint8Array(128 * colBytes);
        raw.otSenderColumns(prgDigest, chosen, delta, u!, q);
        for (let i = 0; i < 128; i++) {
          const d = (delta[i >> 3]! >> (i & 7)) & 1;
          const expected = t0!.subarray(i * colBytes, (i + 1) * colBytes).map((x, k) => x ^ (d ? b[k]! : 0));
          assert.deepEqual(q.subarray(i * colBytes, (i + 1) * colBytes), expected, `column ${i}`);
        }
      });
    }

    it('throw TypeError on bad lengths', () => {
      const d = new Uint8Array(32);
      const seeds = new Uint8Array(128 * 32);
      const cols = new Uint8Array(128 * 48);
      assert.throws(() => raw.otReceiverColumns(d.subarray(1), seeds, seeds, new Uint8Array(48), cols, cols), TypeError);
      assert.throws(() => raw.otReceiverColumns(d, seeds.subarray(32), seeds, new Uint8Array(48), cols, cols), TypeError);
      assert.throws(() => raw.otReceiverColumns(d, seeds, seeds, new Uint8Array(47), cols, cols), TypeError);
      assert.throws(() => raw.otReceiverColumns(d, seeds, seeds, new Uint8Array(48), cols.subarray(1), cols), TypeError);
      assert.throws(() => raw.otSenderColumns(d, seeds, new Uint8Array(15), cols, cols), TypeError);
      assert.throws(() => raw.otSenderColumns(d, seeds, new Uint8Array(16), cols.subarray(16), cols), TypeError);
      assert.throws(() => raw.otSenderColumns(d, seeds, new Uint8Array(16), cols, cols.subarray(1)), TypeError);
      assert.throws(() => raw.otSenderColumns(d, seeds, new Uint8Array(16), new Uint8Array(128 * 48 + 5), cols), TypeError);
    });
  });
});
