/**
 * Operator approvals: an operator's signed consent to one dangerous signer operation (a pairwise
 * re-setup, sealing a policy into an old share), made by the CLI with the `admin` identity's
 * private key and checked by every signer. The coordinator only carries it: a coordinator
 * certificate alone cannot make one.
 *
 * statement  canonical JSON (src/audit/canonical.ts) of {op, ...fields, issued_ms, nonce}
 *            (nonce: 16 random bytes, lowercase hex)
 * signature  DER ECDSA-Sig-Value, P-256, over SHA-256(statement)
 * certificate DER certificate of the signing identity
 *
 * verifyApproval accepts an approval only if the certificate was issued by the cluster CA, is
 * within its validity, names CN exactly `admin` and holds a P-256 key that verifies the
 * signature; the statement is canonical JSON with exactly the expected fields (same values, same
 * types) plus issued_ms within ±maxAgeMs of now and a nonce this verifier has not accepted yet.
 * Each refusal is an ApprovalError with a named reason. Pure except for node:crypto.
 */
import { createPrivateKey, randomBytes, sign, verify, X509Certificate } from 'node:crypto';
import { canonicalJson } from '../audit/canonical.js';

export interface OperatorApproval {
  statement: Uint8Array;
  signature: Uint8Array;
  certificate: Uint8Array;
}

/** The identity that signs approvals: PEM certificate and PEM private key. */
export interface ApprovalIdentity {
  cert: string | Buffer;
  key: string | Buffer;
}

export type ApprovalFields = Record<string, string | number>;

export type ApprovalReason =
  | 'approval-missing'
  | 'approval-malformed'
  | 'approval-untrusted'
  | 'approval-not-admin'
  | 'approval-bad-signature'
  | 'approval-mismatch'
  | 'approval-expired'
  | 'approval-replayed';

export class ApprovalError extends Error {
  constructor(
    readonly reason: ApprovalReason,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
    this.name = 'ApprovalError';
  }
}

/** The only certificate name whose approvals signers accept. */
export const APPROVAL_IDENTITY = 'admin';
export const DEFAULT_APPROVAL_MAX_AGE_MS = 5 * 60_000;
export const NONCE_BYTES = 16;
/** Largest statement accepted (a few fields; anything bigger is not one of ours). */
export const MAX_STATEMENT_BYTES = 4096;
const RESERVED = new Set(['op', 'issued_ms', 'nonce']);
const NONCE_PATTERN = /^[0-9a-f]{32}$/;

function checkFields(op: string, fields: ApprovalFields): void {
  if (typeof op !== 'string' || op.length === 0) throw new TypeError('approval op must be a non-empty string');
  for (const [k, v] of Object.entries(fields)) {
    if (RESERVED.has(k)) throw new TypeError(`approval field '${k}' is reserved`);
    if (typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) throw new TypeError(`approval field '${k}' must be a string or a finite number`);
  }
}

/** Signs {op, ...fields, issued_ms: now, nonce} with the identity's (P-256) private key. */
export function createApproval(identity: ApprovalIdentity, op: string, fields: ApprovalFields, now: number = Date.now()): OperatorApproval {
  checkFields(op, fields);
  const statement = Buffer.from(canonicalJson({ ...fields, op, issued_ms: Math.trunc(now), nonce: randomBytes(NONCE_BYTES).toString('hex') }), 'utf8');
  const key = createPrivateKey(identity.key);
  const signature = sign('sha256', statement, { key, dsaEncoding: 'der' });
  const certificate = new X509Certificate(identity.cert).raw;
  return { statement: new Uint8Array(statement), signature: new Uint8Array(signature), certificate: new Uint8Array(certificate) };
}

/**
 * Nonces of accepted approvals, each kept until its approval could no longer be accepted
 * (issued_ms + maxAgeMs: verifyApproval says when), at most `capacity` at once. Only accepted approvals are recorded, so
 * only the admin key can fill it; when it is full, further approvals are refused until entries
 * age out (never is an unexpired nonce forgotten, which would allow its replay).
 */
export class ReplayCache {
  private readonly entries = new Map<string, number>();

  constructor(
    readonly maxAgeMs: number = DEFAULT_APPROVAL_MAX_AGE_MS,
    readonly capacity: number = 1024,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  private prune(now: number): void {
    for (const [nonce, forgetAt] of this.entries) if (forgetAt < now) this.entries.delete(nonce);
  }

  /** Whether the nonce was accepted before (and is still remembered). */
  has(nonce: string, now: number): boolean {
    this.prune(now);
    return this.entries.has(nonce);
  }

  /** Records an accepted nonce until `forgetAtMs`; false when the cache is full. */
  remember(nonce: string, forgetAtMs: number, now: number): boolean {
    this.prune(now);
    if (this.entries.size >= this.capacity) return false;
    this.entries.set(nonce, forgetAtMs);
    return true;
  }
}

export interface VerifyApprovalOptions {
  /** PEM of the cluster CA certificate. */
  caPem: string | Buffer;
  /** The fields the approval must carry, exactly: {op, ...}. */
  expect: { op: string } & ApprovalFields;
  now?: number;
  maxAgeMs?: number;
  seen: ReplayCache;
}

/** The accepted statement. */
export type ApprovalStatement = { op: string; issued_ms: number; nonce: string } & ApprovalFields;

const bytesOf = (v: unknown): Uint8Array | undefined => (v instanceof Uint8Array ? v : undefined);

function subjectNames(cert: X509Certificate): string[] {
  return cert.subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3));
}

