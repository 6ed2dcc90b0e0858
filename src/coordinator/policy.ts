/**
 * Who may sign with a key (DESIGN §5, §6): the key's client ACL, default deny. Pure. What may be
 * signed is src/policy/check.ts, the decision the signers make too; only this part is the
 * coordinator's alone, because only the coordinator authenticates clients.
 */

export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** A client identity: a certificate CN, "unix" (the unix socket) or "http-token". */
export const CLIENT_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export type AccessDecision = { allowed: true } | { allowed: false; message: string };

/** May `caller` sign with `key`? */
export function mayUse(key: { id: string; clients: readonly string[] }, caller: string): AccessDecision {
  if (key.clients.includes(caller)) return { allowed: true };
  return {
    allowed: false,
    message: `policy refused: client '${caller}' may not use key '${key.id}' (allowed: ${key.clients.join(', ') || 'nobody'}; grant with 'quorumkey key grant ${key.id} ${caller}')`,
  };
}
