/**
 * src/protocol/transcript.ts: the length-prefixed encoding is unambiguous, domains separate, and
 * the digest is pinned by an independent re-implementation of the documented encoding
 * (SHA-512 over label length ‖ label ‖ value length ‖ value with 32-bit big-endian lengths,
 * preceded by the ('protocol', 'quorumkey/v1') and ('domain', domain) items).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { N } from '../../src/protocol/math/scalar.js';
import { seededRng } from '../../src/protocol/rng.js';
import { taggedHash, Transcript } from '../../src/protocol/transcript.js';

type Item = readonly [string, Uint8Array | string | number];

const enc = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Independent encoder, written from the module's documentation only. */
function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function encodeItem(label: string, value: Uint8Array | string | number): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : typeof value === 'number' ? u32be(value) : Buffer.from(value);
  const l = Buffer.from(label, 'utf8');
  return Buffer.concat([u32be(l.length), l, u32be(v.length), v]);
}
function referenceWide(domain: string, items: readonly Item[]): Buffer {
  const h = createHash('sha512');
  h.update(encodeItem('protocol', 'quorumkey/v1'));
  h.update(encodeItem('domain', domain));
  for (const [label, value] of items) h.update(encodeItem(label, value));
  return h.digest();
}
function referenceDigest(domain: string, items: readonly Item[]): string {
  return referenceWide(domain, items).subarray(0, 32).toString('hex');
}

function digestOf(domain: string, items: readonly Item[]): string {
  const t = new Transcript(domain);
  for (const [label, value] of items) t.append(label, value);
  return hex(t.digest());
}

describe('transcript: length-prefixed encoding', () => {
  it('does not confuse the boundary between label and value', () => {
    assert.notEqual(digestOf('d', [['a', 'bc']]), digestOf('d', [['ab', 'c']]));
    assert.notEqual(digestOf('d', [['a', 'bc']]), digestOf('d', [['abc', '']]));
    assert.notEqual(digestOf('d', [['', 'abc']]), digestOf('d', [['abc', '']]));
  });

  it('does not confuse the boundary between consecutive items', () => {
    assert.notEqual(digestOf('d', [['x', 'ab'], ['y', 'c']]), digestOf('d', [['x', 'a'], ['y', 'bc']]));
    assert.notEqual(digestOf('d', [['x', 'abc']]), digestOf('d', [['x', 'ab'], ['x', 'c']]));
    // A value that looks like the encoding of a further item does not merge with it.
    const forged = Buffer.concat([Buffer.from('a'), u32be(1), Buffer.from('y'), u32be(1), Buffer.from('b')]);
    assert.notEqual(digestOf('d', [['x', 'a'], ['y', 'b']]), digestOf('d', [['x', new Uint8Array(forged)]]));
  });

  it('counts empty items: (x, "") twice differs from once and from none', () => {
    const none = digestOf('d', []);
    const once = digestOf('d', [['x', '']]);
    const twice = digestOf('d', [['x', ''], ['x', '']]);
    assert.equal(new Set([none, once, twice]).size, 3);
    assert.notEqual(digestOf('d', [['', '']]), none);
  });

  it('orders items', () => {
    assert.notEqual(digestOf('d', [['a', '1'], ['b', '2']]), digestOf('d', [['b', '2'], ['a', '1']]));
  });

  it('encodes a string as its UTF-8 bytes (the type is carried by the label, not the encoding)', () => {
    assert.equal(digestOf('d', [['v', 'abc']]), digestOf('d', [['v', enc.encode('abc')]]));
    assert.equal(digestOf('d', [['v', 'é€😀']]), digestOf('d', [['v', enc.encode('é€😀')]]));
    // UTF-8, not UTF-16 or Latin-1: 'é' is two bytes.
    assert.notEqual(digestOf('d', [['v', 'é']]), digestOf('d', [['v', Uint8Array.of(0xe9)]]));
    assert.equal(digestOf('d', [['v', 'é']]), digestOf('d', [['v', Uint8Array.of(0xc3, 0xa9)]]));
  });

  it('encodes a number as u32 big-endian', () => {
    for (const n of [0, 1, 255, 256, 0x01020304, 0xffffffff]) {
      assert.equal(digestOf('d', [['n', n]]), digestOf('d', [['n', new Uint8Array(u32be(n))]]), `number ${n}`);
    }
    assert.notEqual(digestOf('d', [['n', 1]]), digestOf('d', [['n', Uint8Array.of(1)]]), 'a number is four bytes, not one');
    assert.notEqual(digestOf('d', [['n', 1]]), digestOf('d', [['n', '1']]));
    assert.notEqual(digestOf('d', [['n', 1]]), digestOf('d', [['n', 2]]));
  });

  it('rejects numbers that do not fit a u32 instead of wrapping them onto another value', () => {
    // Without a check DataView.setUint32 applies ToUint32: 2^32 encodes as 0, −1 as 2^32 − 1,
    // 1.5 as 1 — two different item sequences with the same bytes, contrary to the module's
    // guarantee. Every caller passes small indices today; the encoder must still refuse.
    for (const bad of [2 ** 32, 2 ** 32 + 7, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new Transcript('d').append('n', bad), (e: unknown) => e instanceof RangeError && e.message === `transcript: ${bad} is not a 32-bit unsigned integer`, `number ${bad} must be refused`);
    }
  });

  it('separates domains', () => {
    const items: Item[] = [['k', 'v']];
    assert.notEqual(digestOf('a', items), digestOf('b', items));
    assert.notEqual(digestOf('ab', []), digestOf('a', [['b', '']]));
    assert.notEqual(digestOf('', []), digestOf('domain', []));
    assert.notEqual(hex(taggedHash('commitment', items)), hex(taggedHash('schnorr-pok', items)));
  });
});

