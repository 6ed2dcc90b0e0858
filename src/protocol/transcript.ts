/**
 * Fiat–Shamir transcripts and domain-separated hashing. Every item is written as
 * label length ‖ label ‖ value length ‖ value (32-bit big-endian lengths), so no two
 * different sequences of items encode to the same bytes.
 */
import { createHash, type Hash } from 'node:crypto';
import { reduceWide } from './math/scalar.js';

const PROTOCOL_TAG = 'quorumkey/v1';

function u32(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`transcript: ${n} is not a 32-bit unsigned integer`);
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** The encoding of one item, in four parts (hashed one after the other, never concatenated). */
function itemParts(label: string, value: Uint8Array | string | number): Uint8Array[] {
  const bytes = typeof value === 'string' ? new TextEncoder().encode(value) : typeof value === 'number' ? u32(value) : value;
  const labelBytes = new TextEncoder().encode(label);
  return [u32(labelBytes.length), labelBytes, u32(bytes.length), bytes];
}

export class Transcript {
  private readonly hash: Hash;

  constructor(domain: string) {
    this.hash = createHash('sha512');
    this.append('protocol', PROTOCOL_TAG);
    this.append('domain', domain);
  }

  append(label: string, value: Uint8Array | string | number): this {
    for (const part of itemParts(label, value)) this.hash.update(part);
    return this;
  }

  /** 32-byte digest; the transcript is consumed. */
  digest(): Uint8Array {
    return new Uint8Array(this.hash.digest().subarray(0, 32));
  }

  /** A scalar from the transcript (64 bytes reduced mod N); the transcript is consumed. */
  challengeScalar(): bigint {
    return reduceWide(new Uint8Array(this.hash.digest()));
  }
}

/**
 * The bytes a Transcript(domain) hashes for these items, for native code that continues the
 * same hash (native/base-ot.cc appends the items of its key derivation to it).
 */
export function transcriptPrefix(domain: string, items: ReadonlyArray<readonly [string, Uint8Array | string | number]>): Uint8Array {
  const parts = [['protocol', PROTOCOL_TAG] as const, ['domain', domain] as const, ...items].flatMap(([label, value]) => itemParts(label, value));
  return new Uint8Array(Buffer.concat(parts));
}

/** Hash of labelled items under a domain tag: H(domain, items...). */
export function taggedHash(domain: string, items: ReadonlyArray<readonly [string, Uint8Array | string | number]>): Uint8Array {
  const t = new Transcript(domain);
  for (const [label, value] of items) t.append(label, value);
  return t.digest();
}
