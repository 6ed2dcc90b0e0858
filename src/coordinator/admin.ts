/**
 * Operator actions: key generation (with the policy every holder seals) and refresh across the
 * share holders, both two-phase (below), key deletion (every holder erases its share), the client ACL of a key (grant / revoke, audited), cluster status (with
 * the pair conflicts and the usable subsets of every key), the operator's own exclusion of a
 * signer (quarantine / readmission: coordinator state only) and the reconciliation of a
 * conflicting pair (Signer.PairSetup on both members).
 *
 * Two-phase key dealing (DESIGN §7). KeyGen / Refresh leave each holder with a *pending* share;
 * only when every holder answered, with the same public key and public shares, is the new epoch
 * written to keys.json (the commit point, with the public shares' digest) and CommitShare sent
 * to every holder. Otherwise every holder is told to DiscardShare, and the key stays as it was
 * (absent, or at its epoch). A holder that misses either message lists its pending share in
 * Health, and `reconcilePending` decides from keys.json alone: committed there → commit;
 * otherwise → discard. So a crash of the coordinator or of a signer at any point converges.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import type { ClusterConfig } from '../cluster/config.js';
import type { OperatorApproval } from '../pki/operator-approval.js';
import { CoordinatorError, fail, formatSigners } from './errors.js';
import { binomial, type ConflictGraph, type PairConflictView } from './conflicts.js';
import type { KeyRecord, KeyStore } from './keys.js';
import type { Logger } from './log.js';
import type { CoordinatorMetrics } from './metrics.js';
import type { AuditLog } from '../audit/log.js';
import { encodeKeyPolicy, normaliseKeyPolicy, PolicyError, type KeyPolicy } from '../policy/key-policy.js';
import { CLIENT_PATTERN, KEY_ID_PATTERN } from './policy.js';
import type { PoolInfo, PoolSet } from './pools.js';
import { SignerCallError, type KeyGenResponse, type KeySummary, type PairSetupRequest, type PendingShare, type SignerRegistry, type SignerState } from './signers.js';

export const MIN_THRESHOLD = 2;
export const MAX_SIGNERS = 16;

export interface CreateKeyInput {
  keyId: string;
  threshold: number;
  signers: number[];
  signerCount: number;
  /** Allowed contexts (empty: tls-server), used when `policyJson` is not given. */
  policy: string[];
  /** A whole KeyPolicy as JSON (contexts, x509 constraints, rate limit). */
  policyJson?: string;
  /** Client identities allowed to sign with the key (default deny: none). */
  clients?: string[];
}

export interface DeleteKeyResult {
  keyId: string;
  /** Holders that erased their share (now, or already before). */
  erased: number[];
  /** Holders that could not: the key stays listed as deleting until the delete is run again. */
  remaining: number[];
}

export interface KeySubsetsView {
  keyId: string;
  /** C(N, T). */
  total: number;
  /** Subsets without a conflicting pair (whatever the signers' health). */
  usable: number[][];
}

export interface ClusterStatusView {
  signers: SignerState[];
  pools: PoolInfo[];
  conflicts: PairConflictView[];
  subsets: KeySubsetsView[];
}

export interface AdminDeps {
  config: ClusterConfig;
  keys: KeyStore;
  signers: SignerRegistry;
  pools: PoolSet;
  conflicts: ConflictGraph;
  audit: AuditLog;
  metrics: CoordinatorMetrics;
  log: Logger;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** An approval with all three parts (the signers check the rest; the coordinator cannot). */
const hasApproval = (a: OperatorApproval | null | undefined): a is OperatorApproval =>
  !!a && [a.statement, a.signature, a.certificate].every((f) => f instanceof Uint8Array && f.length > 0);

export class AdminService {
  private readonly busy = new Set<string>();
  /** `${signer}/${key}` pending shares being committed or discarded right now. */
  private readonly reconciling = new Set<string>();
  /** Deadline of KeyGen / Refresh at each signer. */
  keyGenTimeoutMs = 120_000;

