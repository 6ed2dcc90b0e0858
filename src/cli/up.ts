/**
 * `quorumkey up`: the embedded default. N signer processes and a coordinator as children under
 * one directory, the cluster CA on first run, key `tls` on first run, one ready line, the
 * embedded threshold CA and CT log with the TLS endpoint (its certificate with an SCT, and a
 * stapled OCSP response), and a clean stop on SIGINT/SIGTERM. A second `up` on the same directory reuses everything it finds.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_POOL, paths, readClusterConfig, writeClusterConfig, type ClusterConfig, type HttpSignConfig } from '../cluster/config.js';
import { ensureClusterPki, signerName } from '../pki/cluster-ca.js';
import { ensureDevPassphrase } from '../../signer-node/shares.js';
import { adminClient, describeError, unary } from './clients.js';
import { ensureTlsMaterial, keepStapleFresh, startTlsServer } from './tls-endpoint.js';
import { caInit, coordinatorHttpUrl } from './ca.js';
import { ensureCtLog } from './ct.js';
import { ctPaths, pemCertificates } from '../ct/config.js';
import { caInitialised, caPaths, readCaConfig } from '../pki/ca/store.js';
import { freePort, startChild, type Child } from './children.js';
import { PROVIDER_MODULE } from './provider-config.js';
import { consoleTokenFile } from '../console/access.js';
import { normaliseKeyPolicy, type KeyPolicy } from '../policy/key-policy.js';

export interface UpOptions {
  dir: string;
  signers: number;
  threshold: number;
  keyId: string;
  /** Also serve TLS 1.3 with the threshold key (openssl s_server through the provider). */
  tls: boolean;
  /** POST /v1/sign: off (default), a bearer token, or mTLS client certificates (HTTPS). */
  httpSign?: HttpSignMode;
  /** The bearer token's file (default <dir>/http-sign.token, made with a random token when missing). */
  httpTokenFile?: string;
  /** Extra names accepted in the Host header of POST /v1/sign. */
  httpHosts?: string[];
  /** Group allowed on the unix socket (socket 0660, its directory 0750); default: owner only. */
  socketGroup?: string;
}

export type HttpSignMode = 'off' | 'token' | 'mtls';
export const HTTP_SIGN_MODES: readonly HttpSignMode[] = ['off', 'token', 'mtls'];
/** The identity `up` issues for HTTPS clients when HTTP signing uses mTLS. */
export const HTTP_CLIENT_IDENTITY = 'http-client';

const SIGNER_MAIN = fileURLToPath(new URL('../../signer-node/main.js', import.meta.url));
const COORDINATOR_MAIN = fileURLToPath(new URL('../coordinator/main.js', import.meta.url));

/** The client doors of the coordinator as `up`'s flags set them (every start: absent flag = off / owner only). */
function doors(options: UpOptions): Pick<ClusterConfig['coordinator'], 'socketGroup' | 'httpSign' | 'httpHosts'> {
  const p = paths(options.dir);
  const mode = options.httpSign ?? 'off';
  let httpSign: HttpSignConfig = { mode: 'off' };
  if (mode === 'token') httpSign = { mode: 'token', tokenFile: options.httpTokenFile ? resolve(options.httpTokenFile) : p.httpToken };
  else if (mode === 'mtls') httpSign = { mode: 'mtls' };
  return {
    ...(options.socketGroup ? { socketGroup: options.socketGroup } : {}),
    httpSign,
    ...(options.httpHosts?.length ? { httpHosts: options.httpHosts } : {}),
  };
}

/** A random bearer token in `file` (mode 0600), unless the file exists (the coordinator checks it). */
function ensureHttpToken(file: string): void {
  if (existsSync(file)) return;
  writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
}

/**
 * `reuseHttp`: keep the previous HTTP port (the CA's certificates name it in their OCSP and CRL
 * URLs); a retry after EADDRINUSE takes a fresh one.
 */
async function freshConfig(dir: string, signers: number, options: UpOptions, reuseHttp = true): Promise<ClusterConfig> {
  const p = paths(dir);
  const previous = existsSync(p.config) ? readClusterConfig(dir) : undefined;
  if (previous && previous.signers.length !== signers)
    throw new Error(`${p.root} holds a cluster of ${previous.signers.length} signers; use that number or another --dir`);
  const endpoint = async () => `127.0.0.1:${await freePort()}`;
  const config: ClusterConfig = {
    signers: [],
    coordinator: { grpc: await endpoint(), socket: p.socket, http: (reuseHttp && previous?.coordinator.http) || (await endpoint()), ...doors(options) },
    pool: previous?.pool ?? DEFAULT_POOL,
    sessionTimeoutMs: previous?.sessionTimeoutMs ?? 30_000,
  };
  for (let index = 1; index <= signers; index++) {
    const seal = previous?.signers.find((s) => s.index === index)?.seal ?? { mode: 'passphrase' as const };
    config.signers.push({ index, endpoint: await endpoint(), http: await endpoint(), seal });
  }
  return config;
}

