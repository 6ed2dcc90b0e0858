/**
 * Content classification of to-be-signed bytes (DESIGN §2 step 3, §5). Pure: no I/O.
 *
 * A key's policy names the contexts it may sign; the context is derived from the bytes
 * themselves, never from what the caller claims. Each recogniser accepts only a complete,
 * exactly-sized structure (strict DER: definite minimal lengths, every byte consumed), so one
 * buffer cannot be two things at once:
 *
 * - tls-server  TLS 1.3 server CertificateVerify content (RFC 8446 §4.4.3):
 *               64 × 0x20 ‖ "TLS 1.3, server CertificateVerify" ‖ 0x00 ‖ transcript hash (32/48/64 bytes).
 *               The client variant is NOT tls-server. TLS 1.2 ServerKeyExchange params carry no
 *               domain separation and are deliberately not recognised (unknown).
 * - x509-cert   DER TBSCertificate (RFC 5280 §4.1), or a v2 TBSCertList (RFC 5280 §5.1: a CRL,
 *               detail.structure 'TBSCertList'): both are what an X.509 CA key signs.
 * - x509-csr    DER CertificationRequestInfo (RFC 2986 §4.1).
 * - ocsp        DER OCSP ResponseData (RFC 6960 §4.2.1).
 * - sct         RFC 6962 digitally-signed struct of a v1 certificate_timestamp (§3.2) or of a v1
 *               tree_hash (§3.5: a CT log's signed tree head).
 * - unknown     anything else.
 */

export type Context = 'tls-server' | 'ocsp' | 'x509-cert' | 'x509-csr' | 'sct' | 'raw-digest';
export const CONTEXTS: readonly Context[] = ['tls-server', 'ocsp', 'x509-cert', 'x509-csr', 'sct', 'raw-digest'];

export type ContentClass = Exclude<Context, 'raw-digest'> | 'unknown';

/** Structured, public description of what is signed (goes into the audit record). */
export type Detail = Record<string, string | number | string[]>;

export interface Classification {
  context: ContentClass;
  detail: Detail;
}

// ---------------------------------------------------------------------------------------------
// Strict DER reader (only what the recognisers need: single-byte tags, definite lengths).

class DerError extends Error {}

interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the content in the buffer, and its length. */
  offset: number;
  length: number;
  end: number;
  bytes: Uint8Array;
}

function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated header');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not expected here');
  let len = buf[pos + 1]!;
  let offset = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 4) throw new DerError('length too large');
    if (offset + n > limit) throw new DerError('truncated length');
    if (buf[offset] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + buf[offset + k]!;
    if (len < 0x80) throw new DerError('non-minimal length');
    offset += n;
  }
  const end = offset + len;
  if (end > limit) throw new DerError('truncated content');
  return { tag, start: pos, offset, length: len, end, bytes: buf.subarray(offset, end) };
}

/** The one TLV that must span exactly the whole buffer. */
function whole(buf: Uint8Array, tag: number): Tlv {
  const t = readTlv(buf, 0, buf.length);
  if (t.tag !== tag) throw new DerError(`expected tag 0x${tag.toString(16)}`);
  if (t.end !== buf.length) throw new DerError('trailing bytes');
  return t;
}

/** All TLVs inside a constructed value; they must fill it exactly. */
function children(t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  const base = t.bytes;
  let pos = 0;
  while (pos < base.length) {
    const c = readTlv(base, pos, base.length);
    out.push(c);
    pos = c.end;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`expected ${what}`);
  return t;
}

const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const OID = 0x06;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

function checkInteger(t: Tlv, what: string): void {
  if (t.tag !== INTEGER || t.length === 0) throw new DerError(`expected ${what} INTEGER`);
  if (t.length > 1 && ((t.bytes[0] === 0 && !(t.bytes[1]! & 0x80)) || (t.bytes[0] === 0xff && t.bytes[1]! & 0x80))) {
    throw new DerError(`non-minimal ${what}`);
  }
}

