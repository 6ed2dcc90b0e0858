/**
 * The cluster CA and its identities (signer-<i>, coordinator, admin, provider clients), made with
 * the system's openssl binary: EC P-256 keys, certificates valid for 127.0.0.1/localhost and the
 * identity's name, usable as TLS server and client. Idempotent: existing files are kept.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CA_NAME = 'ca';

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`openssl ${args[0]} failed: ${stderr || (err as Error).message}`);
  }
}

function ensureCa(dir: string): void {
  if (existsSync(join(dir, 'ca.crt')) && existsSync(join(dir, 'ca.key'))) return;
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650',
      '-subj', '/O=quorumkey/CN=quorumkey cluster CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  chmodSync(join(dir, 'ca.key'), 0o600);
}

function ensureIdentity(dir: string, name: string): void {
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) throw new Error(`invalid identity name '${name}'`);
  if (existsSync(join(dir, `${name}.crt`)) && existsSync(join(dir, `${name}.key`))) return;
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=DNS:${name},DNS:localhost,IP:127.0.0.1`,
    ].join('\n') + '\n',
  );
  try {
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/O=quorumkey/CN=${name}`], dir);
    chmodSync(join(dir, `${name}.key`), 0o600);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '825', '-extfile', ext, '-out', `${name}.crt`], dir);
  } finally {
    rmSync(join(dir, `${name}.csr`), { force: true });
    rmSync(ext, { force: true });
  }
}

/** Creates (once) the CA and a certificate for each name under `dir`. */
export function ensureClusterPki(dir: string, names: readonly string[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  ensureCa(dir);
  for (const name of names) ensureIdentity(dir, name);
}

export interface TlsIdentity {
  name: string;
  ca: Buffer;
  key: Buffer;
  cert: Buffer;
}

export function loadIdentity(dir: string, name: string): TlsIdentity {
  const read = (file: string) => {
    try {
      return readFileSync(join(dir, file));
    } catch {
      throw new Error(`TLS identity '${name}': cannot read ${file} in ${dir} (create the cluster PKI first)`);
    }
  };
  return { name, ca: read('ca.crt'), key: read(`${name}.key`), cert: read(`${name}.crt`) };
}

export const signerName = (index: number): string => `signer-${index}`;
