/**
 * `key create`'s policy flags → the KeyPolicy JSON sent as CreateKeyRequest.policy_json (the
 * coordinator and every signer validate it again; this only assembles it).
 *
 *   --policy a,b            allowed contexts (default tls-server)
 *   --policy-file F         a whole KeyPolicy as JSON (instead of the flags below)
 *   --dns-suffix a,b        x509-cert: permitted DNS name suffixes
 *   --ip-range c,d          x509-cert: permitted IP ranges (CIDR)
 *   --max-validity-days N   x509-cert: longest validity (default 398)
 *   --allow-ca              x509-cert: may issue CA:TRUE
 *   --eku a,b               x509-cert: allowed extended key usages (default serverAuth)
 *   --rate-per-second N, --rate-per-hour N
 */
import { readFileSync } from 'node:fs';

export const POLICY_OPTIONS = {
  policy: { type: 'string' },
  'policy-file': { type: 'string' },
  'dns-suffix': { type: 'string' },
  'ip-range': { type: 'string' },
  'max-validity-days': { type: 'string' },
  'allow-ca': { type: 'boolean', default: false },
  eku: { type: 'string' },
  'rate-per-second': { type: 'string' },
  'rate-per-hour': { type: 'string' },
} as const;

export type PolicyFlags = Partial<Record<Exclude<keyof typeof POLICY_OPTIONS, 'allow-ca'>, string>> & { 'allow-ca'?: boolean };

const list = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));

function count(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`--${flag} must be a whole number, got '${v}'`);
  return Number(v);
}

/** The policy JSON, or throws with the flag at fault. */
export function policyJsonFromFlags(flags: PolicyFlags): string {
  const x509Flags = ['dns-suffix', 'ip-range', 'max-validity-days', 'eku'] as const;
  if (flags['policy-file'] !== undefined) {
    const others = [...x509Flags, 'policy', 'rate-per-second', 'rate-per-hour'].filter((f) => flags[f as keyof PolicyFlags] !== undefined);
    if (others.length || flags['allow-ca']) throw new Error(`--policy-file replaces --${others[0] ?? 'allow-ca'}: give one or the other`);
    let text: string;
    try {
      text = readFileSync(flags['policy-file'], 'utf8');
    } catch (e) {
      throw new Error(`cannot read --policy-file ${flags['policy-file']}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return text;
  }
  const contexts = list(flags.policy) ?? ['tls-server'];
  const policy: Record<string, unknown> = { contexts };
  if (contexts.includes('x509-cert')) {
    policy.x509 = {
      dnsSuffixes: list(flags['dns-suffix']) ?? [],
      ipRanges: list(flags['ip-range']) ?? [],
      maxValidityDays: count(flags['max-validity-days'], 'max-validity-days') ?? 398,
      allowCa: flags['allow-ca'] ?? false,
      extendedKeyUsages: list(flags.eku) ?? ['serverAuth'],
    };
  } else {
    const stray = x509Flags.find((f) => flags[f] !== undefined) ?? (flags['allow-ca'] ? 'allow-ca' : undefined);
    if (stray) throw new Error(`--${stray} is an x509-cert constraint, and --policy does not include x509-cert`);
  }
  const perSecond = count(flags['rate-per-second'], 'rate-per-second');
  const perHour = count(flags['rate-per-hour'], 'rate-per-hour');
  if (perSecond !== undefined || perHour !== undefined) policy.rate = { perSecond: perSecond ?? 1000, perHour: perHour ?? Math.max(1_000_000, perSecond ?? 0) };
  return JSON.stringify(policy);
}