function smallInteger(t: Tlv, what: string): number {
  checkInteger(t, what);
  if (t.length > 4 || t.bytes[0]! & 0x80) throw new DerError(`${what} out of range`);
  let v = 0;
  for (const b of t.bytes) v = v * 256 + b;
  return v;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function decodeOid(t: Tlv): string {
  if (t.tag !== OID || t.length === 0) throw new DerError('expected OBJECT IDENTIFIER');
  const parts: number[] = [];
  let value = 0;
  for (let k = 0; k < t.bytes.length; k++) {
    const b = t.bytes[k]!;
    if (value === 0 && b === 0x80) throw new DerError('non-minimal OID arc');
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 256) throw new DerError('OID arc too large');
    if (!(b & 0x80)) {
      parts.push(value);
      value = 0;
    } else if (k === t.bytes.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  const first = parts.shift()!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...parts].join('.');
}

/** AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL } */
function algorithmIdentifier(t: Tlv | undefined, what: string): string {
  const seq = expectTag(t, SEQUENCE, what);
  const parts = children(seq);
  if (parts.length < 1 || parts.length > 2) throw new DerError(`malformed ${what}`);
  return decodeOid(parts[0]!);
}

const NAME_ATTRIBUTES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'street',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'title',
  '2.5.4.42': 'GN',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
};

const MAX_DETAIL_CHARS = 512;

function clip(s: string): string {
  return s.length > MAX_DETAIL_CHARS ? `${s.slice(0, MAX_DETAIL_CHARS)}…` : s;
}

function directoryString(t: Tlv): string {
  switch (t.tag) {
    case 0x0c: // UTF8String
      return new TextDecoder('utf-8', { fatal: false }).decode(t.bytes);
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x14: // TeletexString (treated as Latin-1)
    case 0x1a: // VisibleString
      return Buffer.from(t.bytes).toString('latin1');
    case 0x1e: {
      // BMPString, UTF-16BE
      if (t.length % 2) throw new DerError('odd BMPString');
      let s = '';
      for (let k = 0; k < t.length; k += 2) s += String.fromCharCode((t.bytes[k]! << 8) | t.bytes[k + 1]!);
      return s;
    }
    default:
      return `#${hex(t.bytes)}`;
  }
}

function escapeRdnValue(v: string): string {
  // eslint-disable-next-line no-control-regex
  return v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`).replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue); as "C=US, O=x, CN=y" in encoding order. */
function parseName(t: Tlv | undefined, what: string): string {
  const seq = expectTag(t, SEQUENCE, what);
  const rdns: string[] = [];
  for (const rdn of children(seq)) {
    if (rdn.tag !== SET) throw new DerError(`malformed ${what}: RDN is not a SET`);
    const atvs = children(rdn);
    if (atvs.length === 0) throw new DerError(`malformed ${what}: empty RDN`);
    const parts = atvs.map((atv) => {
      const [type, value, ...rest] = children(expectTag(atv, SEQUENCE, `${what} attribute`));
      if (!type || !value || rest.length) throw new DerError(`malformed ${what} attribute`);
      const oid = decodeOid(type);
      return `${NAME_ATTRIBUTES[oid] ?? oid}=${escapeRdnValue(directoryString(value))}`;
    });
    rdns.push(parts.join('+'));
  }
  return clip(rdns.join(', '));
}

function parseTime(t: Tlv | undefined, what: string): string {
  if (!t) throw new DerError(`missing ${what}`);
  const s = Buffer.from(t.bytes).toString('latin1');
  if (t.tag === UTC_TIME) {
    if (!/^\d{12}Z$/.test(s)) throw new DerError(`malformed ${what} UTCTime`);
    const yy = Number(s.slice(0, 2));
    return `${yy >= 50 ? 1900 + yy : 2000 + yy}-${s.slice(2, 4)}-${s.slice(4, 6)}T${s.slice(6, 8)}:${s.slice(8, 10)}:${s.slice(10, 12)}Z`;
  }
  if (t.tag === GENERALIZED_TIME) {
    if (!/^\d{14}(\.\d*[1-9])?Z$/.test(s)) throw new DerError(`malformed ${what} GeneralizedTime`);
    return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(8, 10)}:${s.slice(10, 12)}:${s.slice(12)}`;
  }
  throw new DerError(`expected ${what} time`);
}

/** SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING } → the key algorithm OID. */
function parseSpki(t: Tlv | undefined): string {
  const [alg, key, ...rest] = children(expectTag(t, SEQUENCE, 'SubjectPublicKeyInfo'));
  if (rest.length) throw new DerError('malformed SubjectPublicKeyInfo');
  const oid = algorithmIdentifier(alg, 'SubjectPublicKeyInfo algorithm');
  const bits = expectTag(key, BIT_STRING, 'subjectPublicKey BIT STRING');
  if (bits.length < 1 || bits.bytes[0]! > 7) throw new DerError('malformed subjectPublicKey');
  return oid;
}

const KEY_ALGORITHMS: Record<string, string> = {
  '1.2.840.10045.2.1': 'ec',
  '1.2.840.113549.1.1.1': 'rsa',
  '1.3.101.112': 'ed25519',
  '1.3.101.113': 'ed448',
};
const SIGNATURE_ALGORITHMS: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.3.101.112': 'Ed25519',
};

/** TBSCertificate (RFC 5280 §4.1). */
export function parseTbsCertificate(buf: Uint8Array): Detail {
  const items = children(whole(buf, SEQUENCE));
  let i = 0;
  let version = 1;
  if (items[i]?.tag === 0xa0) {
    const inner = children(items[i]!);
    if (inner.length !== 1) throw new DerError('malformed version');
    const v = smallInteger(inner[0]!, 'version');
    if (v > 2) throw new DerError('unknown certificate version');
    version = v + 1;
    i++;
  }
  const serial = items[i++];
  if (!serial) throw new DerError('missing serial');
  checkInteger(serial, 'serialNumber');
  const signature = algorithmIdentifier(items[i++], 'signature AlgorithmIdentifier');
  const issuer = parseName(items[i++], 'issuer Name');
  const validity = children(expectTag(items[i++], SEQUENCE, 'Validity'));
  if (validity.length !== 2) throw new DerError('malformed Validity');
  const notBefore = parseTime(validity[0], 'notBefore');
  const notAfter = parseTime(validity[1], 'notAfter');
  const subject = parseName(items[i++], 'subject Name');
  const keyAlg = parseSpki(items[i++]);
  // Optional issuerUniqueID [1], subjectUniqueID [2] (IMPLICIT BIT STRING, primitive or constructed), extensions [3] — in order.
  let lastTag = 0;
  for (; i < items.length; i++) {
    const tag = items[i]!.tag;
    const number = tag & 0x1f;
    const ok = (tag === 0x81 || tag === 0xa1 || tag === 0x82 || tag === 0xa2 || tag === 0xa3) && number > lastTag;
    if (!ok) throw new DerError('unexpected element after SubjectPublicKeyInfo');
    if (tag === 0xa3) {
      const exts = children(items[i]!);
      if (exts.length !== 1 || exts[0]!.tag !== SEQUENCE) throw new DerError('malformed extensions');
    }
    lastTag = number;
  }
  return {
    subject,
    issuer,
    serial: hex(serial.bytes),
    version,
    signature_algorithm: SIGNATURE_ALGORITHMS[signature] ?? signature,
    key_algorithm: KEY_ALGORITHMS[keyAlg] ?? keyAlg,
    not_before: notBefore,
    not_after: notAfter,
  };
}

/** CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name, SubjectPublicKeyInfo, [0] attributes } */
export function parseCertificationRequestInfo(buf: Uint8Array): Detail {
  const items = children(whole(buf, SEQUENCE));
  if (items.length !== 4) throw new DerError('CertificationRequestInfo has four elements');
  if (smallInteger(items[0]!, 'version') !== 0) throw new DerError('CSR version must be 0');
  const subject = parseName(items[1], 'subject Name');
  const keyAlg = parseSpki(items[2]);
  const attributes = expectTag(items[3], 0xa0, 'attributes [0]');
  for (const attr of children(attributes)) {
    const [type, values, ...rest] = children(expectTag(attr, SEQUENCE, 'Attribute'));
    if (!type || rest.length) throw new DerError('malformed Attribute');
    decodeOid(type);
    expectTag(values, SET, 'Attribute values SET');
  }
  return { subject, key_algorithm: KEY_ALGORITHMS[keyAlg] ?? keyAlg };
}

const CRL_NUMBER = '2.5.29.20';

/**
 * A v2 TBSCertList (RFC 5280 §5.1.2): version 1 (required here, so a CRL is never read as a
 * CSR's CertificationRequestInfo), signature, issuer, thisUpdate, nextUpdate, revoked entries,
 * [0] extensions. Its fourth element is a time, where a TBSCertificate has a Validity SEQUENCE.
 */
