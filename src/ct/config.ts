/**
 * The CT log's configuration, <dir>/coordinator/ct.json (written by `quorumkey ct init`):
 *   {"key_id": "ct", "roots": ["-----BEGIN CERTIFICATE-----…", …]}
 * key_id names a threshold key with policy `sct` whose client list holds `ct-log` (the
 * coordinator's own caller identity for the log); roots are the accepted roots (get-roots), PEM.
 * Its entries and signed tree head live in <dir>/coordinator/ct/.
 */
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { paths } from '../cluster/config.js';
import { writeFileAtomic } from '../storage/atomic-write.js';

export interface CtConfig {
  keyId: string;
  roots: string[];
}

export const CT_LOG_CALLER = 'ct-log';
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
export const MAX_ROOTS = 64;

export const ctPaths = (dir: string) => ({ config: join(paths(dir).coordinator, 'ct.json'), store: join(paths(dir).coordinator, 'ct') });

export class CtConfigError extends Error {
  constructor(message: string) {
    super(`CT log configuration: ${message}`);
    this.name = 'CtConfigError';
  }
}

/** The PEM certificates of a file (in order); none is an error. */
export function pemCertificates(text: string, what: string): string[] {
  const found = text.match(PEM_CERTIFICATE) ?? [];
  if (found.length === 0) throw new CtConfigError(`${what} holds no PEM certificate`);
  return found.map((p) => `${p}\n`);
}

/** The accepted roots as certificates; each must be a CA certificate. */
export function acceptedRoots(config: CtConfig): X509Certificate[] {
  return config.roots.map((pem, k) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch {
      throw new CtConfigError(`roots[${k}] is not a certificate`);
    }
    if (!cert.ca) throw new CtConfigError(`roots[${k}] (${cert.subject.replace(/\n/g, ', ')}) is not a CA certificate`);
    return cert;
  });
}

export function parseCtConfig(text: string): CtConfig {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new CtConfigError('ct.json is not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new CtConfigError('ct.json is not an object');
  for (const k of Object.keys(o)) if (k !== 'key_id' && k !== 'roots') throw new CtConfigError(`unknown field '${k.slice(0, 40)}' (key_id, roots)`);
  if (typeof o.key_id !== 'string' || !KEY_ID.test(o.key_id)) throw new CtConfigError('key_id must be a key id');
  if (!Array.isArray(o.roots) || o.roots.length === 0 || o.roots.length > MAX_ROOTS || !o.roots.every((r) => typeof r === 'string')) {
    throw new CtConfigError(`roots must be 1 to ${MAX_ROOTS} PEM certificates`);
  }
  const config = { keyId: o.key_id, roots: o.roots as string[] };
  acceptedRoots(config);
  return config;
}

export function writeCtConfig(dir: string, config: CtConfig): Promise<void> {
  acceptedRoots(config);
  return writeFileAtomic(ctPaths(dir).config, Buffer.from(JSON.stringify({ key_id: config.keyId, roots: config.roots }, null, 2) + '\n'));
}
