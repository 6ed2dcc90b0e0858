/**
 * Operator actions: key generation and refresh across the share holders, cluster status,
 * quarantine and readmission.
 */
import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import type { ClusterConfig } from '../cluster/config.js';
import { CoordinatorError, fail, formatSigners } from './errors.js';
import type { KeyRecord, KeyStore } from './keys.js';
import type { Logger } from './log.js';
import type { CoordinatorMetrics } from './metrics.js';
import { KEY_ID_PATTERN, normalisePolicy } from './policy.js';
import type { PoolInfo, PoolSet } from './pools.js';
import { SignerCallError, type KeyGenResponse, type SignerRegistry, type SignerState } from './signers.js';

export const MIN_THRESHOLD = 2;
export const MAX_SIGNERS = 16;

export interface CreateKeyInput {
  keyId: string;
  threshold: number;
  signers: number[];
  signerCount: number;
  policy: string[];
}

export interface ClusterStatusView {
  signers: SignerState[];
  pools: PoolInfo[];
}

export interface AdminDeps {
  config: ClusterConfig;
  keys: KeyStore;
  signers: SignerRegistry;
  pools: PoolSet;
  metrics: CoordinatorMetrics;
  log: Logger;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export class AdminService {
  private readonly busy = new Set<string>();
  /** Deadline of KeyGen / Refresh at each signer. */
  keyGenTimeoutMs = 120_000;
  readmitTimeoutMs = 5_000;

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
    let policy;
    try {
      policy = normalisePolicy(input.policy);
    } catch (e) {
      return fail('invalid', (e as Error).message);
    }
    if (this.d.keys.has(input.keyId)) fail('already-exists', `key '${input.keyId}' already exists`);
    if (this.busy.has(input.keyId)) fail('busy', `key '${input.keyId}' is being created or refreshed right now`);
    await this.checkReachable(holders, `cannot create key '${input.keyId}'`);
    this.busy.add(input.keyId);
    try {
      const sessionId = randomBytes(32);
      this.d.log.info('key generation started', { key: input.keyId, threshold: t, signers: holders });
      const answers = await this.fanOut(holders, `key generation of '${input.keyId}'`, (i) =>
        this.d.signers.keyGen(i, { key_id: input.keyId, session_id: sessionId, parties: holders, threshold: t }, this.keyGenTimeoutMs),
      );
      const { publicKey, epoch } = this.agree(holders, answers, `key generation of '${input.keyId}'`);
      const record: KeyRecord = { id: input.keyId, threshold: t, signers: holders, publicKey, policy, epoch, created: Date.now() };
      try {
        await this.d.keys.put(record);
      } catch (e) {
        fail('internal', `key '${input.keyId}' was generated but the registry could not be written: ${(e as Error).message}`);
      }
      this.d.pools.setKey(record);
      this.d.metrics.keys.set(this.d.keys.list().length);
      this.d.log.info('key created', { key: record.id, threshold: t, signers: holders, public_key: hex(publicKey), policy });
      return record;
    } finally {
      this.busy.delete(input.keyId);
    }
  }

  async refreshKey(keyId: string): Promise<KeyRecord> {
    const key = this.d.keys.get(keyId);
    if (!key) fail('not-found', `unknown key '${keyId}'`);
    if (this.busy.has(keyId)) fail('busy', `key '${keyId}' is being created or refreshed right now`);
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
      this.d.log.info('key refreshed', { key: keyId, epoch });
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
    return { signers: this.d.signers.all(), pools: this.d.pools.info() };
  }

  quarantine(index: number): ClusterStatusView {
    if (!this.d.signers.has(index)) fail('not-found', `signer ${index} is not in the cluster`);
    this.d.signers.quarantine(index, 'quarantined by an operator');
    return this.status();
  }

  /**
   * Lifts the quarantine once, then tells every other signer. A blame that arrives while they are
   * being told (the peer misbehaves again) stands; health answers of signers not told yet, which
   * still list the peer, are ignored by the registry until each acknowledged.
   */
  async readmit(index: number): Promise<ClusterStatusView> {
    if (!this.d.signers.has(index)) fail('not-found', `signer ${index} is not in the cluster`);
    const others = this.d.signers.indices.filter((i) => i !== index);
    this.d.signers.readmit(index, others);
    this.d.pools.resetBackoff(index);
    const settled = await Promise.allSettled(
      others.map((i) => this.d.signers.readmitPeer(i, index, this.readmitTimeoutMs).then(() => this.d.signers.readmissionAcknowledged(index, i))),
    );
    this.d.signers.readmissionSettled(index);
    // Refills refused by signers that were not told yet back off: let them try again now.
    this.d.pools.resetBackoff(index);
    const missed = others.filter((_, k) => settled[k]!.status === 'rejected');
    if (missed.length) {
      this.d.log.warn('readmission not delivered to every signer: they keep blaming the peer until told', { signer: index, not_told: missed });
    }
    return this.status();
  }
}

export { CoordinatorError };