/** Checks an approval (see the module comment) and records its nonce; throws ApprovalError. */
export function verifyApproval(approval: OperatorApproval | null | undefined, options: VerifyApprovalOptions): ApprovalStatement {
  const now = options.now ?? Date.now();
  const maxAgeMs = options.maxAgeMs ?? options.seen.maxAgeMs;
  const statementBytes = bytesOf(approval?.statement);
  const signature = bytesOf(approval?.signature);
  const certDer = bytesOf(approval?.certificate);
  if (!approval || ((statementBytes?.length ?? 0) === 0 && (signature?.length ?? 0) === 0 && (certDer?.length ?? 0) === 0)) {
    throw new ApprovalError('approval-missing', `this operation needs an operator approval of ${canonicalJson(options.expect)} signed with the '${APPROVAL_IDENTITY}' identity`);
  }
  if (!statementBytes?.length || !signature?.length || !certDer?.length) throw new ApprovalError('approval-malformed', 'statement, signature and certificate are all required');
  if (statementBytes.length > MAX_STATEMENT_BYTES) throw new ApprovalError('approval-malformed', `statement is longer than ${MAX_STATEMENT_BYTES} bytes`);

  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(certDer));
  } catch {
    throw new ApprovalError('approval-malformed', 'certificate is not a DER X.509 certificate');
  }
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(options.caPem);
  } catch {
    throw new Error('verifyApproval: caPem is not a certificate');
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new ApprovalError('approval-untrusted', 'certificate is not issued by the cluster CA');
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (!(from <= now && now <= to)) throw new ApprovalError('approval-untrusted', `certificate is not valid now (valid ${cert.validFrom} to ${cert.validTo})`);
  if (cert.ca) throw new ApprovalError('approval-untrusted', 'a CA certificate does not sign approvals');
  const names = subjectNames(cert);
  if (names.length !== 1 || names[0] !== APPROVAL_IDENTITY) {
    throw new ApprovalError('approval-not-admin', `signed by '${names.join(',') || '(no CN)'}', not by the '${APPROVAL_IDENTITY}' identity`);
  }

  const publicKey = cert.publicKey;
  if (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ApprovalError('approval-bad-signature', 'the certificate key is not ECDSA P-256');
  }
  let valid = false;
  try {
    valid = verify('sha256', statementBytes, { key: publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    valid = false;
  }
  if (!valid) throw new ApprovalError('approval-bad-signature', 'the signature does not verify with the certificate key');

  let text: string;
  let parsed: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(statementBytes);
    parsed = JSON.parse(text);
  } catch {
    throw new ApprovalError('approval-malformed', 'statement is not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ApprovalError('approval-malformed', 'statement is not a JSON object');
  let canonical: string;
  try {
    canonical = canonicalJson(parsed);
  } catch {
    throw new ApprovalError('approval-malformed', 'statement is not plain JSON');
  }
  if (canonical !== text) throw new ApprovalError('approval-malformed', 'statement is not canonical JSON');
  const s = parsed as Record<string, unknown>;
  const issued = s.issued_ms;
  const nonce = s.nonce;
  if (typeof issued !== 'number' || !Number.isSafeInteger(issued)) throw new ApprovalError('approval-malformed', 'issued_ms is not an integer');
  if (typeof nonce !== 'string' || !NONCE_PATTERN.test(nonce)) throw new ApprovalError('approval-malformed', `nonce is not ${NONCE_BYTES} bytes of lowercase hex`);

  const expected = new Map<string, string | number>(Object.entries(options.expect));
  for (const [k, want] of expected) {
    if (!Object.hasOwn(s, k)) throw new ApprovalError('approval-mismatch', `the approval has no '${k}' (expected ${JSON.stringify(want)})`);
    if (s[k] !== want) throw new ApprovalError('approval-mismatch', `the approval is for ${k} ${JSON.stringify(s[k])}, not ${JSON.stringify(want)}`);
  }
  const extra = Object.keys(s).filter((k) => !expected.has(k) && k !== 'issued_ms' && k !== 'nonce');
  if (extra.length) throw new ApprovalError('approval-mismatch', `the approval has fields this operation does not take: ${extra.join(', ')}`);

  if (Math.abs(now - issued) > maxAgeMs) {
    throw new ApprovalError('approval-expired', `issued ${new Date(issued).toISOString()}, more than ${Math.round(maxAgeMs / 1000)} s from this signer's clock (${new Date(now).toISOString()})`);
  }
  if (options.seen.has(nonce, now)) throw new ApprovalError('approval-replayed', 'this approval was used already; make a new one');
  if (!options.seen.remember(nonce, issued + maxAgeMs, now)) throw new ApprovalError('approval-replayed', 'too many approvals within the replay window; retry in a few minutes');
  return s as ApprovalStatement;
}
