/**
 * Presigning: DKLs23 Protocol 3.6 rounds 1–2 and the consistency checks that do not depend on
 * the message, for a batch of B presignatures in one session of a fixed signer subset.
 *
 * Party i, for each instance b: nonce share r_i and inversion mask φ_i, R_i = r_i·G, and the
 * additive key share sk_i = λ_i·x_i + ζ_i (Lagrange coefficient over the subset, zero share).
 * For each ordered pair the VOLE gives shares of χ_ij·(r_j, sk_j) where χ_ij is Bob i's random
 * input; Bob reveals ψ_ij = φ_i − χ_ij so Alice j can turn them into shares of φ_i·(r_j, sk_j).
 *
 *  round 1  commitment to (R_i,b)_b; VOLE Bob message to each peer
 *  round 2  open (R_i,b)_b; pk_i,b = sk_i,b·G; VOLE Alice message with Γᵘ = cᵘ·G and Γᵛ = cᵛ·G;
 *           ψ_ij,b
 *  finish   open commitments; VOLE checks; χ·R_j = Γᵘ + dᵘ·G and χ·pk_j = Γᵛ + dᵛ·G;
 *           Σ pk_j = public key; R = Σ R_j; u_i = φ·r share, v_i = φ·sk share
 */
import { abort } from './errors.js';
import { commit, COMMITMENT_BYTES, opens, SALT_BYTES } from './commitment.js';
import type { KeyShare } from './keyshare.js';
import { add, decodePoint, isIdentity, mul, mulBase, pointsEqual, POINT_BYTES } from './math/curve.js';
import { decodeScalar, mod, randomScalar, scalarToBytes, SCALAR_BYTES } from './math/scalar.js';
import { concatBytes, field, type Payload, splitField } from './message.js';
import { lagrangeAtZero } from './polynomial.js';
import type { Rng } from './rng.js';
import { systemRng } from './rng.js';
import { type Inbox, Session } from './session.js';
import { taggedHash } from './transcript.js';
import { voleAliceRespond, voleBobFinish, voleBobStart, type VoleBobState } from './vole.js';
import { zeroShare } from './zero-sharing.js';

export const MAX_BATCH = 256;

/** One party's half of a presignature; used at most once. */
export interface Presignature {
  readonly id: Uint8Array;
  readonly keyId: string;
  readonly epoch: number;
  readonly subset: readonly number[];
  readonly self: number;
  /** R = Σ R_j, before the sign-time tweak. */
  readonly nonce: Uint8Array;
  readonly phi: bigint;
  readonly u: bigint;
  readonly v: bigint;
}

export interface PresignParams {
  share: KeyShare;
  sessionId: Uint8Array;
  /** The T signers, including self. */
  subset: readonly number[];
  /** B: presignatures produced by this session. */
  count: number;
  rng?: Rng;
}

interface Instance {
  r: bigint;
  phi: bigint;
  sk: bigint;
  nonce: Uint8Array;
  keyPoint: Uint8Array;
}

export function presignatureId(keyId: string, sessionId: Uint8Array, index: number): Uint8Array {
  return taggedHash('presignature-id', [['key', keyId], ['session', sessionId], ['index', index]]);
}

export class PresignSession extends Session<Presignature[]> {
  protected readonly rounds = 2;
  private readonly share: KeyShare;
  private readonly count: number;
  private readonly rng: Rng;
  private instances: Instance[] = [];
  private nonceSalt: Uint8Array = new Uint8Array(0);
  private readonly nonceCommitments = new Map<number, Uint8Array>();
  private readonly bobStates = new Map<number, VoleBobState>();
  private readonly aliceShares = new Map<number, [bigint, bigint][]>();

  constructor(params: PresignParams) {
    const { share, subset } = params;
    super({ protocol: 'presign', keyId: share.keyId, sessionId: params.sessionId, self: share.self, parties: subset });
    if (this.parties.length !== share.threshold) abort('bad-parameters', `a signing subset has exactly ${share.threshold} parties, got ${this.parties.length}`);
    if (this.parties.some((p) => !share.parties.includes(p))) abort('bad-parameters', 'subset contains a party that holds no share of this key');
    if (!Number.isInteger(params.count) || params.count < 1 || params.count > MAX_BATCH) abort('bad-parameters', `batch size must be in [1, ${MAX_BATCH}]`);
    this.share = share;
    this.count = params.count;
    this.rng = params.rng ?? systemRng;
  }

  private nonceContext(party: number): Uint8Array {
    return taggedHash('presign-nonce', [['key', this.keyId], ['epoch', this.share.epoch], ['session', this.sessionId], ['party', party]]);
  }
  private voleContext(alice: number, bob: number): Uint8Array {
    return taggedHash('presign-vole', [['key', this.keyId], ['epoch', this.share.epoch], ['session', this.sessionId], ['alice', alice], ['bob', bob]]);
  }

  protected send(round: number, inbox: Inbox): Map<number, Payload> {
    return round === 1 ? this.round1() : this.round2(inbox);
  }

