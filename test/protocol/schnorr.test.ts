/** src/protocol/schnorr.ts: Schnorr proof of knowledge of a discrete logarithm (A ‖ z). */
import assert from 'node:assert/strict';
import { p256 } from '@noble/curves/nist.js';
import { ProtocolAbort, type AbortReason } from '../../src/protocol/errors.js';
import { add, curveBackend, mul, mulBase, nativeCurveBackend, nobleBackend, POINT_BYTES, useCurveBackend, type CurveBackend } from '../../src/protocol/math/curve.js';
import { bytesToBigInt, mod, N, randomScalar, scalarToBytes, SCALAR_BYTES } from '../../src/protocol/math/scalar.js';
import { seededRng, systemRng } from '../../src/protocol/rng.js';
import { PROOF_BYTES, proveDlog, verifyDlog } from '../../src/protocol/schnorr.js';
import { Transcript } from '../../src/protocol/transcript.js';

const enc = new TextEncoder();
const PROVER = 5;
const FIELD = 'proof';
const CONTEXT = enc.encode('key-3|session-11|dealer-5');

function expectAbort(fn: () => unknown, reason: AbortReason, culprit: number, ...mentions: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolAbort, `expected ProtocolAbort, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.culprit, culprit);
    assert.equal(e.isBlame, false);
    for (const m of mentions) assert.ok(e.message.includes(m), `'${e.message}' should mention '${m}'`);
    return true;
  });
}

function isOnCurve(bytes: Uint8Array): boolean {
  try {
    p256.Point.fromBytes(bytes).assertValidity();
    return true;
  } catch {
    return false;
  }
}

/** A 33-byte compressed encoding whose x has no square root on P-256. */
function offCurvePoint(): Uint8Array {
  for (let x = 0; ; x++) {
    const b = new Uint8Array(POINT_BYTES);
    b[0] = 2;
    b.set(scalarToBytes(BigInt(x)), 1);
    if (!isOnCurve(b)) return b;
  }
}

function withProof(proof: Uint8Array, edit: (p: Uint8Array) => void): Uint8Array {
  const p = proof.slice();
  edit(p);
  return p;
}

const backends: CurveBackend[] = [nobleBackend, ...(nativeCurveBackend() ? [nativeCurveBackend()!] : [])];

for (const backend of backends) {
  describe(`schnorr proof of knowledge (${backend.name} backend)`, () => {
    let previous: CurveBackend;
    before(() => {
      previous = curveBackend();
      useCurveBackend(backend);
    });
    after(() => useCurveBackend(previous));

    const x = randomScalar(seededRng('schnorr/secret'));
    const X = mulBase(x);
    const proof = proveDlog(CONTEXT, x, X, seededRng('schnorr/nonce'));

    it('has the documented shape: A (33 bytes, on the curve) ‖ z (32 bytes, < N)', () => {
      assert.equal(PROOF_BYTES, POINT_BYTES + SCALAR_BYTES);
      assert.equal(proof.length, 65);
      assert.ok(isOnCurve(proof.subarray(0, 33)));
      assert.ok(bytesToBigInt(proof.subarray(33)) < N);
    });

    it('verifies, and satisfies z·G = A + e·X with e from the transcript', () => {
      verifyDlog(CONTEXT, X, proof, PROVER, FIELD);
      const a = proof.subarray(0, 33);
      const z = bytesToBigInt(proof.subarray(33));
      const e = new Transcript('schnorr-pok').append('context', CONTEXT).append('X', X).append('A', a).challengeScalar();
      assert.deepEqual(mulBase(z), add(a, mul(X, e)));
    });

    it('verifies for many random secrets, including 1 and N−1', () => {
      for (const s of [1n, 2n, N - 1n, ...Array.from({ length: 20 }, () => randomScalar(systemRng))]) {
        const P = mulBase(s);
        verifyDlog(CONTEXT, P, proveDlog(CONTEXT, s, P, systemRng), PROVER, FIELD);
      }
    });

    it('is deterministic under seededRng and randomised otherwise', () => {
      assert.deepEqual(proveDlog(CONTEXT, x, X, seededRng('schnorr/nonce')), proof);
      assert.notDeepEqual(proveDlog(CONTEXT, x, X, systemRng), proveDlog(CONTEXT, x, X, systemRng));
    });

    it('a wrong context is proof-invalid (no replay into another session or dealer)', () => {
      expectAbort(() => verifyDlog(enc.encode('key-3|session-12|dealer-5'), X, proof, PROVER, FIELD), 'proof-invalid', PROVER, FIELD, `party ${PROVER}`);
      expectAbort(() => verifyDlog(new Uint8Array(0), X, proof, PROVER, FIELD), 'proof-invalid', PROVER);
    });

    it('a wrong public point is proof-invalid', () => {
      expectAbort(() => verifyDlog(CONTEXT, mulBase(mod(x + 1n)), proof, PROVER, FIELD), 'proof-invalid', PROVER);
      expectAbort(() => verifyDlog(CONTEXT, mulBase(mod(-x)), proof, PROVER, FIELD), 'proof-invalid', PROVER);
    });

    it('a proof for a secret the prover does not know (wrong x) is proof-invalid', () => {
      expectAbort(() => verifyDlog(CONTEXT, X, proveDlog(CONTEXT, mod(x + 1n), X, systemRng), PROVER, FIELD), 'proof-invalid', PROVER);
    });

    it('every flipped byte of A is invalid-point or proof-invalid, as the point decides', () => {
      for (let i = 0; i < POINT_BYTES; i++) {
        for (const mask of [0x01, 0x80]) {
          const bad = withProof(proof, (p) => (p[i]! ^= mask));
          const a = bad.subarray(0, POINT_BYTES);
          const expected: AbortReason = (a[0] === 2 || a[0] === 3) && isOnCurve(a) ? 'proof-invalid' : 'invalid-point';
          expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), expected, PROVER, expected === 'invalid-point' ? `${FIELD}.A` : FIELD);
        }
      }
    });

    it('negating A (flipping 02/03) is proof-invalid', () => {
      const bad = withProof(proof, (p) => (p[0]! ^= 1));
      assert.ok(isOnCurve(bad.subarray(0, 33)));
      expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), 'proof-invalid', PROVER);
    });

    it('every flipped byte of z is proof-invalid (or invalid-scalar when it lands ≥ N)', () => {
      for (let i = POINT_BYTES; i < PROOF_BYTES; i++) {
        const bad = withProof(proof, (p) => (p[i]! ^= 0x01));
        const expected: AbortReason = bytesToBigInt(bad.subarray(POINT_BYTES)) >= N ? 'invalid-scalar' : 'proof-invalid';
        expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), expected, PROVER);
      }
    });

    it('an off-curve A is invalid-point naming proof.A', () => {
      const bad = withProof(proof, (p) => p.set(offCurvePoint(), 0));
      expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), 'invalid-point', PROVER, 'proof.A', 'not a point');
    });

    it('an identity A (33 zero bytes) is invalid-point', () => {
      const bad = withProof(proof, (p) => p.fill(0, 0, POINT_BYTES));
      expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), 'invalid-point', PROVER, 'proof.A', 'identity');
    });

    it('A with an uncompressed or unknown prefix is invalid-point', () => {
      for (const prefix of [0x00, 0x01, 0x04, 0x06, 0x07, 0xff]) {
        const bad = withProof(proof, (p) => (p[0] = prefix));
        expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), 'invalid-point', PROVER, 'proof.A');
      }
    });

    it('z ≥ N is invalid-scalar naming proof.z (z + N is not accepted as z)', () => {
      const z = bytesToBigInt(proof.subarray(POINT_BYTES));
      const candidates = [N, N + 1n, (1n << 256n) - 1n];
      if (z + N < 1n << 256n) candidates.push(z + N);
      for (const v of candidates) {
        const bad = withProof(proof, (p) => p.set(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'), POINT_BYTES));
        expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), 'invalid-scalar', PROVER, 'proof.z');
      }
    });

    it('z = 0 decodes (zero is a legal response) but does not verify', () => {
      const bad = withProof(proof, (p) => p.fill(0, POINT_BYTES));
      expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), 'proof-invalid', PROVER);
    });

    it('a proof of the wrong length is wrong-length, naming both lengths', () => {
      for (const len of [0, 33, 64, 66, 130]) {
        const bad = new Uint8Array(len);
        bad.set(proof.subarray(0, Math.min(len, PROOF_BYTES)));
        expectAbort(() => verifyDlog(CONTEXT, X, bad, PROVER, FIELD), 'wrong-length', PROVER, FIELD, `expected ${PROOF_BYTES} bytes`, `got ${len}`);
      }
    });

    it('the culprit is whoever the caller names as prover', () => {
      for (const prover of [1, 2, 16]) expectAbort(() => verifyDlog(CONTEXT, mulBase(2n), proof, prover, FIELD), 'proof-invalid', prover, `party ${prover}`);
    });
  });
}
