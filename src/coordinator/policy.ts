/**
 * Key policy (DESIGN §5). Pure: decides from the key record, the classified content and the
 * caller's identity. The context always comes from classify(), never from the caller.
 */
import { CONTEXTS, type ContentClass, type Context } from '../policy/classify.js';

export const DEFAULT_POLICY: readonly Context[] = ['tls-server'];
export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** What policy decisions need of a key. */
export interface PolicySubject {
  id: string;
  policy: readonly Context[];
  /**
   * Client identities allowed to sign with the key: certificate CNs of mTLS callers, "unix" for
   * the unix socket, "http" for the local HTTP endpoint. Absent: every authenticated caller.
   */
  clients?: readonly string[];
}

export type PolicyDecision = { allowed: true } | { allowed: false; message: string };

/** Validates and normalises a requested policy (empty → default). Throws with a clear message. */
export function normalisePolicy(names: readonly string[] | undefined): Context[] {
  if (!names || names.length === 0) return [...DEFAULT_POLICY];
  const out: Context[] = [];
  for (const name of names) {
    if (!(CONTEXTS as readonly string[]).includes(name)) {
      throw new Error(`unknown policy context '${name}' (allowed: ${CONTEXTS.join(', ')})`);
    }
    if (!out.includes(name as Context)) out.push(name as Context);
  }
  // Stable order, as in CONTEXTS.
  return CONTEXTS.filter((c) => out.includes(c));
}

function describe(context: ContentClass | 'raw-digest'): string {
  return context === 'unknown' ? 'unrecognised content (not a TLS 1.3 server CertificateVerify, TBSCertificate, CSR, OCSP ResponseData or SCT)' : context;
}

/** May `caller` sign content of class `context` with `key`? */
export function decide(key: PolicySubject, context: ContentClass | 'raw-digest', caller: string): PolicyDecision {
  if (key.clients && !key.clients.includes(caller)) {
    return { allowed: false, message: `policy refused: caller '${caller}' may not use key '${key.id}'` };
  }
  if (context !== 'unknown' && key.policy.includes(context)) return { allowed: true };
  return { allowed: false, message: `policy refused: key '${key.id}' allows ${key.policy.join(', ') || 'nothing'}, request is ${describe(context)}` };
}
