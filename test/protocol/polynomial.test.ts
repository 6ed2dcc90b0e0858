/** src/protocol/polynomial.ts: Shamir/Feldman sharing, commitment vectors and Lagrange coefficients. */
import assert from 'node:assert/strict';
import { p256 } from '@noble/curves/nist.js';
import { ProtocolAbort, type AbortReason } from '../../src/protocol/errors.js';
import { IDENTITY, mulBase, POINT_BYTES } from '../../src/protocol/math/curve.js';
import { mod, N, randomScalar, scalarToBytes } from '../../src/protocol/math/scalar.js';
import {
  commitCoefficients,
  decodeCommitments,
  evaluate,
  evaluateCommitments,
  lagrangeAtZero,
  randomPolynomial,
} from '../../src/protocol/polynomial.js';
import { seededRng, type Rng } from '../../src/protocol/rng.js';

const SENDER = 4;

function expectAbort(fn: () => unknown, reason: AbortReason, culprit: number, ...mentions: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.culprit, culprit);
    for (const m of mentions) assert.ok(e.message.includes(m), `'${e.message}' should mention '${m}'`);
    return true;
  });
}

/** Σ a_k x^k mod N, term by term with explicit powers (no Horner). */
function naive(coefficients: readonly bigint[], x: bigint): bigint {
  let acc = 0n;
  for (let k = 0; k < coefficients.length; k++) acc += coefficients[k]! * x ** BigInt(k);
  return ((acc % N) + N) % N;
}

