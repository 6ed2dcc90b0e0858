/**
 * The key registry: public data only (id, threshold, holders, public key, policy, client ACL,
 * epoch), kept in <dir>/coordinator/keys.json and replaced atomically (temp file, fsync, rename,
 * fsync dir).
 *
 *   {"version":2,"keys":[{"id":"tls","threshold":2,"signers":[1,2,3],"publicKey":"02…",
 *     "policy":{"contexts":["tls-server"],"rate":{"perSecond":1000,"perHour":1000000}},
 *     "policySealed":true,"clients":["unix"],"epoch":0,"created":1700000000000}]}
 *
 * The policy is a copy of what every holder sealed with its share (the signers enforce theirs).
 * `clients` is the ACL of caller identities that may sign with the key: default deny.
 * `sharesDigest` (hex, SHA-256 over the public shares) is what the holders committed at `epoch`:
 * a signer restarted with a pending share of that epoch and digest is told to commit it.
 * `deleting` lists keys being deleted (`quorumkey key delete`): gone from `keys` (nothing signs
 * with them), kept until every holder erased its share.
 *
 * Version 1 files (policy = a list of contexts, optional clients, shares sealed without a
 * policy) are read and marked policySealed=false: their keys sign nothing until the operator
 * confirms the policy (`quorumkey key adopt-policy`), and a missing client list means nobody.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { writeFileAtomic } from '../storage/atomic-write.js';
import { CONTEXTS } from '../policy/classify.js';
import { normaliseKeyPolicy, PolicyError, type KeyPolicy } from '../policy/key-policy.js';
import { CLIENT_PATTERN, KEY_ID_PATTERN } from './policy.js';

export interface KeyRecord {
  id: string;
  threshold: number;
  /** Share holders, ascending signer indices. */
  signers: number[];
  /** 33-byte compressed point. */
  publicKey: Uint8Array;
  policy: KeyPolicy;
  /** Every holder has the policy sealed with its share (false: a key from before, see above). */
  policySealed: boolean;
  /** Caller identities allowed to sign with the key, sorted. Empty: nobody. */
  clients: string[];
  epoch: number;
  /** Milliseconds since the epoch. */
  created: number;
  /** SHA-256 over the public shares committed at `epoch` (absent in registries from before). */
  sharesDigest?: Uint8Array;
}

/** A key being deleted: the holders that may still have a share. */
export interface DeletingKey {
  id: string;
  signers: number[];
  since: number;
}

interface StoredKey {
  id: string;
  threshold: number;
  signers: number[];
  publicKey: string;
  policy: unknown;
  policySealed?: boolean;
  clients?: string[];
  epoch: number;
  created: number;
  sharesDigest?: string;
}

/**
 * The policy a version-1 record stands for: its contexts with the default rate limit, and for
 * x509-cert the narrowest constraints (no names, no CA, 1 day) until the operator adopts a policy.
 */
function legacyPolicy(contexts: unknown): KeyPolicy {
  if (!Array.isArray(contexts) || !contexts.every((p) => (CONTEXTS as readonly unknown[]).includes(p))) throw new PolicyError('contexts', 'invalid list of contexts');
  const x509 = contexts.includes('x509-cert') ? { x509: { dnsSuffixes: [], ipRanges: [], maxValidityDays: 1, allowCa: false, extendedKeyUsages: [] } } : {};
  return normaliseKeyPolicy({ contexts, ...x509 });
}

export class KeyStoreError extends Error {}

const VERSION = 2;

function parseKey(raw: unknown, file: string, version: number): KeyRecord {
  const k = raw as StoredKey;
  const bad = (why: string): never => {
    throw new KeyStoreError(`${file}: key ${JSON.stringify((raw as { id?: unknown })?.id)}: ${why}`);
  };
  if (typeof k !== 'object' || k === null) bad('not an object');
  if (typeof k.id !== 'string' || !KEY_ID_PATTERN.test(k.id)) bad('invalid id');
  if (!Array.isArray(k.signers) || !k.signers.every((s) => Number.isInteger(s) && s >= 1)) bad('invalid signers');
  if (!Number.isInteger(k.threshold) || k.threshold < 2 || k.threshold > k.signers.length) bad('invalid threshold');
  if (typeof k.publicKey !== 'string' || !/^[0-9a-f]{66}$/.test(k.publicKey)) bad('invalid publicKey');
  const publicKey = Uint8Array.from(Buffer.from(k.publicKey, 'hex'));
  try {
    p256.Point.fromBytes(publicKey).assertValidity();
  } catch {
    bad('publicKey is not a P-256 point');
  }
  let policy: KeyPolicy;
  try {
    policy = version === 1 ? legacyPolicy(k.policy) : normaliseKeyPolicy(k.policy);
  } catch (e) {
    return bad(e instanceof PolicyError ? e.message : 'invalid policy');
  }
  if (version !== 1 && typeof k.policySealed !== 'boolean') bad('invalid policySealed');
  if (!Number.isInteger(k.epoch) || k.epoch < 0) bad('invalid epoch');
  if (typeof k.created !== 'number') bad('invalid created');
  if (k.clients !== undefined && (!Array.isArray(k.clients) || !k.clients.every((c) => typeof c === 'string' && CLIENT_PATTERN.test(c)))) bad('invalid clients');
  if (version !== 1 && k.clients === undefined) bad('missing clients');
  if (k.sharesDigest !== undefined && (typeof k.sharesDigest !== 'string' || !/^[0-9a-f]{64}$/.test(k.sharesDigest))) bad('invalid sharesDigest');
  return {
    id: k.id,
    threshold: k.threshold,
    signers: [...k.signers].sort((a, b) => a - b),
    publicKey,
    policy,
    policySealed: version === 1 ? false : k.policySealed!,
    clients: [...new Set(k.clients ?? [])].sort(),
    epoch: k.epoch,
    created: k.created,
    ...(k.sharesDigest ? { sharesDigest: Uint8Array.from(Buffer.from(k.sharesDigest, 'hex')) } : {}),
  };
}

