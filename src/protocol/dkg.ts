/**
 * Dealerless key generation and proactive refresh (one protocol, two modes), after DKLs23's
 * set-up (eprint 2023/602 Protocol 9.1 for the sharing):
 *
 *  round 1  commit to own Feldman coefficient vector; commit to pairwise zero-sharing seed
 *           contributions; base-OT receiver message (as future OT-extension sender) per peer
 *  round 2  open the commitments; proof of knowledge of the constant term (key generation);
 *           private share f_i(j); base-OT sender message per peer
 *  round 3  after verifying everything: echo of a hash of every party's broadcast values
 *  finish   every echo equals ours → the new KeyShare
 *
 * Refresh deals polynomials with a zero constant term (coefficients from degree 1), so the
 * public key stays and every share changes; zero-sharing seeds and base OTs are set up anew for
 * every pair (which also ends every retired pair: the new share has none).
 *
 * Every value is derived from the session context (session.ts: the label and every party's
 * fresh nonce), never from the coordinator's label alone.
 */
import { abort } from './errors.js';
import { commit, COMMITMENT_BYTES, opens, SALT_BYTES } from './commitment.js';
import type { KeyShare } from './keyshare.js';
import { MAX_PARTIES, MIN_PARTIES } from './keyshare.js';
import { add, IDENTITY, isIdentity, mulBase, pointsEqual } from './math/curve.js';
import { decodeScalar, mod, scalarToBytes, SCALAR_BYTES } from './math/scalar.js';
import { bytesEqual, field, type Payload, type ProtocolName } from './message.js';
import { PairwiseOtSetup } from './ot/pairwise-setup.js';
import { commitCoefficients, decodeCommitments, evaluate, evaluateCommitments, randomPolynomial } from './polynomial.js';
import type { Rng } from './rng.js';
import { systemRng } from './rng.js';
import { PROOF_BYTES, proveDlog, verifyDlog } from './schnorr.js';
import { type Inbox, Session } from './session.js';
import { taggedHash } from './transcript.js';

export interface KeyGenParams {
  keyId: string;
  sessionId: Uint8Array;
  self: number;
  /** All N share holders. */
  parties: readonly number[];
  threshold: number;
  /** The key's canonical policy bytes, agreed in the echo and sealed with the share (empty: none). */
  policy?: Uint8Array;
  rng?: Rng;
}

export interface RefreshParams {
  sessionId: Uint8Array;
  share: KeyShare;
  rng?: Rng;
}

export class KeyDealingSession extends Session<KeyShare> {
  protected readonly rounds = 3;
  private readonly threshold: number;
  private readonly previous: KeyShare | undefined;
  private readonly epoch: number;
  private readonly rng: Rng;
  private readonly policy: Uint8Array;
  /** Index of the first committed coefficient: 1 when refreshing (the constant term is zero). */
  private readonly firstCoefficient: number;

  private polynomial: bigint[] = [];
  private coefficientBytes: Uint8Array = new Uint8Array(0);
  private coefficientSalt: Uint8Array = new Uint8Array(0);
  private readonly commitments = new Map<number, Uint8Array>();
  private readonly coefficientVectors = new Map<number, Uint8Array[]>();
  private readonly seedContributions = new Map<number, { value: Uint8Array; salt: Uint8Array; peerCommitment?: Uint8Array }>();
  private readonly ot: PairwiseOtSetup;
  private readonly zeroSeeds = new Map<number, Uint8Array>();
  private dealt: Omit<KeyShare, 'zeroSeeds' | 'otSender' | 'otReceiver' | 'retiredPeers' | 'policy'> | undefined;
  private echo: Uint8Array = new Uint8Array(0);

  constructor(protocol: ProtocolName, keyId: string, sessionId: Uint8Array, self: number, parties: readonly number[], threshold: number, rng: Rng, policy: Uint8Array, previous?: KeyShare) {
    super({ protocol, keyId, sessionId, self, parties, rng });
    const n = this.parties.length;
    if (n < MIN_PARTIES || n > MAX_PARTIES) abort('bad-parameters', `between ${MIN_PARTIES} and ${MAX_PARTIES} parties are supported, got ${n}`);
    if (!Number.isInteger(threshold) || threshold < 2 || threshold > n) abort('bad-parameters', `threshold must be in [2, ${n}], got ${threshold}`);
    if (this.parties.some((p) => !Number.isInteger(p) || p < 1 || p > 255)) abort('bad-parameters', 'party indices must be integers in [1, 255]');
    this.threshold = threshold;
    this.previous = previous;
    this.epoch = previous ? previous.epoch + 1 : 0;
    this.rng = rng;
    this.policy = previous ? previous.policy : policy;
    this.firstCoefficient = previous ? 1 : 0;
    this.ot = new PairwiseOtSetup(this.self, (from, to) => this.pairContext(from, to), rng);
  }