/** Lagrange interpolation at 0 written independently: Π_{j≠i} x_j / (x_j − x_i), with the inverse by extended Euclid. */
function refLagrange(i: number, subset: readonly number[]): bigint {
  let num = 1n;
  let den = 1n;
  for (const j of subset) {
    if (j === i) continue;
    num *= BigInt(j);
    den *= BigInt(j - i);
  }
  return mod(num * egcdInverse(mod(den)));
}
function egcdInverse(a: bigint): bigint {
  let [r0, r1, s0, s1] = [a, N, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  assert.equal(r0, 1n);
  return mod(s0);
}

function randomSubset(rng: Rng, n: number, t: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = all.length - 1; i > 0; i--) {
    const j = rng(1)[0]! % (i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, t);
}

function splitPoints(bytes: Uint8Array): Uint8Array[] {
  return Array.from({ length: bytes.length / POINT_BYTES }, (_, k) => bytes.subarray(k * POINT_BYTES, (k + 1) * POINT_BYTES));
}

/** A compressed encoding of an x with no point on P-256. */
function offCurvePoint(): Uint8Array {
  for (let x = 0; ; x++) {
    const b = new Uint8Array(POINT_BYTES);
    b[0] = 3;
    b.set(scalarToBytes(BigInt(x)), 1);
    try {
      p256.Point.fromBytes(b).assertValidity();
    } catch {
      return b;
    }
  }
}

describe('polynomial: evaluation', () => {
  it('randomPolynomial has degree+1 coefficients in [1, N), and the given constant', () => {
    const rng = seededRng('poly/random');
    for (const degree of [0, 1, 2, 15]) {
      const f = randomPolynomial(degree, rng);
      assert.equal(f.length, degree + 1);
      for (const c of f) assert.ok(c >= 1n && c < N);
    }
    assert.equal(randomPolynomial(3, rng, 0n)[0], 0n);
    assert.equal(randomPolynomial(3, rng, 42n)[0], 42n);
  });

  it('evaluate matches a naive evaluation', () => {
    const rng = seededRng('poly/evaluate');
    for (const degree of [0, 1, 2, 5, 15]) {
      const f = randomPolynomial(degree, rng);
      for (const x of [0, 1, 2, 3, 16, 255, 65535]) assert.equal(evaluate(f, x), naive(f, BigInt(x)), `degree ${degree}, x ${x}`);
    }
  });

  it('evaluate: known answers', () => {
    assert.equal(evaluate([], 5), 0n);
    assert.equal(evaluate([7n], 5), 7n);
    assert.equal(evaluate([1n, 2n, 3n], 2), 17n); // 1 + 4 + 12
    assert.equal(evaluate([N - 1n, 1n], 1), 0n);
    assert.equal(evaluate([0n, N - 1n], 2), N - 2n);
  });
});

describe('polynomial: Lagrange coefficients at zero', () => {
  it('known answer for {1,2,3}: λ1 = 3, λ2 = −3, λ3 = 1', () => {
    assert.equal(lagrangeAtZero(1, [1, 2, 3]), 3n);
    assert.equal(lagrangeAtZero(2, [1, 2, 3]), N - 3n);
    assert.equal(lagrangeAtZero(3, [1, 2, 3]), 1n);
  });

  it('known answers for pairs: {1,2} → 2, −1; {2,5} → 5/3, −2/3', () => {
    assert.equal(lagrangeAtZero(1, [1, 2]), 2n);
    assert.equal(lagrangeAtZero(2, [1, 2]), N - 1n);
    assert.equal(mod(lagrangeAtZero(2, [2, 5]) * 3n), 5n);
    assert.equal(mod(lagrangeAtZero(5, [2, 5]) * 3n), N - 2n);
  });

  it('does not depend on the order of the subset and sums to 1', () => {
    const rng = seededRng('poly/lagrange-order');
    for (let trial = 0; trial < 50; trial++) {
      const subset = randomSubset(rng, 16, 2 + (trial % 15));
      const sorted = [...subset].sort((a, b) => a - b);
      let sum = 0n;
      for (const i of subset) {
        const l = lagrangeAtZero(i, subset);
        assert.equal(l, lagrangeAtZero(i, sorted));
        assert.equal(l, refLagrange(i, subset));
        sum += l;
      }
      assert.equal(mod(sum), 1n, 'Σ λ_i = 1 (interpolates the constant polynomial 1)');
    }
  });

  it('any T of N shares interpolate the constant (N up to 16, random subsets)', () => {
    const rng = seededRng('poly/interpolate');
    for (let n = 2; n <= 16; n++) {
      for (let t = 2; t <= n; t++) {
        const secret = randomScalar(rng);
        const f = randomPolynomial(t - 1, rng, secret);
        for (let trial = 0; trial < 2; trial++) {
          const subset = randomSubset(rng, n, t);
          const recovered = mod(subset.reduce((acc, i) => acc + lagrangeAtZero(i, subset) * evaluate(f, i), 0n));
          assert.equal(recovered, secret, `n ${n}, t ${t}, subset ${subset}`);
        }
        // T − 1 shares interpolate a different value (with overwhelming probability).
        if (t > 2) {
          const short = randomSubset(rng, n, t - 1);
          const wrong = mod(short.reduce((acc, i) => acc + lagrangeAtZero(i, short) * evaluate(f, i), 0n));
          assert.notEqual(wrong, secret);
        }
      }
    }
  });
});

describe('polynomial: Feldman commitments', () => {
  it('commitCoefficients is a_k·G for k ≥ first', () => {
    const f = [5n, 6n, 7n];
    const all = splitPoints(commitCoefficients(f));
    assert.equal(all.length, 3);
    f.forEach((c, k) => assert.deepEqual(all[k], mulBase(c)));
    const tail = splitPoints(commitCoefficients(f, 1));
    assert.equal(tail.length, 2);
    assert.deepEqual(tail[0], mulBase(6n));
    assert.deepEqual(tail[1], mulBase(7n));
  });

  it('evaluateCommitments(commitCoefficients(f), x) = f(x)·G (first = 0)', () => {
    const rng = seededRng('poly/feldman');
    for (const degree of [0, 1, 2, 4]) {
      const f = randomPolynomial(degree, rng);
      const commitments = decodeCommitments(commitCoefficients(f), degree + 1, 'coefficients', SENDER);
      for (const x of [1, 2, 3, 7, 16, 255]) assert.deepEqual(evaluateCommitments(commitments, x), mulBase(evaluate(f, x)), `degree ${degree}, x ${x}`);
      assert.deepEqual(evaluateCommitments(commitments, 0), mulBase(f[0]!), 'x = 0 gives the constant term');
    }
  });

  it('evaluateCommitments(commitCoefficients(f, 1), x, 1) = f(x)·G for zero-constant polynomials', () => {
    const rng = seededRng('poly/feldman-refresh');
    for (const degree of [1, 2, 4]) {
      const f = randomPolynomial(degree, rng, 0n);
      const commitments = decodeCommitments(commitCoefficients(f, 1), degree, 'coefficients', SENDER);
      for (const x of [1, 2, 3, 7, 16, 255]) assert.deepEqual(evaluateCommitments(commitments, x, 1), mulBase(evaluate(f, x)), `degree ${degree}, x ${x}`);
      assert.deepEqual(evaluateCommitments(commitments, 0, 1), IDENTITY, 'a zero-constant polynomial vanishes at 0');
    }
  });

  it('a share that does not lie on the committed polynomial is detected', () => {
    const rng = seededRng('poly/feldman-bad-share');
    const f = randomPolynomial(2, rng);
    const commitments = decodeCommitments(commitCoefficients(f), 3, 'coefficients', SENDER);
    assert.notDeepEqual(evaluateCommitments(commitments, 2), mulBase(mod(evaluate(f, 2) + 1n)));
    assert.notDeepEqual(evaluateCommitments(commitments, 2), mulBase(evaluate(f, 3)));
  });
});

describe('polynomial: decodeCommitments (received vectors)', () => {
  const rng = seededRng('poly/decode');
  const f = randomPolynomial(2, rng); // T = 3: three coefficients
  const bytes = commitCoefficients(f);

  it('accepts exactly count valid points', () => {
    const points = decodeCommitments(bytes, 3, 'coefficients', SENDER);
    assert.equal(points.length, 3);
    f.forEach((c, k) => assert.deepEqual(points[k], mulBase(c)));
  });

  it('a shorter vector is wrong-length, naming sender and both coefficient counts', () => {
    expectAbort(() => decodeCommitments(bytes.subarray(0, 2 * POINT_BYTES), 3, 'coefficients', SENDER), 'wrong-length', SENDER, 'coefficients', 'has 2 coefficients', 'expected 3 coefficients', `party ${SENDER}`);
    expectAbort(() => decodeCommitments(new Uint8Array(0), 3, 'coefficients', SENDER), 'wrong-length', SENDER, 'has 0 coefficients', 'expected 3');
  });

  it('a longer vector is wrong-length (a longer polynomial would raise the threshold)', () => {
    const longer = commitCoefficients([...f, randomScalar(rng)]);
    expectAbort(() => decodeCommitments(longer, 3, 'coefficients', SENDER), 'wrong-length', SENDER, 'has 4 coefficients', 'expected 3 coefficients');
  });

  it('a length that is not a multiple of 33 is wrong-length, naming the byte count', () => {
    for (const len of [1, 32, 34, 98, 100]) {
      const b = new Uint8Array(len);
      b.set(bytes.subarray(0, Math.min(len, bytes.length)));
      expectAbort(() => decodeCommitments(b, 3, 'coefficients', SENDER), 'wrong-length', SENDER, `has ${len} bytes`, 'expected 3 coefficients');
    }
  });

  it('an off-curve coefficient is invalid-point naming its index', () => {
    for (const k of [0, 1, 2]) {
      const b = bytes.slice();
      b.set(offCurvePoint(), k * POINT_BYTES);
      expectAbort(() => decodeCommitments(b, 3, 'coefficients', SENDER), 'invalid-point', SENDER, `coefficients[${k}]`, `party ${SENDER}`);
    }
  });

  it('an identity coefficient is invalid-point naming its index', () => {
    for (const k of [0, 2]) {
      const b = bytes.slice();
      b.fill(0, k * POINT_BYTES, (k + 1) * POINT_BYTES);
      expectAbort(() => decodeCommitments(b, 3, 'coefficients', SENDER), 'invalid-point', SENDER, `coefficients[${k}]`, 'identity');
    }
  });

  it('a coefficient with a bad prefix is invalid-point', () => {
    const b = bytes.slice();
    b[POINT_BYTES] = 0x04;
    expectAbort(() => decodeCommitments(b, 3, 'coefficients', SENDER), 'invalid-point', SENDER, 'coefficients[1]');
  });
});
