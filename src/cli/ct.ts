/**
 * `quorumkey ct …` and `quorumkey sct …`: set up the coordinator's CT log (its threshold key and
 * accepted roots), print the log list OpenSSL reads (`s_client -ct -ctlogfile`), fetch the signed
 * tree head, and write a certificate's SCTs as a SERVERINFOV2 file for nginx.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { paths, readClusterConfig } from '../cluster/config.js';
import { CtLogClient } from '../ct/client.js';
import { CT_LOG_CALLER, ctPaths, parseCtConfig, pemCertificates, writeCtConfig } from '../ct/config.js';
import type { SctLog } from '../ct/precert-flow.js';
import { sctServerInfoPem } from '../ct/serverinfo.js';
import { logIdOf } from '../ct/structures.js';
import { sctValid, treeHeadValid } from '../ct/verify.js';
import { normaliseKeyPolicy } from '../policy/key-policy.js';
import { writeFileAtomic } from '../storage/atomic-write.js';
import { adminClient, coordinatorClient, unary } from './clients.js';

export const CT_USAGE = `  ct init --root FILE [--root FILE]... [--key ID] [--threshold T --signers N]
                                                the coordinator's CT log (RFC 6962 add-chain, add-pre-chain,
                                                get-sth, get-roots under /ct/v1/ on its HTTP port): creates key ID
                                                (default ct; policy sct, client ct-log) unless it exists, and
                                                accepts chains to the roots in the FILEs
  ct loglist                                    the log as an OpenSSL CT log list (openssl s_client -ct -ctlogfile F)
  ct sth                                        the log's signed tree head, checked with the log key
  sct serverinfo --cert C --out F               submits the certificate (PEM; its chain may follow) with add-chain
                                                and writes its SCT as SERVERINFOV2 PEM (nginx ssl_conf_command
                                                ServerInfoFile F)`;

export interface CtFlags {
  key?: string | undefined;
  root?: string[] | undefined;
  cert?: string | undefined;
  out?: string | undefined;
  threshold?: string | undefined;
  signers?: string | undefined;
}

const DEFAULT_KEY = 'ct';

interface KeyInfo {
  key_id: string;
  spki_der: Buffer;
  policy: string[];
  clients: string[];
}

/** The local coordinator's log: its URL, the CA for https, its key. */
async function localLog(dir: string): Promise<{ client: CtLogClient; spki: Uint8Array; keyId: string }> {
  let text: string;
  try {
    text = readFileSync(ctPaths(dir).config, 'utf8');
  } catch {
    throw new Error(`no CT log is configured under ${paths(dir).root}: run 'quorumkey ct init --root CA.pem'`);
  }
  const { keyId } = parseCtConfig(text);
  const config = readClusterConfig(dir);
  const https = config.coordinator.httpSign?.mode === 'mtls';
  const client = new CtLogClient(`${https ? 'https' : 'http'}://${config.coordinator.http}`, https ? readFileSync(join(paths(dir).pki, 'ca.crt')) : undefined);
  const grpc = coordinatorClient(dir);
  try {
    const key = await unary<KeyInfo>(grpc, 'GetKey', { key_id: keyId });
    return { client, spki: new Uint8Array(key.spki_der), keyId };
  } finally {
    grpc.close();
  }
}

function count(text: string | undefined, what: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,2}$/.test(text)) throw new Error(`--${what} must be a number`);
  return Number(text);
}

/**
 * Makes the coordinator's log: key `keyId` (policy sct, client ct-log) unless it exists — an
 * existing one must have that policy and client — and the accepted roots.
 */
export async function ensureCtLog(dir: string, keyId: string, roots: string[], threshold?: number, signers?: number): Promise<void> {
  const admin = adminClient(dir);
  try {
    const { keys } = await unary<{ keys: KeyInfo[] }>(admin, 'ListKeys', {});
    const key = keys.find((k) => k.key_id === keyId);
    if (!key) {
      const n = signers ?? readClusterConfig(dir).signers.length;
      const t = threshold ?? Math.floor(n / 2) + 1;
      console.error(`quorumkey: creating the CT log key '${keyId}' (${t}-of-${n}, policy sct, client ${CT_LOG_CALLER}) by distributed key generation…`);
      const policy = JSON.stringify(normaliseKeyPolicy({ contexts: ['sct'] }));
      await unary(admin, 'CreateKey', { key_id: keyId, threshold: t, signer_count: n, policy_json: policy, clients: [CT_LOG_CALLER] }, 180_000);
    } else {
      if (!key.policy.includes('sct')) throw new Error(`key '${keyId}' has policy ${key.policy.join(',')}, not sct: a CT log key signs SCTs and tree heads only; pick another --key`);
      if (!key.clients.includes(CT_LOG_CALLER)) throw new Error(`key '${keyId}' does not list the log's caller identity: run 'quorumkey key grant ${keyId} ${CT_LOG_CALLER}'`);
    }
  } finally {
    admin.close();
  }
  await writeCtConfig(dir, { keyId, roots });
}

