/**
 * A key's signing policy (what it may sign, with which constraints, how fast): fixed at key
 * creation, agreed by every signer in the DKG echo and sealed with each share, and enforced by
 * every signer on the content it is asked to sign (check.ts). Pure: no I/O.
 *
 * Who may ask (the client ACL) is not part of it: only the coordinator authenticates clients,
 * so a signer could not check a client identity it has to take from the coordinator's word.
 *
 * The canonical encoding (encodeKeyPolicy) is what the DKG agrees on and what is sealed; it is
 * canonical JSON (sorted keys, no whitespace) of the normalised policy, so equal policies have
 * equal bytes and a digest that the echo can compare.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../audit/canonical.js';
import { CONTEXTS, type Context } from './classify.js';
import { EXTENDED_KEY_USAGES, formatIpAddress, parseIpRange, rangeNetwork } from './x509-constraints.js';

export interface X509Constraints {
  /**
   * DNS names (subjectAltName dNSName, and a subject CN) must equal one of these or end in
   * "." + one of them. Empty: no DNS name may be certified.
   */
  dnsSuffixes: string[];
  /** IP addresses (subjectAltName iPAddress, and a subject CN that is an IP literal) must lie in one of these CIDR ranges. */
  ipRanges: string[];
  /** Longest notAfter − notBefore, in days. */
  maxValidityDays: number;
  /**
   * Whether CA certificates (basicConstraints cA TRUE, keyUsage keyCertSign or cRLSign) may be
   * signed: never (false), always (true), or 'self-signed': only the key's own root (issuer =
   * subject, subjectPublicKeyInfo = this very key), so no other key is ever made a CA.
   */
  allowCa: boolean | 'self-signed';
  /** Extended key usages that may appear (names: serverAuth, clientAuth, OCSPSigning, … or dotted OIDs). */
  extendedKeyUsages: string[];
}

export interface RateLimit {
  /** Signatures per second (also the burst). */
  perSecond: number;
  perHour: number;
}

export interface KeyPolicy {
  /** Allowed contexts, in CONTEXTS order. */
  contexts: Context[];
  /** Present exactly when contexts includes x509-cert. */
  x509?: X509Constraints;
  rate: RateLimit;
}

export const DEFAULT_CONTEXTS: readonly Context[] = ['tls-server'];
export const DEFAULT_RATE: Readonly<RateLimit> = { perSecond: 1000, perHour: 1_000_000 };
export const MAX_POLICY_BYTES = 16 * 1024;

export class PolicyError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`policy ${field}: ${message}`);
    this.name = 'PolicyError';
  }
}

const encoder = new TextEncoder();

/** Encodes a policy as canonical JSON bytes (normalised first, so it also validates). */
export function encodeKeyPolicy(policy: KeyPolicy): Uint8Array {
  return encoder.encode(canonicalJson(normaliseKeyPolicy(policy)));
}

/** Decodes and validates encodeKeyPolicy's output; refuses anything that is not its canonical form. */
export function decodeKeyPolicy(bytes: Uint8Array): KeyPolicy {
  if (bytes.length === 0 || bytes.length > MAX_POLICY_BYTES) throw new PolicyError('encoding', `must be 1 to ${MAX_POLICY_BYTES} bytes, got ${bytes.length}`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new PolicyError('encoding', 'is not UTF-8 JSON');
  }
  const policy = normaliseKeyPolicy(raw);
  if (Buffer.compare(Buffer.from(encodeKeyPolicy(policy)), Buffer.from(bytes)) !== 0) throw new PolicyError('encoding', 'is not canonical');
  return policy;
}

export function keyPolicyDigest(policy: KeyPolicy | Uint8Array): Uint8Array {
  const bytes = policy instanceof Uint8Array ? policy : encodeKeyPolicy(policy);
  return new Uint8Array(createHash('sha256').update('quorumkey-policy-v1\n').update(bytes).digest());
}

// ---------------------------------------------------------------------------------------------
// Validation.

function object(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PolicyError(field, 'must be an object');
  return v as Record<string, unknown>;
}

function onlyFields(o: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  const extra = Object.keys(o).find((k) => !allowed.includes(k));
  if (extra !== undefined) throw new PolicyError(field, `unknown field '${extra}' (known: ${allowed.join(', ')})`);
}