/** The embedded TLS key: its CertificateVerify, and the CSR for its certificate. */
export function embeddedKeys(keyId: string): { id: string; policy: KeyPolicy }[] {
  return [{ id: keyId, policy: normaliseKeyPolicy({ contexts: ['tls-server', 'x509-csr'] }) }];
}

/** The embedded CA's keys (names apart from the `ca init` defaults, which stay free for the operator). */
export const EMBEDDED_CA_KEY = 'embedded-ca';
export const EMBEDDED_RESPONDER_KEY = 'embedded-ocsp';

/**
 * The embedded CA (`quorumkey ca init`): its key certifies only localhost / 127.0.0.0/8 as TLS
 * servers and OCSP responders, CA:TRUE only for its own root, for at most ten years; the
 * responder key signs the OCSP answers.
 */
async function ensureEmbeddedCa(dir: string, threshold: number, signers: number): Promise<void> {
  const ca = caPaths(paths(dir).root);
  if (caInitialised(ca)) {
    const config = readCaConfig(ca);
    const here = `${coordinatorHttpUrl(dir)}/ocsp`;
    if (config.ocspUrl !== here) console.error(`quorumkey: the CA's certificates name the OCSP responder ${config.ocspUrl}, but the coordinator serves ${here} now (its port was taken)`);
    return;
  }
  await caInit({ dir, caKey: EMBEDDED_CA_KEY, responderKey: EMBEDDED_RESPONDER_KEY, subject: '/O=quorumkey/CN=quorumkey embedded threshold CA', dnsSuffixes: ['localhost'], ipRanges: ['127.0.0.0/8'], maxValidityDays: 3650, threshold, signers });
}

/** The embedded CT log's key (apart from `ct init`'s default `ct`). */
export const EMBEDDED_CT_KEY = 'embedded-ct';

/**
 * The coordinator's CT log, accepting the embedded CA's root, unless a log is configured
 * already (`quorumkey ct init` — the operator's choice stays).
 */
async function ensureEmbeddedCtLog(dir: string, threshold: number, signers: number): Promise<void> {
  if (existsSync(ctPaths(dir).config)) return;
  const root = readFileSync(caPaths(paths(dir).root).rootCert, 'utf8');
  await ensureCtLog(dir, EMBEDDED_CT_KEY, pemCertificates(root, 'the embedded CA root'), threshold, signers);
}

