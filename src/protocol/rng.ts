import { createHash, randomBytes } from 'node:crypto';

/** A source of uniformly random bytes. Injected everywhere so tests can be deterministic. */
export type Rng = (length: number) => Uint8Array;

export const systemRng: Rng = (length) => new Uint8Array(randomBytes(length));

/**
 * Deterministic generator for tests and known-answer vectors only: SHA-256 in counter mode
 * over a seed. Never used by default.
 */
export function seededRng(seed: string | Uint8Array): Rng {
  const key = createHash('sha256').update('quorumkey/test-rng').update(seed).digest();
  let counter = 0n;
  let buffered = new Uint8Array(0);
  return (length) => {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (buffered.length === 0) {
        const block = Buffer.alloc(8);
        block.writeBigUInt64BE(counter++);
        buffered = new Uint8Array(createHash('sha256').update(key).update(block).digest());
      }
      const take = Math.min(buffered.length, length - filled);
      out.set(buffered.subarray(0, take), filled);
      buffered = buffered.subarray(take);
      filled += take;
    }
    return out;
  };
}
