/**
 * The CA's state under <cluster dir>/ca/, every write atomic (storage/atomic-write.ts):
 *
 *   ca.json              CaConfig: the threshold keys, the OCSP and CRL URLs, validity periods
 *   root.crt             the self-signed root (PEM)
 *   ocsp-responder.crt   the delegated OCSP responder's certificate (PEM)
 *   issued.json          IssuedDatabase: every certificate issued, its revocation, the CRL number
 *   crl.der, crl.pem     the latest CRL (served on GET /crl)
 *
 * Only the CLI writes; the coordinator's OCSP responder reads issued.json again when it changes.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../storage/atomic-write.js';
import type { Profile } from './profiles.js';
import type { Revocation } from './reasons.js';

export interface CaConfig {
  version: 1;
  /** The CA key (policy x509-cert, allowCa 'self-signed'). */
  caKey: string;
  /** The delegated OCSP responder key (policy ocsp, client ocsp-responder). */
  responderKey: string;
  ocspUrl: string;
  crlUrl: string;
  /** Lifetime of an OCSP response (nextUpdate − thisUpdate). */
  ocspValiditySeconds: number;
  crlValidityDays: number;
}

export interface IssuedCertificate {
  /** Lowercase hex of the serial number's INTEGER content. */
  serial: string;
  subject: string;
  profile: Profile | 'root';
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  /** The certificate, base64 DER. */
  der: string;
  revoked?: Revocation;
}

export interface IssuedDatabase {
  version: 1;
  /** The number of the last CRL made (0: none yet). */
  crlNumber: number;
  certificates: IssuedCertificate[];
}

export const OCSP_RESPONDER_IDENTITY = 'ocsp-responder';
const SERIAL = /^[0-9a-f]{2,40}$/;

export const caPaths = (clusterRoot: string) => {
  const root = join(clusterRoot, 'ca');
  return {
    root,
    config: join(root, 'ca.json'),
    rootCert: join(root, 'root.crt'),
    responderCert: join(root, 'ocsp-responder.crt'),
    issued: join(root, 'issued.json'),
    crlDer: join(root, 'crl.der'),
    crlPem: join(root, 'crl.pem'),
  };
};
export type CaPaths = ReturnType<typeof caPaths>;

export class CaStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CaStateError';
  }
}

/** A serial number as the database keys it: lowercase hex, no 0x, an even number of digits. */
export function normaliseSerial(text: string): string {
  let s = text.trim().toLowerCase().replace(/^0x/, '').replace(/:/g, '');
  if (s.length % 2) s = `0${s}`;
  if (!SERIAL.test(s)) throw new CaStateError(`serial '${text.slice(0, 64)}' is not a hex serial number (as 'quorumkey cert list' prints it)`);
  return s;
}

function readJson<T>(file: string, what: string, check: (v: Record<string, unknown>) => boolean): T {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CaStateError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || !check(value as Record<string, unknown>)) throw new CaStateError(`${what} ${file} is not a quorumkey CA file of version 1`);
  return value as T;
}

export function caInitialised(p: CaPaths): boolean {
  return existsSync(p.config);
}

export function readCaConfig(p: CaPaths): CaConfig {
  if (!existsSync(p.config)) throw new CaStateError(`no CA at ${p.root}: run 'quorumkey ca init' first`);
  return readJson<CaConfig>(p.config, 'CA configuration', (v) => v.version === 1 && typeof v.caKey === 'string' && typeof v.responderKey === 'string' && typeof v.ocspUrl === 'string');
}

export function readIssued(p: CaPaths): IssuedDatabase {
  if (!existsSync(p.issued)) return { version: 1, crlNumber: 0, certificates: [] };
  return readJson<IssuedDatabase>(p.issued, 'issued-certificate database', (v) => v.version === 1 && Array.isArray(v.certificates) && Number.isSafeInteger(v.crlNumber));
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, Buffer.from(JSON.stringify(value, null, 2) + '\n'), 0o644);
}

/** Changes issued.json through `change` (read, modify, atomic replace). The CLI is its only writer. */
export async function updateIssued<T>(p: CaPaths, change: (db: IssuedDatabase) => T): Promise<T> {
  const db = readIssued(p);
  const out = change(db);
  await writeJson(p.issued, db);
  return out;
}

export function findIssued(db: IssuedDatabase, serial: string): IssuedCertificate | undefined {
  return db.certificates.find((c) => c.serial === serial);
}

/** A token that changes whenever issued.json is replaced (for the responder's reload and cache). */
export function issuedVersion(p: CaPaths): string {
  try {
    const s = statSync(p.issued);
    return `${s.ino}:${s.mtimeMs}:${s.size}`;
  } catch {
    return 'none';
  }
}
