/**
 * The signer's compute thread (signer-node/compute/) with real worker threads, driven from this
 * test as the main thread would drive it (signer-node/sessions.ts), the messages relayed between
 * two parties' threads:
 * - a presign computed on two compute threads yields halves that sign: the online shares of
 *   the halves that came back (moved in one transferred buffer) combine to a signature that
 *   verifies; both threads made the same batch;
 * - a key generation, a refresh and a pair re-setup computed on the threads give shares whose
 *   public parts agree at both parties, and whose presignatures sign;
 * - a thread that dies fails its running session with an error and the next session gets a new
 *   thread;
 * - a thread whose kernels are not the native ones refuses to start, naming the reason.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { toHex, type ProtocolMessage } from '../../src/protocol/message.js';
import { verifyDigest } from '../../src/protocol/ecdsa.js';
import { combineSignature } from '../../src/protocol/online.js';
import type { Presignature } from '../../src/protocol/presign.js';
import { createLogger } from '../../signer-node/log.js';
import type { ComputeReply } from '../../signer-node/compute/serve.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { publicSharesDigest } from '../../signer-node/node.js';
import type { PairState } from '../../src/protocol/pair-setup.js';
import { Party } from '../../src/protocol/party.js';
import { decodeError, decodeOutput, pairSetupSpec, presignSpec, refreshSpec, type SessionSpec } from '../../signer-node/compute/specs.js';
import { ComputeThread, type ComputeOptions } from '../../signer-node/compute/thread.js';
import { Cluster } from '../protocol/harness.js';

type StepReply = Extract<ComputeReply, { op: 'step' }>;
const KEY = 'k';
/** The batch size at which compute-exit.ts ends its thread. */
const EXIT_COUNT = 13;
const quiet = createLogger({}, 'error', () => undefined);

/** Two parties' compute threads with the messages between them relayed; each session's end, by party. */
class Pair {
  readonly threads = new Map<number, ComputeThread>();
  readonly ends = new Map<string, Map<number, StepReply['end']>>();
  private readonly waiters: (() => void)[] = [];

  constructor(options: (party: number) => ComputeOptions = () => ({})) {
    for (const party of [1, 2]) {
      this.threads.set(party, new ComputeThread(0, options(party), quiet, (hex, step) => this.onStep(party, hex, step)));
    }
  }

