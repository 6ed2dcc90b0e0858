import { strict as assert } from 'node:assert';
import { createPublicKey, verify as opensslVerify, randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { publicKeySpki } from '../../src/protocol/ecdsa.js';
import { add, IDENTITY, mul, pointsEqual } from '../../src/protocol/math/curve.js';
import { bytesEqual } from '../../src/protocol/message.js';
import { ProtocolAbort } from '../../src/protocol/errors.js';
import { lagrangeAtZero } from '../../src/protocol/polynomial.js';
import { Cluster, sha256, subsets } from './harness.js';

function assertVerifies(publicKey: Uint8Array, message: Uint8Array, sig: { der: Uint8Array; raw: Uint8Array }): void {
  const key = createPublicKey({ key: Buffer.from(publicKeySpki(publicKey)), format: 'der', type: 'spki' });
  assert.ok(opensslVerify('sha256', message, key, sig.der), 'OpenSSL rejects the DER signature');
  assert.ok(opensslVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, sig.raw), 'OpenSSL rejects the raw signature');
  assert.ok(p256.verify(sig.raw, sha256(message), publicKey, { prehash: false }), 'noble rejects the raw signature');
  assert.ok(p256.verify(sig.der, sha256(message), publicKey, { prehash: false, format: 'der' }), 'noble rejects the DER signature');
}

describe('threshold ECDSA: honest runs', function () {
  for (const [t, n] of [
    [2, 2],
    [2, 3],
    [3, 5],
    [4, 7],
  ] as const) {
    it(`${t}-of-${n}: key generation, then 20 signatures from varying subsets verify with OpenSSL and noble`, function () {
      const cluster = new Cluster(n);
      const dkg = cluster.keyGen('tls', t);
      assert.equal(dkg.aborts.size, 0, [...dkg.aborts.values()].join('; '));
      const shares = [...dkg.outputs.values()];
      const publicKey = shares[0]!.publicKey;
      for (const s of shares) assert.ok(pointsEqual(s.publicKey, publicKey), 'parties disagree on the public key');
      // Any t public shares interpolate to the public key.
      const subset = shares.slice(0, t).map((s) => s.self);
      const interpolated = subset.reduce((acc, i) => add(acc, mul(shares[0]!.publicShares.get(i)!, lagrangeAtZero(i, subset))), IDENTITY);
      assert.ok(pointsEqual(interpolated, publicKey));

      const all = subsets(n, t);
      const chosen = Array.from({ length: Math.min(all.length, 5) }, (_, k) => all[Math.floor((k * all.length) / Math.min(all.length, 5))]!);
      const perSubset = Math.ceil(20 / chosen.length);
      let signed = 0;
      for (const signers of chosen) {
        const presign = cluster.presign('tls', signers, perSubset);
        assert.equal(presign.aborts.size, 0, [...presign.aborts.values()].join('; '));
        const views = signers.map((i) => presign.outputs.get(i)!);
        for (let b = 0; b < perSubset; b++) {
          for (const v of views) assert.ok(pointsEqual(v[b]!.nonce, views[0]![b]!.nonce) && bytesEqual(v[b]!.id, views[0]![b]!.id));
          const message = randomBytes(100);
          const sig = cluster.sign('tls', views[0]![b]!, sha256(message));
          assertVerifies(publicKey, message, sig);
          signed++;
        }
      }
      assert.ok(signed >= 20);
    });
  }
});

describe('threshold ECDSA: refresh', function () {
  it('keeps the public key, changes every share, and signatures after it verify', function () {
    const cluster = new Cluster(5);
    cluster.keyGen('k', 3);
    const before = [1, 2, 3, 4, 5].map((i) => cluster.party(i).share('k'));
    const oldPresign = cluster.presign('k', [1, 2, 3], 1).outputs.get(1)![0]!;
    const refresh = cluster.refresh('k');
    assert.equal(refresh.aborts.size, 0, [...refresh.aborts.values()].join('; '));
    const after = [1, 2, 3, 4, 5].map((i) => cluster.party(i).share('k'));
    for (let i = 0; i < 5; i++) {
      assert.ok(pointsEqual(after[i]!.publicKey, before[i]!.publicKey), 'public key changed');
      assert.notEqual(after[i]!.secretShare, before[i]!.secretShare, 'share unchanged');
      assert.ok(!pointsEqual(after[i]!.publicShares.get(i + 1)!, before[i]!.publicShares.get(i + 1)!));
      assert.equal(after[i]!.epoch, 1);
      assert.ok(!bytesEqual(after[i]!.zeroSeeds.get(i === 0 ? 2 : 1)!, before[i]!.zeroSeeds.get(i === 0 ? 2 : 1)!), 'zero-sharing seed not renewed');
    }
    // Presignatures of the old epoch were destroyed with the old shares.
    assert.throws(() => cluster.sign('k', oldPresign, sha256('x')), (e: unknown) => e instanceof ProtocolAbort && e.reason === 'presignature-used');
    for (const signers of [[1, 2, 3], [2, 4, 5], [1, 3, 5]]) {
      const p = cluster.presign('k', signers, 2).outputs.get(signers[0]!)!;
      for (const presignature of p) {
        const message = randomBytes(64);
        assertVerifies(after[0]!.publicKey, message, cluster.sign('k', presignature, sha256(message)));
      }
    }
  });

  it('shares from before and after a refresh cannot be mixed into a valid signature', function () {
    const cluster = new Cluster(3);
    cluster.keyGen('k', 2);
    const old1 = cluster.party(1).share('k');
    cluster.refresh('k');
    const new2 = cluster.party(2).share('k');
    // Interpolating an old and a new share does not give the secret key.
    const mixed = add(mul(old1.publicShares.get(1)!, lagrangeAtZero(1, [1, 2])), mul(new2.publicShares.get(2)!, lagrangeAtZero(2, [1, 2])));
    assert.ok(!pointsEqual(mixed, old1.publicKey));
    // A party still holding the old share cannot presign with a refreshed one.
    const stale = new Cluster(3);
    stale.party(1).installShare(old1);
    stale.party(2).installShare(new2);
    const result = stale.presign('k', [1, 2], 1);
    assert.equal(result.outputs.size, 0, 'a presignature came out of mixed epochs');
    assert.ok(result.aborts.size > 0);
  });
});

describe('threshold ECDSA: single use and session ids', function () {
  it('refuses to finish the same presignature twice', function () {
    const cluster = new Cluster(3);
    cluster.keyGen('k', 2);
    const presignature = cluster.presign('k', [1, 3], 1).outputs.get(1)![0]!;
    cluster.sign('k', presignature, sha256('first'));
    assert.throws(() => cluster.party(1).sign('k', presignature.id, { digest: sha256('second'), tweakSeed: new Uint8Array(32) }), /presignature-used/);
    assert.throws(() => cluster.party(3).sign('k', presignature.id, { digest: sha256('second'), tweakSeed: new Uint8Array(32) }), /presignature-used/);
  });

  it('refuses to reuse a session id', function () {
    const cluster = new Cluster(3);
    cluster.keyGen('k', 2);
    const sid = cluster.sessionId();
    cluster.party(1).startPresign('k', sid, [1, 2], 1);
    assert.throws(() => cluster.party(1).startPresign('k', sid, [1, 3], 1), /session-reused/);
  });
});
