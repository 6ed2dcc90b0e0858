/**
 * In-process stand-ins for signer nodes, for coordinator tests: one real gRPC server with mTLS
 * (identity signer-<i>) per signer, implementing the Signer service of proto/quorumkey.proto on
 * top of the real protocol (Party + the in-memory network: the signers of one session meet in a
 * rendezvous keyed by the session id). Faults can be switched on per signer to play a broken or
 * malicious node: corrupted online shares, a wrong nonce, blames during presign, slow answers.
 * A restart keeps the key shares (as sealed storage would) and loses the presignatures.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { loadIdentity, signerName } from '../../src/pki/cluster-ca.js';
import { ProtocolAbort } from '../../src/protocol/errors.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { runSessions } from '../../src/protocol/local-network.js';
import { Party } from '../../src/protocol/party.js';
import type { Presignature } from '../../src/protocol/presign.js';
import type { Session } from '../../src/protocol/session.js';
import { ABORT_METADATA, services, toEnvelope } from '../../src/transport/proto.js';
import { serverCredentials } from '../../src/transport/tls.js';

export interface Faults {
  /** Flip a bit of w in online shares: the combined signature does not verify (no single culprit). */
  badShare?: boolean;
  /** Send another nonce in online shares: the combiner names this signer. */
  wrongNonce?: boolean;
  /** Answer Presign with ABORTED + blame naming this peer. */
  blamePeerInPresign?: number;
  /** Delay every Finish answer. */
  finishDelayMs?: number;
  /** Answer Finish with UNAVAILABLE-like failure (INTERNAL). */
  failFinish?: boolean;
}

interface Meeting<T> {
  expected: number[];
  sessions: Map<number, Session<T>>;
  waiters: Map<number, { resolve: (v: T) => void; reject: (e: unknown) => void }>;
  timer: NodeJS.Timeout;
}

type Cb = grpc.sendUnaryData<unknown>;

function abortError(e: unknown): Partial<grpc.ServiceError> {
  if (e instanceof ProtocolAbort) {
    const md = new grpc.Metadata();
    md.set(ABORT_METADATA.reason, e.reason);
    if (e.culprit !== undefined) md.set(ABORT_METADATA.culprit, String(e.culprit));
    if (e.isBlame) md.set(ABORT_METADATA.blame, '1');
    return { code: grpc.status.ABORTED, details: e.message, metadata: md };
  }
  return { code: grpc.status.INTERNAL, details: (e as Error).message };
}

export class FakeSigner {
  party: Party;
  bootId = randomBytes(8).toString('hex');
  server: grpc.Server | undefined;
  faults: Faults = {};
  readonly shares = new Map<string, KeyShare>();
  readonly readmitted: number[] = [];
  calls: Record<string, number> = {};