  constructor(private readonly d: AdminDeps) {}

  /** Resolves the requested holders (explicit list, or the first `signerCount` configured signers). */
  private holders(input: CreateKeyInput): number[] {
    const configured = this.d.config.signers.map((s) => s.index).sort((a, b) => a - b);
    let holders: number[];
    if (input.signers.length > 0) {
      if (input.signerCount && input.signerCount !== input.signers.length) {
        fail('invalid', `signer_count ${input.signerCount} does not match the ${input.signers.length} signers listed`);
      }
      holders = [...new Set(input.signers)].sort((a, b) => a - b);
      if (holders.length !== input.signers.length) fail('invalid', 'signers lists an index twice');
      const unknown = holders.filter((i) => !configured.includes(i));
      if (unknown.length) fail('invalid', `signers ${formatSigners(unknown)} are not in the cluster (configured: ${formatSigners(configured)})`);
    } else {
      if (!input.signerCount) fail('invalid', 'give the share holders (signers) or their number (signer_count)');
      if (input.signerCount > configured.length) fail('invalid', `signer_count ${input.signerCount} exceeds the ${configured.length} configured signers`);
      holders = configured.slice(0, input.signerCount);
    }
    return holders;
  }

  async createKey(input: CreateKeyInput): Promise<KeyRecord> {
    if (!KEY_ID_PATTERN.test(input.keyId)) fail('invalid', 'key_id must match ^[A-Za-z0-9._-]{1,64}$');
    const holders = this.holders(input);
    const n = holders.length;
    const t = input.threshold;
    if (!Number.isInteger(t) || t < MIN_THRESHOLD || t > n || n > MAX_SIGNERS) {
      fail('invalid', `need ${MIN_THRESHOLD} ≤ threshold ≤ signers ≤ ${MAX_SIGNERS}, got threshold ${t} of ${n} signers`);
    }
    const policy = this.requestedPolicy(input);
    const clients = this.clientList(input.clients ?? []);
    if (this.d.keys.has(input.keyId)) fail('already-exists', `key '${input.keyId}' already exists`);
    const deleting = this.d.keys.deletingKey(input.keyId);
    if (deleting) fail('precondition', `key '${input.keyId}' is being deleted: signers ${formatSigners(deleting.signers)} may still hold a share; finish with 'quorumkey key delete ${input.keyId} --yes'`);
    if (this.busy.has(input.keyId)) fail('busy', `key '${input.keyId}' is being created, refreshed or reconciled right now`);
    await this.checkReachable(holders, `cannot create key '${input.keyId}'`);
    this.busy.add(input.keyId);
    try {
      const sessionId = randomBytes(32);
      this.d.log.info('key generation started', { key: input.keyId, threshold: t, signers: holders });
      const what = `key generation of '${input.keyId}'`;
      const { publicKey, epoch, sharesDigest } = await this.deal(input.keyId, 0, holders, what, (i) =>
        this.d.signers.keyGen(i, { key_id: input.keyId, session_id: sessionId, parties: holders, threshold: t, policy: encodeKeyPolicy(policy) }, this.keyGenTimeoutMs),
      );
      const record: KeyRecord = { id: input.keyId, threshold: t, signers: holders, publicKey, policy, policySealed: true, clients, epoch, created: Date.now(), sharesDigest };
      await this.commit(record, what);
      this.d.pools.setKey(record);
      this.d.conflicts.setKey(record);
      this.d.metrics.keys.set(this.d.keys.list().length);
      this.d.log.info('key created', { key: record.id, threshold: t, signers: holders, public_key: hex(publicKey), policy: JSON.stringify(policy), clients });
      return record;
    } finally {
      this.busy.delete(input.keyId);
    }
  }

