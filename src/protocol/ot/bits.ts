/**
 * Bit-matrix and GF(2^128) helpers for the OT extension. Everything works on 32-bit words.
 *
 * Conventions (shared with extension.ts and the wire format):
 * - A bit vector is packed LSB-first: bit j is (bytes[j >> 3] >> (j & 7)) & 1. Read as
 *   little-endian 32-bit words, bit j is (words[j >> 5] >>> (j & 31)) & 1. The code views byte
 *   buffers as Uint32Array, so it requires a little-endian platform (checked at load time:
 *   x64, arm64 and every other platform Node 20 ships for except s390x).
 * - A GF(2^128) element is 16 bytes / 4 little-endian 32-bit limbs; bit i is the coefficient of
 *   x^i. The field is GF(2)[x] / (x^128 + x^7 + x^2 + x + 1).
 * - A 128-column matrix is stored column-major: column i occupies words [i·W, (i+1)·W) of one
 *   Uint32Array, W = rows / 32. Row j is the 128-bit vector whose bit i is bit j of column i.
 */

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('quorumkey OT extension requires a little-endian platform');
}

/** GF(2^128) element as 4 little-endian 32-bit limbs. */
export type Gf128 = Uint32Array;

export function gfFromBytes(bytes: Uint8Array): Gf128 {
  if (bytes.length !== 16) throw new RangeError('GF(2^128) element must be 16 bytes');
  const out = new Uint32Array(4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export function gfToBytes(a: Gf128): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + 16));
}

/** a · x in GF(2^128), in place. */
export function gfMulXInPlace(a: Gf128): void {
  const carry = a[3]! >>> 31;
  a[3] = (a[3]! << 1) | (a[2]! >>> 31);
  a[2] = (a[2]! << 1) | (a[1]! >>> 31);
  a[1] = (a[1]! << 1) | (a[0]! >>> 31);
  a[0] = (a[0]! << 1) ^ (0x87 & -carry);
}

/**
 * a · b in GF(2^128): Horner over the bits of b from the top, 32-bit limbs, branch-free
 * (masks instead of data-dependent branches). About 2,000 word operations; the hot path
 * (the consistency check) does not call it per row, see combineColumns.
 */
export function gfMul(a: Gf128, b: Gf128): Gf128 {
  const a0 = a[0]!, a1 = a[1]!, a2 = a[2]!, a3 = a[3]!;
  let r0 = 0, r1 = 0, r2 = 0, r3 = 0;
  for (let w = 3; w >= 0; w--) {
    const bw = b[w]!;
    for (let k = 31; k >= 0; k--) {
      const carry = r3 >>> 31;
      r3 = (r3 << 1) | (r2 >>> 31);
      r2 = (r2 << 1) | (r1 >>> 31);
      r1 = (r1 << 1) | (r0 >>> 31);
      r0 = (r0 << 1) ^ (0x87 & -carry);
      const mask = -((bw >>> k) & 1);
      r0 ^= a0 & mask;
      r1 ^= a1 & mask;
      r2 ^= a2 & mask;
      r3 ^= a3 & mask;
    }
  }
  return Uint32Array.of(r0, r1, r2, r3);
}

/**
 * Σ_j chi_j · row_j over GF(2^128) for a 128-column matrix of `rows` rows (a multiple of 8),
 * without transposing and without a field multiplication per row.
 *
 * Writing row_j = Σ_i bit_i(row_j) x^i gives Σ_j chi_j row_j = Σ_i x^i S_i with
 * S_i = ⊕_{j : column i has bit j set} chi_j: a GF(2)-linear map of each column. S_i is
 * accumulated with the method of four Russians: for every group of 8 rows a 256-entry table of
 * all XOR combinations of their 8 chi values is built (1,020 word XORs), then each column's
 * byte for those rows selects one entry (128 × 4 word XORs). That is ≈ 200 word operations per
 * row, against ≈ 2,000 for a multiplication per row. Finally Σ_i x^i S_i by Horner (128 cheap
 * multiplications by x).
 *
 * `cols` holds the 128 columns of W = rows/32 words each; `chi` holds rows × 4 words.
 */
export function combineColumns(cols: Uint32Array, rows: number, chi: Uint32Array): Gf128 {
  if (rows % 8 !== 0 || cols.length !== 4 * rows || chi.length !== 4 * rows) throw new RangeError('combineColumns: bad sizes');
  const colBytes = rows >>> 3;
  const bytes = new Uint8Array(cols.buffer, cols.byteOffset, cols.byteLength);
  const s = new Int32Array(128 * 4);
  const table = new Int32Array(256 * 4);
  for (let g = 0; g < colBytes; g++) {
    // table[n] = ⊕_{bit k of n set} chi_{8g+k}
    for (let k = 0; k < 8; k++) {
      const c = (8 * g + k) * 4;
      const c0 = chi[c]!, c1 = chi[c + 1]!, c2 = chi[c + 2]!, c3 = chi[c + 3]!;
      const half = 1 << k;
      for (let n = 0; n < half; n++) {
        const src = n * 4, dst = (half + n) * 4;
        table[dst] = table[src]! ^ c0;
        table[dst + 1] = table[src + 1]! ^ c1;
        table[dst + 2] = table[src + 2]! ^ c2;
        table[dst + 3] = table[src + 3]! ^ c3;
      }
    }
    for (let i = 0, off = g; i < 128; i++, off += colBytes) {
      const p = bytes[off]! * 4, q = i * 4;
      s[q] ^= table[p]!;
      s[q + 1] ^= table[p + 1]!;
      s[q + 2] ^= table[p + 2]!;
      s[q + 3] ^= table[p + 3]!;
    }
  }
  table.fill(0);
  const acc = new Uint32Array(4);
  for (let i = 127; i >= 0; i--) {
    gfMulXInPlace(acc);
    acc[0] ^= s[4 * i]!;
    acc[1] ^= s[4 * i + 1]!;
    acc[2] ^= s[4 * i + 2]!;
    acc[3] ^= s[4 * i + 3]!;
  }
  s.fill(0);
  return acc;
}

/** Σ_j bit_j · chi_j over GF(2^128) for a packed bit vector of `rows` bits. */
export function combineBits(bits: Uint32Array, rows: number, chi: Uint32Array): Gf128 {
  let r0 = 0, r1 = 0, r2 = 0, r3 = 0;
  for (let j = 0; j < rows; j++) {
    const mask = -((bits[j >>> 5]! >>> (j & 31)) & 1);
    const c = 4 * j;
    r0 ^= chi[c]! & mask;
    r1 ^= chi[c + 1]! & mask;
    r2 ^= chi[c + 2]! & mask;
    r3 ^= chi[c + 3]! & mask;
  }
  return Uint32Array.of(r0, r1, r2, r3);
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
export function transposeToRows(cols: Uint32Array, w: number, rowBlocks: number, out: Uint32Array): void {
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
