/**
 * The embedded TLS 1.3 endpoint of `quorumkey up`: a threshold CA key signs (through the provider)
 * a certificate for the threshold TLS key's CSR, and `openssl s_server` serves with the key
 * reference. Everything lives in <dir>/tls and is made once.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { paths } from '../cluster/config.js';
import { keyReferencePem } from '../keyref/keyref.js';
import { startChild, type Child } from './children.js';
import { coordinatorClient, unary } from './clients.js';
import { keyReferenceFor, opensslConf, PROVIDER_MODULE } from './provider-config.js';

const CERTS = fileURLToPath(new URL('../../../certs/', import.meta.url));

export interface TlsMaterial {
  dir: string;
  opensslConf: string;
  keyRef: string;
  caCert: string;
  serverCert: string;
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
  };
  writeFileSync(m.opensslConf, opensslConf());
  await writeKeyRef(dir, keyId, m.keyRef);
  if (existsSync(m.serverCert)) return m;
  const caRef = join(tlsDir, `${keyId}-ca.key.pem`);
  const csr = join(tlsDir, `${keyId}.csr`);
  await writeKeyRef(dir, `${keyId}-ca`, caRef);
  const env = { ...process.env, OPENSSL_CONF: m.opensslConf };
  const run = (script: string, args: string[]) => execFileSync('bash', [join(CERTS, script), ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  run('make-ca.sh', [caRef, m.caCert, '/O=quorumkey/CN=quorumkey embedded threshold CA']);
  run('make-csr.sh', [m.keyRef, csr, '/CN=localhost', 'DNS:localhost,IP:127.0.0.1']);
  run('sign-csr.sh', [csr, m.caCert, caRef, m.serverCert]);
  return m;
}

export function startTlsServer(dir: string, m: TlsMaterial, port: number): Promise<Child> {
  return startChild(
    'tls-server',
    'openssl',
    ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', m.serverCert, '-key', m.keyRef, '-tls1_3', '-www', '-no_ticket'],
    dir,
    'ACCEPT',
    { ...process.env, OPENSSL_CONF: m.opensslConf },
  );
}