describe('transcript: known answers', () => {
  it('digest = first 32 bytes of SHA-512 over the documented encoding', () => {
    const cases: [string, Item[]][] = [
      ['', []],
      ['commitment', [['context', Uint8Array.of(1, 2, 3)], ['salt', new Uint8Array(32)], ['value', 'hello']]],
      ['zero-share', [['seed', new Uint8Array(32).fill(0xab)], ['session', new Uint8Array(32)], ['index', 7]]],
      ['d', [['', ''], ['x', ''], ['x', ''], ['n', 0xffffffff], ['utf8', 'é€']]],
    ];
    for (const [domain, items] of cases) {
      assert.equal(digestOf(domain, items), referenceDigest(domain, items), `domain '${domain}'`);
      assert.equal(hex(taggedHash(domain, items)), referenceDigest(domain, items), `taggedHash, domain '${domain}'`);
    }
  });

  it('pins one vector as bytes', () => {
    // The exact input bytes for taggedHash('kat', [['a', 'bc'], ['n', 258]]):
    const input = Buffer.from(
      '00000008' + hex(enc.encode('protocol')) + '0000000c' + hex(enc.encode('quorumkey/v1')) +
        '00000006' + hex(enc.encode('domain')) + '00000003' + hex(enc.encode('kat')) +
        '00000001' + '61' + '00000002' + '6263' +
        '00000001' + '6e' + '00000004' + '00000102',
      'hex',
    );
    const expected = createHash('sha512').update(input).digest().subarray(0, 32).toString('hex');
    assert.equal(hex(taggedHash('kat', [['a', 'bc'], ['n', 258]])), expected);
    // Computed once from the bytes above (outside this code base); a change of encoding breaks it.
    assert.equal(expected, '75eee4e05d3899635650b2577e9fd0a0efc9612e240b39ee76953e33afaee55b');
  });

  it('challengeScalar = the whole 64-byte SHA-512 digest mod N, and is below N', () => {
    const rng = seededRng('transcript/challenge');
    for (let i = 0; i < 200; i++) {
      const items: Item[] = [['x', rng(i % 70)], ['i', i]];
      const t = new Transcript('challenge');
      for (const [l, v] of items) t.append(l, v);
      const c = t.challengeScalar();
      const expected = BigInt('0x' + referenceWide('challenge', items).toString('hex')) % N;
      assert.equal(c, expected);
      assert.ok(c >= 0n && c < N);
    }
  });

  it('append is chainable and the digest does not depend on how the transcript was built', () => {
    const t = new Transcript('d');
    assert.equal(t.append('a', 'b'), t);
    assert.equal(hex(t.append('c', 1).digest()), digestOf('d', [['a', 'b'], ['c', 1]]));
  });
});
