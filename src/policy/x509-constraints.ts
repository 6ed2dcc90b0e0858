/**
 * The X.509 constraints of an x509-cert key (key-policy.ts X509Constraints), applied to a DER
 * TBSCertificate before it is signed. Pure: no I/O.
 *
 * The certificate is parsed with @peculiar/asn1-x509 (typed RFC 5280 schemas), and every parsed
 * structure this module reads (the TBSCertificate, subjectAltName, basicConstraints, keyUsage,
 * extendedKeyUsage) must re-encode to exactly the bytes it came from. The parser itself is
 * lenient (BER), so that is what makes the view checked here the certificate that gets signed:
 * BER-isms, trailing bytes and anything the schema cannot represent are refused as malformed.
 *
 * Name rules (docs/policy.md):
 * - A DNS name is compared after ASCII lowercasing and dropping one trailing dot. It must be a
 *   host name of LDH labels and equal a permitted suffix or end in "." + one.
 * - A wildcard is "*" as the whole leftmost label followed by at least two labels; "*.R" stands
 *   for every name one label below R, so it is permitted exactly when R is.
 * - A subject CN is checked like a SAN when it is an IP literal, or when it contains a dot and
 *   neither whitespace nor "@" (so it could be taken for a host name): it must then be a permitted
 *   host name, which also refuses U-labels and underscores. Other CNs ("Example CA",
 *   "user@example.com") are no host name to any matcher and are not checked. A CN with a control
 *   character is refused outright: NUL-truncating matchers would read another name.
 */
import { AsnConvert, AsnParser } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  ExtendedKeyUsage,
  GeneralName,
  KeyUsage,
  SubjectAlternativeName,
  TBSCertificate,
  Version,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
} from '@peculiar/asn1-x509';
import { p256 } from '@noble/curves/nist.js';
import type { X509Constraints } from './key-policy.js';

export type ConstraintReason =
  | 'malformed-certificate'
  | 'dns-name-not-permitted'
  | 'ip-not-permitted'
  | 'name-not-permitted'
  | 'validity-too-long'
  | 'ca-not-allowed'
  | 'eku-not-allowed'
  | 'eku-missing';

export type ConstraintResult = { ok: true; names: string[] } | { ok: false; reason: ConstraintReason; message: string };

/** Extended key usage names a policy may use, and their OIDs (RFC 5280 §4.2.1.12). */
export const EXTENDED_KEY_USAGES: Readonly<Record<string, string>> = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  OCSPSigning: '1.3.6.1.5.5.7.3.9',
  anyExtendedKeyUsage: '2.5.29.37.0',
};

const DAY_MS = 86_400_000;
const EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const COMMON_NAME = '2.5.4.3';

// ---------------------------------------------------------------------------------------------
// IP addresses and CIDR ranges (also used by key-policy.ts to validate and normalise ipRanges).

const IPV4 = /^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4(text: string): Uint8Array | undefined {
  if (!IPV4.test(text)) return undefined;
  const octets = text.split('.').map(Number);
  return octets.every((o) => o <= 255) ? Uint8Array.from(octets) : undefined;
}

/** RFC 4291 §2.2 text forms, including "::" and a dotted IPv4 tail; no zone index. */
function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === '') return [];
    const out: number[] = [];
    const parts = half.split(':');
    for (let k = 0; k < parts.length; k++) {
      const part = parts[k]!;
      if (k === parts.length - 1 && part.includes('.')) {
        const v4 = parseIpv4(part);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (HEX_GROUP.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // A dotted IPv4 part may only end the address.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, k) => {
    out[2 * k] = g >> 8;
    out[2 * k + 1] = g & 0xff;
  });
  return out;
}

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address from its text form, or undefined. */
export function parseIpAddress(text: string): Uint8Array | undefined {
  return text.includes(':') ? parseIpv6(text) : parseIpv4(text);
}