/** The local log as a log of the precertificate flow (issueWithEmbeddedScts). */
export async function localSctLog(dir: string): Promise<SctLog> {
  const { client, spki } = await localLog(dir);
  return { addPreChain: (chain) => client.addPreChain(chain), spki };
}

/** The local log as an OpenSSL CT log list (s_client -ct -ctlogfile). */
export async function ctLogList(dir: string): Promise<string> {
  const { spki, keyId } = await localLog(dir);
  return `enabled_logs = quorumkey\n\n[quorumkey]\ndescription = quorumkey threshold CT log (key ${keyId})\nkey = ${Buffer.from(spki).toString('base64')}\n`;
}

async function init(dir: string, flags: CtFlags): Promise<void> {
  const keyId = flags.key ?? DEFAULT_KEY;
  if (!flags.root?.length) throw new Error('ct init needs --root FILE (the CA certificates whose chains the log accepts)');
  const roots = flags.root.flatMap((f) => pemCertificates(readFileSync(f, 'utf8'), f));
  const n = count(flags.signers, 'signers', readClusterConfig(dir).signers.length);
  await ensureCtLog(dir, keyId, roots, count(flags.threshold, 'threshold', Math.floor(n / 2) + 1), n);
  const { spki } = await localLog(dir);
  const config = readClusterConfig(dir);
  console.log(`CT log: key '${keyId}', log id ${Buffer.from(logIdOf(spki)).toString('base64')}, ${roots.length} accepted root(s)`);
  console.log(`  served at http://${config.coordinator.http}/ct/v1/ (a running coordinator picks this up at its next CT request; a changed configuration needs a restart)`);
  console.log(`  log list for OpenSSL: quorumkey ct loglist > ctlog.cnf; openssl s_client -ct -ctlogfile ctlog.cnf …`);
}

export async function ctCommand(dir: string, sub: string | undefined, flags: CtFlags): Promise<void> {
  if (sub === 'init') return init(dir, flags);
  if (sub === 'loglist') return void process.stdout.write(await ctLogList(dir));
  if (sub === 'sth') {
    const { client, spki } = await localLog(dir);
    const head = await client.getSth();
    if (!treeHeadValid(head, spki)) throw new Error("the log's tree head signature does not verify with the log key");
    console.log(JSON.stringify({ tree_size: head.treeSize, timestamp: head.timestamp, sha256_root_hash: Buffer.from(head.rootHash).toString('base64'), signature: 'valid' }));
    return;
  }
  throw new Error(`unknown ct command '${sub ?? ''}' (init, loglist, sth)`);
}

export async function sctCommand(dir: string, sub: string | undefined, flags: CtFlags): Promise<void> {
  if (sub !== 'serverinfo') throw new Error(`unknown sct command '${sub ?? ''}' (serverinfo)`);
  if (!flags.cert || !flags.out) throw new Error('sct serverinfo needs --cert FILE and --out FILE');
  const chain = pemCertificates(readFileSync(flags.cert, 'utf8'), flags.cert).map((p) => new Uint8Array(new X509Certificate(p).raw));
  const { client, spki } = await localLog(dir);
  const sct = await client.addChain(chain);
  if (!sctValid(sct, { type: 'x509', certificate: chain[0]! }, spki)) throw new Error("the log's SCT does not verify with the log key over this certificate");
  // nginx's master reads it (as root or its own user); nothing in it is secret.
  await writeFileAtomic(flags.out, Buffer.from(sctServerInfoPem([sct])), 0o644);
  console.log(`wrote ${flags.out}: 1 SCT from log ${Buffer.from(sct.logId).toString('base64')} (timestamp ${new Date(sct.timestamp).toISOString()}); nginx: ssl_conf_command ServerInfoFile ${flags.out};`);
}
