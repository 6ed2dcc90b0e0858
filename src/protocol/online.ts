/**
 * The online round and the combiner (DKLs23 Protocol 3.6 round 3), with Groth–Shoup
 * re-randomisation (eprint 2021/1330): after the message is known the presignature's nonce
 * R = k·G is shifted by a public tweak δ = H(key, presignature, R, digest, fresh seed), so
 * k' = k + δ and R' = R + δ·G. Each signer sends
 *     u_i' = u_i + δ·φ_i        (shares of φ·k')
 *     w_i  = e·φ_i + r'·v_i     (shares of φ·(e + r'·x))
 * and s = Σ w_i / Σ u_i' = (e + r'·x) / k'. The combiner verifies before releasing anything.
 *
 * A signer's φ_i, u_i, v_i are secret 32-byte buffers: w_i and u_i' are computed on them by the
 * native constant-time kernels (math/secret-scalar.ts; e, r' and δ are public) and the
 * presignature's buffers are wiped afterwards. The combiner works on public values only.
 */
import { abort } from './errors.js';
import { derSignature, digestToScalar, rawSignature, verifyDigest } from './ecdsa.js';
import { add, decodePoint, mulBase, pointsEqual, pointX, POINT_BYTES } from './math/curve.js';
import { decodeScalar, invert, mod, N, SCALAR_BYTES } from './math/scalar.js';
import { mul, mulAddInto, publicScalar, wipe } from './math/secret-scalar.js';
import { bytesEqual, field, type ProtocolMessage, toHex } from './message.js';
import type { Presignature } from './presign.js';
import { Transcript } from './transcript.js';

/** The combiner's party index in online-round envelopes. */
export const COMBINER = 0;
export const TWEAK_SEED_BYTES = 32;
const MIN_DIGEST_BYTES = 20;
const MAX_DIGEST_BYTES = 64;

export interface SignRequest {
  digest: Uint8Array;
  /** Fresh randomness chosen by the coordinator for this signature. */
  tweakSeed: Uint8Array;
}

export interface Signature {
  r: bigint;
  s: bigint;
  der: Uint8Array;
  raw: Uint8Array;
  /** R' = k'·G, the nonce actually used. */
  nonce: Uint8Array;
}

function checkRequest({ digest, tweakSeed }: SignRequest): void {
  if (digest.length < MIN_DIGEST_BYTES || digest.length > MAX_DIGEST_BYTES) abort('bad-parameters', `digest must be ${MIN_DIGEST_BYTES}–${MAX_DIGEST_BYTES} bytes, got ${digest.length}`);
  if (tweakSeed.length !== TWEAK_SEED_BYTES) abort('bad-parameters', `tweak seed must be ${TWEAK_SEED_BYTES} bytes, got ${tweakSeed.length}`);
}

export function signTweak(keyId: string, presignatureId: Uint8Array, nonce: Uint8Array, request: SignRequest): bigint {
  return new Transcript('groth-shoup-tweak')
    .append('key', keyId)
    .append('presignature', presignatureId)
    .append('R', nonce)
    .append('digest', request.digest)
    .append('seed', request.tweakSeed)
    .challengeScalar();
}

function tweakedNonce(keyId: string, presignatureId: Uint8Array, nonce: Uint8Array, request: SignRequest) {
  const delta = signTweak(keyId, presignatureId, nonce, request);
  const point = add(nonce, mulBase(delta));
  const r = mod(pointX(point));
  if (r === 0n) abort('nonce-inconsistent', 'tweaked nonce has x ≡ 0 mod n');
  return { delta, point, r };
}

const consumed = new WeakSet<Presignature>();

/**
 * A signer's online message. The presignature is marked consumed before anything is computed:
 * a second call with the same presignature is refused (callers also delete it from their pool).
 */
export function signShare(presignature: Presignature, request: SignRequest): ProtocolMessage {
  if (consumed.has(presignature)) abort('presignature-used', `presignature ${toHex(presignature.id)} was already used`);
  consumed.add(presignature);
  checkRequest(request);
  const { delta, point, r } = tweakedNonce(presignature.keyId, presignature.id, presignature.nonce, request);
  const e = publicScalar(digestToScalar(request.digest));
  const { phi, u, v } = presignature;
  // w = e·φ + r'·v and u' = u + δ·φ; then the presignature's secrets are gone.
  const w = mul(e, phi);
  mulAddInto(w, publicScalar(r), v, w);
  const uTweaked = new Uint8Array(SCALAR_BYTES);
  mulAddInto(uTweaked, publicScalar(delta), phi, u);
  wipe(phi, u, v);
  return {
    protocol: 'sign',
    keyId: presignature.keyId,
    sessionId: presignature.id,
    round: 1,
    from: presignature.self,
    to: COMBINER,
    payload: {
      nonce: point,
      w,
      u: uTweaked,
    },
  };
}

export interface CombineParams extends SignRequest {
  keyId: string;
  publicKey: Uint8Array;
  presignatureId: Uint8Array;
  /** R of the presignature, as reported when it was made. */
  nonce: Uint8Array;
  subset: readonly number[];
  /** Online messages by authenticated sender. */
  shares: ReadonlyMap<number, ProtocolMessage>;
}

export function combineSignature(params: CombineParams): Signature {
  checkRequest(params);
  const { point, r } = tweakedNonce(params.keyId, params.presignatureId, params.nonce, params);
  let wSum = 0n;
  let uSum = 0n;
  for (const party of params.subset) {
    const message = params.shares.get(party);
    if (!message) abort('missing-message', 'no online share', party);
    if (message.from !== party) abort('wrong-sender', `message claims to come from party ${message.from}`, party);
    if (message.protocol !== 'sign') abort('malformed-message', `message for protocol '${message.protocol}', expected 'sign'`, party);
    if (message.keyId !== params.keyId) abort('wrong-key-id', `message for key '${message.keyId}'`, party);
    if (!bytesEqual(message.sessionId, params.presignatureId)) abort('wrong-session-id', 'online share for another presignature', party);
    if (message.round !== 1) abort('wrong-round', `online share for round ${message.round}`, party);
    if (message.to !== COMBINER) abort('wrong-receiver', `online share addressed to party ${message.to}`, party);
    const echoed = decodePoint(field(message.payload, 'nonce', party, POINT_BYTES), 'nonce', party);
    if (!pointsEqual(echoed, point)) abort('nonce-inconsistent', 'signer used a different nonce', party);
    wSum += decodeScalar(field(message.payload, 'w', party, SCALAR_BYTES), 'w', party, true);
    uSum += decodeScalar(field(message.payload, 'u', party, SCALAR_BYTES), 'u', party, true);
  }
  for (const sender of params.shares.keys()) if (!params.subset.includes(sender)) abort('wrong-sender', 'online share from outside the subset', sender);
  uSum = mod(uSum);
  if (uSum === 0n) abort('signature-invalid', 'combined nonce share is zero', undefined, params.subset);
  let s = mod(mod(wSum) * invert(uSum));
  // Low-s normalisation: one canonical signature per (message, nonce).
  if (s > N >> 1n) s = N - s;
  if (s === 0n || !verifyDigest(params.publicKey, params.digest, r, s))
    abort('signature-invalid', 'combined signature does not verify; a signer of this subset misbehaved', undefined, params.subset);
  return { r, s, der: derSignature(r, s), raw: rawSignature(r, s), nonce: point };
}