/** Dotted decimal for IPv4; RFC 5952 §4 form for IPv6 (lowercase, longest zero run as "::"). */
export function formatIpAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new RangeError(`an IP address is 4 or 16 bytes, got ${bytes.length}`);
  const groups = Array.from({ length: 8 }, (_, k) => (bytes[2 * k]! << 8) | bytes[2 * k + 1]!);
  let best = { start: -1, length: 1 };
  for (let k = 0; k < 8; ) {
    let end = k;
    while (end < 8 && groups[end] === 0) end++;
    if (end - k > best.length) best = { start: k, length: end - k };
    k = end === k ? k + 1 : end;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (best.start < 0) return hex(groups);
  return `${hex(groups.slice(0, best.start))}::${hex(groups.slice(best.start + best.length))}`;
}

export interface IpRange {
  /** 4 or 16 bytes. */
  network: Uint8Array;
  bits: number;
}

/** "addr/bits", or undefined. The address may have host bits set (see rangeNetwork). */
export function parseIpRange(text: string): IpRange | undefined {
  const m = /^([^/]+)\/(0|[1-9]\d{0,2})$/.exec(text);
  const network = m ? parseIpAddress(m[1]!) : undefined;
  if (!network) return undefined;
  const bits = Number(m![2]);
  return bits <= network.length * 8 ? { network, bits } : undefined;
}

