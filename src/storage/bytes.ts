import { SealError } from './seal-error.js';

/** Bounds-checked big-endian reader over a header; running off the end is a 'truncated' error. */
export class ByteReader {
  private pos = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  bytes(n: number, field: string): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new SealError('truncated', `${this.what}: field ${field} needs ${n} bytes, ${this.remaining} left`);
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(field: string): number {
    return this.bytes(1, field)[0]!;
  }

  u16(field: string): number {
    const b = this.bytes(2, field);
    return (b[0]! << 8) | b[1]!;
  }

  u32(field: string): number {
    const b = this.bytes(4, field);
    return ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!;
  }

  /** Requires that the whole buffer was consumed. */
  end(): void {
    if (this.remaining !== 0) {
      throw new SealError('malformed', `${this.what}: ${this.remaining} unexpected trailing bytes`);
    }
  }
}

export function u16be(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError(`u16 out of range: ${n}`);
  return Uint8Array.of(n >>> 8, n & 0xff);
}

export function u32be(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`u32 out of range: ${n}`);
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export function concatBytes(...parts: Uint8Array[]): Buffer {
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = Buffer.alloc(total); // never from the shared pool
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