  private dealerContext(dealer: number): Uint8Array {
    return taggedHash('dealer-context', [['protocol', this.protocol], ['key', this.keyId], ['context', this.context], ['epoch', this.epoch], ['dealer', dealer]]);
  }
  private pairContext(from: number, to: number): Uint8Array {
    return taggedHash('pair-context', [['protocol', this.protocol], ['key', this.keyId], ['context', this.context], ['epoch', this.epoch], ['from', from], ['to', to]]);
  }

  protected send(round: number, inbox: Inbox): Map<number, Payload> {
    if (round === 1) return this.round1();
    if (round === 2) return this.round2(inbox);
    return this.round3(inbox);
  }

  private round1(): Map<number, Payload> {
    this.polynomial = randomPolynomial(this.threshold - 1, this.rng, this.previous ? 0n : undefined);
    this.coefficientBytes = commitCoefficients(this.polynomial, this.firstCoefficient);
    const { commitment, salt } = commit(this.dealerContext(this.self), this.coefficientBytes, this.rng);
    this.commitments.set(this.self, commitment);
    this.coefficientSalt = salt;
    const out = new Map<number, Payload>();
    for (const peer of this.peers) {
      const value = this.rng(SALT_BYTES);
      const seedCommitment = commit(this.pairContext(this.self, peer), value, this.rng);
      this.seedContributions.set(peer, { value, salt: seedCommitment.salt });
      out.set(peer, { commitment, seedCommitment: seedCommitment.commitment, baseOt: this.ot.open(peer) });
    }
    return out;
  }

  private round2(inbox: Inbox): Map<number, Payload> {
    const proof = this.previous ? undefined : proveDlog(this.dealerContext(this.self), this.polynomial[0]!, mulBase(this.polynomial[0]!), this.rng);
    const out = new Map<number, Payload>();
    for (const peer of this.peers) {
      const msg = inbox.get(peer)!;
      this.commitments.set(peer, field(msg, 'commitment', peer, COMMITMENT_BYTES));
      this.seedContributions.get(peer)!.peerCommitment = field(msg, 'seedCommitment', peer, COMMITMENT_BYTES);
      const baseOt = this.ot.answer(peer, field(msg, 'baseOt', peer));
      const own = this.seedContributions.get(peer)!;
      const payload: Payload = {
        coefficients: this.coefficientBytes,
        salt: this.coefficientSalt,
        share: scalarToBytes(evaluate(this.polynomial, peer)),
        seed: own.value,
        seedSalt: own.salt,
        baseOt,
      };
      if (proof) payload.proof = proof;
      out.set(peer, payload);
    }
    return out;
  }