  constructor(
    readonly cluster: FakeSignerCluster,
    readonly index: number,
    readonly port: number,
  ) {
    this.party = new Party(index);
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    const server = new grpc.Server();
    server.addService(services.Signer.service, this.handlers());
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.port}`, serverCredentials(loadIdentity(this.cluster.pki, signerName(this.index))), (err) => (err ? reject(err) : resolve())),
    );
    this.server = server;
  }

  /** Like kill -9: connections drop, presignatures are lost. */
  stop(): void {
    this.server?.forceShutdown();
    this.server = undefined;
  }

  /** A new process: new boot id, shares reloaded, no presignatures. */
  async restart(): Promise<void> {
    this.stop();
    this.party = new Party(this.index);
    for (const share of this.shares.values()) this.party.installShare(share);
    this.bootId = randomBytes(8).toString('hex');
    await this.start();
  }

  private count(name: string) {
    this.calls[name] = (this.calls[name] ?? 0) + 1;
  }

  private handlers(): grpc.UntypedServiceImplementation {
    const keySummaries = () =>
      [...this.shares.values()].map((s) => ({ key_id: s.keyId, epoch: s.epoch, public_key: Buffer.from(s.publicKey), presignatures: this.party.presignatureCount(s.keyId) }));
    return {
      Health: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: Cb) => {
        this.count('Health');
        cb(null, { index: this.index, boot_id: this.bootId, keys: keySummaries(), blamed_peers: [...this.party.blamedPeers] });
      },
      KeyGen: (call: grpc.ServerUnaryCall<{ key_id: string; session_id: Buffer; parties: number[]; threshold: number }, unknown>, cb: Cb) => {
        this.count('KeyGen');
        const r = call.request;
        let session: Session<KeyShare>;
        try {
          session = this.party.startKeyGen(r.key_id, new Uint8Array(r.session_id), r.parties, r.threshold);
        } catch (e) {
          return cb(abortError(e));
        }
        this.cluster.meet<KeyShare>(`dkg:${r.session_id.toString('hex')}`, r.parties, this.index, session).then(
          (share) => cb(null, this.shareAnswer(share)),
          (e) => cb(abortError(e)),
        );
      },
      Refresh: (call: grpc.ServerUnaryCall<{ key_id: string; session_id: Buffer }, unknown>, cb: Cb) => {
        this.count('Refresh');
        const r = call.request;
        let session: Session<KeyShare>;
        try {
          session = this.party.startRefresh(r.key_id, new Uint8Array(r.session_id));
        } catch (e) {
          return cb(abortError(e));
        }
        const parties = this.party.share(r.key_id).parties;
        this.cluster.meet<KeyShare>(`refresh:${r.session_id.toString('hex')}`, [...parties], this.index, session).then(
          (share) => cb(null, this.shareAnswer(share)),
          (e) => cb(abortError(e)),
        );
      },
      Presign: (call: grpc.ServerUnaryCall<{ key_id: string; session_id: Buffer; subset: number[]; count: number }, unknown>, cb: Cb) => {
        this.count('Presign');
        const r = call.request;
        if (this.faults.blamePeerInPresign !== undefined) {
          const culprit = this.faults.blamePeerInPresign;
          return cb(abortError(new ProtocolAbort('vole-check-failed', 'fake: VOLE check failed', culprit)));
        }
        let session: Session<Presignature[]>;
        try {
          session = this.party.startPresign(r.key_id, new Uint8Array(r.session_id), r.subset, r.count);
        } catch (e) {
          return cb(abortError(e));
        }
        const boot = this.bootId;
        this.cluster.meet<Presignature[]>(`presign:${r.session_id.toString('hex')}`, r.subset, this.index, session).then(
          (list) => cb(null, { boot_id: boot, presignatures: list.map((p) => ({ id: Buffer.from(p.id), nonce: Buffer.from(p.nonce) })) }),
          (e) => cb(abortError(e)),
        );
      },
      Finish: (call: grpc.ServerUnaryCall<{ key_id: string; presignature_id: Buffer; digest: Buffer; tweak_seed: Buffer }, unknown>, cb: Cb) => {
        this.count('Finish');
        const r = call.request;
        const answer = () => {
          if (this.faults.failFinish) return cb({ code: grpc.status.INTERNAL, details: 'fake: finish failed' });
          try {
            const m = this.party.sign(r.key_id, new Uint8Array(r.presignature_id), { digest: new Uint8Array(r.digest), tweakSeed: new Uint8Array(r.tweak_seed) });
            if (this.faults.badShare) {
              const w = Uint8Array.from(m.payload.w!);
              w[31] ^= 1;
              m.payload.w = w;
            }
            if (this.faults.wrongNonce) {
              const n = Uint8Array.from(m.payload.nonce!);
              // Another valid point: G's compressed form.
              n.set(Buffer.from('036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296', 'hex'));
              m.payload.nonce = n;
            }
            cb(null, { share: toEnvelope(m) });
          } catch (e) {
            cb(abortError(e));
          }
        };
        if (this.faults.finishDelayMs) setTimeout(answer, this.faults.finishDelayMs);
        else answer();
      },
      Readmit: (call: grpc.ServerUnaryCall<{ index: number }, unknown>, cb: Cb) => {
        this.count('Readmit');
        this.party.readmit(call.request.index);
        this.readmitted.push(call.request.index);
        cb(null, { index: this.index, boot_id: this.bootId, keys: keySummaries(), blamed_peers: [...this.party.blamedPeers] });
      },
    };
  }

  private shareAnswer(share: KeyShare) {
    this.shares.set(share.keyId, share);
    const digest = createHash('sha256');
    for (const p of share.parties) digest.update(share.publicShares.get(p)!);
    return { public_key: Buffer.from(share.publicKey), epoch: share.epoch, public_shares_digest: digest.digest() };
  }
}

export class FakeSignerCluster {
  readonly signers = new Map<number, FakeSigner>();
  private readonly meetings = new Map<string, Meeting<unknown>>();

  constructor(
    readonly pki: string,
    ports: ReadonlyMap<number, number>,
    readonly meetTimeoutMs = 20_000,
  ) {
    for (const [i, port] of ports) this.signers.set(i, new FakeSigner(this, i, port));
  }

  signer(i: number): FakeSigner {
    return this.signers.get(i)!;
  }

  async start(): Promise<void> {
    await Promise.all([...this.signers.values()].map((s) => s.start()));
  }
  stop(): void {
    for (const s of this.signers.values()) s.stop();
  }

  /** The signers of one session meet here; when all arrived the session runs in memory. */
  meet<T>(key: string, expected: number[], self: number, session: Session<T>): Promise<T> {
    let m = this.meetings.get(key) as Meeting<T> | undefined;
    if (!m) {
      const created: Meeting<T> = {
        expected: [...expected].sort((a, b) => a - b),
        sessions: new Map(),
        waiters: new Map(),
        timer: setTimeout(() => {
          this.meetings.delete(key);
          for (const [i, w] of created.waiters) w.reject(new ProtocolAbort('missing-message', 'fake: peers did not join the session', created.expected.find((p) => !created.sessions.has(p) && p !== i)));
        }, this.meetTimeoutMs),
      };
      m = created;
      this.meetings.set(key, m as Meeting<unknown>);
    }
    const meeting = m;
    return new Promise<T>((resolve, reject) => {
      meeting.sessions.set(self, session);
      meeting.waiters.set(self, { resolve, reject });
      if (meeting.expected.every((p) => meeting.sessions.has(p))) {
        clearTimeout(meeting.timer);
        this.meetings.delete(key);
        // Let the last caller's handler return first, then run the rounds.
        setImmediate(() => {
          const result = runSessions(meeting.sessions);
          for (const [i, s] of meeting.sessions) {
            const party = this.signer(i).party;
            const failure = result.aborts.get(i);
            if (failure) {
              party.reportAbort(s, failure);
              meeting.waiters.get(i)!.reject(failure);
            } else {
              party.complete(s as never);
              meeting.waiters.get(i)!.resolve(result.outputs.get(i)!);
            }
          }
        });
      }
    });
  }
}
