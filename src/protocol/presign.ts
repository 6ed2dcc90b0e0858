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
 *
 * Every secret scalar (r, φ, sk, the VOLE's χ and shares, u, v) is a 32-byte buffer computed on
 * by the native constant-time kernels (math/secret-scalar.ts) and wiped when no longer needed;
 * the exceptions are the inputs that arrive as bigints from other modules (the key share x_i
 * and the zero share ζ), converted once (docs/constant-time.md).
 */
import { abort } from './errors.js';
import { commit, COMMITMENT_BYTES, opens, SALT_BYTES } from './commitment.js';
import type { KeyShare } from './keyshare.js';
import { add, decodePoint, isIdentity, mul, mulBase, pointsEqual, POINT_BYTES } from './math/curve.js';
import { decodeScalar, SCALAR_BYTES } from './math/scalar.js';
import * as S from './math/secret-scalar.js';
import type { SecretScalar } from './math/secret-scalar.js';
import { concatBytes, field, type Payload, splitField } from './message.js';
import { lagrangeAtZero } from './polynomial.js';
import type { Rng } from './rng.js';
import { systemRng } from './rng.js';
import { type Inbox, Session } from './session.js';
import { taggedHash } from './transcript.js';
import { voleAliceRespond, voleBobFinish, voleBobStart, wipeVoleBob, type VoleBobState, type VoleShares } from './vole.js';
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
  /** φ_i, u_i, v_i: secret 32-byte scalars, wiped by signShare (online.ts) when used. */
  readonly phi: SecretScalar;
  readonly u: SecretScalar;
  readonly v: SecretScalar;
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
  r: SecretScalar;
  phi: SecretScalar;
  sk: SecretScalar;
  nonce: Uint8Array;
  keyPoint: Uint8Array;
}

