/**
 * The key's policy is agreed in the key generation echo and carried through refresh: holders
 * given different policies never end with shares (the echo differs), and a refresh keeps the
 * policy byte for byte.
 */
import assert from 'node:assert/strict';
import { ProtocolAbort } from '../../src/protocol/errors.js';
import { Cluster } from './harness.js';

const encode = (s: string) => new TextEncoder().encode(s);
const TLS_ONLY = encode('{"contexts":["tls-server"],"rate":{"perHour":1000000,"perSecond":1000}}');
const RAW_DIGEST = encode('{"contexts":["raw-digest","tls-server"],"rate":{"perHour":1000000,"perSecond":1000}}');

describe('protocol/policy agreement', function () {
  this.timeout(120_000);

  it('every holder seals the same policy, and a refresh keeps it', () => {
    const cluster = new Cluster(3, 'policy-agreement');
    const dkg = cluster.keyGen('k', 2, undefined, TLS_ONLY);
    assert.equal(dkg.aborts.size, 0);
    for (const i of [1, 2, 3]) assert.deepEqual(cluster.party(i).share('k').policy, TLS_ONLY);
    const refreshed = cluster.refresh('k');
    assert.equal(refreshed.aborts.size, 0);
    for (const i of [1, 2, 3]) {
      assert.equal(cluster.party(i).share('k').epoch, 1);
      assert.deepEqual(cluster.party(i).share('k').policy, TLS_ONLY);
    }
  });

  it('a holder given another policy (a coordinator that lies to one signer) makes every honest holder abort at the echo', () => {
    const cluster = new Cluster(3, 'policy-disagreement');
    const sid = cluster.sessionId();
    const sessions = new Map([1, 2, 3].map((i) => [i, cluster.party(i).startKeyGen('k', sid, [1, 2, 3], 2, i === 3 ? RAW_DIGEST : TLS_ONLY)]));
    const result = cluster.run(sessions);
    assert.equal(result.outputs.size, 0, 'no holder ends with a share');
    for (const i of [1, 2, 3]) {
      const failure = result.aborts.get(i);
      assert.ok(failure instanceof ProtocolAbort, `party ${i} aborts`);
      assert.equal(failure.reason, 'broadcast-inconsistent');
      assert.throws(() => cluster.party(i).share('k'), /no share of key 'k'/);
    }
    // With several peers an echo difference names nobody (the peer that shows it may be honest,
    // told different things by another): every peer is a suspect.
    for (const i of [1, 2, 3]) {
      assert.equal(result.aborts.get(i)!.culprit, undefined);
      assert.deepEqual([...result.aborts.get(i)!.suspects].sort(), [1, 2, 3].filter((p) => p !== i));
    }
  });

  it('adoptPolicy seals a policy into a share that has none, and never replaces one', () => {
    const cluster = new Cluster(2, 'policy-adopt');
    assert.equal(cluster.keyGen('legacy', 2).aborts.size, 0);
    const party = cluster.party(1);
    assert.equal(party.share('legacy').policy.length, 0);
    assert.deepEqual(party.adoptPolicy('legacy', TLS_ONLY).policy, TLS_ONLY);
    assert.deepEqual(party.share('legacy').policy, TLS_ONLY);
    assert.throws(() => party.adoptPolicy('legacy', RAW_DIGEST), (e: unknown) => e instanceof ProtocolAbort && /cannot be replaced/.test(e.message));
    assert.deepEqual(party.share('legacy').policy, TLS_ONLY);
  });
});