export function parseTbsCertList(buf: Uint8Array): Detail {
  const items = children(whole(buf, SEQUENCE));
  let i = 0;
  if (smallInteger(expectTag(items[i++], INTEGER, 'version'), 'version') !== 1) throw new DerError('a TBSCertList here is v2');
  const signature = algorithmIdentifier(items[i++], 'signature AlgorithmIdentifier');
  const issuer = parseName(items[i++], 'issuer Name');
  const thisUpdate = parseTime(items[i++], 'thisUpdate');
  const detail: Detail = { structure: 'TBSCertList', issuer, signature_algorithm: SIGNATURE_ALGORITHMS[signature] ?? signature, this_update: thisUpdate };
  if (items[i]?.tag === UTC_TIME || items[i]?.tag === GENERALIZED_TIME) detail.next_update = parseTime(items[i++], 'nextUpdate');
  let revoked = 0;
  if (items[i]?.tag === SEQUENCE) {
    for (const entry of children(items[i++]!)) {
      const [serial, date, extensions, ...rest] = children(expectTag(entry, SEQUENCE, 'revoked entry'));
      if (!serial || rest.length) throw new DerError('malformed revoked entry');
      checkInteger(serial, 'userCertificate');
      parseTime(date, 'revocationDate');
      if (extensions) expectTag(extensions, SEQUENCE, 'crlEntryExtensions');
      revoked++;
    }
  }
  detail.revoked = revoked;
  if (items[i]?.tag === 0xa0) {
    const inner = children(items[i++]!);
    if (inner.length !== 1) throw new DerError('malformed crlExtensions');
    for (const ext of children(expectTag(inner[0], SEQUENCE, 'crlExtensions'))) {
      const [oid, ...rest] = children(expectTag(ext, SEQUENCE, 'Extension'));
      if (!oid || rest.length === 0 || rest.length > 2) throw new DerError('malformed Extension');
      if (decodeOid(oid) !== CRL_NUMBER) continue;
      const value = expectTag(rest[rest.length - 1], OCTET_STRING, 'extnValue');
      const number = whole(value.bytes, INTEGER);
      checkInteger(number, 'cRLNumber');
      detail.crl_number = hex(number.bytes);
    }
  }
  if (i !== items.length) throw new DerError('unexpected element in TBSCertList');
  return detail;
}

const MAX_OCSP_DETAIL_RESPONSES = 16;

