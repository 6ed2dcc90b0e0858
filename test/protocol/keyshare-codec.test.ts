/**
 * The binary KeyShare encoding (the plaintext a signer seals at rest): round trip of shares from
 * a real in-memory DKG, a decoded share still signs, and every malformed encoding is refused
 * with an error naming what is wrong.
 */
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { publicKeySpki } from '../../src/protocol/ecdsa.js';
import { decodeKeyShare, encodeKeyShare } from '../../src/protocol/keyshare-codec.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { MAX_PARTIES } from '../../src/protocol/keyshare.js';
import { nobleBackend, POINT_BYTES } from '../../src/protocol/math/curve.js';
import { N, scalarToBytes } from '../../src/protocol/math/scalar.js';
import { Party } from '../../src/protocol/party.js';
import { Cluster, sha256 } from './harness.js';

const KEY = 'codec-key';
const POLICY = new TextEncoder().encode('{"contexts":["tls-server"],"rate":{"perHour":3600,"perSecond":10}}');

/** Byte offsets of the fixed part of an encoding (see keyshare-codec.ts). */
function layout(share: KeyShare) {
  const idLen = new TextEncoder().encode(share.keyId).length;
  const policy = 1 + 4 + idLen;
  const threshold = policy + 4 + share.policy.length + 4;
  const count = threshold + 1;
  const parties = count + 1;
  const self = parties + share.parties.length;
  const secret = self + 1;
  const publicKey = secret + 32;
  const publicShares = publicKey + POINT_BYTES;
  const firstPeer = publicShares + POINT_BYTES * share.parties.length;
  return { policy, threshold, count, parties, self, secret, publicKey, publicShares, firstPeer };
}

function offCurvePoint(): Uint8Array {
  for (let x = 1; ; x++) {
    const p = new Uint8Array(POINT_BYTES);
    p[0] = 2;
    p[POINT_BYTES - 1] = x;
    if (!nobleBackend.isValid(p)) return p;
  }
}

function edit(bytes: Uint8Array, at: number, value: Uint8Array | number[]): Uint8Array {
  const out = bytes.slice();
  out.set(value, at);
  return out;
}

function verifies(publicKey: Uint8Array, message: Uint8Array, der: Uint8Array): boolean {
  return verify('sha256', message, createPublicKey({ key: Buffer.from(publicKeySpki(publicKey)), format: 'der', type: 'spki' }), der);
}

