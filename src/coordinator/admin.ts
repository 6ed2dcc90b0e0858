/**
 * Operator actions: key generation (with the policy every holder seals) and refresh across the
 * share holders, the client ACL of a key (grant / revoke, audited), cluster status (with
 * the pair conflicts and the usable subsets of every key), the operator's own exclusion of a
 * signer (quarantine / readmission: coordinator state only) and the reconciliation of a
 * conflicting pair (Signer.PairSetup on both members).
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
import { SignerCallError, type KeyGenResponse, type KeySummary, type PairSetupRequest, type SignerRegistry, type SignerState } from './signers.js';

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
    if (this.busy.has(input.keyId)) fail('busy', `key '${input.keyId}' is being created, refreshed or reconciled right now`);
    await this.checkReachable(holders, `cannot create key '${input.keyId}'`);
    this.busy.add(input.keyId);
    try {
      const sessionId = randomBytes(32);
      this.d.log.info('key generation started', { key: input.keyId, threshold: t, signers: holders });
      const answers = await this.fanOut(holders, `key generation of '${input.keyId}'`, (i) =>
        this.d.signers.keyGen(i, { key_id: input.keyId, session_id: sessionId, parties: holders, threshold: t, policy: encodeKeyPolicy(policy) }, this.keyGenTimeoutMs),
      );
      const { publicKey, epoch } = this.agree(holders, answers, `key generation of '${input.keyId}'`);
      const record: KeyRecord = { id: input.keyId, threshold: t, signers: holders, publicKey, policy, policySealed: true, clients, epoch, created: Date.now() };
      try {
        await this.d.keys.put(record);
      } catch (e) {
        fail('internal', `key '${input.keyId}' was generated but the registry could not be written: ${(e as Error).message}`);
      }
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
      const answers = await this.fanOut(key!.signers, `refresh of '${keyId}'`, (i) => this.d.signers.refresh(i, { key_id: keyId, session_id: sessionId }, this.keyGenTimeoutMs));
      const { publicKey, epoch } = this.agree(key!.signers, answers, `refresh of '${keyId}'`);
      if (!Buffer.from(publicKey).equals(Buffer.from(key!.publicKey))) fail('internal', `refresh of '${keyId}': the signers report a different public key`);
      if (epoch <= key!.epoch) fail('internal', `refresh of '${keyId}': epoch ${epoch} does not advance ${key!.epoch}`);
      const current = this.d.keys.get(keyId)!;
      const record: KeyRecord = { ...current, epoch };
      await this.d.keys.put(record);
      this.d.pools.setKey(record);
      this.d.conflicts.setKey(record);
      // New shares, new pairwise OT setups: the holders' fresh Health answers clear the key's conflicts.
      await Promise.all(key!.signers.map((i) => this.d.signers.probe(i, true)));
      this.d.log.info('key refreshed', { key: keyId, epoch, conflicts: this.d.conflicts.count(keyId) });
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

  private async fanOut(holders: number[], what: string, call: (i: number) => Promise<KeyGenResponse>): Promise<KeyGenResponse[]> {
    const settled = await Promise.allSettled(holders.map(call));
    const errors = settled.flatMap((s, k) => (s.status === 'rejected' ? [{ signer: holders[k]!, error: s.reason as unknown }] : []));
    if (errors.length) {
      const text = errors.map((e) => (e.error instanceof Error ? e.error.message : String(e.error))).join('; ');
      const unreachable = errors.every((e) => e.error instanceof SignerCallError && (e.error.unreachable || e.error.timedOut));
      this.d.log.error(`${what} failed`, { signers: errors.map((e) => e.signer), error: text });
      fail(unreachable ? 'unavailable' : 'internal', `${what} failed, nothing stored: ${text}`);
    }
    return settled.map((s) => (s as PromiseFulfilledResult<KeyGenResponse>).value);
  }

  /** Every holder must report the same public key, public-shares digest and epoch. */
  private agree(holders: number[], answers: KeyGenResponse[], what: string): { publicKey: Uint8Array; epoch: number } {
    const first = answers[0]!;
    for (const [k, a] of answers.entries()) {
      const same =
        Buffer.from(a.public_key).equals(Buffer.from(first.public_key)) &&
        Buffer.from(a.public_shares_digest).equals(Buffer.from(first.public_shares_digest)) &&
        a.epoch === first.epoch;
      if (!same) {
        this.d.log.error(`${what}: signers disagree`, { signers: [holders[0], holders[k]] });
        fail('internal', `${what}: signers ${holders[0]} and ${holders[k]} report different public keys, public shares or epochs; nothing stored`);
      }
    }
    const publicKey = new Uint8Array(first.public_key);
    try {
      if (publicKey.length !== 33) throw new Error('length');
      p256.Point.fromBytes(publicKey).assertValidity();
    } catch {
      fail('internal', `${what}: the signers' public key is not a compressed P-256 point; nothing stored`);
    }
    if (first.public_shares_digest.length !== 32) fail('internal', `${what}: public_shares_digest is not 32 bytes; nothing stored`);
    return { publicKey, epoch: first.epoch };
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
