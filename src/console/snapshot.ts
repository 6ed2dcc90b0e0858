/**
 * What the console shows, read from the coordinator's own state objects at one moment: the
 * signer registry, the key registry, the pools, the audit log and the sampled rates. Plain data
 * (the JSON endpoint sends it as is; render.ts draws it). A field the backend gains later is one
 * line here and one column in render.ts.
 */
import type { AuditEntry, AuditHead } from '../audit/log.js';
import type { AdminService } from '../coordinator/admin.js';
import { healthSummary } from '../coordinator/http.js';
import type { KeyStore } from '../coordinator/keys.js';
import type { AuditView } from './audit-view.js';
import type { RateSample } from './rates.js';

export interface SignerRow {
  index: number;
  endpoint: string;
  up: boolean;
  quarantined: boolean;
  quarantineReason: string;
  bootId: string;
  latencyMs: number | undefined;
  lastError: string;
  /** Pair conflicts this signer is part of: the key and the other member. */
  conflicts: { keyId: string; peer: number; reason: string }[];
}

export interface KeyRow {
  id: string;
  threshold: number;
  signers: number[];
  healthy: number[];
  quorum: boolean;
  epoch: number;
  contexts: string[];
  /** The whole policy (constraints, rate limit) as JSON. */
  policy: string;
  policySealed: boolean;
  clients: string[];
  publicKey: string;
  created: number;
  subsets: { total: number; usable: number; available: number };
}

export interface PoolRow {
  keyId: string;
  subset: number[];
  depth: number;
  target: number;
}

export interface AuditSection {
  /** The live head, as `quorumkey audit head` prints it (SEQ:HASH). */
  head: AuditHead;
  writable: boolean;
  problem: string | undefined;
  merkleRoot: string;
  merkleRecords: number;
  verify: { ok: true } | { ok: false; line: number; reason: string };
  latest: AuditEntry[];
}

export interface ConsoleSnapshot {
  generated: number;
  /** Why quorum or the audit trail is at risk; empty when all is well. */
  degraded: string[];
  signers: SignerRow[];
  keys: KeyRow[];
  pools: PoolRow[];
  poolBatch: number;
  audit: AuditSection;
  rates: RateSample[];
}

export interface SnapshotDeps {
  admin: AdminService;
  keys: KeyStore;
  audit: { head(): AuditHead; problem(): string | undefined };
  auditView: AuditView;
  rates: () => RateSample[];
  poolBatch: number;
}

export async function takeSnapshot(d: SnapshotDeps): Promise<ConsoleSnapshot> {
  const view = d.admin.status();
  const health = healthSummary({ admin: d.admin, keys: d.keys, audit: d.audit }).body as { keys: Record<string, { healthy: number[]; quorum: boolean; subsets: KeyRow['subsets'] }> };
  const scan = await d.auditView.current();
  const problem = d.audit.problem();
  const keys: KeyRow[] = d.keys.list().map((k) => {
    const h = health.keys[k.id]!;
    return {
      id: k.id,
      threshold: k.threshold,
      signers: k.signers,
      healthy: h.healthy,
      quorum: h.quorum,
      epoch: k.epoch,
      contexts: k.policy.contexts,
      policy: JSON.stringify(k.policy),
      policySealed: k.policySealed,
      clients: k.clients,
      publicKey: Buffer.from(k.publicKey).toString('hex'),
      created: k.created,
      subsets: h.subsets,
    };
  });
  const degraded: string[] = [];
  for (const k of keys) {
    if (!k.quorum) degraded.push(`key '${k.id}' cannot sign: ${k.healthy.length} of ${k.signers.length} holders healthy, ${k.threshold} needed`);
    else if (k.healthy.length < k.threshold + 1) degraded.push(`key '${k.id}' is one failure from losing quorum: ${k.healthy.length} healthy holders for threshold ${k.threshold}`);
  }
  if (problem !== undefined) degraded.push(`the audit log cannot be written: ${problem}`);
  if (!scan.verify.ok) degraded.push(`the audit log does not verify at line ${scan.verify.line}: ${scan.verify.reason}`);
  return {
    generated: Date.now(),
    degraded,
    signers: view.signers.map((s) => ({
      index: s.index,
      endpoint: s.endpoint,
      up: s.up,
      quarantined: s.quarantined,
      quarantineReason: s.quarantineReason,
      bootId: s.bootId,
      latencyMs: s.latencyMs,
      lastError: s.lastError,
      conflicts: view.conflicts.flatMap((c) => (c.a === s.index ? [{ keyId: c.keyId, peer: c.b, reason: c.reason }] : c.b === s.index ? [{ keyId: c.keyId, peer: c.a, reason: c.reason }] : [])),
    })),
    keys,
    pools: view.pools.map((p) => ({ keyId: p.keyId, subset: p.subset, depth: p.depth, target: p.target })),
    poolBatch: d.poolBatch,
    audit: {
      head: d.audit.head(),
      writable: problem === undefined,
      problem,
      merkleRoot: scan.merkleRoot,
      merkleRecords: scan.records,
      verify: scan.verify,
      latest: scan.latest,
    },
    rates: d.rates(),
  };
}
