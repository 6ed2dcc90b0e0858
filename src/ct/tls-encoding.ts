/**
 * The TLS presentation language (RFC 5246 §4) as RFC 6962 uses it: big-endian integers and
 * length-prefixed opaque vectors. Pure: no I/O. The reader throws TlsDecodeError on every
 * truncation or overlong vector, so a malformed structure always gets a named error.
 */

export class TlsDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsDecodeError';
  }
}

/** Writes a structure by appending fields in order. */
export class TlsWriter {
  private readonly parts: Uint8Array[] = [];

  uint(value: number | bigint, bytes: 1 | 2 | 3 | 4 | 8): this {
    let v = BigInt(value);
    if (v < 0n || v >= 1n << BigInt(8 * bytes)) throw new RangeError(`${value} does not fit ${bytes} byte(s)`);
    const out = new Uint8Array(bytes);
    for (let k = bytes - 1; k >= 0; k--) {
      out[k] = Number(v & 0xffn);
      v >>= 8n;
    }
    this.parts.push(out);
    return this;
  }

  bytes(data: Uint8Array): this {
    this.parts.push(data);
    return this;
  }

  /** opaque data<0..2^(8·lengthBytes)−1>: the length, then the bytes. */
  vector(data: Uint8Array, lengthBytes: 1 | 2 | 3): this {
    return this.uint(data.length, lengthBytes).bytes(data);
  }

  finish(): Uint8Array {
    return Uint8Array.from(Buffer.concat(this.parts));
  }
}

/** Reads a structure field by field; `end()` insists every byte was consumed. */
export class TlsReader {
  private pos = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private take(n: number, field: string): Uint8Array {
    if (this.pos + n > this.buf.length) throw new TlsDecodeError(`${this.what}: truncated ${field} (needs ${n} bytes, ${this.remaining} left)`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  uint(bytes: 1 | 2 | 3, field: string): number {
    let v = 0;
    for (const b of this.take(bytes, field)) v = v * 256 + b;
    return v;
  }

  uint64(field: string): bigint {
    let v = 0n;
    for (const b of this.take(8, field)) v = (v << 8n) | BigInt(b);
    return v;
  }

  bytes(n: number, field: string): Uint8Array {
    return this.take(n, field);
  }

  vector(lengthBytes: 1 | 2 | 3, field: string, min = 0): Uint8Array {
    const n = this.uint(lengthBytes, `${field} length`);
    if (n < min) throw new TlsDecodeError(`${this.what}: ${field} is shorter than ${min} bytes`);
    return this.take(n, field);
  }

  end(): void {
    if (this.pos !== this.buf.length) throw new TlsDecodeError(`${this.what}: ${this.remaining} trailing bytes`);
  }
}