  private round1(): Map<number, Payload> {
    const lambda = lagrangeAtZero(this.self, this.parties);
    const weighted = mod(lambda * this.share.secretShare);
    this.instances = Array.from({ length: this.count }, (_, b) => {
      const r = randomScalar(this.rng);
      const sk = mod(weighted + zeroShare(this.self, this.parties, this.share.zeroSeeds, this.sessionId, b));
      return { r, phi: randomScalar(this.rng), sk, nonce: mulBase(r), keyPoint: mulBase(sk) };
    });
    const nonces = concatBytes(this.instances.map((x) => x.nonce));
    const { commitment, salt } = commit(this.nonceContext(this.self), nonces, this.rng);
    this.nonceSalt = salt;
    const out = new Map<number, Payload>();
    for (const peer of this.peers) {
      const bob = voleBobStart(this.share.otReceiver.get(peer)!, this.voleContext(peer, this.self), this.count, this.rng);
      this.bobStates.set(peer, bob.state);
      out.set(peer, { nonceCommitment: commitment, ...bob.payload });
    }
    return out;
  }

  private round2(inbox: Inbox): Map<number, Payload> {
    const nonces = concatBytes(this.instances.map((x) => x.nonce));
    const keyPoints = concatBytes(this.instances.map((x) => x.keyPoint));
    const inputs = this.instances.map((x) => [x.r, x.sk] as const);
    const out = new Map<number, Payload>();
    for (const peer of this.peers) {
      const msg = inbox.get(peer)!;
      this.nonceCommitments.set(peer, field(msg, 'nonceCommitment', peer, COMMITMENT_BYTES));
      const alice = voleAliceRespond(this.share.otSender.get(peer)!, this.voleContext(this.self, peer), inputs, msg, peer, this.rng);
      this.aliceShares.set(peer, alice.shares);
      const chi = this.bobStates.get(peer)!.chi;
      out.set(peer, {
        nonces,
        nonceSalt: this.nonceSalt,
        keyShares: keyPoints,
        ...alice.payload,
        gammaU: concatBytes(alice.shares.map(([cu]) => mulBase(cu))),
        gammaV: concatBytes(alice.shares.map(([, cv]) => mulBase(cv))),
        psi: concatBytes(this.instances.map((x, b) => scalarToBytes(mod(x.phi - chi[b]!)))),
      });
    }
    return out;
  }

  protected finish(inbox: Inbox): Presignature[] {
    const u = this.instances.map((x) => mod(x.r * x.phi));
    const v = this.instances.map((x) => mod(x.sk * x.phi));
    const nonceSum = this.instances.map((x) => x.nonce);
    const keySum = this.instances.map((x) => x.keyPoint);
    for (const peer of this.peers) {
      const msg = inbox.get(peer)!;
      const nonces = splitField(msg, 'nonces', peer, this.count, POINT_BYTES).map((p, b) => decodePoint(p, `nonces[${b}]`, peer));
      if (!opens(this.nonceCommitments.get(peer)!, this.nonceContext(peer), field(msg, 'nonces', peer), field(msg, 'nonceSalt', peer, SALT_BYTES)))
        abort('commitment-mismatch', 'nonces do not open the round-1 commitment', peer);
      const keyPoints = splitField(msg, 'keyShares', peer, this.count, POINT_BYTES).map((p, b) => decodePoint(p, `keyShares[${b}]`, peer));
      const gammaU = splitField(msg, 'gammaU', peer, this.count, POINT_BYTES).map((p, b) => decodePoint(p, `gammaU[${b}]`, peer));
      const gammaV = splitField(msg, 'gammaV', peer, this.count, POINT_BYTES).map((p, b) => decodePoint(p, `gammaV[${b}]`, peer));
      const psi = splitField(msg, 'psi', peer, this.count, SCALAR_BYTES).map((s) => decodeScalar(s, 'psi', peer, true));
      const bob = this.bobStates.get(peer)!;
      const d = voleBobFinish(bob, this.voleContext(peer, this.self), msg, peer);
      const c = this.aliceShares.get(peer)!;
      for (let b = 0; b < this.count; b++) {
        const chi = bob.chi[b]!;
        const [du, dv] = d[b]!;
        if (!pointsEqual(mul(nonces[b]!, chi), add(gammaU[b]!, mulBase(du))))
          abort('vole-check-failed', `nonce ${b} is inconsistent with the multiplication`, peer);
        if (!pointsEqual(mul(keyPoints[b]!, chi), add(gammaV[b]!, mulBase(dv))))
          abort('vole-check-failed', `key share ${b} is inconsistent with the multiplication`, peer);
        const x = this.instances[b]!;
        const [cu, cv] = c[b]!;
        u[b] = mod(u[b]! + cu + psi[b]! * x.r + du);
        v[b] = mod(v[b]! + cv + psi[b]! * x.sk + dv);
        nonceSum[b] = add(nonceSum[b]!, nonces[b]!);
        keySum[b] = add(keySum[b]!, keyPoints[b]!);
      }
    }
    return this.instances.map((x, b) => {
      if (!pointsEqual(keySum[b]!, this.share.publicKey))
        abort('public-key-mismatch', `key shares of instance ${b} do not sum to the public key`, undefined, this.peers);
      if (isIdentity(nonceSum[b]!)) abort('nonce-inconsistent', 'joint nonce is the identity', undefined, this.peers);
      return {
        id: presignatureId(this.keyId, this.sessionId, b),
        keyId: this.keyId,
        epoch: this.share.epoch,
        subset: this.parties,
        self: this.self,
        nonce: nonceSum[b]!,
        phi: x.phi,
        u: u[b]!,
        v: v[b]!,
      };
    });
  }
}
