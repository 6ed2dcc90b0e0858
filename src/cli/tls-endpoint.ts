/**
 * The embedded TLS 1.3 endpoint of `quorumkey up`: the threshold CA (DIR/ca, `quorumkey ca
 * init`) issues a server certificate — with the AIA OCSP URL and CRL distribution point — for
 * the threshold TLS key's CSR — through the coordinator's CT log, so it carries an embedded SCT —
 * and `openssl s_server` serves it with the key reference and staples the OCSP response that `up`
 * keeps fresh (staple-file.ts). Everything lives in <dir>/tls, with the log list for
 * `openssl s_client -ct -ctlogfile`.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { paths } from '../cluster/config.js';
import { keyReferencePem } from '../keyref/keyref.js';
import { caPaths } from '../pki/ca/store.js';
import { refreshStaple, watchStaple } from '../pki/ocsp/staple-file.js';
import { writeFileAtomic } from '../storage/atomic-write.js';
import { hasEmbeddedScts } from '../ct/precert.js';
import { certIssue, stapleSource } from './ca.js';
import { ctLogList } from './ct.js';
import { startChild, type Child } from './children.js';
import { coordinatorClient, unary } from './clients.js';
import { keyReferenceFor, opensslConf, PROVIDER_MODULE } from './provider-config.js';

const CERTS = fileURLToPath(new URL('../../../certs/', import.meta.url));
const SERVER_DAYS = 90;

export interface TlsMaterial {
  dir: string;
  opensslConf: string;
  keyRef: string;
  caCert: string;
  serverCert: string;
  /** The DER OCSP response stapled by the servers (s_server -status_file, nginx ssl_stapling_file). */
  staple: string;
  /** The CT log list of the SCT's log (OpenSSL format). */
  ctLogList: string;
}

async function writeKeyRef(dir: string, keyId: string, file: string): Promise<void> {
  const client = coordinatorClient(dir);
  try {
    const key = await unary<{ spki_der: Buffer }>(client, 'GetKey', { key_id: keyId });
    writeFileSync(file, keyReferencePem(keyReferenceFor(dir, keyId, key.spki_der, false)), { mode: 0o644 });
  } finally {
    client.close();
  }
}

/** Whether `certFile` exists, was issued by the CA whose root is `rootPem` and carries SCTs. */
function issuedWithScts(certFile: string, rootPem: Buffer): boolean {
  if (!existsSync(certFile)) return false;
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    return cert.verify(new X509Certificate(rootPem).publicKey) && hasEmbeddedScts(new Uint8Array(cert.raw));
  } catch {
    return false;
  }
}

export async function ensureTlsMaterial(dir: string, keyId: string): Promise<TlsMaterial> {
  if (!existsSync(PROVIDER_MODULE)) throw new Error(`the OpenSSL provider ${PROVIDER_MODULE} is not built: run npm install`);
  const tlsDir = join(paths(dir).root, 'tls');
  // The servers' masters read it as root; nothing in it is secret, but the cluster directory's
  // entries stay private (the socket group may traverse the cluster directory).
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  chmodSync(tlsDir, 0o700);
  const m: TlsMaterial = {
    dir: tlsDir,
    opensslConf: join(tlsDir, 'openssl.cnf'),
    keyRef: join(tlsDir, `${keyId}.key.pem`),
    caCert: join(tlsDir, 'ca.crt'),
    serverCert: join(tlsDir, `${keyId}.crt`),
    staple: join(tlsDir, `${keyId}.ocsp`),
    ctLogList: join(tlsDir, 'ctlog.cnf'),
  };
  writeFileSync(m.opensslConf, opensslConf());
  await writeKeyRef(dir, keyId, m.keyRef);
  const root = readFileSync(caPaths(paths(dir).root).rootCert);
  writeFileSync(m.caCert, root, { mode: 0o644 });
  await writeFileAtomic(m.ctLogList, Buffer.from(await ctLogList(dir)), 0o644);
  // A certificate from before the CA (or another CA, or without SCTs) is replaced by one this CA issues.
  if (!issuedWithScts(m.serverCert, root)) {
    const csr = join(tlsDir, `${keyId}.csr`);
    execFileSync('bash', [join(CERTS, 'make-csr.sh'), m.keyRef, csr, '/CN=localhost', 'DNS:localhost,IP:127.0.0.1'], {
      env: { ...process.env, OPENSSL_CONF: m.opensslConf },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const issued = await certIssue(dir, readFileSync(csr), 'server', SERVER_DAYS, true);
    writeFileSync(m.serverCert, new X509Certificate(Buffer.from(issued.der, 'base64')).toString(), { mode: 0o644 });
  }
  await refreshStaple(stapleSource(dir, m.serverCert), m.staple);
  return m;
}

/** Keeps the endpoint's staple fresh while `up` runs. */
export function keepStapleFresh(dir: string, m: TlsMaterial): { stop(): void } {
  return watchStaple(stapleSource(dir, m.serverCert), m.staple, {
    written: () => undefined,
    failed: (e) => console.error(`quorumkey: the TLS endpoint's OCSP staple was not refreshed (the last good one stays): ${e.message}`),
  });
}

export function startTlsServer(dir: string, m: TlsMaterial, port: number): Promise<Child> {
  return startChild(
    'tls-server',
    'openssl',
    ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', m.serverCert, '-key', m.keyRef, '-CAfile', m.caCert, '-status_file', m.staple, '-tls1_3', '-www', '-no_ticket'],
    dir,
    'ACCEPT',
    { ...process.env, OPENSSL_CONF: m.opensslConf },
  );
}