function parseDeleting(raw: unknown, file: string): DeletingKey {
  const d = raw as DeletingKey;
  const ok =
    typeof d === 'object' && d !== null && typeof d.id === 'string' && KEY_ID_PATTERN.test(d.id) &&
    Array.isArray(d.signers) && d.signers.every((s) => Number.isInteger(s) && s >= 1) && typeof d.since === 'number';
  if (!ok) throw new KeyStoreError(`${file}: invalid entry in "deleting": ${JSON.stringify(raw).slice(0, 80)}`);
  return { id: d.id, signers: [...d.signers].sort((a, b) => a - b), since: d.since };
}

function toStored(k: KeyRecord): StoredKey {
  return {
    id: k.id,
    threshold: k.threshold,
    signers: k.signers,
    publicKey: Buffer.from(k.publicKey).toString('hex'),
    policy: k.policy,
    policySealed: k.policySealed,
    clients: k.clients,
    epoch: k.epoch,
    created: k.created,
    ...(k.sharesDigest ? { sharesDigest: Buffer.from(k.sharesDigest).toString('hex') } : {}),
  };
}

export class KeyStore {
  private readonly keys = new Map<string, KeyRecord>();
  private readonly deleting = new Map<string, DeletingKey>();
  /** Serialises file writes. */
  private writing: Promise<void> = Promise.resolve();

  private constructor(readonly path: string) {}

  /** Loads the registry (an absent file is an empty registry). Throws KeyStoreError on a bad file. */
  static load(path: string): KeyStore {
    const store = new KeyStore(path);
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new KeyStoreError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code}`);
    }
    if (text !== undefined) {
      let doc: { version?: unknown; keys?: unknown; deleting?: unknown };
      try {
        doc = JSON.parse(text) as typeof doc;
      } catch {
        throw new KeyStoreError(`${path} is not valid JSON`);
      }
      if ((doc.version !== 1 && doc.version !== VERSION) || !Array.isArray(doc.keys)) throw new KeyStoreError(`${path}: expected {"version":${VERSION},"keys":[…]}`);
      for (const raw of doc.keys) {
        const key = parseKey(raw, path, doc.version);
        if (store.keys.has(key.id)) throw new KeyStoreError(`${path}: duplicate key '${key.id}'`);
        store.keys.set(key.id, key);
      }
      if (doc.deleting !== undefined && !Array.isArray(doc.deleting)) throw new KeyStoreError(`${path}: "deleting" must be a list`);
      for (const raw of (doc.deleting ?? []) as unknown[]) {
        const d = parseDeleting(raw, path);
        if (store.keys.has(d.id) || store.deleting.has(d.id)) throw new KeyStoreError(`${path}: key '${d.id}' is listed twice`);
        store.deleting.set(d.id, d);
      }
    }
    return store;
  }

  get(id: string): KeyRecord | undefined {
    return this.keys.get(id);
  }
  has(id: string): boolean {
    return this.keys.has(id);
  }
  list(): KeyRecord[] {
    return [...this.keys.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** A key being deleted (not returned by get / has / list). */
  deletingKey(id: string): DeletingKey | undefined {
    return this.deleting.get(id);
  }
  deletingKeys(): DeletingKey[] {
    return [...this.deleting.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /**
   * Inserts or replaces a key and persists the registry; the in-memory view changes only once
   * the file is durable. Writes are serialised, each from the then-current registry.
   */
  put(key: KeyRecord): Promise<void> {
    return this.write((keys) => keys.set(key.id, key));
  }

  /** Moves a key to `deleting` (durable before it returns): from now on nothing signs with it. */
  markDeleting(id: string, now = Date.now()): Promise<void> {
    return this.write((keys, deleting) => {
      const key = keys.get(id);
      if (!key) return;
      keys.delete(id);
      deleting.set(id, { id, signers: key.signers, since: now });
    });
  }

  /** Updates (holders still to erase) or, with none left, removes a deleting entry. */
  setDeleting(id: string, signers: number[]): Promise<void> {
    return this.write((_keys, deleting) => {
      const d = deleting.get(id);
      if (!d) return;
      if (signers.length === 0) deleting.delete(id);
      else deleting.set(id, { ...d, signers: [...signers].sort((a, b) => a - b) });
    });
  }

  private write(change: (keys: Map<string, KeyRecord>, deleting: Map<string, DeletingKey>) => void): Promise<void> {
    const run = async () => {
      const keys = new Map(this.keys);
      const deleting = new Map(this.deleting);
      change(keys, deleting);
      const doc = {
        version: VERSION,
        keys: [...keys.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map(toStored),
        ...(deleting.size ? { deleting: [...deleting.values()].sort((a, b) => (a.id < b.id ? -1 : 1)) } : {}),
      };
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.path, Buffer.from(JSON.stringify(doc, null, 2) + '\n'), 0o600);
      this.replace(this.keys, keys);
      this.replace(this.deleting, deleting);
    };
    const p = this.writing.then(run, run);
    this.writing = p.catch(() => undefined);
    return p;
  }

  private replace<V>(target: Map<string, V>, source: Map<string, V>): void {
    target.clear();
    for (const [k, v] of source) target.set(k, v);
  }
}