  private requestedPolicy(input: CreateKeyInput): KeyPolicy {
    try {
      if (input.policyJson) {
        let raw: unknown;
        try {
          raw = JSON.parse(input.policyJson);
        } catch {
          return fail('invalid', 'policy_json is not JSON');
        }
        return normaliseKeyPolicy(raw);
      }
      return normaliseKeyPolicy(input.policy.length ? { contexts: input.policy } : {});
    } catch (e) {
      if (e instanceof PolicyError) fail('invalid', e.message);
      throw e;
    }
  }

  private clientList(clients: readonly unknown[]): string[] {
    for (const c of clients) {
      if (typeof c !== 'string' || !CLIENT_PATTERN.test(c)) fail('invalid', `client identity ${JSON.stringify(c)} must match ${CLIENT_PATTERN.source}`);
    }
    return [...new Set(clients as string[])].sort();
  }

  /**
   * Adds (grant) or removes (revoke) a client identity from a key's ACL: recorded in the audit
   * log first, then made durable in the registry; the change applies to the next request.
   */
  async setClient(keyId: string, client: string, grant: boolean, operator: string): Promise<KeyRecord> {
    if (typeof keyId !== 'string' || !KEY_ID_PATTERN.test(keyId)) fail('invalid', 'key_id must match ^[A-Za-z0-9._-]{1,64}$');
    const [name] = this.clientList([client]);
    const key = this.d.keys.get(keyId);
    if (!key) return fail('not-found', `unknown key '${keyId}'`);
    const clients = grant ? [...new Set([...key.clients, name!])].sort() : key.clients.filter((c) => c !== name);
    if (clients.length === key.clients.length && clients.every((c, k) => c === key.clients[k])) return key;
    await this.d.audit.append({ event: grant ? 'acl-grant' : 'acl-revoke', key_id: keyId, client: name!, clients, operator, time: new Date().toISOString() });
    const record: KeyRecord = { ...this.d.keys.get(keyId)!, clients };
    await this.d.keys.put(record);
    this.d.log.info(grant ? 'client granted' : 'client revoked', { key: keyId, client: name, operator });
    return record;
  }

  /**
   * Seals keys.json's policy of a key from before policies into every holder's share
   * (Signer.SetPolicy on all of them, each checking the operator's approval of that policy's
   * digest), then marks it sealed. Until every holder answered, the key stays unsealed.
   */
  async adoptPolicy(keyId: string, approval: OperatorApproval | null | undefined, operator: string): Promise<KeyRecord> {
    if (typeof keyId !== 'string' || !KEY_ID_PATTERN.test(keyId)) fail('invalid', 'key_id must match ^[A-Za-z0-9._-]{1,64}$');
    const key = this.d.keys.get(keyId);
    if (!key) return fail('not-found', `unknown key '${keyId}'`);
    if (!hasApproval(approval)) fail('forbidden', `approval-missing: adopting a policy needs the operator's approval signed with the admin identity (quorumkey key adopt-policy makes one)`);
    if (this.busy.has(keyId)) fail('busy', `key '${keyId}' is being created, refreshed or reconciled right now`);
    await this.checkReachable(key.signers, `cannot adopt the policy of '${keyId}'`);
    this.busy.add(keyId);
    try {
      const policy = encodeKeyPolicy(key.policy);
      const settled = await Promise.allSettled(key.signers.map((i) => this.d.signers.setPolicy(i, { key_id: keyId, policy, approval: approval! }, this.keyGenTimeoutMs)));
      const errors = settled.flatMap((r, k) => (r.status === 'rejected' ? [`signer ${key.signers[k]}: ${(r.reason as Error).message}`] : []));
      if (errors.length) fail(settled.some((r) => r.status === 'rejected' && r.reason instanceof SignerCallError && r.reason.code === grpc.status.PERMISSION_DENIED) ? 'forbidden' : 'internal', `adopting the policy of '${keyId}' failed (the key stays unsealed): ${errors.join('; ')}`);
      await this.d.audit.append({ event: 'adopt-policy', key_id: keyId, policy: new TextDecoder().decode(policy), operator, time: new Date().toISOString() });
      const record: KeyRecord = { ...this.d.keys.get(keyId)!, policySealed: true };
      await this.d.keys.put(record);
      this.d.log.warn('policy adopted by every holder', { key: keyId, operator });
      return record;
    } finally {
      this.busy.delete(keyId);
    }
  }