  private onStep(party: number, hex: string, step: StepReply): void {
    for (const m of step.messages as ProtocolMessage[]) this.threads.get(m.to)!.deliver(hex, m.from, m);
    if (step.end) {
      const ends = this.ends.get(hex) ?? new Map();
      ends.set(party, step.end);
      this.ends.set(hex, ends);
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  async ended(hex: string, parties: number[]): Promise<Map<number, StepReply['end']>> {
    while (!parties.every((p) => this.ends.get(hex)?.has(p))) await new Promise<void>((r) => this.waiters.push(r));
    return this.ends.get(hex)!;
  }

  stop(): Promise<void[]> {
    return Promise.all([...this.threads.values()].map((t) => t.stop()));
  }
}

describe('signer compute thread (real worker threads)', function () {
  this.timeout(120_000);
  const cluster = new Cluster(2);
  before(() => {
    assert.equal(cluster.keyGen(KEY, 2).aborts.size, 0);
  });

  const start = (pair: Pair, count: number, parties = [1, 2]) => {
    const sid = cluster.sessionId();
    for (const p of parties) pair.threads.get(p)!.start(toHex(sid), presignSpec(cluster.party(p).presignParams(KEY, sid, [1, 2], count)));
    return toHex(sid);
  };

  it('a presign computed on two compute threads gives halves that sign', async () => {
    const pair = new Pair();
    try {
      assert.equal(await pair.threads.get(1)!.ready(), await pair.threads.get(2)!.ready());
      const hex = start(pair, 3);
      const ends = await pair.ended(hex, [1, 2]);
      const batches = new Map<number, Presignature[]>();
      for (const [p, end] of ends) {
        assert.ok(end?.ok, `party ${p} finished`);
        batches.set(p, decodeOutput(end.output) as Presignature[]);
      }
      assert.deepEqual(batches.get(1)!.map((x) => toHex(x.id)), batches.get(2)!.map((x) => toHex(x.id)), 'the same batch at both');
      for (const [p, batch] of batches) cluster.party(p).storePresignatures(batch, Date.now());
      const share = cluster.party(1).share(KEY);
      for (const presignature of batches.get(1)!) {
        const digest = new Uint8Array(createHash('sha256').update(toHex(presignature.id)).digest());
        const request = { digest, tweakSeed: cluster.sessionId() };
        const shares = new Map([1, 2].map((p) => [p, cluster.party(p).sign(KEY, presignature.id, request)] as const));
        const sig = combineSignature({ keyId: KEY, publicKey: share.publicKey, presignatureId: presignature.id, nonce: presignature.nonce, subset: [1, 2], shares, ...request });
        assert.ok(verifyDigest(share.publicKey, digest, sig.r, sig.s), 'the signature verifies');
      }
      assert.equal(pair.threads.get(1)!.backlog, 0, 'every operation was answered');
    } finally {
      await pair.stop();
    }
  });

  it('key generation, refresh and pair re-setup computed on compute threads give shares that agree and sign', async () => {
    const pair = new Pair();
    const parties = new Map([1, 2].map((p) => [p, new Party(p)]));
    /** Runs one session from each party's spec on the threads; each party's output. */
    const run = async (spec: (p: number, sid: Uint8Array) => SessionSpec) => {
      const sid = cluster.sessionId();
      for (const p of [1, 2]) pair.threads.get(p)!.start(toHex(sid), spec(p, sid));
      const ends = await pair.ended(toHex(sid), [1, 2]);
      return new Map([1, 2].map((p) => {
        const end = ends.get(p)!;
        assert.ok(end?.ok, `party ${p} finished: ${end && !end.ok ? decodeError(end.error).message : ''}`);
        return [p, decodeOutput(end.output)] as const;
      }));
    };
    const agree = (shares: Map<number, KeyShare>, epoch: number) => {
      const [a, b] = [shares.get(1)!, shares.get(2)!];
      assert.equal(a.epoch, epoch);
      assert.equal(toHex(a.publicKey), toHex(b.publicKey), 'the same public key at both');
      assert.equal(toHex(publicSharesDigest(a)), toHex(publicSharesDigest(b)), 'the same public shares at both');
    };
    try {
      const generated = (await run((p, sid) => ({ protocol: 'dkg', keyId: 'g', sessionId: sid, self: p, parties: [1, 2], threshold: 2, policy: new Uint8Array(0) }))) as Map<number, KeyShare>;
      agree(generated, 0);
      for (const [p, share] of generated) parties.get(p)!.installShare(share);
      const refreshed = (await run((p, sid) => refreshSpec(parties.get(p)!.share('g'), sid))) as Map<number, KeyShare>;
      agree(refreshed, 1);
      assert.equal(toHex(refreshed.get(1)!.publicKey), toHex(generated.get(1)!.publicKey), 'a refresh keeps the public key');
      for (const [p, share] of refreshed) parties.get(p)!.installShare(share);
      for (const p of [1, 2]) parties.get(p)!.retirePair('g', 3 - p);
      const states = (await run((p, sid) => pairSetupSpec(parties.get(p)!.share('g'), sid, 3 - p))) as Map<number, PairState>;
      for (const [p, state] of states) assert.equal(parties.get(p)!.installPairState(state).retiredPeers.size, 0, 'the pair is usable again');
      const batches = (await run((p, sid) => presignSpec(parties.get(p)!.presignParams('g', sid, [1, 2], 1)))) as Map<number, Presignature[]>;
      for (const [p, batch] of batches) parties.get(p)!.storePresignatures(batch, Date.now());
      const presignature = batches.get(1)![0]!;
      const share = parties.get(1)!.share('g');
      const digest = new Uint8Array(createHash('sha256').update('dealt on the compute thread').digest());
      const request = { digest, tweakSeed: cluster.sessionId() };
      const shares = new Map([1, 2].map((p) => [p, parties.get(p)!.sign('g', presignature.id, request)] as const));
      const sig = combineSignature({ keyId: 'g', publicKey: share.publicKey, presignatureId: presignature.id, nonce: presignature.nonce, subset: [1, 2], shares, ...request });
      assert.ok(verifyDigest(share.publicKey, digest, sig.r, sig.s), 'the signature verifies under the generated key');
    } finally {
      await pair.stop();
    }
  });

  it('a compute thread that dies fails its session with an error; the next session gets a new thread', async () => {
    const pair = new Pair((p) => (p === 1 ? { entry: new URL('./compute-exit.js', import.meta.url), extra: { exitCount: EXIT_COUNT } } : {}));
    try {
      await pair.threads.get(1)!.ready();
      const doomed = start(pair, EXIT_COUNT, [1]);
      const end = (await pair.ended(doomed, [1])).get(1)!;
      assert.ok(end && !end.ok, 'the session failed');
      assert.match(decodeError(end.error).message, /the compute thread exited \(code 3\)/);
      const hex = start(pair, 2);
      const ends = await pair.ended(hex, [1, 2]);
      assert.ok(ends.get(1)?.ok && ends.get(2)?.ok, 'a new thread computed the next presign');
    } finally {
      await pair.stop();
    }
  });

  it('a compute thread whose kernels are not native refuses to start, and every session fails with the reason', async () => {
    const saved = process.env.QUORUMKEY_NATIVE;
    process.env.QUORUMKEY_NATIVE = '0'; // the thread's own copy of the environment is taken now
    const pair = new Pair();
    try {
      await assert.rejects(pair.threads.get(1)!.ready(), /compute thread refused to start: .*native/i);
    } finally {
      if (saved === undefined) delete process.env.QUORUMKEY_NATIVE;
      else process.env.QUORUMKEY_NATIVE = saved;
    }
    try {
      const hex = start(pair, 1, [1]);
      const end = (await pair.ended(hex, [1])).get(1)!;
      assert.ok(end && !end.ok);
      assert.match(decodeError(end.error).message, /refused to start/);
    } finally {
      await pair.stop();
    }
  });
});