describe('protocol/keyshare-codec', function () {
  this.timeout(120_000);

  let cluster: Cluster;
  let shares: KeyShare[];
  let encodings: Uint8Array[];

  before(() => {
    cluster = new Cluster(3, 'keyshare-codec');
    const result = cluster.keyGen(KEY, 2, undefined, POLICY);
    assert.equal(result.aborts.size, 0);
    shares = [1, 2, 3].map((i) => result.outputs.get(i)!);
    encodings = shares.map(encodeKeyShare);
  });

  it('round-trips the shares of a real DKG field by field, and re-encodes to the same bytes', () => {
    shares.forEach((share, k) => {
      const decoded = decodeKeyShare(encodings[k]!);
      assert.equal(decoded.keyId, share.keyId);
      assert.equal(decoded.epoch, share.epoch);
      assert.equal(decoded.threshold, 2);
      assert.deepEqual(decoded.policy, POLICY);
      assert.deepEqual([...decoded.parties], [1, 2, 3]);
      assert.equal(decoded.self, share.self);
      assert.equal(decoded.secretShare, share.secretShare);
      assert.deepEqual(decoded.publicKey, share.publicKey);
      for (const p of share.parties) assert.deepEqual(decoded.publicShares.get(p), share.publicShares.get(p));
      for (const p of share.parties) {
        if (p === share.self) {
          assert.equal(decoded.zeroSeeds.has(p), false);
          continue;
        }
        assert.deepEqual(decoded.zeroSeeds.get(p), share.zeroSeeds.get(p));
        assert.deepEqual(decoded.otSender.get(p)!.delta, share.otSender.get(p)!.delta);
        assert.deepEqual(decoded.otSender.get(p)!.seeds, share.otSender.get(p)!.seeds);
        assert.deepEqual(decoded.otReceiver.get(p)!.seeds0, share.otReceiver.get(p)!.seeds0);
        assert.deepEqual(decoded.otReceiver.get(p)!.seeds1, share.otReceiver.get(p)!.seeds1);
      }
      assert.deepEqual(encodeKeyShare(decoded), encodings[k]);
    });
    // Shares of different parties encode differently (not a constant encoding).
    assert.notDeepEqual(encodings[0], encodings[1]);
  });

  it('a decoded share is independent of its input buffer (Uint8Array input zeroised after decoding)', () => {
    const input = new Uint8Array(encodings[0]!);
    const decoded = decodeKeyShare(input);
    input.fill(0);
    assert.deepEqual(encodeKeyShare(decoded), encodings[0]);
  });

  it('decoded shares (fresh parties, nothing else carried over) presign and sign; node:crypto verifies', () => {
    const restored = new Cluster(3, 'keyshare-codec-restored');
    for (const i of [1, 2, 3]) {
      const party = new Party(i);
      party.installShare(decodeKeyShare(encodings[i - 1]!.slice()));
      restored.parties.set(i, party);
    }
    for (const subset of [
      [1, 3],
      [2, 3],
    ]) {
      const result = restored.presign(KEY, subset, 2);
      assert.equal(result.aborts.size, 0, [...result.aborts.values()].map((e) => e.message).join('; '));
      for (const presignature of result.outputs.get(subset[0]!)!) {
        const message = new TextEncoder().encode(`signed by ${subset.join('+')} with restored shares`);
        const signature = restored.sign(KEY, presignature, sha256(message));
        assert.ok(verifies(shares[0]!.publicKey, message, signature.der));
      }
    }
  });

  it('truncated anywhere → "truncated"', () => {
    const enc = encodings[1]!;
    const L = layout(shares[1]!);
    const cuts = new Set<number>();
    for (let n = 0; n <= L.firstPeer + 80; n++) cuts.add(n);
    for (let n = L.firstPeer; n < enc.length; n += 997) cuts.add(n);
    for (const n of [enc.length - 1, enc.length - 2, enc.length - 33, enc.length - 4096]) cuts.add(n);
    for (const n of cuts) {
      assert.throws(() => decodeKeyShare(enc.subarray(0, n)), /key share encoding truncated in /, `cut at ${n} of ${enc.length}`);
    }
  });

  it('a trailing byte → "trailing bytes"', () => {
    const enc = encodings[0]!;
    const longer = new Uint8Array(enc.length + 1);
    longer.set(enc);
    assert.throws(() => decodeKeyShare(longer), /key share encoding has trailing bytes/);
  });

  it('an unknown version → "unsupported key share encoding version"', () => {
    for (const v of [0, 4, 255]) {
      assert.throws(() => decodeKeyShare(edit(encodings[0]!, 0, [v])), new RegExp(`unsupported key share encoding version ${v}$`));
    }
  });

  it('a bad party list, threshold or self index → a clear error', () => {
    const enc = encodings[0]!;
    const L = layout(shares[0]!);
    const cases: [Uint8Array, RegExp][] = [
      [edit(enc, L.parties, [2, 1, 3]), /parties not ascending/],
      [edit(enc, L.parties, [1, 1, 3]), /parties not ascending/],
      [edit(enc, L.parties, [0, 1, 3]), /parties not ascending/],
      [edit(enc, L.self, [4]), /self is not a party/],
      [edit(enc, L.self, [0]), /self is not a party/],
      [edit(enc, L.threshold, [1]), /bad threshold or party count/],
      [edit(enc, L.threshold, [4]), /bad threshold or party count/],
      [edit(enc, L.count, [1]), /bad threshold or party count/],
      [edit(enc, L.count, [MAX_PARTIES + 1]), /bad threshold or party count/],
    ];
    for (const [bad, pattern] of cases) assert.throws(() => decodeKeyShare(bad), pattern);
  });

  it('an off-curve or identity public key or public share → "not a valid point"', () => {
    const enc = encodings[0]!;
    const L = layout(shares[0]!);
    const offCurve = offCurvePoint();
    assert.throws(() => decodeKeyShare(edit(enc, L.publicKey, offCurve)), /public key is not a valid point/);
    assert.throws(() => decodeKeyShare(edit(enc, L.publicKey, new Uint8Array(POINT_BYTES))), /public key is not a valid point/);
    assert.throws(() => decodeKeyShare(edit(enc, L.publicKey, [0x04])), /public key is not a valid point/);
    assert.throws(() => decodeKeyShare(edit(enc, L.publicShares + POINT_BYTES, offCurve)), /public share 2 is not a valid point/);
  });

  it('a secret share ≥ n → "out of range"; a broken OT set-up → named', () => {
    const enc = encodings[0]!;
    const L = layout(shares[0]!);
    assert.throws(() => decodeKeyShare(edit(enc, L.secret, scalarToBytes(N - 1n).map(() => 0xff))), /secret share out of range/);
    // The OT sender set-up of the first peer starts after its 32-byte zero seed, the pair-state
    // byte and a u32 length.
    const otSender = L.firstPeer + 32 + 1 + 4;
    assert.throws(() => decodeKeyShare(edit(enc, otSender, [9])), /OT extension sender set-up: bad version or type/);
    assert.throws(() => decodeKeyShare(edit(enc, L.firstPeer + 32, [7])), /unknown pair state 7/);
  });

  it('a policy longer than 16 KiB is refused', () => {
    const share = shares[0]!;
    const enc = encodeKeyShare({ ...share, policy: new Uint8Array(16 * 1024 + 1).fill(0x20) });
    assert.throws(() => decodeKeyShare(enc), /key share encoding: policy too large/);
  });

  it('a retired pair round-trips without its OT state; versions 2 (no policy) and 1 (no pair states either) still decode', () => {
    const share = shares[0]!;
    const peers = share.parties.filter((p) => p !== share.self);
    const [retired, active] = [peers[0]!, peers[1]!];
    const otSender = new Map(share.otSender);
    const otReceiver = new Map(share.otReceiver);
    otSender.delete(retired);
    otReceiver.delete(retired);
    const enc = encodeKeyShare({ ...share, otSender, otReceiver, retiredPeers: new Set([retired]) });
    assert.ok(enc.length < encodings[0]!.length - 12_000, 'the retired pair carries no OT state');
    const back = decodeKeyShare(enc);
    assert.deepEqual([...back.retiredPeers], [retired]);
    assert.equal(back.otSender.has(retired), false);
    assert.equal(back.otReceiver.has(retired), false);
    assert.ok(back.otSender.has(active) && back.otReceiver.has(active));

    // A version-2 file: the same bytes without the policy.
    const v3 = encodings[0]!;
    const L = layout(share);
    const v2 = Uint8Array.from([2, ...v3.subarray(1, L.policy), ...v3.subarray(L.policy + 4 + POLICY.length)]);
    const fromV2 = decodeKeyShare(v2);
    assert.equal(fromV2.policy.length, 0, 'a share sealed before policies has none');
    assert.equal(fromV2.secretShare, share.secretShare);
    const v3WithoutPolicy = encodeKeyShare({ ...share, policy: new Uint8Array(0) });
    assert.deepEqual(encodeKeyShare(fromV2), v3WithoutPolicy, 'a version-2 share re-encodes in version 3 with an empty policy');

    // A version-1 file: the version-2 bytes without the pair-state bytes (version 2 has no
    // policy length either: 4 bytes before version 3's first peer with an empty policy).
    const v2FirstPeer = layout({ ...share, policy: new Uint8Array(0) }).firstPeer - 4;
    const parts: Uint8Array[] = [Uint8Array.of(1), v2.subarray(1, v2FirstPeer)];
    let at = v2FirstPeer;
    for (let k = 0; k < peers.length; k++) {
      parts.push(v2.subarray(at, at + 32)); // zero seed
      at += 33; // and the state byte, dropped
      const sender = new DataView(v2.buffer, v2.byteOffset + at, 4).getUint32(0);
      const receiver = new DataView(v2.buffer, v2.byteOffset + at + 4 + sender, 4).getUint32(0);
      parts.push(v2.subarray(at, at + 8 + sender + receiver));
      at += 8 + sender + receiver;
    }
    assert.equal(at, v2.length);
    const v1 = Uint8Array.from(parts.flatMap((p) => [...p]));
    const migrated = decodeKeyShare(v1);
    assert.equal(migrated.retiredPeers.size, 0);
    assert.deepEqual(encodeKeyShare(migrated), v3WithoutPolicy, 'a version-1 share re-encodes as the same share in version 3');
  });
});