  async refreshKey(keyId: string): Promise<KeyRecord> {
    const key = this.d.keys.get(keyId);
    if (!key) fail('not-found', `unknown key '${keyId}'`);
    if (this.busy.has(keyId)) fail('busy', `key '${keyId}' is being created, refreshed or reconciled right now`);
    await this.checkReachable(key!.signers, `cannot refresh key '${keyId}'`);
    this.busy.add(keyId);
    this.d.pools.suspend(keyId, true);
    this.d.pools.dropKey(keyId, 'refresh');
    try {
      const sessionId = randomBytes(32);
      this.d.log.info('key refresh started', { key: keyId, epoch: key!.epoch });
      const what = `refresh of '${keyId}'`;
      const next = key!.epoch + 1;
      const { publicKey, sharesDigest } = await this.deal(keyId, next, key!.signers, what, (i) => this.d.signers.refresh(i, { key_id: keyId, session_id: sessionId }, this.keyGenTimeoutMs), key!.publicKey);
      const record: KeyRecord = { ...this.d.keys.get(keyId)!, epoch: next, publicKey, sharesDigest };
      await this.commit(record, what);
      this.d.pools.setKey(record);
      this.d.conflicts.setKey(record);
      // New shares, new pairwise OT setups: the holders' fresh Health answers clear the key's conflicts.
      await Promise.all(key!.signers.map((i) => this.d.signers.probe(i, true)));
      this.d.log.info('key refreshed', { key: keyId, epoch: next, conflicts: this.d.conflicts.count(keyId) });
      return record;
    } finally {
      this.d.pools.suspend(keyId, false);
      this.busy.delete(keyId);
    }
  }

  private async checkReachable(holders: number[], what: string): Promise<void> {
    const quarantined = holders.filter((i) => this.d.signers.state(i).quarantined);
    if (quarantined.length) fail('precondition', `${what}: signers ${formatSigners(quarantined)} are quarantined (readmit them first)`);
    // Signers not seen up yet (just restarted, or the coordinator just started): ask them now.
    await Promise.all(holders.filter((i) => !this.d.signers.state(i).up).map((i) => this.d.signers.probe(i)));
    const down = holders.filter((i) => !this.d.signers.state(i).up);
    if (down.length) fail('unavailable', `${what}: signers ${formatSigners(down)} are down`);
  }

  /**
   * Phase one: runs `call` on every holder (each seals a pending share of `epoch`). Any failure,
   * disagreement, a wrong epoch or (refresh) another public key: every holder discards its
   * pending share and this fails, naming what failed. Resolves with what they agree on.
   */
  private async deal(
    keyId: string,
    epoch: number,
    holders: number[],
    what: string,
    call: (i: number) => Promise<KeyGenResponse>,
    expectedPublicKey?: Uint8Array,
  ): Promise<{ publicKey: Uint8Array; epoch: number; sharesDigest: Uint8Array }> {
    const settled = await Promise.allSettled(holders.map(call));
    const errors = settled.flatMap((s, k) => (s.status === 'rejected' ? [{ signer: holders[k]!, error: s.reason as unknown }] : []));
    try {
      if (errors.length) {
        const text = errors.map((e) => (e.error instanceof Error ? e.error.message : String(e.error))).join('; ');
        const unreachable = errors.every((e) => e.error instanceof SignerCallError && (e.error.unreachable || e.error.timedOut));
        this.d.log.error(`${what} failed`, { signers: errors.map((e) => e.signer), error: text });
        return fail(unreachable ? 'unavailable' : 'internal', `${what} failed: ${text}`);
      }
      const agreed = this.agree(holders, settled.map((s) => (s as PromiseFulfilledResult<KeyGenResponse>).value), what);
      if (agreed.epoch !== epoch) fail('internal', `${what}: the signers dealt epoch ${agreed.epoch}, expected ${epoch}`);
      if (expectedPublicKey && !Buffer.from(agreed.publicKey).equals(Buffer.from(expectedPublicKey))) fail('internal', `${what}: the signers report a different public key`);
      return agreed;
    } catch (e) {
      const kept = await this.rollback(keyId, epoch, holders);
      if (e instanceof CoordinatorError) {
        const tail = kept.length
          ? `; rolled back: signers ${formatSigners(kept)} could not be told yet and discard their pending share when they are back`
          : '; rolled back: no holder keeps a share of this attempt';
        throw new CoordinatorError(e.kind, e.message + tail);
      }
      throw e;
    }
  }

