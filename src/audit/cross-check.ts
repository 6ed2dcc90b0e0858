/**
 * `quorumkey audit verify --cross`: the coordinator's audit log against the signers' own logs
 * (DESIGN §5). Each signer records every Finish it answered (signer-node/sign-gate.ts); the
 * coordinator records every signature it released and every attempt whose shares it asked for
 * but did not release (sign.ts). Then:
 *
 * - a share a signer released for (key, presignature, digest) that no coordinator record of that
 *   key, presignature and digest accounts for is a signature the coordinator may hold unrecorded
 *   (a compromised coordinator, or a deleted record): reported;
 * - a signature the coordinator recorded that a member of its subset has no "signed" record of
 *   (among the signer logs given) is reported too (a forged or edited coordinator record);
 * - refusals are counted per signer and reason (they are what the policy is for).
 *
 * Every log's hash chain is verified first; a broken chain is a finding of its own.
 */
import { scanAuditLog, type AuditEntry } from './log.js';

export interface SignerLog {
  signer: number;
  path: string;
}

export interface CrossFinding {
  kind: 'unrecorded-signature' | 'unconfirmed-signature' | 'broken-log';
  message: string;
}

export interface CrossReport {
  ok: boolean;
  coordinatorRecords: number;
  signatures: number;
  signerRecords: Record<number, number>;
  refusals: Record<number, Record<string, number>>;
  findings: CrossFinding[];
}

/** What both sides say about one use of a presignature. */
const useKey = (key: string, presignature: string, digest: string) => `${key}/${presignature}/${digest}`;

type JsonObject = Record<string, unknown>;
const asObject = (v: unknown): JsonObject | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : undefined);
const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export async function crossCheckAudit(coordinatorLog: string, signerLogs: readonly SignerLog[]): Promise<CrossReport> {
  const findings: CrossFinding[] = [];
  /** Coordinator: every use it accounts for → the subset it asked, and whether it released a signature. */
  const accounted = new Map<string, { subset: number[]; released: boolean; seq: number }>();
  let coordinatorRecords = 0;
  const coordinator = await scanAuditLog(coordinatorLog, (e: AuditEntry) => {
    coordinatorRecords++;
    const r = asObject(e.record);
    const key = text(r?.key_id);
    const presignature = text(r?.presignature_id);
    const digest = text(r?.digest);
    if (!r || !key || !presignature || !digest) return;
    const released = r.event === undefined ? typeof r.signature === 'string' : r.event === 'sign' ? true : r.event === 'sign-failed' ? false : undefined;
    if (released === undefined) return;
    const subset = Array.isArray(r.subset) ? r.subset.filter((i): i is number => Number.isInteger(i)) : [];
    accounted.set(useKey(key, presignature, digest), { subset, released, seq: e.seq });
  });
  if (!coordinator.ok) findings.push({ kind: 'broken-log', message: `coordinator log ${coordinator.file} line ${coordinator.line}: ${coordinator.reason}` });

  const signed = new Map<number, Set<string>>();
  const signerRecords: Record<number, number> = {};
  const refusals: Record<number, Record<string, number>> = {};
  for (const { signer, path } of signerLogs) {
    const mine = new Set<string>();
    signed.set(signer, mine);
    signerRecords[signer] = 0;
    refusals[signer] = {};
    const res = await scanAuditLog(path, (e: AuditEntry) => {
      signerRecords[signer]!++;
      const r = asObject(e.record);
      if (r?.event !== 'finish') return;
      const key = text(r.key);
      const presignature = text(r.presignature);
      if (!key || !presignature) return;
      if (r.result === 'refused') {
        const reason = text(r.reason) ?? 'unknown';
        refusals[signer]![reason] = (refusals[signer]![reason] ?? 0) + 1;
        return;
      }
      const digest = text(r.digest);
      if (r.result !== 'signed' || !digest) return;
      const use = useKey(key, presignature, digest);
      mine.add(use);
      const known = accounted.get(use);
      if (!known || !known.subset.includes(signer)) {
        findings.push({
          kind: 'unrecorded-signature',
          message: `signer ${signer} released its share for key '${key}', presignature ${presignature.slice(0, 16)}…, digest ${digest.slice(0, 16)}… at ${e.time} (its record ${e.seq}), and the coordinator's log has no record of that use`,
        });
      }
    });
    if (!res.ok) findings.push({ kind: 'broken-log', message: `signer ${signer} log ${res.file} line ${res.line}: ${res.reason}` });
  }

  let signatures = 0;
  for (const [use, { subset, released, seq }] of accounted) {
    if (!released) continue;
    signatures++;
    const missing = subset.filter((i) => signed.has(i) && !signed.get(i)!.has(use));
    if (missing.length) {
      const [key, presignature] = use.split('/');
      findings.push({
        kind: 'unconfirmed-signature',
        message: `the coordinator's record ${seq} (key '${key}', presignature ${presignature!.slice(0, 16)}…) names signers ${subset.join(',')}, but signer${missing.length > 1 ? 's' : ''} ${missing.join(',')} recorded no such share`,
      });
    }
  }
  return { ok: findings.length === 0, coordinatorRecords, signatures, signerRecords, refusals, findings };
}
