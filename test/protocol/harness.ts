/** Test harness: parties in memory, driven through the real sessions and the in-memory network. */
import { createHash } from 'node:crypto';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { runSessions, type Interceptor, type RunResult } from '../../src/protocol/local-network.js';
import { combineSignature, type Signature } from '../../src/protocol/online.js';
import { PairSetupSession, type PairState } from '../../src/protocol/pair-setup.js';
import { Party } from '../../src/protocol/party.js';
import type { Presignature } from '../../src/protocol/presign.js';
import { seededRng, systemRng, type Rng } from '../../src/protocol/rng.js';
import type { Session } from '../../src/protocol/session.js';
import type { ProtocolMessage } from '../../src/protocol/message.js';

export class Cluster {
  readonly parties = new Map<number, Party>();
  /** Every session this cluster ran, in order (the adversarial test reads their secret state). */
  readonly sessions: Session<unknown>[] = [];
  private readonly ids: Rng;

  constructor(
    readonly n: number,
    readonly seed?: string,
  ) {
    for (let i = 1; i <= n; i++) this.parties.set(i, new Party(i, seed ? seededRng(`${seed}/party/${i}`) : systemRng));
    this.ids = seed ? seededRng(`${seed}/session-ids`) : systemRng;
  }

  party(i: number): Party {
    return this.parties.get(i)!;
  }
  sessionId(): Uint8Array {
    return this.ids(32);
  }

  /** Runs sessions of the given parties and stores the outputs of those that finished. */
  run<T>(sessions: Map<number, Session<T>>, intercept?: Interceptor): RunResult<T> {
    this.sessions.push(...sessions.values());
    const result = runSessions(sessions, intercept);
    for (const [i, session] of sessions) {
      const party = this.party(i);
      const failure = result.aborts.get(i);
      if (failure) party.reportAbort(session, failure);
      else if (session instanceof PairSetupSession) party.completePairSetup(session);
      else if (session.done) party.complete(session as never);
    }
    return result;
  }

  keyGen(keyId: string, threshold: number, intercept?: Interceptor, policy?: Uint8Array): RunResult<KeyShare> {
    const sid = this.sessionId();
    const all = [...this.parties.keys()];
    return this.run(new Map(all.map((i) => [i, this.party(i).startKeyGen(keyId, sid, all, threshold, policy)])), intercept);
  }

  refresh(keyId: string, intercept?: Interceptor): RunResult<KeyShare> {
    const sid = this.sessionId();
    return this.run(new Map([...this.parties.keys()].map((i) => [i, this.party(i).startRefresh(keyId, sid)])), intercept);
  }

  /** Pairwise re-setup of the OT correlation between a and b. */
  pairSetup(keyId: string, a: number, b: number, intercept?: Interceptor): RunResult<PairState> {
    const sid = this.sessionId();
    return this.run(new Map([[a, this.party(a).startPairSetup(keyId, sid, b)], [b, this.party(b).startPairSetup(keyId, sid, a)]]), intercept);
  }

  presign(keyId: string, subset: readonly number[], count: number, intercept?: Interceptor): RunResult<Presignature[]> {
    const sid = this.sessionId();
    return this.run(new Map(subset.map((i) => [i, this.party(i).startPresign(keyId, sid, subset, count)])), intercept);
  }

  /** Online round with every signer of the presignature, then the combiner. */
  sign(keyId: string, presignature: Presignature, digest: Uint8Array, intercept?: Interceptor): Signature {
    const request = { digest, tweakSeed: this.ids(32) };
    const shares = new Map<number, ProtocolMessage>();
    for (const i of presignature.subset) {
      const message = this.party(i).sign(keyId, presignature.id, request);
      const delivered = intercept ? intercept(message) : message;
      if (delivered) shares.set(i, delivered);
    }
    const share = this.party(presignature.subset[0]!).share(keyId);
    return combineSignature({ keyId, publicKey: share.publicKey, presignatureId: presignature.id, nonce: presignature.nonce, subset: presignature.subset, shares, ...request });
  }
}

export function sha256(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

/** All size-k subsets of 1..n in lexicographic order. */
export function subsets(n: number, k: number): number[][] {
  const out: number[][] = [];
  const walk = (start: number, acc: number[]) => {
    if (acc.length === k) return void out.push([...acc]);
    for (let i = start; i <= n; i++) walk(i + 1, [...acc, i]);
  };
  walk(1, []);
  return out;
}
