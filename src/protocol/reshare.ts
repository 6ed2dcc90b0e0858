/**
 * Resharing's dealing and its checks, pure (DESIGN §3): any T holders S of epoch e deal a new
 * T′-of-N′ sharing of the same key to a new set of parties (which may add new indices and drop
 * old ones).
 *
 *   dealer i ∈ S   g_i of degree T′−1 with g_i(0) = λ_i·x_i (λ_i: Lagrange at zero over S);
 *                  Feldman commitments C_i,k = a_i,k·G; private g_i(j) to every new party j
 *   everyone       C_i,0 = λ_i·X_i, X_i the dealer's public share of epoch e: a dealer cannot
 *                  deal anything but its own old share's part (Σ_i λ_i·X_i = the public key)
 *   new party j    g_i(j)·G = Σ_k C_i,k·j^k for every dealer; x′_j = Σ_i g_i(j)
 *   public         X′_k = Σ_i Σ_m C_i,m·k^m for every new party k; Σ_i C_i,0 = the public key
 *
 * Any T′ of the new shares interpolate to the same secret; shares of epoch e never combine with
 * them (other polynomial). Every check names the dealer at fault when it can. No I/O, no
 * session: the message rounds, the echo of the commitments and the pairwise set-up of the new
 * parties belong to the session that uses these functions.
 */
import { abort } from './errors.js';
import { MAX_PARTIES, MIN_PARTIES } from './keyshare.js';
import { add, IDENTITY, mul, mulBase, pointsEqual } from './math/curve.js';
import { mod } from './math/scalar.js';
import { commitCoefficients, decodeCommitments, evaluate, evaluateCommitments, lagrangeAtZero, randomPolynomial } from './polynomial.js';
import type { Rng } from './rng.js';

export interface ReshareParams {
  /** The T holders of epoch e that deal, ascending. */
  dealers: readonly number[];
  /** The old threshold T (the number of dealers). */
  oldThreshold: number;
  /** Every old holder's public share X_i = F(i)·G of epoch e. */
  oldPublicShares: ReadonlyMap<number, Uint8Array>;
  /** The key, F(0)·G: it must not change. */
  publicKey: Uint8Array;
  /** The new holders, ascending (indices 1…255). */
  newParties: readonly number[];
  newThreshold: number;
}

export interface ReshareDealing {
  /** T′ concatenated commitments C_0…C_{T′−1}. */
  commitments: Uint8Array;
  /** g(j) for every new party j. */
  shares: Map<number, bigint>;
}

export interface ReshareResult {
  secretShare: bigint;
  publicShares: Map<number, Uint8Array>;
}

const ascendingDistinct = (list: readonly number[]) => list.every((v, k) => Number.isInteger(v) && v >= 1 && v <= 255 && (k === 0 || v > list[k - 1]!));

/** Refuses parameters no honest resharing has; the old public shares must interpolate to the key. */
export function checkReshareParams(p: ReshareParams): void {
  if (!ascendingDistinct(p.dealers)) abort('bad-parameters', 'dealers must be distinct indices in 1..255, ascending');
  if (p.dealers.length !== p.oldThreshold) abort('bad-parameters', `${p.dealers.length} dealers for an old threshold of ${p.oldThreshold}`);
  const missing = p.dealers.find((i) => !p.oldPublicShares.has(i));
  if (missing !== undefined) abort('bad-parameters', `dealer ${missing} has no public share of the old epoch`);
  if (!ascendingDistinct(p.newParties)) abort('bad-parameters', 'new parties must be distinct indices in 1..255, ascending');
  const n = p.newParties.length;
  if (n < MIN_PARTIES || n > MAX_PARTIES) abort('bad-parameters', `${n} new parties, expected ${MIN_PARTIES}..${MAX_PARTIES}`);
  if (!Number.isInteger(p.newThreshold) || p.newThreshold < MIN_PARTIES || p.newThreshold > n) abort('bad-parameters', `new threshold ${p.newThreshold} of ${n} parties`);
  let sum = IDENTITY;
  for (const i of p.dealers) sum = add(sum, mul(p.oldPublicShares.get(i)!, lagrangeAtZero(i, p.dealers)));
  if (!pointsEqual(sum, p.publicKey)) abort('public-key-mismatch', 'the old public shares of the dealers do not interpolate to the public key');
}

/** Dealer `self`'s dealing of its old share `secretShare` (x_self of epoch e). */
export function dealReshare(p: ReshareParams, self: number, secretShare: bigint, rng: Rng): ReshareDealing {
  checkReshareParams(p);
  if (!p.dealers.includes(self)) abort('bad-parameters', `party ${self} is not a dealer`);
  if (!pointsEqual(mulBase(secretShare), p.oldPublicShares.get(self)!)) abort('share-inconsistent', 'own share does not match its public share of the old epoch');
  const polynomial = randomPolynomial(p.newThreshold - 1, rng, mod(lagrangeAtZero(self, p.dealers) * secretShare));
  return { commitments: commitCoefficients(polynomial), shares: new Map(p.newParties.map((j) => [j, evaluate(polynomial, j)] as const)) };
}

/**
 * Checks dealer `dealer`'s commitments (exactly T′ valid points, the constant term its own part
 * of the key) and, for the new party `receiver`, its private share. Returns the decoded points.
 */
export function verifyDealing(p: ReshareParams, dealer: number, commitments: Uint8Array, receiver?: { index: number; share: bigint }): Uint8Array[] {
  if (!p.dealers.includes(dealer)) abort('wrong-sender', `party ${dealer} is not a dealer`, dealer);
  const points = decodeCommitments(commitments, p.newThreshold, 'reshare.commitments', dealer);
  const expected = mul(p.oldPublicShares.get(dealer)!, lagrangeAtZero(dealer, p.dealers));
  if (!pointsEqual(points[0]!, expected)) abort('public-key-mismatch', 'the dealing does not start from the dealer’s share of the old epoch', dealer);
  if (receiver) {
    if (!pointsEqual(mulBase(receiver.share), evaluateCommitments(points, receiver.index))) abort('share-inconsistent', 'private share does not match the dealer’s commitments', dealer);
  }
  return points;
}

/**
 * New party `self`'s share and every new party's public share, from every dealer's verified
 * commitments and `self`'s private share from each. Throws unless every dealer dealt.
 */
export function combineReshare(p: ReshareParams, self: number, dealings: ReadonlyMap<number, { commitments: Uint8Array; share: bigint }>): ReshareResult {
  checkReshareParams(p);
  if (!p.newParties.includes(self)) abort('bad-parameters', `party ${self} is not a new party`);
  const missing = p.dealers.find((i) => !dealings.has(i));
  if (missing !== undefined) abort('missing-message', 'no dealing from this dealer', missing);
  let secretShare = 0n;
  let constant = IDENTITY;
  const publicShares = new Map<number, Uint8Array>(p.newParties.map((j) => [j, IDENTITY]));
  for (const i of p.dealers) {
    const d = dealings.get(i)!;
    const points = verifyDealing(p, i, d.commitments, { index: self, share: d.share });
    secretShare = mod(secretShare + d.share);
    constant = add(constant, points[0]!);
    for (const j of p.newParties) publicShares.set(j, add(publicShares.get(j)!, evaluateCommitments(points, j)));
  }
  if (!pointsEqual(constant, p.publicKey)) abort('public-key-mismatch', 'the dealings do not share the public key');
  if (!pointsEqual(mulBase(secretShare), publicShares.get(self)!)) abort('share-inconsistent', 'own new share does not match the new public shares');
  return { secretShare, publicShares };
}
