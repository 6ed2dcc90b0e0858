/**
 * Key rotation with zero downtime: `quorumkey rotate ID` makes a new key by DKG with ID's policy,
 * threshold and clients (id ID-r<N>: the base id without its -r suffix, N counting up), has the CA
 * issue its certificate for the subject and SANs of ID's certificate, and writes <NEW>.crt and
 * <NEW>.key.pem beside <ID>.crt (default directory <cluster>/tls). The servers switch by a reload;
 * the old key keeps signing until `quorumkey key retire ID`, which needs the rotation confirmed
 * (`quorumkey rotate confirm ID`: the servers were reloaded) and then deletes ID with the operator's
 * approval. Rotations are recorded in <cluster>/rotations.json (atomic writes), each step before
 * the next, so an interrupted `rotate` resumes with the same new key instead of orphaning it.
 */
import { execFileSync } from 'node:child_process';
import { status } from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { paths } from '../cluster/config.js';
import { hasEmbeddedScts } from '../ct/precert.js';
import { keyReferencePem } from '../keyref/keyref.js';
import { writeFileAtomic } from '../storage/atomic-write.js';
import { certIssue } from './ca.js';
import { adminClient, deleteKeyApproval, unary } from './clients.js';
import { keyReferenceFor, opensslConf } from './provider-config.js';

const CERTS = fileURLToPath(new URL('../../../certs/', import.meta.url));
const DAY_MS = 86_400_000;

export const ROTATE_USAGE = `  rotate ID [--out D]                           a new key ID-r<N> by DKG (ID's policy, threshold, clients), its certificate
                                                from the CA for the subject and SANs of D/ID.crt (D default DIR/tls),
                                                written as D/ID-r<N>.crt and .key.pem; prints the servers' reload commands
  rotate confirm ID [--connect HOST:PORT]...    the servers were reloaded: with --connect, only if each serves the new key
  key retire ID [--yes]                         deletes a rotated-away key (key delete's approval) once its rotation is
                                                confirmed; refused while ID is still the current key`;

export class RotationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RotationError';
  }
}

export interface Rotation {
  from: string;
  to: string;
  /** Where the certificates and key references live. */
  dir: string;
  startedAt: string;
  /** creating: the new key may not exist yet; issued: its files are written; confirmed: the servers serve it; retired: the old key is deleted. */
  state: 'creating' | 'issued' | 'confirmed' | 'retired';
}

interface RotationLog {
  version: 1;
  rotations: Rotation[];
}

interface KeyInfo {
  key_id: string;
  threshold: number;
  signers: number[];
  spki_der: Buffer;
  policy_json: string;
  clients: string[];
}

const logFile = (dir: string) => join(paths(dir).root, 'rotations.json');

