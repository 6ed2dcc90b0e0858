/**
 * The key reference the OpenSSL provider loads (DESIGN §8): PEM "QUORUMKEY KEY" around
 *
 *   QuorumkeyKeyReference ::= SEQUENCE {
 *     version    INTEGER (1),
 *     keyId      UTF8String,            -- the coordinator's key id
 *     endpoint   UTF8String,            -- "unix:/abs/path.sock" or "host:port" (TCP + mTLS)
 *     publicKey  SubjectPublicKeyInfo,  -- P-256, so libssl can match the certificate locally
 *     tls        [0] IMPLICIT SEQUENCE {  -- client identity for TCP endpoints
 *       caFile UTF8String, certFile UTF8String, keyFile UTF8String } OPTIONAL
 *   }
 *
 * It holds no secret: whoever may reach the endpoint may ask for signatures, which is why the
 * unix socket's permissions or the mTLS identity are the access control.
 */

export const KEYREF_PEM_LABEL = 'QUORUMKEY KEY';
export const KEYREF_VERSION = 1;

export interface KeyReference {
  keyId: string;
  endpoint: string;
  spki: Uint8Array;
  tls?: { caFile: string; certFile: string; keyFile: string };
}

function length(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}
function tlv(tag: number, content: Uint8Array): Uint8Array {
  return Uint8Array.from([tag, ...length(content.length), ...content]);
}
const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
const sequence = (tag: number, parts: Uint8Array[]) => tlv(tag, Uint8Array.from(parts.flatMap((p) => [...p])));

export function encodeKeyReference(ref: KeyReference): Uint8Array {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(ref.keyId)) throw new Error(`invalid key id '${ref.keyId}'`);
  if (!ref.endpoint.startsWith('unix:/') && !/^[A-Za-z0-9.-]+:\d{1,5}$/.test(ref.endpoint)) throw new Error(`endpoint must be unix:/path or host:port, got '${ref.endpoint}'`);
  if (!ref.endpoint.startsWith('unix:') && !ref.tls) throw new Error('a TCP endpoint needs a client TLS identity (caFile, certFile, keyFile)');
  const parts = [tlv(0x02, Uint8Array.of(KEYREF_VERSION)), utf8(ref.keyId), utf8(ref.endpoint), ref.spki];
  if (ref.tls) parts.push(sequence(0xa0, [utf8(ref.tls.caFile), utf8(ref.tls.certFile), utf8(ref.tls.keyFile)]));
  return sequence(0x30, parts);
}

export function keyReferencePem(ref: KeyReference): string {
  const b64 = Buffer.from(encodeKeyReference(ref)).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${KEYREF_PEM_LABEL}-----\n${b64}-----END ${KEYREF_PEM_LABEL}-----\n`;
}