  /** Every holder discards its pending share of `epoch`; returns those that could not be told. */
  private async rollback(keyId: string, epoch: number, holders: number[]): Promise<number[]> {
    const settled = await Promise.allSettled(holders.map((i) => this.d.signers.discardShare(i, { key_id: keyId, epoch }, this.keyGenTimeoutMs)));
    const kept = holders.filter((_, k) => settled[k]!.status === 'rejected');
    this.d.log.warn('pending shares discarded', { key: keyId, epoch, not_reached: kept });
    return kept;
  }

  /**
   * Phase two: the registry records the new epoch (the commit point: nothing is rolled back
   * after it), then every holder commits. A holder that misses it commits when its Health lists
   * the pending share (reconcilePending).
   */
  private async commit(record: KeyRecord, what: string): Promise<void> {
    try {
      await this.d.keys.put(record);
    } catch (e) {
      const kept = await this.rollback(record.id, record.epoch, record.signers);
      fail('internal', `${what}: the registry could not be written (${(e as Error).message}); rolled back${kept.length ? ` (signers ${formatSigners(kept)} discard theirs when they are back)` : ''}`);
    }
    const settled = await Promise.allSettled(record.signers.map((i) => this.commitAt(i, record)));
    const late = record.signers.filter((_, k) => settled[k]!.status === 'rejected');
    if (late.length) this.d.log.warn(`${what} committed; signers commit when they are back`, { key: record.id, epoch: record.epoch, signers: late });
  }

  private commitAt(index: number, record: KeyRecord): Promise<KeySummary> {
    return this.d.signers.commitShare(index, { key_id: record.id, epoch: record.epoch, public_shares_digest: record.sharesDigest ?? new Uint8Array(0) }, this.keyGenTimeoutMs);
  }

  /**
   * A signer's Health listed pending shares: commit those keys.json committed (same epoch and
   * public shares), discard the others. Keys being dealt right now are left alone.
   */
  async reconcilePending(index: number, pending: readonly PendingShare[]): Promise<void> {
    await Promise.all(
      pending.map(async (p) => {
        const label = `${index}/${p.key_id}`;
        if (this.busy.has(p.key_id) || this.reconciling.has(label)) return;
        this.reconciling.add(label);
        try {
          const record = this.d.keys.get(p.key_id);
          const committed =
            !!record &&
            record.epoch === p.epoch &&
            record.signers.includes(index) &&
            Buffer.from(p.public_key).equals(Buffer.from(record.publicKey)) &&
            (!record.sharesDigest || Buffer.from(p.public_shares_digest).equals(Buffer.from(record.sharesDigest)));
          if (committed) {
            await this.commitAt(index, record);
            this.d.log.info('pending share committed after the fact', { key: p.key_id, signer: index, epoch: p.epoch });
          } else {
            if (record && record.epoch === p.epoch) this.d.log.error('a signer holds a pending share of the committed epoch with other public shares: discarded', { key: p.key_id, signer: index, epoch: p.epoch });
            await this.d.signers.discardShare(index, { key_id: p.key_id, epoch: p.epoch }, this.keyGenTimeoutMs);
            this.d.log.info('uncommitted pending share discarded', { key: p.key_id, signer: index, epoch: p.epoch });
          }
        } catch (e) {
          this.d.log.warn('could not reconcile a pending share (retried at the next health answer)', { key: p.key_id, signer: index, error: (e as Error)?.message });
        } finally {
          this.reconciling.delete(label);
        }
      }),
    );
  }

