/**
 * The content decision of a signing request, made the same way by the coordinator and by every
 * signer (which refuses its share otherwise). Pure: no I/O.
 *
 * The context comes from the bytes (classify.ts), never from the caller. A bare digest cannot be
 * classified, so only a raw-digest key takes one; every other key is sent the to-be-signed bytes
 * and hashes them itself. An x509-cert key also applies its X.509 constraints, and the digest
 * algorithm must be the one the TBSCertificate's own signature field names.
 */
import { createHash } from 'node:crypto';
import { classify, type ContentClass, type Context, type Detail } from './classify.js';
import type { KeyPolicy } from './key-policy.js';
import { checkCertificateConstraints, checkCrlValidity, type ConstraintReason } from './x509-constraints.js';

export type DigestAlg = 'sha256' | 'sha384' | 'sha512';
export const DIGEST_BYTES: Readonly<Record<DigestAlg, number>> = { sha256: 32, sha384: 48, sha512: 64 };

export type RefusalReason = 'unrecognised-content' | 'context-not-allowed' | 'raw-digest-not-allowed' | 'bad-digest' | 'bad-digest-algorithm' | ConstraintReason;

export interface SignContent {
  /** The to-be-signed bytes; hashed here with digestAlg. */
  tbs?: Uint8Array;
  /** A digest already made (raw-digest keys only). */
  digest?: Uint8Array;
  digestAlg: DigestAlg;
  /** The signing key's public point (SEC1): an x509-cert key with allowCa 'self-signed' needs it. */
  publicKey?: Uint8Array;
}

export type ContentVerdict =
  | { allowed: true; context: Context; detail: Detail; digest: Uint8Array }
  | { allowed: false; reason: RefusalReason; message: string; context: ContentClass | 'raw-digest'; detail: Detail };

const DESCRIPTIONS: Record<Exclude<ContentClass, 'unknown'>, string> = {
  'tls-server': 'a TLS 1.3 server CertificateVerify (tls-server)',
  ocsp: 'an OCSP ResponseData (ocsp)',
  'x509-cert': 'a TBSCertificate or TBSCertList (x509-cert)',
  'x509-csr': 'a CSR CertificationRequestInfo (x509-csr)',
  sct: 'an RFC 6962 SCT or signed tree head (sct)',
};

/** The hash each ECDSA signature algorithm of a TBSCertificate needs (names as classify.ts gives them). */
const CERTIFICATE_HASHES: Record<string, DigestAlg> = {
  'ecdsa-with-SHA256': 'sha256',
  'ecdsa-with-SHA384': 'sha384',
  'ecdsa-with-SHA512': 'sha512',
};

const PREVIEW_BYTES = 8;

/** Bytes present in a request: an empty field (protobuf's unset bytes) counts as absent. */
function present(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length > 0;
}

/** Decides whether `policy` lets its key sign `content`. Never throws on any content. */
export function checkContent(policy: KeyPolicy, content: SignContent): ContentVerdict {
  const { tbs, digest, digestAlg } = content;
  const signs = `this key signs ${policy.contexts.join(', ')}`;
  const refuse = (reason: RefusalReason, message: string, context: ContentClass | 'raw-digest' = 'unknown', detail: Detail = {}): ContentVerdict => ({
    allowed: false,
    reason,
    message,
    context,
    detail,
  });

  if (present(tbs) === present(digest)) {
    return refuse('unrecognised-content', `a request carries exactly one of the to-be-signed bytes (tbs) and a digest; this one has ${present(tbs) ? 'both' : 'neither'}`);
  }
  if (!Object.hasOwn(DIGEST_BYTES, String(digestAlg))) {
    return refuse('bad-digest-algorithm', `digest algorithm ${JSON.stringify(String(digestAlg).slice(0, 20))} is not one of ${Object.keys(DIGEST_BYTES).join(', ')}`);
  }
  const alg = digestAlg as DigestAlg;

  if (present(digest)) {
    if (!policy.contexts.includes('raw-digest')) {
      return refuse('raw-digest-not-allowed', `${signs}, not bare digests: send the to-be-signed bytes (tbs) so they can be checked`, 'raw-digest');
    }
    if (digest.length !== DIGEST_BYTES[alg]) return refuse('bad-digest', `a ${alg} digest is ${DIGEST_BYTES[alg]} bytes, got ${digest.length}`, 'raw-digest');
    return { allowed: true, context: 'raw-digest', detail: { digest_alg: alg }, digest: Uint8Array.from(digest) };
  }

  const bytes = tbs as Uint8Array;
  const { context, detail } = classify(bytes);
  if (context === 'unknown') {
    const seen = typeof detail.recognised === 'string' ? `it is a ${detail.recognised}` : `${bytes.length} bytes starting ${Buffer.from(bytes.subarray(0, PREVIEW_BYTES)).toString('hex')}`;
    const hint = policy.contexts.includes('raw-digest') ? ' (a raw-digest key is sent the digest instead)' : '';
    return refuse('unrecognised-content', `the content is not a TLS 1.3 server CertificateVerify, TBSCertificate, CSR CertificationRequestInfo, OCSP ResponseData, SCT or CT tree head: ${seen}; ${signs}${hint}`, context, detail);
  }
  if (!policy.contexts.includes(context)) return refuse('context-not-allowed', `the content is ${DESCRIPTIONS[context]}; ${signs}`, context, detail);

  let signed = detail;
  if (context === 'x509-cert') {
    const named = String(detail.signature_algorithm);
    const wanted = CERTIFICATE_HASHES[named];
    const structure = detail.structure === 'TBSCertList' ? 'TBSCertList' : 'TBSCertificate';
    if (wanted !== alg) {
      const why = wanted ? `it needs ${wanted}` : 'this key signs only ecdsa-with-SHA256, -SHA384 or -SHA512';
      return refuse('bad-digest-algorithm', `the ${structure}'s signature algorithm is ${named.slice(0, 60)}, the request hashes with ${alg}: ${why}`, context, detail);
    }
    if (!policy.x509) return refuse('context-not-allowed', 'the policy allows x509-cert but has no x509 constraints', context, detail);
    if (structure === 'TBSCertList') {
      const crl = checkCrlValidity(detail, policy.x509.maxValidityDays);
      if (crl) return refuse(crl.reason, crl.message, context, detail);
      return { allowed: true, context, detail, digest: new Uint8Array(createHash(alg).update(bytes).digest()) };
    }
    const constraints = checkCertificateConstraints(bytes, policy.x509, content.publicKey);
    if (!constraints.ok) return refuse(constraints.reason, constraints.message, context, detail);
    signed = { ...detail, names: constraints.names };
  }
  return { allowed: true, context, detail: signed, digest: new Uint8Array(createHash(alg).update(bytes).digest()) };
}
