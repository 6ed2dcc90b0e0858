/** src/protocol/commitment.ts: hash commitments Com = H('commitment', context, salt, value). */
import assert from 'node:assert/strict';
import { commit, COMMITMENT_BYTES, commitmentOf, opens, SALT_BYTES } from '../../src/protocol/commitment.js';
import { seededRng, systemRng } from '../../src/protocol/rng.js';
import { taggedHash } from '../../src/protocol/transcript.js';

const enc = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const flip = (b: Uint8Array, i: number, mask = 1): Uint8Array => {
  const c = b.slice();
  c[i]! ^= mask;
  return c;
};

describe('commitment', () => {
  const context = enc.encode('key-1|session-7|dealer-2');
  const value = enc.encode('coefficient vector bytes');

  it('sizes: 32-byte commitment, 32-byte salt', () => {
    const { commitment, salt } = commit(context, value, systemRng);
    assert.equal(commitment.length, COMMITMENT_BYTES);
    assert.equal(salt.length, SALT_BYTES);
    assert.equal(COMMITMENT_BYTES, 32);
    assert.equal(SALT_BYTES, 32);
  });

  it('opens on the committed value, salt and context', () => {
    for (const v of [value, new Uint8Array(0), new Uint8Array(1000).fill(7)]) {
      const { commitment, salt } = commit(context, v, systemRng);
      assert.equal(opens(commitment, context, v, salt), true);
    }
  });

  it('is the documented tagged hash (known answer)', () => {
    const salt = new Uint8Array(32).fill(0x5a);
    assert.equal(hex(commitmentOf(context, value, salt)), hex(taggedHash('commitment', [['context', context], ['salt', salt], ['value', value]])));
  });

  it('binding: a changed value does not open', () => {
    const { commitment, salt } = commit(context, value, systemRng);
    for (let i = 0; i < value.length; i++) assert.equal(opens(commitment, context, flip(value, i), salt), false, `byte ${i}`);
    assert.equal(opens(commitment, context, value.subarray(0, value.length - 1), salt), false, 'truncated');
    assert.equal(opens(commitment, context, new Uint8Array([...value, 0]), salt), false, 'extended');
    assert.equal(opens(commitment, context, new Uint8Array(0), salt), false, 'empty');
  });

  it('a changed salt does not open; a salt of the wrong length never opens', () => {
    const { commitment, salt } = commit(context, value, systemRng);
    for (let i = 0; i < SALT_BYTES; i++) assert.equal(opens(commitment, context, value, flip(salt, i, 0x80)), false, `salt byte ${i}`);
    for (const len of [0, 16, 31, 33, 64]) {
      const wrong = new Uint8Array(len);
      wrong.set(salt.subarray(0, Math.min(len, SALT_BYTES)));
      assert.equal(opens(commitment, context, value, wrong), false, `salt of ${len} bytes`);
      // Even a commitment computed honestly over the wrong-length salt is refused.
      assert.equal(opens(commitmentOf(context, value, wrong), context, value, wrong), false, `honest commitment over a ${len}-byte salt`);
    }
  });

  it('a changed context does not open (no replay into another session or dealer)', () => {
    const { commitment, salt } = commit(context, value, systemRng);
    assert.equal(opens(commitment, enc.encode('key-1|session-7|dealer-3'), value, salt), false);
    assert.equal(opens(commitment, enc.encode('key-1|session-8|dealer-2'), value, salt), false);
    assert.equal(opens(commitment, new Uint8Array(0), value, salt), false);
  });

  it('moving bytes between context and value does not open', () => {
    const { commitment, salt } = commit(enc.encode('ab'), enc.encode('c'), systemRng);
    assert.equal(opens(commitment, enc.encode('a'), enc.encode('bc'), salt), false);
  });

  it('a changed or truncated commitment does not open', () => {
    const { commitment, salt } = commit(context, value, systemRng);
    for (let i = 0; i < COMMITMENT_BYTES; i++) assert.equal(opens(flip(commitment, i), context, value, salt), false);
    assert.equal(opens(commitment.subarray(0, 31), context, value, salt), false);
    assert.equal(opens(new Uint8Array(0), context, value, salt), false);
  });

  it('hiding: fresh salts make commitments to the same value differ', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) seen.add(hex(commit(context, value, systemRng).commitment));
    assert.equal(seen.size, 50);
  });

  it('is deterministic under seededRng', () => {
    const a = commit(context, value, seededRng('commitment'));
    const b = commit(context, value, seededRng('commitment'));
    const c = commit(context, value, seededRng('commitment/other'));
    assert.equal(hex(a.commitment), hex(b.commitment));
    assert.equal(hex(a.salt), hex(b.salt));
    assert.equal(hex(a.salt), hex(seededRng('commitment')(32)), 'the salt is the first 32 bytes of the rng');
    assert.notEqual(hex(a.commitment), hex(c.commitment));
  });
});