  /**
   * Deletes a key: refused (nothing erased) unless every holder is up; then recorded in the
   * audit log, moved to `deleting` in keys.json (nothing signs with it from here on) and erased
   * by every holder (Signer.EraseKey with the operator's approval). Holders that fail stay
   * listed; running the delete again finishes the job.
   */
  async deleteKey(keyId: string, approval: OperatorApproval | null | undefined, operator: string): Promise<DeleteKeyResult> {
    if (typeof keyId !== 'string' || !KEY_ID_PATTERN.test(keyId)) fail('invalid', 'key_id must match ^[A-Za-z0-9._-]{1,64}$');
    const key = this.d.keys.get(keyId);
    const deleting = this.d.keys.deletingKey(keyId);
    if (!key && !deleting) return fail('not-found', `unknown key '${keyId}'`);
    if (!hasApproval(approval)) fail('forbidden', `approval-missing: deleting a key needs the operator's approval signed with the admin identity (quorumkey key delete makes one)`);
    if (this.busy.has(keyId)) fail('busy', `key '${keyId}' is being created, refreshed or reconciled right now`);
    const holders = key?.signers ?? deleting!.signers;
    await Promise.all(holders.filter((i) => !this.d.signers.state(i).up).map((i) => this.d.signers.probe(i)));
    const down = holders.filter((i) => !this.d.signers.state(i).up);
    if (down.length) fail('unavailable', `cannot delete key '${keyId}': signers ${formatSigners(down)} are down; nothing was erased (run the delete again when they are up)`);
    this.busy.add(keyId);
    try {
      if (key) {
        await this.d.audit.append({ event: 'key-delete', key_id: keyId, public_key: hex(key.publicKey), signers: key.signers, epoch: key.epoch, operator, time: new Date().toISOString() });
        await this.d.keys.markDeleting(keyId);
        this.d.pools.removeKey(keyId);
        this.d.conflicts.removeKey(keyId);
        this.d.metrics.keys.set(this.d.keys.list().length);
      }
      const settled = await Promise.allSettled(holders.map((i) => this.d.signers.eraseKey(i, { key_id: keyId, approval: approval! }, this.keyGenTimeoutMs)));
      const gone = (r: PromiseSettledResult<KeySummary>) => r.status === 'fulfilled' || (r.reason instanceof SignerCallError && r.reason.code === grpc.status.NOT_FOUND);
      const erased = holders.filter((_, k) => gone(settled[k]!));
      const remaining = holders.filter((_, k) => !gone(settled[k]!));
      await this.d.keys.setDeleting(keyId, remaining);
      if (remaining.length === 0) {
        await this.d.audit.append({ event: 'key-deleted', key_id: keyId, signers: holders, operator, time: new Date().toISOString() });
        this.d.log.warn('key deleted: every holder erased its share', { key: keyId, operator });
      } else {
        const errors = settled.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
        this.d.log.error('key deletion incomplete: run it again', { key: keyId, remaining, error: errors.join('; ') });
        if (settled.every((r) => r.status === 'rejected' && r.reason instanceof SignerCallError && r.reason.code === grpc.status.PERMISSION_DENIED)) {
          fail('forbidden', `deleting key '${keyId}': every holder refused the approval (${errors.join('; ')}); the key no longer signs, run the delete again with a valid approval`);
        }
      }
      return { keyId, erased, remaining };
    } finally {
      this.busy.delete(keyId);
    }
  }

