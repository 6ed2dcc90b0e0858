/** Revocation reasons (RFC 5280 §5.3.1 CRLReason) by the names `cert revoke --reason` takes. */
import { CRLReasons } from '@peculiar/asn1-x509';

export const REVOCATION_REASONS = {
  unspecified: CRLReasons.unspecified,
  keyCompromise: CRLReasons.keyCompromise,
  cACompromise: CRLReasons.cACompromise,
  affiliationChanged: CRLReasons.affiliationChanged,
  superseded: CRLReasons.superseded,
  cessationOfOperation: CRLReasons.cessationOfOperation,
  privilegeWithdrawn: CRLReasons.privilegeWithdrawn,
} as const;

export type RevocationReason = keyof typeof REVOCATION_REASONS;

export interface Revocation {
  /** ISO time. */
  at: string;
  reason: RevocationReason;
}

export function parseReason(text: string): RevocationReason {
  if (Object.hasOwn(REVOCATION_REASONS, text)) return text as RevocationReason;
  throw new Error(`unknown revocation reason '${text.slice(0, 40)}' (one of ${Object.keys(REVOCATION_REASONS).join(', ')})`);
}