export async function up(options: UpOptions): Promise<void> {
  const { dir, signers, threshold } = options;
  if (!Number.isInteger(signers) || signers < 2 || signers > 16) throw new Error('--signers must be between 2 and 16');
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > signers) throw new Error(`--threshold must be between 2 and ${signers}`);
  const httpSign = options.httpSign ?? 'off';
  if (!HTTP_SIGN_MODES.includes(httpSign)) throw new Error(`--http-sign must be one of ${HTTP_SIGN_MODES.join(', ')}`);
  if (options.httpTokenFile && httpSign !== 'token') throw new Error('--http-sign-token-file needs --http-sign token');
  const p = paths(dir);
  mkdirSync(p.root, { recursive: true, mode: 0o700 });
  const identities = [...Array.from({ length: signers }, (_, i) => signerName(i + 1)), 'coordinator', 'admin', 'provider'];
  if (httpSign === 'mtls') identities.push(HTTP_CLIENT_IDENTITY);
  ensureClusterPki(p.pki, identities);
  let config = await freshConfig(dir, signers, options);
  if (config.coordinator.httpSign?.mode === 'token') ensureHttpToken(config.coordinator.httpSign.tokenFile);
  const children: Child[] = [];
  let stopping = false;
  const stopChildren = () =>
    Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.process.exitCode !== null || c.process.signalCode !== null) return resolve();
            c.process.once('exit', () => resolve());
            c.process.kill('SIGTERM');
            setTimeout(() => c.process.kill('SIGKILL'), 10_000).unref();
          }),
      ),
    );
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await stopChildren();
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(0));
  /** Keeps a started child, or stops it at once if a stop began while it was starting. */
  const adopt = (...started: Child[]) => {
    children.push(...started);
    if (stopping) void stopChildren();
  };

  /** Starts signers and coordinator on the configured ports; stops what started if one fails. */
  const startProcesses = async () => {
    writeClusterConfig(dir, config);
    for (const s of config.signers) if (s.seal.mode === 'passphrase' && !s.seal.passphraseFile) ensureDevPassphrase(dir, s.index);
    const attempts = config.signers.map((s) =>
      startChild(signerName(s.index), process.execPath, [SIGNER_MAIN, '--dir', p.root, '--index', String(s.index)], dir, `signer ${s.index} ready`),
    );
    const settled = await Promise.allSettled(attempts);
    adopt(...settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    adopt(await startChild('coordinator', process.execPath, [COORDINATOR_MAIN, '--dir', p.root], dir, 'coordinator ready'));
  };

  try {
    // Ports are picked free just before the processes bind them; another program may win the
    // race, so a start that fails on a taken port is retried on fresh ports.
    for (let attempt = 1; ; attempt++) {
      try {
        await startProcesses();
        break;
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE|address already in use/i.test(String((err as Error).message))) throw err;
        await stopChildren();
        children.length = 0;
        config = await freshConfig(dir, signers, options, false);
      }
    }
    for (const c of children) {
      c.process.once('exit', (code, signal) => {
        if (!stopping) console.error(`quorumkey: ${c.name} exited (${signal ?? `code ${code}`}); start it again with the command in ${join(p.root, 'run')}`);
      });
    }
    const admin = adminClient(dir);
    const { keys } = await unary<{ keys: { key_id: string }[] }>(admin, 'ListKeys', {});
    // The keys' client lists name the doors open when they are made: the unix socket, and the
    // HTTP caller of this start's --http-sign.
    const clients = ['unix', ...(httpSign === 'token' ? ['http-token'] : httpSign === 'mtls' ? [HTTP_CLIENT_IDENTITY] : [])];
    for (const key of embeddedKeys(options.keyId)) {
      if (keys.some((k) => k.key_id === key.id)) continue;
      console.error(`quorumkey: creating key '${key.id}' (${threshold}-of-${signers}, policy ${key.policy.contexts.join(',')}, clients ${clients.join(',')}) by distributed key generation…`);
      await unary(admin, 'CreateKey', { key_id: key.id, threshold, signer_count: signers, policy_json: JSON.stringify(key.policy), clients }, 180_000);
    }
    admin.close();
    const scheme = httpSign === 'mtls' ? 'https' : 'http';
    console.log(`quorumkey ready: sign=unix:${config.coordinator.socket} http=${scheme}://${config.coordinator.http}`);
    console.log(`quorumkey console: open ${scheme}://${config.coordinator.http}/console/login and sign in with the token in ${consoleTokenFile(p.coordinator)}${scheme === 'https' ? ` (or with the admin certificate ${join(p.pki, 'admin.crt')})` : ''}`);
    const door = config.coordinator.httpSign;
    if (door?.mode === 'token') {
      console.log(`quorumkey http-sign: POST ${scheme}://${config.coordinator.http}/v1/sign with "Authorization: Bearer <the token in ${door.tokenFile}>" and "Content-Type: application/json" (caller http-token)`);
    } else if (door?.mode === 'mtls') {
      const id = (f: string) => join(p.pki, f);
      console.log(`quorumkey http-sign: POST ${scheme}://${config.coordinator.http}/v1/sign with the client certificate ${id(`${HTTP_CLIENT_IDENTITY}.crt`)} (key ${id(`${HTTP_CLIENT_IDENTITY}.key`)}, CA ${id('ca.crt')}) and "Content-Type: application/json" (caller ${HTTP_CLIENT_IDENTITY})`);
    }
    if (options.tls && !existsSync(PROVIDER_MODULE)) {
      console.error(`quorumkey: no TLS endpoint: the OpenSSL provider ${PROVIDER_MODULE} is not built (npm install builds it)`);
    } else if (options.tls) {
      // The CA exists for the certificate it serves: --no-tls makes neither.
      await ensureEmbeddedCa(dir, threshold, signers);
      await ensureEmbeddedCtLog(dir, threshold, signers);
      const tls = await ensureTlsMaterial(dir, options.keyId);
      keepStapleFresh(dir, tls);
      let port = 0;
      for (let attempt = 1; !port; attempt++) {
        const candidate = await freePort();
        try {
          adopt(await startTlsServer(dir, tls, candidate));
          port = candidate;
        } catch (err) {
          if (attempt >= 3) throw err;
        }
      }
      console.log(`quorumkey tls: openssl s_server with key '${options.keyId}' on 127.0.0.1:${port}; try:`);
      console.log(`  openssl s_client -connect 127.0.0.1:${port} -CAfile ${tls.caCert} -verify_return_error -tls1_3 -status -ct -ctlogfile ${tls.ctLogList} </dev/null`);
    }
  } catch (err) {
    console.error(`quorumkey up failed: ${describeError(err)}`);
    await stop(1);
  }
}