  /** Every holder must report the same public key, public-shares digest and epoch. */
  private agree(holders: number[], answers: KeyGenResponse[], what: string): { publicKey: Uint8Array; epoch: number; sharesDigest: Uint8Array } {
    const first = answers[0]!;
    for (const [k, a] of answers.entries()) {
      const same =
        Buffer.from(a.public_key).equals(Buffer.from(first.public_key)) &&
        Buffer.from(a.public_shares_digest).equals(Buffer.from(first.public_shares_digest)) &&
        a.epoch === first.epoch;
      if (!same) {
        this.d.log.error(`${what}: signers disagree`, { signers: [holders[0], holders[k]] });
        fail('internal', `${what}: signers ${holders[0]} and ${holders[k]} report different public keys, public shares or epochs`);
      }
    }
    const publicKey = new Uint8Array(first.public_key);
    try {
      if (publicKey.length !== 33) throw new Error('length');
      p256.Point.fromBytes(publicKey).assertValidity();
    } catch {
      fail('internal', `${what}: the signers' public key is not a compressed P-256 point`);
    }
    if (first.public_shares_digest.length !== 32) fail('internal', `${what}: public_shares_digest is not 32 bytes`);
    return { publicKey, epoch: first.epoch, sharesDigest: new Uint8Array(first.public_shares_digest) };
  }

  status(): ClusterStatusView {
    return {
      signers: this.d.signers.all(),
      pools: this.d.pools.info(),
      conflicts: this.d.conflicts.list(),
      subsets: this.d.keys.list().map((k) => ({ keyId: k.id, total: binomial(k.signers.length, k.threshold), usable: this.d.conflicts.usableSubsets(k.id) })),
    };
  }

  /** The operator's exclusion of a signer from scheduling (coordinator state only). */
  quarantine(index: number): ClusterStatusView {
    if (!this.d.signers.has(index)) fail('not-found', `signer ${index} is not in the cluster`);
    this.d.signers.quarantine(index, 'quarantined by an operator');
    return this.status();
  }

  /**
   * Lifts a quarantine (the operator's, or the combiner's). No signer is called: a conflicting
   * pair is not revived by this, only by `reconcilePair` (or a refresh).
   */
  readmit(index: number): ClusterStatusView {
    if (!this.d.signers.has(index)) fail('not-found', `signer ${index} is not in the cluster`);
    this.d.signers.readmit(index);
    this.d.pools.resetBackoff(index);
    return this.status();
  }