/** A presignature's id: from the session context, so a replayed label never repeats an id. */
export function presignatureId(keyId: string, context: Uint8Array, index: number): Uint8Array {
  return taggedHash('presignature-id', [['key', keyId], ['context', context], ['index', index]]);
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
  private readonly aliceShares = new Map<number, VoleShares>();

  constructor(params: PresignParams) {
    const { share, subset } = params;
    super({ protocol: 'presign', keyId: share.keyId, sessionId: params.sessionId, self: share.self, parties: subset, rng: params.rng });
    if (this.parties.length !== share.threshold) abort('bad-parameters', `a signing subset has exactly ${share.threshold} parties, got ${this.parties.length}`);
    if (this.parties.some((p) => !share.parties.includes(p))) abort('bad-parameters', 'subset contains a party that holds no share of this key');
    if (!Number.isInteger(params.count) || params.count < 1 || params.count > MAX_BATCH) abort('bad-parameters', `batch size must be in [1, ${MAX_BATCH}]`);
    this.share = share;
    this.count = params.count;
    this.rng = params.rng ?? systemRng;
  }

  private nonceContext(party: number): Uint8Array {
    return taggedHash('presign-nonce', [['key', this.keyId], ['epoch', this.share.epoch], ['context', this.context], ['party', party]]);
  }
  private voleContext(alice: number, bob: number): Uint8Array {
    return taggedHash('presign-vole', [['key', this.keyId], ['epoch', this.share.epoch], ['context', this.context], ['alice', alice], ['bob', bob]]);
  }

  protected send(round: number, inbox: Inbox): Map<number, Payload> {
    return round === 1 ? this.round1() : this.round2(inbox);
  }

  private round1(): Map<number, Payload> {
    const lambda = S.publicScalar(lagrangeAtZero(this.self, this.parties));
    const x = S.secretFromBigInt(this.share.secretShare);
    const weighted = S.mul(lambda, x);
    S.wipe(x);
    this.instances = Array.from({ length: this.count }, (_, b) => {
      const r = S.randomSecret(this.rng);
      const sk = S.secretFromBigInt(zeroShare(this.self, this.parties, this.share.zeroSeeds, this.context, b));
      S.addInto(sk, weighted, sk);
      return { r, phi: S.randomSecret(this.rng), sk, nonce: mulBase(r), keyPoint: mulBase(sk) };
    });
    S.wipe(weighted);
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
        psi: concatBytes(this.instances.map((x, b) => S.sub(x.phi, chi[b]!))),
      });
    }
    return out;
  }

  protected finish(inbox: Inbox): Presignature[] {
    const u = this.instances.map((x) => S.mul(x.r, x.phi));
    const v = this.instances.map((x) => S.mul(x.sk, x.phi));
    const nonceSum = this.instances.map((x) => x.nonce);
    const keySum = this.instances.map((x) => x.keyPoint);
    const dShares: VoleShares[] = [];
    let output: Presignature[] | undefined;
    try {
      this.combinePeers(inbox, u, v, nonceSum, keySum, dShares);
      output = this.presignatures(u, v, nonceSum, keySum);
      return output;
    } finally {
      // r, sk and every VOLE secret are spent; φ, u, v live on in the presignatures only.
      for (const x of this.instances) S.wipe(x.r, x.sk, ...(output ? [] : [x.phi]));
      if (!output) S.wipe(...u, ...v);
      for (const shares of [...this.aliceShares.values(), ...dShares]) for (const [a, b] of shares) S.wipe(a, b);
      for (const bob of this.bobStates.values()) wipeVoleBob(bob);
    }
  }

  private combinePeers(inbox: Inbox, u: SecretScalar[], v: SecretScalar[], nonceSum: Uint8Array[], keySum: Uint8Array[], dShares: VoleShares[]): void {
    for (const peer of this.peers) {
      const msg = inbox.get(peer)!;
      const nonces = splitField(msg, 'nonces', peer, this.count, POINT_BYTES).map((p, b) => decodePoint(p, `nonces[${b}]`, peer));
      if (!opens(this.nonceCommitments.get(peer)!, this.nonceContext(peer), field(msg, 'nonces', peer), field(msg, 'nonceSalt', peer, SALT_BYTES)))
        abort('commitment-mismatch', 'nonces do not open the round-1 commitment', peer);
      const keyPoints = splitField(msg, 'keyShares', peer, this.count, POINT_BYTES).map((p, b) => decodePoint(p, `keyShares[${b}]`, peer));
      const gammaU = splitField(msg, 'gammaU', peer, this.count, POINT_BYTES).map((p, b) => decodePoint(p, `gammaU[${b}]`, peer));
      const gammaV = splitField(msg, 'gammaV', peer, this.count, POINT_BYTES).map((p, b) => decodePoint(p, `gammaV[${b}]`, peer));
      const psi = splitField(msg, 'psi', peer, this.count, SCALAR_BYTES);
      psi.forEach((s) => decodeScalar(s, 'psi', peer, true)); // range check; ψ is public (masked by φ)
      const bob = this.bobStates.get(peer)!;
      const d = voleBobFinish(bob, this.voleContext(peer, this.self), msg, peer);
      dShares.push(d);
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
        // u += ψ·r + cᵘ + dᵘ, v += ψ·sk + cᵛ + dᵛ, in place.
        S.mulAddInto(u[b]!, psi[b]!, x.r, u[b]!);
        S.addInto(u[b]!, u[b]!, cu);
        S.addInto(u[b]!, u[b]!, du);
        S.mulAddInto(v[b]!, psi[b]!, x.sk, v[b]!);
        S.addInto(v[b]!, v[b]!, cv);
        S.addInto(v[b]!, v[b]!, dv);
        nonceSum[b] = add(nonceSum[b]!, nonces[b]!);
        keySum[b] = add(keySum[b]!, keyPoints[b]!);
      }
    }
  }

  private presignatures(u: SecretScalar[], v: SecretScalar[], nonceSum: Uint8Array[], keySum: Uint8Array[]): Presignature[] {
    return this.instances.map((x, b) => {
      if (!pointsEqual(keySum[b]!, this.share.publicKey))
        abort('public-key-mismatch', `key shares of instance ${b} do not sum to the public key`, undefined, this.peers);
      if (isIdentity(nonceSum[b]!)) abort('nonce-inconsistent', 'joint nonce is the identity', undefined, this.peers);
      return {
        id: presignatureId(this.keyId, this.context, b),
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