  private round3(inbox: Inbox): Map<number, Payload> {
    const coefficientCount = this.threshold - this.firstCoefficient;
    let secretShare = evaluate(this.polynomial, this.self);
    this.coefficientVectors.set(this.self, decodeCommitments(this.coefficientBytes, coefficientCount, 'coefficients', this.self));
    for (const peer of this.peers) {
      const msg = inbox.get(peer)!;
      const coefficients = field(msg, 'coefficients', peer);
      const vector = decodeCommitments(coefficients, coefficientCount, 'coefficients', peer);
      if (!opens(this.commitments.get(peer)!, this.dealerContext(peer), coefficients, field(msg, 'salt', peer, SALT_BYTES)))
        abort('commitment-mismatch', 'coefficients do not open the round-1 commitment', peer);
      if (!this.previous) verifyDlog(this.dealerContext(peer), vector[0]!, field(msg, 'proof', peer, PROOF_BYTES), peer, 'proof');
      const share = decodeScalar(field(msg, 'share', peer, SCALAR_BYTES), 'share', peer, true);
      if (!pointsEqual(mulBase(share), evaluateCommitments(vector, this.self, this.firstCoefficient)))
        abort('share-inconsistent', 'private share does not match the committed polynomial', peer);
      this.coefficientVectors.set(peer, vector);
      secretShare = mod(secretShare + share);

      const contribution = this.seedContributions.get(peer)!;
      const peerSeed = field(msg, 'seed', peer, SALT_BYTES);
      if (!opens(contribution.peerCommitment!, this.pairContext(peer, this.self), peerSeed, field(msg, 'seedSalt', peer, SALT_BYTES)))
        abort('commitment-mismatch', 'zero-sharing seed does not open its commitment', peer);
      const [low, high] = this.self < peer ? [contribution.value, peerSeed] : [peerSeed, contribution.value];
      this.zeroSeeds.set(peer, taggedHash('zero-seed', [['pair', this.pairContext(Math.min(this.self, peer), Math.max(this.self, peer))], ['low', low], ['high', high]]));

      this.ot.close(peer, field(msg, 'baseOt', peer));
    }
    if (this.previous) secretShare = mod(secretShare + this.previous.secretShare);

    // Aggregate coefficient commitments once, then evaluate them at every party.
    const aggregate = Array.from({ length: coefficientCount }, (_, k) =>
      this.parties.reduce((acc, dealer) => add(acc, this.coefficientVectors.get(dealer)![k]!), IDENTITY),
    );
    const publicKey = this.previous ? this.previous.publicKey : aggregate[0]!;
    if (isIdentity(publicKey)) abort('public-key-mismatch', 'joint public key is the identity', undefined, this.peers);
    const publicShares = new Map<number, Uint8Array>();
    for (const party of this.parties) {
      const fresh = evaluateCommitments(aggregate, party, this.firstCoefficient);
      publicShares.set(party, this.previous ? add(this.previous.publicShares.get(party)!, fresh) : fresh);
    }
    if (!pointsEqual(mulBase(secretShare), publicShares.get(this.self)!)) abort('share-inconsistent', 'own share does not match the public shares');
    this.dealt = { keyId: this.keyId, epoch: this.epoch, threshold: this.threshold, parties: this.parties, self: this.self, secretShare, publicKey, publicShares };
    this.echo = this.broadcastDigest();
    return new Map(this.peers.map((peer) => [peer, { echo: this.echo }]));
  }

  /**
   * Hash of everything that must be identical at every party: the key's policy, commitments,
   * coefficient vectors, prior public state. A holder given another policy than its peers
   * aborts here, so no share of a key exists whose holders disagree on what it may sign.
   */
  private broadcastDigest(): Uint8Array {
    const items: [string, Uint8Array | string | number][] = [
      ['protocol', this.protocol], ['key', this.keyId], ['context', this.context], ['epoch', this.epoch], ['threshold', this.threshold], ['policy', this.policy],
    ];
    for (const party of this.parties) {
      items.push([`commitment/${party}`, this.commitments.get(party)!]);
      this.coefficientVectors.get(party)!.forEach((c, k) => items.push([`coefficient/${party}/${k}`, c]));
    }
    if (this.previous) {
      items.push(['previous-epoch', this.previous.epoch], ['public-key', this.previous.publicKey]);
      for (const party of this.parties) items.push([`previous-share/${party}`, this.previous.publicShares.get(party)!]);
    }
    return taggedHash('dealing-echo', items);
  }

  protected finish(inbox: Inbox): KeyShare {
    for (const peer of this.peers) {
      if (!bytesEqual(field(inbox.get(peer)!, 'echo', peer, 32), this.echo))
        this.disagreement('broadcast-inconsistent', `party ${peer} saw different broadcast values (a dealer equivocated, or party ${peer} lies)`, peer);
    }
    return { ...this.dealt!, zeroSeeds: this.zeroSeeds, otSender: this.ot.sender, otReceiver: this.ot.receiver, retiredPeers: new Set(), policy: this.policy };
  }
}

export function keyGenSession(params: KeyGenParams): KeyDealingSession {
  return new KeyDealingSession('dkg', params.keyId, params.sessionId, params.self, params.parties, params.threshold, params.rng ?? systemRng, params.policy ?? new Uint8Array(0));
}

/** Proactive refresh: all share holders take part; same public key, new shares and pairwise state. */
export function refreshSession(params: RefreshParams): KeyDealingSession {
  const { share } = params;
  return new KeyDealingSession('refresh', share.keyId, params.sessionId, share.self, share.parties, share.threshold, params.rng ?? systemRng, share.policy, share);
}
