/**
 * Bit-matrix helpers for the OT extension. Everything works on 32-bit words.
 *
 * Conventions (shared with extension.ts and the wire format):
 * - A bit vector is packed LSB-first: bit j is (bytes[j >> 3] >> (j & 7)) & 1. Read as
 *   little-endian 32-bit words, bit j is (words[j >> 5] >>> (j & 31)) & 1. The code views byte
 *   buffers as Uint32Array, so it requires a little-endian platform (checked at load time:
 *   x64, arm64 and every other platform Node 20 ships for except s390x).
 * - A 128-bit value (a row, a check value) is 16 bytes / 4 little-endian 32-bit words; bit i is
 *   bit i & 31 of word i >>> 5.
 * - A 128-column matrix is stored column-major: column i occupies words [i·W, (i+1)·W) of one
 *   Uint32Array, W = rows / 32. Row j is the 128-bit vector whose bit i is bit j of column i.
 *
 * The columns and rows are secret (OT pads, Bob's choice bits). columnParities,
 * transposeToRows and the PRG column expansion (receiverColumns, senderColumns) run in the
 * native addon (native/ot.cc: 64-bit words, no branch or table index on the data, Δ bits as
 * masks) when it is loaded; the TypeScript functions reference… are the reference, used only
 * without the addon (a signer refuses to start then) and tested against the native ones
 * (test/native/ot-bits.test.ts).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { loadNative, registerKernel } from '../math/kernels.js';

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('quorumkey OT extension requires a little-endian platform');
}

/** In-place transpose of a 32×32 bit matrix: afterwards bit c of a[r] is the old bit r of a[c]. */
function transpose32(a: Int32Array): void {
  let m = 0x0000ffff;
  for (let j = 16; j !== 0; j >>>= 1, m ^= m << j) {
    for (let k = 0; k < 32; k = ((k | j) + 1) & ~j) {
      const t = ((a[k]! >>> j) ^ a[k | j]!) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

/**
 * Transposes the first 32·rowBlocks rows of a column-major 128-column matrix (W words per
 * column) into row-major form: row j occupies words [4j, 4j + 4) of `out` (16 bytes, bit i =
 * bit j of column i). Works in 32×32 blocks with the recursive mask-swap transpose (80
 * word swaps per block, i.e. ≈ 10 word operations per row).
 */
export function referenceTransposeToRows(cols: Uint32Array, w: number, rowBlocks: number, out: Uint32Array): void {
  if (rowBlocks > w || cols.length !== 128 * w || out.length < rowBlocks * 128) throw new RangeError('transposeToRows: bad sizes');
  const a = new Int32Array(32);
  for (let rb = 0; rb < rowBlocks; rb++) {
    for (let cb = 0; cb < 4; cb++) {
      for (let k = 0, off = cb * 32 * w + rb; k < 32; k++, off += w) a[k] = cols[off]!;
      transpose32(a);
      for (let r = 0, dst = rb * 128 + cb; r < 32; r++, dst += 4) out[dst] = a[r]!;
    }
  }
  a.fill(0);
}

/** Parity of the set bits of a 32-bit word, without a table or a branch. */
function parity32(v: number): number {
  v ^= v >>> 16;
  v ^= v >>> 8;
  v ^= v >>> 4;
  v ^= v >>> 2;
  v ^= v >>> 1;
  return v & 1;
}

/**
 * The consistency-check hash of the corrected OT extension (extension.ts): for each of `ncols`
 * secret columns (each `words` 32-bit words, column i at [i·words, (i+1)·words)) and each of the
 * 128 public challenge columns chi_c (same layout), the bit ⟨column_i, chi_c⟩ over GF(2).
 * Output: ncols × 4 words; bit c of column i's 128-bit value sits in word i·4 + (c >>> 5) at bit
 * c & 31. Only AND, XOR and shifts on the secret words: no branch or table index depends on them.
 */
export function referenceColumnParities(columns: Uint32Array, ncols: number, words: number, chi: Uint32Array): Uint32Array {
  if (columns.length < ncols * words || chi.length < 128 * words) throw new RangeError('columnParities: buffers too short');
  const out = new Uint32Array(ncols * 4);
  for (let i = 0; i < ncols; i++) {
    const col = i * words;
    for (let c = 0; c < 128; c++) {
      const ch = c * words;
      let acc = 0;
      for (let k = 0; k < words; k++) acc ^= columns[col + k]! & chi[ch + k]!;
      out[i * 4 + (c >>> 5)]! |= parity32(acc) << (c & 31);
    }
  }
  return out;
}

const ZERO_IV = new Uint8Array(16);

/** PRG(seed) = AES-256-CTR(key = SHA-256(prgDigest ‖ seed), zero IV) over zeros, into out. */
function referencePrg(prgDigest: Uint8Array, seed: Uint8Array, out: Uint8Array): void {
  const key = createHash('sha256').update(prgDigest).update(seed).digest();
  const stream = createCipheriv('aes-256-ctr', key, ZERO_IV).update(new Uint8Array(out.length));
  out.set(stream);
  stream.fill(0);
  key.fill(0);
}

/** Bob's columns: t0_i = PRG(k_{i,0}) and u_i = t0_i ⊕ PRG(k_{i,1}) ⊕ b (seeds packed, 32 bytes each). */
export function referenceReceiverColumns(prgDigest: Uint8Array, seeds0: Uint8Array, seeds1: Uint8Array, b: Uint8Array, t0: Uint8Array, u: Uint8Array): void {
  const n = b.length;
  const t1 = new Uint8Array(n);
  for (let i = 0; i < 128; i++) {
    const t0i = t0.subarray(i * n, (i + 1) * n);
    referencePrg(prgDigest, seeds0.subarray(32 * i, 32 * i + 32), t0i);
    referencePrg(prgDigest, seeds1.subarray(32 * i, 32 * i + 32), t1);
    for (let k = 0; k < n; k++) u[i * n + k] = t0i[k]! ^ t1[k]! ^ b[k]!;
  }
  t1.fill(0);
}

/** Alice's columns: q_i = PRG(s_i) ⊕ Δ_i·u_i, without a branch on Δ_i. */
export function referenceSenderColumns(prgDigest: Uint8Array, seeds: Uint8Array, delta: Uint8Array, u: Uint8Array, q: Uint8Array): void {
  const n = u.length / 128;
  for (let i = 0; i < 128; i++) {
    const qi = q.subarray(i * n, (i + 1) * n);
    referencePrg(prgDigest, seeds.subarray(32 * i, 32 * i + 32), qi);
    const mask = -((delta[i >>> 3]! >>> (i & 7)) & 1) & 0xff;
    for (let k = 0; k < n; k++) qi[k]! ^= u[i * n + k]! & mask;
  }
}

// ---------------------------------------------------------------------------------------------
// Dispatch to the native kernels.

/** The addon's bit-matrix surface (native/ot.cc). */
export interface NativeOtBits {
  otColumnParities(columns: Uint8Array, ncols: number, words: number, chi: Uint8Array): Uint8Array;
  otTransposeToRows(cols: Uint8Array, w: number, rowBlocks: number, out: Uint8Array): void;
  otReceiverColumns(prgDigest: Uint8Array, seeds0: Uint8Array, seeds1: Uint8Array, b: Uint8Array, t0: Uint8Array, u: Uint8Array): void;
  otSenderColumns(prgDigest: Uint8Array, seeds: Uint8Array, delta: Uint8Array, u: Uint8Array, q: Uint8Array): void;
}

const bytesOf = (a: Uint32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

const addon = loadNative<NativeOtBits>();
let native: NativeOtBits | undefined = addon;

/** Which implementation columnParities / transposeToRows use: 'native' or 'typescript'. */
export function otBitsBackend(): 'native' | 'typescript' {
  return native ? 'native' : 'typescript';
}
registerKernel({ name: 'ot-bits', active: otBitsBackend, useReference: () => (native = undefined) });

/** See referenceColumnParities; native when the addon is loaded. */
export function columnParities(columns: Uint32Array, ncols: number, words: number, chi: Uint32Array): Uint32Array {
  if (!native) return referenceColumnParities(columns, ncols, words, chi);
  if (columns.length < ncols * words || chi.length < 128 * words) throw new RangeError('columnParities: buffers too short');
  if (ncols === 0 || words === 0) return new Uint32Array(ncols * 4);
  const out = native.otColumnParities(bytesOf(columns), ncols, words, bytesOf(chi));
  return new Uint32Array(out.buffer, out.byteOffset, ncols * 4);
}

/** See referenceTransposeToRows; native when the addon is loaded. */
export function transposeToRows(cols: Uint32Array, w: number, rowBlocks: number, out: Uint32Array): void {
  if (!native) return referenceTransposeToRows(cols, w, rowBlocks, out);
  if (rowBlocks > w || cols.length !== 128 * w || out.length < rowBlocks * 128) throw new RangeError('transposeToRows: bad sizes');
  if (rowBlocks === 0) return;
  native.otTransposeToRows(bytesOf(cols), w, rowBlocks, bytesOf(out));
}

/** See referenceReceiverColumns; native when the addon is loaded. */
export function receiverColumns(prgDigest: Uint8Array, seeds0: Uint8Array, seeds1: Uint8Array, b: Uint8Array, t0: Uint8Array, u: Uint8Array): void {
  (native ? native.otReceiverColumns : referenceReceiverColumns)(prgDigest, seeds0, seeds1, b, t0, u);
}

/** See referenceSenderColumns; native when the addon is loaded. */
export function senderColumns(prgDigest: Uint8Array, seeds: Uint8Array, delta: Uint8Array, u: Uint8Array, q: Uint8Array): void {
  (native ? native.otSenderColumns : referenceSenderColumns)(prgDigest, seeds, delta, u, q);
}