/** OCSP ResponseData (RFC 6960 §4.2.1). */
export function parseOcspResponseData(buf: Uint8Array): Detail {
  const items = children(whole(buf, SEQUENCE));
  let i = 0;
  if (items[i]?.tag === 0xa0) {
    const inner = children(items[i]!);
    if (inner.length !== 1 || smallInteger(inner[0]!, 'version') !== 0) throw new DerError('unknown OCSP version');
    i++;
  }
  const responderTlv = items[i++];
  let responder: string;
  if (responderTlv?.tag === 0xa1) {
    const inner = children(responderTlv);
    if (inner.length !== 1) throw new DerError('malformed responderID byName');
    responder = parseName(inner[0], 'responder Name');
  } else if (responderTlv?.tag === 0xa2) {
    const inner = children(responderTlv);
    if (inner.length !== 1) throw new DerError('malformed responderID byKey');
    const keyHash = expectTag(inner[0], OCTET_STRING, 'responderID KeyHash');
    if (keyHash.length !== 20) throw new DerError('KeyHash is a SHA-1 hash');
    responder = `keyhash:${hex(keyHash.bytes)}`;
  } else {
    throw new DerError('expected ResponderID');
  }
  const producedAt = parseTime(expectTag(items[i++], GENERALIZED_TIME, 'producedAt'), 'producedAt');
  const responses = children(expectTag(items[i++], SEQUENCE, 'responses'));
  if (responses.length === 0) throw new DerError('no SingleResponse');
  if (i < items.length) {
    if (items[i]!.tag !== 0xa1) throw new DerError('unexpected element in ResponseData');
    i++;
  }
  if (i !== items.length) throw new DerError('trailing elements in ResponseData');
  const serials: string[] = [];
  const statuses: string[] = [];
  for (const single of responses) {
    const parts = children(expectTag(single, SEQUENCE, 'SingleResponse'));
    const certId = children(expectTag(parts[0], SEQUENCE, 'CertID'));
    if (certId.length !== 4) throw new DerError('malformed CertID');
    algorithmIdentifier(certId[0], 'CertID hashAlgorithm');
    expectTag(certId[1], OCTET_STRING, 'issuerNameHash');
    expectTag(certId[2], OCTET_STRING, 'issuerKeyHash');
    checkInteger(certId[3]!, 'serialNumber');
    const status = parts[1];
    let statusName: string;
    if (status?.tag === 0x80 && status.length === 0) statusName = 'good';
    else if (status?.tag === 0xa1) {
      const revoked = children(status);
      if (revoked.length < 1 || revoked.length > 2) throw new DerError('malformed RevokedInfo');
      statusName = `revoked:${parseTime(expectTag(revoked[0], GENERALIZED_TIME, 'revocationTime'), 'revocationTime')}`;
    } else if (status?.tag === 0x82 && status.length === 0) statusName = 'unknown';
    else throw new DerError('expected CertStatus');
    parseTime(expectTag(parts[2], GENERALIZED_TIME, 'thisUpdate'), 'thisUpdate');
    let k = 3;
    if (parts[k]?.tag === 0xa0) k++;
    if (parts[k]?.tag === 0xa1) k++;
    if (k !== parts.length) throw new DerError('unexpected element in SingleResponse');
    if (serials.length < MAX_OCSP_DETAIL_RESPONSES) {
      serials.push(hex(certId[3]!.bytes));
      statuses.push(statusName);
    }
  }
  return { responder, produced_at: producedAt, serials, statuses, responses: responses.length };
}

/** RFC 6962 §3.2: the digitally-signed struct of a v1 SCT (signature_type certificate_timestamp). */
export function parseSctSignedData(buf: Uint8Array): Detail {
  const fail = (why: string): never => {
    throw new DerError(why);
  };
  if (buf.length < 1 + 1 + 8 + 2 + 3 + 2) fail('too short for an SCT');
  if (buf[0] !== 0) fail('sct_version is not v1');
  if (buf[1] !== 0) fail('signature_type is not certificate_timestamp');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const timestamp = view.getBigUint64(2);
  const entryType = view.getUint16(10);
  let pos = 12;
  const u24 = (): number => {
    if (pos + 3 > buf.length) fail('truncated length');
    const v = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
    pos += 3;
    return v;
  };
  const detail: Detail = {};
  if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) fail('timestamp out of range');
  const ms = Number(timestamp);
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) fail('timestamp out of range');
  detail.timestamp = date.toISOString();
  if (entryType === 0) {
    detail.entry_type = 'x509_entry';
    const len = u24();
    if (len < 1 || pos + len > buf.length) fail('truncated ASN.1Cert');
    const cert = buf.subarray(pos, pos + len);
    pos += len;
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    const certTlv = whole(cert, SEQUENCE);
    const certItems = children(certTlv);
    if (certItems.length !== 3) fail('ASN.1Cert is not a Certificate');
    const tbs = certItems[0]!;
    const sub = parseTbsCertificate(certTlv.bytes.subarray(tbs.start, tbs.end));
    detail.subject = sub.subject!;
    detail.serial = sub.serial!;
  } else if (entryType === 1) {
    detail.entry_type = 'precert_entry';
    if (pos + 32 > buf.length) fail('truncated issuer_key_hash');
    detail.issuer_key_hash = hex(buf.subarray(pos, pos + 32));
    pos += 32;
    const len = u24();
    if (len < 1 || pos + len > buf.length) fail('truncated TBSCertificate');
    const sub = parseTbsCertificate(buf.subarray(pos, pos + len));
    pos += len;
    detail.subject = sub.subject!;
    detail.serial = sub.serial!;
  } else {
    fail('unknown LogEntryType');
  }
  if (pos + 2 > buf.length) fail('truncated extensions');
  const extLen = view.getUint16(pos);
  pos += 2 + extLen;
  if (pos !== buf.length) fail(pos > buf.length ? 'truncated extensions' : 'trailing bytes');
  return detail;
}

const TREE_HEAD_BYTES = 1 + 1 + 8 + 8 + 32;