function count(v: unknown, field: string, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max) throw new PolicyError(field, `must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

function strings(v: unknown, field: string, each: (s: string, field: string) => string): string[] {
  if (!Array.isArray(v) || v.length > 64) throw new PolicyError(field, 'must be a list of at most 64 strings');
  const out = v.map((s, i) => {
    if (typeof s !== 'string') throw new PolicyError(`${field}[${i}]`, 'must be a string');
    return each(s, `${field}[${i}]`);
  });
  return [...new Set(out)].sort();
}

const DNS_SUFFIX = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function dnsSuffix(s: string, field: string): string {
  // ASCII lowercasing only: toLowerCase() maps e.g. U+212A KELVIN SIGN to "k".
  const v = s.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/^\./, '');
  if (!DNS_SUFFIX.test(v)) throw new PolicyError(field, `'${s}' is not a DNS name suffix (e.g. example.com)`);
  return v;
}

function cidr(s: string, field: string): string {
  const range = parseIpRange(s);
  if (!range) throw new PolicyError(field, `'${s}' is not a CIDR range (e.g. 10.0.0.0/8 or 2001:db8::/32)`);
  const network = formatIpAddress(rangeNetwork(range));
  if (network !== formatIpAddress(range.network)) throw new PolicyError(field, `'${s}' has host bits set (did you mean ${network}/${range.bits}?)`);
  return `${network}/${range.bits}`;
}

// Dotted OID: first arc 0-2, second arc below 40 under 0 and 1, no leading zeros.
const OID = /^(?=.{3,100}$)(?:[01]\.(?:[0-9]|[1-3][0-9])|2\.(?:0|[1-9]\d*))(?:\.(?:0|[1-9]\d*))*$/;

function eku(s: string, field: string): string {
  if (Object.hasOwn(EXTENDED_KEY_USAGES, s) || OID.test(s)) return s;
  throw new PolicyError(field, `'${s}' is not an extended key usage (one of ${Object.keys(EXTENDED_KEY_USAGES).join(', ')}, or a dotted OID)`);
}

function contexts(v: unknown): Context[] {
  if (v === undefined) return [...DEFAULT_CONTEXTS];
  if (!Array.isArray(v) || v.length === 0) throw new PolicyError('contexts', `must be a non-empty list of ${CONTEXTS.join(', ')}`);
  for (const c of v) {
    if (!(CONTEXTS as readonly unknown[]).includes(c)) throw new PolicyError('contexts', `unknown context ${JSON.stringify(c)} (allowed: ${CONTEXTS.join(', ')})`);
  }
  const out = CONTEXTS.filter((c) => v.includes(c));
  // A raw-digest key signs any digest: other contexts beside it would restrict nothing.
  if (out.includes('raw-digest') && out.length > 1) throw new PolicyError('contexts', `raw-digest signs any digest, so it stands alone (give a separate key for ${out.filter((c) => c !== 'raw-digest').join(', ')})`);
  return out;
}

function x509(v: unknown): X509Constraints {
  const o = object(v, 'x509');
  onlyFields(o, 'x509', ['dnsSuffixes', 'ipRanges', 'maxValidityDays', 'allowCa', 'extendedKeyUsages']);
  if (typeof o.allowCa !== 'boolean' && o.allowCa !== 'self-signed') throw new PolicyError('x509.allowCa', 'must be true or false, or "self-signed"');
  return {
    dnsSuffixes: strings(o.dnsSuffixes ?? [], 'x509.dnsSuffixes', dnsSuffix),
    ipRanges: strings(o.ipRanges ?? [], 'x509.ipRanges', cidr),
    maxValidityDays: count(o.maxValidityDays, 'x509.maxValidityDays', 36_500),
    allowCa: o.allowCa as boolean | 'self-signed',
    extendedKeyUsages: strings(o.extendedKeyUsages ?? [], 'x509.extendedKeyUsages', eku),
  };
}

function rate(v: unknown): RateLimit {
  if (v === undefined) return { ...DEFAULT_RATE };
  const o = object(v, 'rate');
  onlyFields(o, 'rate', ['perSecond', 'perHour']);
  const perSecond = count(o.perSecond, 'rate.perSecond', 1_000_000);
  const perHour = count(o.perHour, 'rate.perHour', 3_600_000_000);
  if (perHour < perSecond) throw new PolicyError('rate.perHour', `must be at least rate.perSecond (${perSecond})`);
  return { perSecond, perHour };
}

/**
 * Validates a policy from any source (CLI, Admin API, keys.json, a KeyGen request) and returns
 * its normal form: contexts in CONTEXTS order, lists sorted and deduplicated, defaults filled.
 * Throws PolicyError naming the bad field.
 */
export function normaliseKeyPolicy(input: unknown): KeyPolicy {
  const o = object(input, 'policy');
  onlyFields(o, 'policy', ['contexts', 'x509', 'rate']);
  const out: KeyPolicy = { contexts: contexts(o.contexts), rate: rate(o.rate) };
  if (out.contexts.includes('x509-cert')) {
    if (o.x509 === undefined) throw new PolicyError('x509', 'an x509-cert key needs its constraints (dnsSuffixes, ipRanges, maxValidityDays, allowCa, extendedKeyUsages)');
    out.x509 = x509(o.x509);
  } else if (o.x509 !== undefined) {
    throw new PolicyError('x509', 'constraints are only for keys whose contexts include x509-cert');
  }
  return out;
}