  /**
   * Pairwise re-setup of key `keyId`'s OT correlation between signers a and b: Signer.PairSetup
   * on a (peer b) and on b (peer a) concurrently with one fresh 32-byte session id; when both
   * answered, both are probed anew (probes started now), which clears the conflict once neither
   * lists the other among its retired peers any more.
   *
   * `approval` is the operator's signed approval of {op: pair-setup, key, a, b} (the CLI makes
   * it with the admin identity): passed to both signers unchanged, each of which checks it. The
   * coordinator cannot make one; it only refuses early when there is none.
   */
  async reconcilePair(keyId: string, a: number, b: number, approval?: OperatorApproval | null): Promise<ClusterStatusView> {
    if (typeof keyId !== 'string' || !KEY_ID_PATTERN.test(keyId)) fail('invalid', 'key_id must match ^[A-Za-z0-9._-]{1,64}$');
    const key = this.d.keys.get(keyId);
    if (!key) fail('not-found', `unknown key '${keyId}'`);
    if (!Number.isInteger(a) || !Number.isInteger(b) || a <= 0 || b <= 0) fail('invalid', `give two signer indices a and b, got ${a} and ${b}`);
    if (a === b) fail('invalid', `a pair needs two different signers, got ${a} twice`);
    const outside = [a, b].filter((i) => !key!.signers.includes(i));
    if (outside.length) fail('invalid', `signers ${formatSigners(outside)} do not hold key '${keyId}' (holders: ${formatSigners(key!.signers)})`);
    if (!hasApproval(approval)) fail('forbidden', `approval-missing: a pair re-setup needs the operator's approval signed with the admin identity (quorumkey signers reconcile makes one)`);
    if (this.busy.has(keyId)) fail('busy', `key '${keyId}' is being created, refreshed or reconciled right now`);
    const pair = [a, b].sort((x, y) => x - y) as [number, number];
    const what = `reconciliation of signers ${pair[0]} and ${pair[1]} for key '${keyId}'`;
    await Promise.all(pair.filter((i) => !this.d.signers.state(i).up).map((i) => this.d.signers.probe(i)));
    const down = pair.filter((i) => !this.d.signers.state(i).up);
    if (down.length) fail('unavailable', `${what}: signers ${formatSigners(down)} are down`);
    this.busy.add(keyId);
    try {
      const sessionId = randomBytes(32);
      this.d.log.info('pair reconciliation started', { key: keyId, a: pair[0], b: pair[1], conflict: this.d.conflicts.has(keyId, a, b) });
      const request = (peer: number) => {
        const r: PairSetupRequest & { approval: OperatorApproval } = { key_id: keyId, session_id: sessionId, peer, approval: approval! };
        return r;
      };
      const settled = await Promise.allSettled([
        this.d.signers.pairSetup(pair[0], request(pair[1]), this.keyGenTimeoutMs),
        this.d.signers.pairSetup(pair[1], request(pair[0]), this.keyGenTimeoutMs),
      ]);
      const errors = settled.flatMap((r, k) => (r.status === 'rejected' ? [{ signer: pair[k]!, error: r.reason as unknown }] : []));
      if (errors.length) {
        // A SignerCallError's message names the signer and the RPC already ("signer 4 PairSetup: …").
        const text = errors.map((e) => (e.error instanceof SignerCallError ? e.error.message : `signer ${e.signer}: ${e.error instanceof Error ? e.error.message : String(e.error)}`)).join('; ');
        const unreachable = errors.every((e) => e.error instanceof SignerCallError && (e.error.unreachable || e.error.timedOut));
        const refused = errors.some((e) => e.error instanceof SignerCallError && e.error.code === grpc.status.PERMISSION_DENIED);
        this.d.log.error(`${what} failed`, { signers: errors.map((e) => e.signer), error: text });
        fail(refused ? 'forbidden' : unreachable ? 'unavailable' : 'internal', `${what} failed: ${text}`);
      }
      for (const [k, r] of settled.entries()) {
        const summary = (r as PromiseFulfilledResult<KeySummary>).value;
        if (summary.public_key?.length && !Buffer.from(summary.public_key).equals(Buffer.from(key!.publicKey))) {
          fail('internal', `${what}: signer ${pair[k]} answered for a different public key`);
        }
      }
      // Ask both anew (probes started after the pair setup): their retired peers decide.
      await Promise.all(pair.map((i) => this.d.signers.probe(i, true)));
      this.d.pools.resetBackoff(undefined, keyId);
      const still = this.d.conflicts.has(keyId, a, b);
      if (still) {
        const retired = pair.map((i) => ({ signer: i, retired_peers: this.d.conflicts.retiredBy(keyId, i) ?? [] }));
        this.d.log.warn(`${what}: both signers answered, the pair is still in conflict`, { key: keyId, a: pair[0], b: pair[1], health: retired });
      } else {
        this.d.log.info('pair reconciled', { key: keyId, a: pair[0], b: pair[1] });
      }
      return this.status();
    } finally {
      this.busy.delete(keyId);
    }
  }
}

export { CoordinatorError };