export function readRotations(dir: string): RotationLog {
  const file = logFile(dir);
  if (!existsSync(file)) return { version: 1, rotations: [] };
  let value: RotationLog;
  try {
    value = JSON.parse(readFileSync(file, 'utf8')) as RotationLog;
  } catch (e) {
    throw new RotationError(`cannot read the rotation log ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (value?.version !== 1 || !Array.isArray(value.rotations)) throw new RotationError(`${file} is not a quorumkey rotation log of version 1`);
  return value;
}

async function saveRotation(dir: string, rotation: Rotation): Promise<void> {
  const log = readRotations(dir);
  const i = log.rotations.findIndex((r) => r.from === rotation.from && r.to === rotation.to);
  if (i >= 0) log.rotations[i] = rotation;
  else log.rotations.push(rotation);
  await writeFileAtomic(logFile(dir), Buffer.from(JSON.stringify(log, null, 2) + '\n'), 0o644);
}

/** ID-r<N> with N one more than the highest rotation of the same base id (keys or records). */
export function nextKeyId(current: string, taken: readonly string[]): string {
  const base = current.replace(/-r\d+$/, '');
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-r(\\d+)$`);
  const highest = Math.max(0, ...taken.map((id) => Number(pattern.exec(id)?.[1] ?? 0)));
  return `${base}-r${highest + 1}`;
}

/** The subject (as openssl req -subj) and SANs (as -addext subjectAltName) of a certificate. */
export function namesOf(cert: X509Certificate): { subject: string; sans: string } {
  const subject = cert.subject.split('\n').map((rdn) => {
    if (rdn.includes('/')) throw new RotationError(`the certificate's subject part '${rdn}' contains '/': issue the new one with 'quorumkey cert issue'`);
    return `/${rdn}`;
  });
  const sans = (cert.subjectAltName ?? '').split(', ').filter(Boolean).map((san) => {
    const m = /^(DNS|IP Address):(.+)$/.exec(san);
    if (!m) throw new RotationError(`the certificate's subjectAltName '${san}' is neither DNS nor IP: issue the new one with 'quorumkey cert issue'`);
    return `${m[1] === 'DNS' ? 'DNS' : 'IP'}:${m[2]}`;
  });
  if (sans.length === 0) throw new RotationError('the current certificate has no subjectAltName: a server certificate needs one');
  return { subject: subject.join(''), sans: sans.join(',') };
}

const samePublicKey = (cert: X509Certificate, spki: Uint8Array) => Buffer.from(cert.publicKey.export({ type: 'spki', format: 'der' })).equals(Buffer.from(spki));

async function listKeys(dir: string): Promise<KeyInfo[]> {
  const admin = adminClient(dir);
  try {
    return (await unary<{ keys: KeyInfo[] }>(admin, 'ListKeys', {})).keys;
  } finally {
    admin.close();
  }
}

/** Creates `id` like `like`; a key generation an interrupted rotate left running is found, or named. */
async function createLike(dir: string, id: string, like: KeyInfo): Promise<KeyInfo> {
  const admin = adminClient(dir);
  try {
    return await unary<KeyInfo>(admin, 'CreateKey', { key_id: id, threshold: like.threshold, signer_count: like.signers.length, policy_json: like.policy_json, clients: like.clients }, 180_000);
  } catch (e) {
    const code = (e as { code?: number }).code;
    if (code === status.ALREADY_EXISTS) {
      const made = (await listKeys(dir)).find((k) => k.key_id === id);
      if (made) return made;
    }
    if (code === status.ABORTED) throw new RotationError(`the key generation of '${id}' of an interrupted rotate of '${like.key_id}' is still running: run 'quorumkey rotate ${like.key_id}' again when it ends`);
    throw e;
  } finally {
    admin.close();
  }
}

/** Issues the new key's certificate through the CA: a CSR signed by the new key itself (its policy must allow x509-csr). */
async function issueFor(dir: string, current: X509Certificate, keyRef: string, out: string, id: string): Promise<string> {
  const { subject, sans } = namesOf(current);
  const conf = join(out, `${id}.openssl.cnf`);
  const csr = join(out, `${id}.csr`);
  await writeFileAtomic(conf, Buffer.from(opensslConf()), 0o644);
  try {
    execFileSync('bash', [join(CERTS, 'make-csr.sh'), keyRef, csr, subject, sans], { env: { ...process.env, OPENSSL_CONF: conf }, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const why = String((e as { stderr?: Buffer }).stderr ?? '').trim().split('\n').slice(-2).join(' ');
    throw new RotationError(`the new key '${id}' could not sign its CSR (its policy must allow x509-csr, its clients must include 'unix'): ${why}`);
  }
  const days = Math.max(1, Math.round((Date.parse(current.validTo) - Date.parse(current.validFrom)) / DAY_MS));
  const issued = await certIssue(dir, readFileSync(csr), 'server', days, hasEmbeddedScts(new Uint8Array(current.raw)));
  return new X509Certificate(Buffer.from(issued.der, 'base64')).toString();
}

export async function rotate(dir: string, id: string, outDir?: string): Promise<Rotation> {
  const keys = await listKeys(dir);
  const old = keys.find((k) => k.key_id === id) ?? (() => { throw new RotationError(`unknown key '${id}' ('quorumkey key list' shows them)`); })();
  const log = readRotations(dir);
  const pending = log.rotations.find((r) => r.from === id && r.state !== 'retired');
  if (pending && pending.state !== 'creating' && pending.state !== 'issued') throw new RotationError(`key '${id}' was already rotated to '${pending.to}' (${pending.state}): rotate '${pending.to}' instead`);
  const out = pending?.dir ?? outDir ?? join(paths(dir).root, 'tls');
  const currentFile = join(out, `${id}.crt`);
  if (!existsSync(currentFile)) throw new RotationError(`no certificate ${currentFile} of key '${id}': name its directory with --out DIR`);
  let current: X509Certificate;
  try {
    current = new X509Certificate(readFileSync(currentFile));
  } catch (e) {
    throw new RotationError(`${currentFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  if (!samePublicKey(current, old.spki_der)) throw new RotationError(`${currentFile} is not a certificate of key '${id}' (another public key)`);
  const rotation: Rotation = pending ?? {
    from: id,
    to: nextKeyId(id, [...keys.map((k) => k.key_id), ...log.rotations.flatMap((r) => [r.from, r.to])]),
    dir: out,
    startedAt: new Date().toISOString(),
    state: 'creating',
  };
  // Recorded before the DKG: a rotate interrupted after it finds the key again instead of making another.
  await saveRotation(dir, rotation);
  const made = keys.find((k) => k.key_id === rotation.to) ?? (await createLike(dir, rotation.to, old));
  const keyRef = join(out, `${rotation.to}.key.pem`);
  await writeFileAtomic(keyRef, Buffer.from(keyReferencePem(keyReferenceFor(dir, made.key_id, made.spki_der, false))), 0o644);
  const certFile = join(out, `${rotation.to}.crt`);
  if (!existsSync(certFile) || !samePublicKey(new X509Certificate(readFileSync(certFile)), made.spki_der)) {
    await writeFileAtomic(certFile, Buffer.from(await issueFor(dir, current, keyRef, out, rotation.to)), 0o644);
  }
  rotation.state = 'issued';
  await saveRotation(dir, rotation);
  return rotation;
}

export function reloadInstructions(r: Rotation): string {
  const cert = join(r.dir, `${r.to}.crt`);
  const key = join(r.dir, `${r.to}.key.pem`);
  return [
    `key '${r.from}' rotated to '${r.to}': ${cert} and ${key} (the old key keeps signing until 'quorumkey key retire ${r.from}')`,
    'nginx: point the server block at the new files, check and reload (the master starts new workers, the old ones finish their connections):',
    `  ssl_certificate ${cert};  ssl_certificate_key ${key};`,
    '  nginx -t && nginx -s reload',
    'HAProxy (master-worker, -W): replace the crt file atomically, then reload the master:',
    `  cat ${cert} ${key} > CRT.new && mv CRT.new CRT && kill -USR2 $(cat HAPROXY_PIDFILE)`,
    `then: quorumkey rotate confirm ${r.from} [--connect HOST:PORT]...   and   quorumkey key retire ${r.from} --yes`,
  ].join('\n');
}

/** The public key a TLS server serves (the handshake's certificate). */
function servedCertificate(target: string): Promise<X509Certificate> {
  const m = /^([\w.-]+):(\d{1,5})$/.exec(target);
  if (!m) throw new RotationError(`--connect must be HOST:PORT, got '${target}'`);
  return new Promise((resolve, reject) => {
    // Only the served public key is compared, so the chain is not verified here.
    const socket = connect({ host: m[1], port: Number(m[2]), ...(isIP(m[1]!) ? {} : { servername: m[1] }), rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.destroy();
      resolve(new X509Certificate(raw));
    });
    socket.once('error', (e) => reject(new RotationError(`cannot reach ${target}: ${e.message}`)));
  });
}

export async function confirmRotation(dir: string, id: string, targets: readonly string[]): Promise<Rotation> {
  const rotation = readRotations(dir).rotations.find((r) => r.from === id && r.state !== 'retired');
  if (!rotation) throw new RotationError(`no rotation of key '${id}' to confirm ('quorumkey rotate ${id}' first)`);
  if (rotation.state === 'creating') throw new RotationError(`the rotation of '${id}' to '${rotation.to}' did not finish: run 'quorumkey rotate ${id}' again`);
  const fresh = new X509Certificate(readFileSync(join(rotation.dir, `${rotation.to}.crt`)));
  for (const target of targets) {
    const served = await servedCertificate(target);
    if (!samePublicKey(served, new Uint8Array(fresh.publicKey.export({ type: 'spki', format: 'der' })))) {
      throw new RotationError(`${target} still serves another key than '${rotation.to}' (certificate serial ${served.serialNumber}): reload it first`);
    }
  }
  rotation.state = 'confirmed';
  await saveRotation(dir, rotation);
  return rotation;
}

/** Deletes a rotated-away key through key delete (the admin's approval); refused unless its rotation is confirmed. */
export async function retireKey(dir: string, id: string, yes: boolean): Promise<string> {
  const rotations = readRotations(dir).rotations;
  const rotation = rotations.find((r) => r.from === id && r.state !== 'retired');
  if (!rotation) {
    const done = rotations.find((r) => r.from === id);
    throw new RotationError(done ? `key '${id}' was already retired` : `key '${id}' is the current key (no rotation replaced it): 'quorumkey rotate ${id}' first, or 'quorumkey key delete ${id}'`);
  }
  if (rotation.state !== 'confirmed') {
    throw new RotationError(`key '${id}' is still the current key of its rotation to '${rotation.to}', not confirmed: reload the servers, then 'quorumkey rotate confirm ${id}'`);
  }
  if (!yes) throw new RotationError(`key retire would erase every share of key '${id}' (replaced by '${rotation.to}'); run again with --yes`);
  const admin = adminClient(dir);
  try {
    const r = await unary<{ erased: number[]; remaining: number[] }>(admin, 'DeleteKey', { key_id: id, approval: deleteKeyApproval(dir, id) }, 180_000);
    if (r.remaining.length) throw new RotationError(`key '${id}' no longer signs, but signers [${r.remaining.join(',')}] still hold a share: run 'quorumkey key retire ${id} --yes' again when they are up`);
    rotation.state = 'retired';
    await saveRotation(dir, rotation);
    return `key '${id}' retired (replaced by '${rotation.to}'): signers [${r.erased.join(',')}] erased their shares`;
  } finally {
    admin.close();
  }
}