/** RFC 6962 §3.5: the digitally-signed struct of a v1 signed tree head (signature_type tree_hash). */
export function parseTreeHeadSignedData(buf: Uint8Array): Detail {
  if (buf.length !== TREE_HEAD_BYTES) throw new DerError(`a tree head is ${TREE_HEAD_BYTES} bytes`);
  if (buf[0] !== 0 || buf[1] !== 1) throw new DerError('not a v1 tree_hash');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const timestamp = view.getBigUint64(2);
  const size = view.getBigUint64(10);
  if (timestamp > BigInt(Number.MAX_SAFE_INTEGER) || size > BigInt(Number.MAX_SAFE_INTEGER)) throw new DerError('timestamp or tree_size out of range');
  const date = new Date(Number(timestamp));
  if (Number.isNaN(date.getTime())) throw new DerError('timestamp out of range');
  return { signature_type: 'tree_hash', timestamp: date.toISOString(), tree_size: Number(size), root_hash: hex(buf.subarray(18)) };
}

// ---------------------------------------------------------------------------------------------
// TLS 1.3 CertificateVerify (RFC 8446 §4.4.3).

const TLS13_PAD = 64;
const TLS13_SERVER = Buffer.from('TLS 1.3, server CertificateVerify', 'latin1');
const TLS13_CLIENT = Buffer.from('TLS 1.3, client CertificateVerify', 'latin1');
const TRANSCRIPT_HASH_LENGTHS = [32, 48, 64];

function tls13(buf: Uint8Array, label: Uint8Array): Uint8Array | undefined {
  const head = TLS13_PAD + label.length + 1;
  if (!TRANSCRIPT_HASH_LENGTHS.includes(buf.length - head)) return undefined;
  for (let k = 0; k < TLS13_PAD; k++) if (buf[k] !== 0x20) return undefined;
  if (!Buffer.from(buf.subarray(TLS13_PAD, TLS13_PAD + label.length)).equals(label)) return undefined;
  if (buf[head - 1] !== 0x00) return undefined;
  return buf.subarray(head);
}

/** Builds TLS 1.3 CertificateVerify content (for tests and tools). */
export function tls13CertificateVerifyContent(transcriptHash: Uint8Array, side: 'server' | 'client' = 'server'): Uint8Array {
  const label = side === 'server' ? TLS13_SERVER : TLS13_CLIENT;
  return Buffer.concat([Buffer.alloc(TLS13_PAD, 0x20), label, Buffer.from([0]), transcriptHash]);
}

// ---------------------------------------------------------------------------------------------

function attempt(parse: (b: Uint8Array) => Detail, buf: Uint8Array): Detail | undefined {
  try {
    return parse(buf);
  } catch (e) {
    if (e instanceof DerError || e instanceof RangeError) return undefined;
    throw e;
  }
}

/** Classifies to-be-signed bytes. Never throws on any input. */
export function classify(tbs: Uint8Array): Classification {
  const server = tls13(tbs, TLS13_SERVER);
  if (server) return { context: 'tls-server', detail: { transcript_hash_bytes: server.length } };
  if (tls13(tbs, TLS13_CLIENT)) return { context: 'unknown', detail: { recognised: 'TLS 1.3 client CertificateVerify' } };
  if (tbs[0] === 0x00) {
    const sct = attempt(tbs[1] === 0x01 ? parseTreeHeadSignedData : parseSctSignedData, tbs);
    return sct ? { context: 'sct', detail: sct } : { context: 'unknown', detail: {} };
  }
  if (tbs[0] === SEQUENCE) {
    const cert = attempt(parseTbsCertificate, tbs);
    if (cert) return { context: 'x509-cert', detail: cert };
    const crl = attempt(parseTbsCertList, tbs);
    if (crl) return { context: 'x509-cert', detail: crl };
    const csr = attempt(parseCertificationRequestInfo, tbs);
    if (csr) return { context: 'x509-csr', detail: csr };
    const ocsp = attempt(parseOcspResponseData, tbs);
    if (ocsp) return { context: 'ocsp', detail: ocsp };
  }
  return { context: 'unknown', detail: {} };
}

// Exported for tests of the DER reader itself.
export const _der = { readTlv, whole, children, decodeOid, DerError };
