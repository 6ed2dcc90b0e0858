/**
 * The key registry: public data only (id, threshold, holders, public key, policy, epoch), kept
 * in <dir>/coordinator/keys.json and replaced atomically (temp file, fsync, rename, fsync dir).
 *
 *   {"version":1,"keys":[{"id":"tls","threshold":2,"signers":[1,2,3],"publicKey":"02…",
 *     "policy":["tls-server"],"epoch":0,"created":1700000000000}]}
 *
 * An optional "clients" array per key restricts which caller identities may sign with it
 * (edited by hand for now; the Admin API has no field for it yet).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { writeFileAtomic } from '../storage/atomic-write.js';
import { CONTEXTS, type Context } from '../policy/classify.js';
import { KEY_ID_PATTERN } from './policy.js';

export interface KeyRecord {
  id: string;
  threshold: number;
  /** Share holders, ascending signer indices. */
  signers: number[];
  /** 33-byte compressed point. */
  publicKey: Uint8Array;
  policy: Context[];
  epoch: number;
  /** Milliseconds since the epoch. */
  created: number;
  clients?: string[];
}

interface StoredKey {
  id: string;
  threshold: number;
  signers: number[];
  publicKey: string;
  policy: string[];
  epoch: number;
  created: number;
  clients?: string[];
}

export class KeyStoreError extends Error {}

function parseKey(raw: unknown, file: string): KeyRecord {
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
  if (!Array.isArray(k.policy) || !k.policy.every((p) => (CONTEXTS as readonly string[]).includes(p))) bad('invalid policy');
  if (!Number.isInteger(k.epoch) || k.epoch < 0) bad('invalid epoch');
  if (typeof k.created !== 'number') bad('invalid created');
  if (k.clients !== undefined && (!Array.isArray(k.clients) || !k.clients.every((c) => typeof c === 'string'))) bad('invalid clients');
  const record: KeyRecord = {
    id: k.id,
    threshold: k.threshold,
    signers: [...k.signers].sort((a, b) => a - b),
    publicKey,
    policy: k.policy as Context[],
    epoch: k.epoch,
    created: k.created,
  };
  if (k.clients) record.clients = [...k.clients];
  return record;
}

function toStored(k: KeyRecord): StoredKey {
  const out: StoredKey = {
    id: k.id,
    threshold: k.threshold,
    signers: k.signers,
    publicKey: Buffer.from(k.publicKey).toString('hex'),
    policy: k.policy,
    epoch: k.epoch,
    created: k.created,
  };
  if (k.clients) out.clients = k.clients;
  return out;
}

export class KeyStore {
  private readonly keys = new Map<string, KeyRecord>();
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
      let doc: { version?: unknown; keys?: unknown };
      try {
        doc = JSON.parse(text) as typeof doc;
      } catch {
        throw new KeyStoreError(`${path} is not valid JSON`);
      }
      if (doc.version !== 1 || !Array.isArray(doc.keys)) throw new KeyStoreError(`${path}: expected {"version":1,"keys":[…]}`);
      for (const raw of doc.keys) {
        const key = parseKey(raw, path);
        if (store.keys.has(key.id)) throw new KeyStoreError(`${path}: duplicate key '${key.id}'`);
        store.keys.set(key.id, key);
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

  /**
   * Inserts or replaces a key and persists the registry; the in-memory view changes only once
   * the file is durable. Writes are serialised, each from the then-current registry.
   */
  put(key: KeyRecord): Promise<void> {
    const run = async () => {
      const next = new Map(this.keys);
      next.set(key.id, key);
      const doc = { version: 1, keys: [...next.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map(toStored) };
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.path, Buffer.from(JSON.stringify(doc, null, 2) + '\n'), 0o600);
      this.keys.set(key.id, key);
    };
    const p = this.writing.then(run, run);
    this.writing = p.catch(() => undefined);
    return p;
  }
}
