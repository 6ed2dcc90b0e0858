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
import type { SignerState } from '../coordinator/signers.js';
import type { AuditScan, AuditView } from './audit-view.js';
import type { IssuedByKey, KeyCertificate } from './certificates.js';
import type { RateSample } from './rates.js';

/** A signer as the registry knows it (without its probe bookkeeping), and its pair conflicts. */
export interface SignerRow extends Omit<SignerState, 'probeTimeouts' | 'falls'> {
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
  /** Each holder's epoch of this key (undefined: none reported) and pending epoch. */
  holderEpochs: { signer: number; epoch: number | undefined; pending: number | undefined }[];
  /** Holders reporting an epoch other than the committed one. */
  offEpoch: number[];
  /** Holders with a pending share of this key (a refresh or creation not yet committed or discarded). */
  pendingOn: number[];
  /** Certificates the cluster's CA issued for this key, newest first. */
  certificates: KeyCertificate[];
}

export interface PoolRow {
  keyId: string;
  subset: number[];
  depth: number;
  /** Refilled once below lowWater, up to target (the high-water mark). */
  lowWater: number;
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
  files: AuditScan['files'];
  /** The active file rotates at this size (0: never). */
  rotateBytes: number;
}

export interface ConsoleSnapshot {
  generated: number;
  /** Why quorum or the audit trail is at risk; empty when all is well. */
  degraded: string[];
  signers: SignerRow[];
  keys: KeyRow[];
  pools: PoolRow[];
  poolBatch: number;
  /** Why the CA's issued-certificate database could not be read, if it could not. */
  certificateProblem: string | undefined;
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
  poolLowWater: number;
  auditRotateBytes: number;
  certificates: () => IssuedByKey;
}

export async function takeSnapshot(d: SnapshotDeps): Promise<ConsoleSnapshot> {
  const view = d.admin.status();
  const health = healthSummary({ admin: d.admin, keys: d.keys, audit: d.audit }).body as { keys: Record<string, { healthy: number[]; quorum: boolean; subsets: KeyRow['subsets'] }> };
  const scan = await d.auditView.current();
  const problem = d.audit.problem();
  const issued = d.certificates();
  const keys: KeyRow[] = d.keys.list().map((k) => {
    const h = health.keys[k.id]!;
    const holderEpochs = k.signers.map((signer) => {
      const s = view.signers.find((x) => x.index === signer);
      return { signer, epoch: s?.epochs.find((e) => e.keyId === k.id)?.epoch, pending: s?.pending.find((e) => e.keyId === k.id)?.epoch };
    });
    const publicKey = Buffer.from(k.publicKey).toString('hex');
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
      publicKey,
      created: k.created,
      subsets: h.subsets,
      holderEpochs,
      offEpoch: holderEpochs.filter((x) => x.epoch !== undefined && x.epoch !== k.epoch).map((x) => x.signer),
      pendingOn: holderEpochs.filter((x) => x.pending !== undefined).map((x) => x.signer),
      certificates: issued.byKey.get(publicKey) ?? [],
    };
  });
  const degraded: string[] = [];
  for (const k of keys) {
    if (!k.quorum) degraded.push(`key '${k.id}' cannot sign: ${k.healthy.length} of ${k.signers.length} holders healthy, ${k.threshold} needed`);
    else if (k.healthy.length < k.threshold + 1) degraded.push(`key '${k.id}' is one failure from losing quorum: ${k.healthy.length} healthy holders for threshold ${k.threshold}`);
  }
  for (const k of keys) {
    for (const i of k.offEpoch) degraded.push(`key '${k.id}': signer ${i} holds epoch ${k.holderEpochs.find((x) => x.signer === i)!.epoch}, the committed epoch is ${k.epoch} (it cannot sign this key)`);
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
      epochs: s.epochs,
      pending: s.pending,
      conflicts: view.conflicts.flatMap((c) => (c.a === s.index ? [{ keyId: c.keyId, peer: c.b, reason: c.reason }] : c.b === s.index ? [{ keyId: c.keyId, peer: c.a, reason: c.reason }] : [])),
    })),
    keys,
    pools: view.pools.map((p) => ({ keyId: p.keyId, subset: p.subset, depth: p.depth, lowWater: Math.min(d.poolLowWater, p.target), target: p.target })),
    poolBatch: d.poolBatch,
    certificateProblem: issued.problem,
    audit: {
      head: d.audit.head(),
      writable: problem === undefined,
      problem,
      merkleRoot: scan.merkleRoot,
      merkleRecords: scan.records,
      verify: scan.verify,
      latest: scan.latest,
      files: scan.files,
      rotateBytes: d.auditRotateBytes,
    },
    rates: d.rates(),
  };
}