/** Whether `ip` lies in `range` (an IPv6 address is never in an IPv4 range, nor the reverse). */
export function ipInRange(ip: Uint8Array, range: IpRange): boolean {
  if (ip.length !== range.network.length) return false;
  for (let bit = 0; bit < range.bits; bit += 8) {
    const take = Math.min(8, range.bits - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if ((ip[bit >> 3]! & mask) !== (range.network[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** The range's address with its host bits cleared. */
export function rangeNetwork(range: IpRange): Uint8Array {
  const out = new Uint8Array(range.network.length);
  for (let k = 0; k < out.length; k++) {
    const take = Math.max(0, Math.min(8, range.bits - 8 * k));
    out[k] = range.network[k]! & ((0xff << (8 - take)) & 0xff);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// DNS names.

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** ASCII-only lowercasing: Unicode case mapping would turn e.g. U+212A KELVIN SIGN into "k". */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

interface HostName {
  /** Lowercase, without a trailing dot; a wildcard keeps its "*." */
  name: string;
  /** The name a wildcard stands under ("*.a.example" → "a.example"), else the name itself. */
  base: string;
  wildcard: boolean;
}

function hostName(raw: string): HostName | undefined {
  let name = asciiLower(raw);
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) return undefined;
  const labels = name.split('.');
  const wildcard = labels[0] === '*';
  const base = wildcard ? labels.slice(1) : labels;
  if (wildcard && base.length < 2) return undefined;
  return base.every((l) => LABEL.test(l)) ? { name, base: base.join('.'), wildcard } : undefined;
}

function underSuffix(name: string, suffixes: readonly string[]): boolean {
  return suffixes.some((s) => name === s || name.endsWith(`.${s}`));
}

// ---------------------------------------------------------------------------------------------

const MAX_QUOTED = 80;

/** A value for a message: JSON-quoted (control characters visible), clipped. */
function quote(s: string): string {
  return JSON.stringify(s.length > MAX_QUOTED ? `${s.slice(0, MAX_QUOTED)}…` : s);
}

class Refusal extends Error {
  constructor(
    readonly reason: ConstraintReason,
    message: string,
  ) {
    super(message);
  }
}

function refuse(reason: ConstraintReason, message: string): never {
  throw new Refusal(reason, message);
}

/**
 * Parses `bytes` as `type` and insists the result re-encodes to exactly `bytes` (i.e. DER).
 * `inspect` sees the value first, to refuse what the library could not re-encode faithfully.
 */
function parseExact<T>(bytes: Uint8Array, type: new () => T, what: string, inspect?: (value: T) => void): T {
  let value: T;
  try {
    value = AsnParser.parse(bytes, type);
  } catch (e) {
    refuse('malformed-certificate', `${what} does not parse (${errorText(e)})`);
  }
  inspect?.(value);
  if (!Buffer.from(AsnConvert.serialize(value)).equals(bytes)) {
    refuse('malformed-certificate', `${what} is not DER (it does not re-encode to the same ${bytes.length} bytes)`);
  }
  return value;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message.slice(0, 120) : 'error';
}

function hasBit(bits: KeyUsage, bit: number): boolean {
  // Read the bytes: BitString.toNumber() goes through a float and loses low bits of long strings.
  const bytes = new Uint8Array(bits.value);
  return (bytes[bit >> 3] ?? 0) & (0x80 >> (bit & 7)) ? true : false;
}
const KEY_CERT_SIGN_BIT = 5;
const CRL_SIGN_BIT = 6;

const GENERAL_NAME_TYPES = ['otherName', 'rfc822Name', 'x400Address', 'directoryName', 'ediPartyName', 'uniformResourceIdentifier', 'registeredID'] as const;

type San = { dns: string } | { ip: Uint8Array } | { other: string };

/**
 * The library reads an iPAddress into text: an address for 4 or 16 bytes, something else
 * ("a.b.c.d/n", hex) for other lengths. Once the subjectAltName has re-encoded to its own bytes,
 * the text is known to stand for exactly the encoded address.
 */
function refuseOddAddresses(names: GeneralName[]): void {
  for (const n of names) {
    if (n.iPAddress !== undefined && !parseIpAddress(n.iPAddress)) {
      refuse('malformed-certificate', `subjectAltName iPAddress ${quote(n.iPAddress)} is not a 4- or 16-byte address`);
    }
  }
}

function san(n: GeneralName): San {
  if (n.dNSName !== undefined) return { dns: n.dNSName };
  if (n.iPAddress !== undefined) return { ip: parseIpAddress(n.iPAddress)! };
  return { other: GENERAL_NAME_TYPES.find((t) => n[t] !== undefined) ?? 'unknown' };
}

interface Parsed {
  tbs: TBSCertificate;
  ca: boolean;
  keyUsage?: KeyUsage;
  ekus?: string[];
  sans: San[];
  commonNames: string[];
}

function parse(der: Uint8Array): Parsed {
  const tbs = parseExact(der, TBSCertificate, 'TBSCertificate');
  const extensions = tbs.extensions ?? [];
  if (extensions.length > 0 && tbs.version !== Version.v3) refuse('malformed-certificate', `extensions need a v3 certificate, this is v${tbs.version + 1}`);
  const seen = new Set<string>();
  for (const e of extensions) {
    if (seen.has(e.extnID)) refuse('malformed-certificate', `extension ${e.extnID} appears more than once`);
    seen.add(e.extnID);
  }
  const value = (oid: string) => {
    const e = extensions.find((x) => x.extnID === oid);
    return e && new Uint8Array(e.extnValue.buffer, e.extnValue.byteOffset, e.extnValue.byteLength);
  };

  const bc = value(id_ce_basicConstraints);
  const ku = value(id_ce_keyUsage);
  const eku = value(id_ce_extKeyUsage);
  const sanValue = value(id_ce_subjectAltName);
  const out: Parsed = { tbs, ca: bc ? parseExact(bc, BasicConstraints, 'basicConstraints').cA : false, sans: [], commonNames: [] };
  if (ku) out.keyUsage = parseExact(ku, KeyUsage, 'keyUsage');
  if (eku) {
    out.ekus = [...parseExact(eku, ExtendedKeyUsage, 'extendedKeyUsage')];
    if (out.ekus.length === 0) refuse('malformed-certificate', 'extendedKeyUsage is empty (RFC 5280 needs at least one purpose)');
  }
  if (sanValue) {
    out.sans = [...parseExact(sanValue, SubjectAlternativeName, 'subjectAltName', (v) => refuseOddAddresses([...v]))].map(san);
    if (out.sans.length === 0) refuse('malformed-certificate', 'subjectAltName is empty (RFC 5280 needs at least one name)');
  }
  for (const rdn of tbs.subject) {
    for (const atv of rdn) {
      if (atv.type !== COMMON_NAME) continue;
      if (atv.value.anyValue !== undefined) refuse('malformed-certificate', 'a subject CN is not a DirectoryString');
      out.commonNames.push(atv.value.toString());
    }
  }
  return out;
}

function checkValidity(p: Parsed, c: X509Constraints): void {
  const from = p.tbs.validity.notBefore.getTime(); // a Date
  const to = p.tbs.validity.notAfter.getTime();
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) refuse('malformed-certificate', 'validity has an invalid time');
  const span = to.getTime() - from.getTime();
  const when = `${from.toISOString()} to ${to.toISOString()}`;
  if (span < 0) refuse('malformed-certificate', `notAfter is before notBefore (${when})`);
  if (span > c.maxValidityDays * DAY_MS) {
    const days = (span / DAY_MS).toFixed(5).replace(/\.?0+$/, '');
    refuse('validity-too-long', `validity is ${days} days (${when}); this key allows at most ${c.maxValidityDays} days`);
  }
}

/** Whether the certificate is the signing key's own self-signed one: issuer = subject, and its key is `signerKey`. */
function selfSigned(p: Parsed, signerKey: Uint8Array | undefined): boolean {
  if (!signerKey) return false;
  const sameName = Buffer.from(AsnConvert.serialize(p.tbs.issuer)).equals(Buffer.from(AsnConvert.serialize(p.tbs.subject)));
  if (!sameName || p.tbs.subjectPublicKeyInfo.algorithm.algorithm !== EC_PUBLIC_KEY) return false;
  try {
    const point = (bytes: Uint8Array) => Buffer.from(p256.Point.fromBytes(bytes).toBytes(true));
    return point(new Uint8Array(p.tbs.subjectPublicKeyInfo.subjectPublicKey)).equals(point(signerKey));
  } catch {
    return false;
  }
}

function checkCa(p: Parsed, c: X509Constraints, signerKey: Uint8Array | undefined): void {
  if (c.allowCa === true) return;
  const why = p.ca
    ? 'basicConstraints has cA TRUE'
    : p.keyUsage && hasBit(p.keyUsage, KEY_CERT_SIGN_BIT)
      ? 'keyUsage has keyCertSign'
      : p.keyUsage && hasBit(p.keyUsage, CRL_SIGN_BIT)
        ? 'keyUsage has cRLSign'
        : undefined;
  if (!why) return;
  if (c.allowCa === false) refuse('ca-not-allowed', `${why}; this key may not issue CA certificates (allowCa is false)`);
  if (!selfSigned(p, signerKey)) refuse('ca-not-allowed', `${why}; this key signs a CA certificate only for itself (allowCa is self-signed: issuer = subject and the certificate's key is this key)`);
}

function checkEku(p: Parsed, c: X509Constraints): void {
  if (!p.ekus) {
    if (!p.ca) refuse('eku-missing', 'the end-entity certificate has no extendedKeyUsage, so it would be valid for every purpose; add one of: ' + (c.extendedKeyUsages.join(', ') || '(none allowed)'));
    return;
  }
  const allowed = new Set(c.extendedKeyUsages.map((u) => (Object.hasOwn(EXTENDED_KEY_USAGES, u) ? EXTENDED_KEY_USAGES[u]! : u)));
  const nameOf = Object.fromEntries(Object.entries(EXTENDED_KEY_USAGES).map(([name, oid]) => [oid, name]));
  for (const oid of p.ekus) {
    if (!allowed.has(oid)) {
      const name = nameOf[oid] ? `${nameOf[oid]} (${oid})` : oid;
      refuse('eku-not-allowed', `extendedKeyUsage ${name} is not allowed; this key allows ${c.extendedKeyUsages.join(', ') || 'none'}`);
    }
  }
}

function checkIp(ip: Uint8Array, where: string, c: X509Constraints): string {
  const text = formatIpAddress(ip);
  const ranges = c.ipRanges.map(parseIpRange).filter((r): r is IpRange => r !== undefined);
  if (!ranges.some((r) => ipInRange(ip, r))) refuse('ip-not-permitted', `${where} ${text} is not in the permitted ranges (${c.ipRanges.join(', ') || 'none'})`);
  return text;
}

function checkDns(raw: string, where: string, c: X509Constraints): string {
  const host = hostName(raw);
  if (!host) refuse('dns-name-not-permitted', `${where} ${quote(raw)} is not a host name (LDH labels; a wildcard only as a whole leftmost label above two or more labels)`);
  if (!underSuffix(host.base, c.dnsSuffixes)) {
    const what = host.wildcard ? `${where} ${quote(host.name)} (a wildcard under ${host.base})` : `${where} ${quote(host.name)}`;
    refuse('dns-name-not-permitted', `${what} is not under the permitted DNS suffixes (${c.dnsSuffixes.join(', ') || 'none'})`);
  }
  return host.name;
}

function checkNames(p: Parsed, c: X509Constraints): string[] {
  const names: string[] = [];
  for (const n of p.sans) {
    if ('dns' in n) names.push(checkDns(n.dns, 'subjectAltName dNSName', c));
    else if ('ip' in n) names.push(checkIp(n.ip, 'subjectAltName iPAddress', c));
    else refuse('name-not-permitted', `subjectAltName ${n.other} is not permitted: an x509-cert key certifies only dNSName and iPAddress names`);
  }
  for (const cn of p.commonNames) {
    if (CONTROL.test(cn)) refuse('name-not-permitted', `subject CN ${quote(cn)} contains a control character`);
    const ip = parseIpAddress(cn);
    if (ip) names.push(checkIp(ip, 'subject CN', c));
    else if (cn.includes('.') && !/[\s@]/.test(cn)) names.push(checkDns(cn, 'subject CN', c));
  }
  return [...new Set(names)];
}

/**
 * A CRL (classify.ts TBSCertList detail) must say when the next one comes, and promise no more
 * than a certificate may last: nextUpdate − thisUpdate within maxValidityDays. Undefined: fine.
 */
export function checkCrlValidity(detail: Record<string, unknown>, maxValidityDays: number): { reason: ConstraintReason; message: string } | undefined {
  if (typeof detail.next_update !== 'string') return { reason: 'malformed-certificate', message: 'the CRL has no nextUpdate (RFC 5280 §5.1.2.5: conforming CAs include it)' };
  const span = Date.parse(detail.next_update) - Date.parse(String(detail.this_update));
  if (!(span >= 0)) return { reason: 'malformed-certificate', message: `the CRL's nextUpdate ${detail.next_update} is before its thisUpdate ${String(detail.this_update)}` };
  if (span > maxValidityDays * DAY_MS) return { reason: 'validity-too-long', message: `the CRL is valid ${(span / DAY_MS).toFixed(2)} days; this key allows at most ${maxValidityDays} days` };
  return undefined;
}

/**
 * Applies `c` to the DER TBSCertificate `tbs`; `signerKey` is the signing key's public point
 * (SEC1), which allowCa 'self-signed' needs. Never throws.
 */
export function checkCertificateConstraints(tbs: Uint8Array, c: X509Constraints, signerKey?: Uint8Array): ConstraintResult {
  try {
    const p = parse(tbs);
    checkValidity(p, c);
    checkCa(p, c, signerKey);
    checkEku(p, c);
    return { ok: true, names: checkNames(p, c) };
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, reason: e.reason, message: e.message };
    // The parser failing in a way parseExact did not anticipate is still an unparseable certificate.
    return { ok: false, reason: 'malformed-certificate', message: `TBSCertificate could not be read (${errorText(e)})` };
  }
}
