/**
 * Coordinator metrics (DESIGN §9): prom-client on an own Registry, names quorumkey_* with the
 * unit in the name, counters ending in _total, help text on everything.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from '../metrics/process.js';

/** Label value for requests naming a key that does not exist (cannot collide: not a valid key id). */
export const UNKNOWN_KEY_LABEL = '(unknown)';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const PRESIGN_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const AUDIT_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export class CoordinatorMetrics {
  readonly registry = new Registry();

  readonly signRequests = new Counter({
    name: 'quorumkey_sign_requests_total',
    help: 'Sign requests by key, classified context and result (ok, invalid, not_found, policy_refused, quorum_insufficient, exhausted, deadline, internal).',
    labelNames: ['key', 'context', 'result'] as const,
    registers: [this.registry],
  });
  readonly signDuration = new Histogram({
    name: 'quorumkey_sign_duration_seconds',
    help: 'End-to-end duration of successful sign requests at the coordinator, by key.',
    labelNames: ['key'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly signAttempts = new Counter({
    name: 'quorumkey_sign_retries_total',
    help: 'Sign attempts that failed and were retried on another subset, by key.',
    labelNames: ['key'] as const,
    registers: [this.registry],
  });
  readonly inlinePresign = new Counter({
    name: 'quorumkey_sign_inline_presign_total',
    help: 'Sign requests that found every pool empty and ran a presign inline, by key.',
    labelNames: ['key'] as const,
    registers: [this.registry],
  });
  readonly finishDuration = new Histogram({
    name: 'quorumkey_signer_finish_duration_seconds',
    help: 'Duration of the online-round Finish RPC per signer.',
    labelNames: ['signer'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly poolDepth = new Gauge({
    name: 'quorumkey_pool_depth',
    help: 'Presignatures held by the coordinator per key and signer subset.',
    labelNames: ['key', 'subset'] as const,
    registers: [this.registry],
  });
  /** Set by the service: fills poolTarget / keyQuorum / usableSubsets at scrape time. */
  collectPoolTargets: ((g: Gauge<'key' | 'subset'>) => void) | undefined;
  collectKeyQuorum: ((g: Gauge<'key'>) => void) | undefined;
  collectUsableSubsets: ((g: Gauge<'key'>) => void) | undefined;

  readonly poolTarget: Gauge<'key' | 'subset'> = (() => {
    const self = this;
    return new Gauge({
      name: 'quorumkey_pool_target',
      help: 'Target depth per key and subset: pool.target for the subsets currently kept filled (the fastest healthy ones), 0 for the others.',
      labelNames: ['key', 'subset'] as const,
      registers: [this.registry],
      collect() {
        self.collectPoolTargets?.(this);
      },
    });
  })();
  readonly refillDeferred = new Counter({
    name: 'quorumkey_pool_refill_deferred_total',
    help: 'Refill planning rounds in which a pool below its low-water mark (but above its reserve) waited because sign requests were in flight or had just ended.',
    registers: [this.registry],
  });
  readonly presign = new Counter({
    name: 'quorumkey_presign_total',
    help: 'Presign sessions by key and result (ok, error, blame, mismatch, stale).',
    labelNames: ['key', 'result'] as const,
    registers: [this.registry],
  });
  readonly presignDuration = new Histogram({
    name: 'quorumkey_presign_duration_seconds',
    help: 'Duration of presign sessions (all members), successful or not.',
    labelNames: ['key'] as const,
    buckets: PRESIGN_BUCKETS,
    registers: [this.registry],
  });
  readonly presignaturesGenerated = new Counter({
    name: 'quorumkey_presignatures_generated_total',
    help: 'Presignatures accepted into the pools (or used inline), by key: the refill rate.',
    labelNames: ['key'] as const,
    registers: [this.registry],
  });
  readonly presignaturesDropped = new Counter({
    name: 'quorumkey_presignatures_dropped_total',
    help: 'Pooled presignatures discarded unused, by key and reason (signer-restart, refresh, failed-sign, pair-conflict).',
    labelNames: ['key', 'reason'] as const,
    registers: [this.registry],
  });
  readonly signerUp = new Gauge({
    name: 'quorumkey_signer_up',
    help: '1 when the last health probe (or call) of the signer succeeded.',
    labelNames: ['signer'] as const,
    registers: [this.registry],
  });
  readonly signerHealthy = new Gauge({
    name: 'quorumkey_signer_healthy',
    help: '1 when the signer is up and not quarantined (eligible for signing in subsets without a pair conflict).',
    labelNames: ['signer'] as const,
    registers: [this.registry],
  });
  readonly signerQuarantined = new Gauge({
    name: 'quorumkey_signer_quarantined',
    help: "1 while the signer is excluded from scheduling by the coordinator itself: an operator's Admin.Quarantine (or the combiner's own proof of a wrong online-share nonce), lifted by Admin.Readmit; never set by another signer's report.",
    labelNames: ['signer'] as const,
    registers: [this.registry],
  });
  readonly signerLatency = new Gauge({
    name: 'quorumkey_signer_latency_seconds',
    help: 'Exponentially weighted moving average of the signer round-trip time (health and Finish).',
    labelNames: ['signer'] as const,
    registers: [this.registry],
  });
  readonly signerRestarts = new Counter({
    name: 'quorumkey_signer_restarts_total',
    help: 'Boot id changes observed per signer.',
    labelNames: ['signer'] as const,
    registers: [this.registry],
  });
  readonly signerFailures = new Counter({
    name: 'quorumkey_signer_failures_total',
    help: 'Failed calls to a signer by RPC method and gRPC status or abort reason.',
    labelNames: ['signer', 'method', 'reason'] as const,
    registers: [this.registry],
  });
  readonly blames = new Counter({
    name: 'quorumkey_blames_total',
    help: 'Blames by key, reporter (a signer index, or "combiner" for the coordinator\'s own check) and the peer it names: a Presign blame, a newly retired peer in a Health answer, or a rejected online share.',
    labelNames: ['key', 'reporter', 'peer'] as const,
    registers: [this.registry],
  });
  readonly pairConflict = new Gauge({
    name: 'quorumkey_pair_conflict',
    help: '1 for each pair of signers (a < b) reported in conflict for the key by one of the two (a failed OT/VOLE check): never scheduled together until reconciled (quorumkey signers reconcile) or refreshed.',
    labelNames: ['key', 'a', 'b'] as const,
    registers: [this.registry],
  });
  readonly usableSubsets: Gauge<'key'> = (() => {
    const self = this;
    return new Gauge({
      name: 'quorumkey_usable_subsets',
      help: 'Subsets of T holders of the key without a pair conflict whose members are all up and not quarantined.',
      labelNames: ['key'] as const,
      registers: [this.registry],
      collect() {
        self.collectUsableSubsets?.(this);
      },
    });
  })();
  readonly suspected = new Counter({
    name: 'quorumkey_signer_suspected_total',
    help: 'Invalid combined signatures the signer took part in (one of the subset misbehaved, which one is unknown).',
    labelNames: ['signer'] as const,
    registers: [this.registry],
  });
  readonly auditRecords = new Counter({
    name: 'quorumkey_audit_records_total',
    help: 'Audit records appended (one per released signature).',
    registers: [this.registry],
  });
  readonly auditFailures = new Counter({
    name: 'quorumkey_audit_failures_total',
    help: 'Audit appends that failed (the signature was withheld).',
    registers: [this.registry],
  });
  readonly auditCommits = new Counter({
    name: 'quorumkey_audit_commits_total',
    help: 'Audit group commits (one write and one fsync each): concurrent signatures share one; quorumkey_audit_records_total over this is the records per fsync.',
    registers: [this.registry],
  });
  readonly auditAppendDuration = new Histogram({
    name: 'quorumkey_audit_append_duration_seconds',
    help: 'Time from combining a signature to its audit record being durable (audit log lag).',
    buckets: AUDIT_BUCKETS,
    registers: [this.registry],
  });
  readonly auditLastAppend = new Gauge({
    name: 'quorumkey_audit_last_append_timestamp_seconds',
    help: 'Unix time of the last durable audit append.',
    registers: [this.registry],
  });
  /** Set by the service: the audit log's head and Merkle root, read at scrape time. */
  collectAudit: (() => { seq: number; hash: string; root: string }) | undefined;

  readonly auditHeadSeq: Gauge = (() => {
    const self = this;
    return new Gauge({
      name: 'quorumkey_audit_head_records',
      help: 'Records in the audit log, every rotated file included (sequence number of its head).',
      registers: [this.registry],
      collect() {
        const audit = self.collectAudit?.();
        if (audit) this.set(audit.seq);
      },
    });
  })();
  readonly auditHead: Gauge<'hash'> = (() => {
    const self = this;
    return new Gauge({
      name: 'quorumkey_audit_head_info',
      help: 'Always 1; the label is the hash of the audit log head (keep it elsewhere: quorumkey audit verify --head SEQ:HASH detects records cut from the end).',
      labelNames: ['hash'] as const,
      registers: [this.registry],
      collect() {
        const audit = self.collectAudit?.();
        this.reset();
        if (audit) this.set({ hash: audit.hash }, 1);
      },
    });
  })();
  readonly auditMerkleRoot: Gauge<'root'> = (() => {
    const self = this;
    return new Gauge({
      name: 'quorumkey_audit_merkle_root_info',
      help: 'Always 1; the label is the RFC 6962 Merkle root over every audit record up to the head (quorumkey_audit_head_records records).',
      labelNames: ['root'] as const,
      registers: [this.registry],
      collect() {
        const audit = self.collectAudit?.();
        this.reset();
        if (audit) this.set({ root: audit.root }, 1);
      },
    });
  })();
  readonly keys = new Gauge({
    name: 'quorumkey_keys',
    help: 'Keys in the registry.',
    registers: [this.registry],
  });
  readonly keyQuorum: Gauge<'key'> = (() => {
    const self = this;
    return new Gauge({
      name: 'quorumkey_key_quorum_available',
      help: '1 when some subset of T key holders is healthy (up and not quarantined) and holds no pair conflict.',
      labelNames: ['key'] as const,
      registers: [this.registry],
      collect() {
        self.collectKeyQuorum?.(this);
      },
    });
  })();

  constructor() {
    registerProcessMetrics(this.registry, 'quorumkey_coordinator_');
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
  get contentType(): string {
    return this.registry.contentType;
  }
}
