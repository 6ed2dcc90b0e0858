/**
 * The CA commands (`ca init`, `cert issue|revoke|list`, `crl`, `ocsp staple`) and the functions
 * `up` uses. Every signature goes through the threshold: the CLI calls the coordinator's Sign
 * over mTLS as the `admin` identity, the one client of the CA key; the signers check each
 * TBSCertificate and TBSCertList against the CA key's policy.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type * as grpc from '@grpc/grpc-js';
import { paths, readClusterConfig } from '../cluster/config.js';
import { initCa, issueCertificate, makeCrl, revokeCertificate } from '../pki/ca/authority.js';
import { derFrom, pem, type TbsSigner } from '../pki/ca/certificate.js';
import { loadIdentity } from '../pki/cluster-ca.js';
import { parseSubject } from '../pki/ca/names.js';
import { PROFILES, type Profile } from '../pki/ca/profiles.js';
import { parseReason } from '../pki/ca/reasons.js';
import { caPaths, normaliseSerial, OCSP_RESPONDER_IDENTITY, readCaConfig, readIssued, type CaConfig, type IssuedCertificate } from '../pki/ca/store.js';
import { refreshStaple, watchStaple, type StapleSource } from '../pki/ocsp/staple-file.js';
import type { StapleStatus } from '../pki/ocsp/staple.js';
import { normaliseKeyPolicy, type KeyPolicy } from '../policy/key-policy.js';
import { services } from '../transport/proto.js';
import { channelOptions, clientCredentials } from '../transport/tls.js';
import { adminClient, unary } from './clients.js';
import { localSctLog } from './ct.js';

export const CA_COMMANDS = ['ca', 'cert', 'crl', 'ocsp'];

export const CA_USAGE = `  ca init [--ca-key ID] [--responder-key ID]    a threshold CA: key ID (default ca; x509-cert, CA:TRUE only for its own
      [--subject /O=../CN=..] [--dns-suffix a,b]   root) and the delegated OCSP responder key (default ocsp; policy
      [--ip-range c,d] [--max-validity-days N]     ocsp, client ocsp-responder), a self-signed root (DIR/ca/root.crt),
      [--ocsp-url U] [--crl-url U]                 the responder's certificate; URLs default to the coordinator's HTTP
      [--threshold T --signers N]                  address (/ocsp, /crl)
  cert issue --csr F [--days N] [--out F]       issues a certificate for a CSR (PEM on stdout or --out), recorded in
      [--profile server|ocsp-responder] [--ct]     DIR/ca/issued.json; server: the CSR's subjectAltName, AIA OCSP, CRL DP;
                                                   --ct: a precertificate to the coordinator's CT log first, and its
                                                   SCT embedded in the certificate (the log must accept the CA's root)
  cert revoke SERIAL --reason R                 R: unspecified, keyCompromise, cACompromise, affiliationChanged,
                                                superseded, cessationOfOperation, privilegeWithdrawn
  cert list                                     serial, status, profile, validity, subject of every issued certificate
  crl [--out F]                                 signs a CRL of every revocation (DIR/ca/crl.der, .pem; GET /crl)
  ocsp staple --cert C --out F [--issuer I]     writes a fresh, checked DER OCSP response for nginx ssl_stapling_file /
      [--url U] [--watch]                          HAProxy <crt>.ocsp atomically, never a failed one; --watch refreshes
                                                   it half-way through each response's validity (retry every minute)`;

const DEFAULT_SUBJECT = '/O=quorumkey/CN=quorumkey threshold CA';
const DEFAULT_ROOT_DAYS = 3650;
const DEFAULT_CERT_DAYS = 90;
const RESPONDER_DAYS = 365;
const OCSP_VALIDITY_SECONDS = 3600;
const CRL_VALIDITY_DAYS = 7;
const SIGN_TIMEOUT_MS = 60_000;

/** Signs with `keyId` through the coordinator, as the admin identity over mTLS. */
export function adminSigner(dir: string, keyId: string): { sign: TbsSigner; close(): void } {
  const config = readClusterConfig(dir);
  const client: grpc.Client = new services.Coordinator(config.coordinator.grpc, clientCredentials(loadIdentity(paths(dir).pki, 'admin')), channelOptions('coordinator'));
  return {
    sign: async (tbs) => new Uint8Array((await unary<{ signature_der: Buffer }>(client, 'Sign', { key_id: keyId, tbs: Buffer.from(tbs), deadline_unix_ms: Date.now() + SIGN_TIMEOUT_MS }, SIGN_TIMEOUT_MS)).signature_der),
    close: () => client.close(),
  };
}

async function withSigner<T>(dir: string, keyId: string, run: (sign: TbsSigner) => Promise<T>): Promise<T> {
  const signer = adminSigner(dir, keyId);
  try {
    return await run(signer.sign);
  } finally {
    signer.close();
  }
}

export interface CaKeyOptions {
  dnsSuffixes: string[];
  ipRanges: string[];
  maxValidityDays: number;
}

/** The CA key's policy: certificates for the names given, CA:TRUE only for its own root. */
export function caKeyPolicy(o: CaKeyOptions): KeyPolicy {
  return normaliseKeyPolicy({
    contexts: ['x509-cert'],
    x509: { dnsSuffixes: o.dnsSuffixes, ipRanges: o.ipRanges, maxValidityDays: o.maxValidityDays, allowCa: 'self-signed', extendedKeyUsages: ['serverAuth', 'OCSPSigning'] },
  });
}

export const RESPONDER_KEY_POLICY: KeyPolicy = normaliseKeyPolicy({ contexts: ['ocsp'] });

export interface CaInitOptions extends CaKeyOptions {
  dir: string;
  caKey: string;
  responderKey: string;
  subject: string;
  ocspUrl?: string;
  crlUrl?: string;
  /** For keys that do not exist yet. */
  threshold: number;
  signers: number;
}

interface KeyInfo {
  key_id: string;
  spki_der: Buffer;
  policy_json: string;
  clients: string[];
}

/** The coordinator's HTTP base URL (where the responder and the CRL are served). */
export function coordinatorHttpUrl(dir: string): string {
  const config = readClusterConfig(dir);
  return `${config.coordinator.httpSign?.mode === 'mtls' ? 'https' : 'http'}://${config.coordinator.http}`;
}

/** Creates the keys when missing (checking the policy of those that exist), then the root and the responder certificate. */
export async function caInit(o: CaInitOptions): Promise<{ root: Uint8Array; config: Omit<CaConfig, 'version'> }> {
  const admin = adminClient(o.dir);
  const key = async (id: string, policy: KeyPolicy, client: string): Promise<KeyInfo> => {
    const { keys } = await unary<{ keys: KeyInfo[] }>(admin, 'ListKeys', {});
    const found = keys.find((k) => k.key_id === id);
    if (found) {
      if (JSON.stringify(normaliseKeyPolicy(JSON.parse(found.policy_json))) !== JSON.stringify(policy)) {
        throw new Error(`key '${id}' exists with another policy (${found.policy_json}); name another with --${id === o.caKey ? 'ca-key' : 'responder-key'}`);
      }
      if (!found.clients.includes(client)) throw new Error(`key '${id}' does not list the client '${client}': quorumkey key grant ${id} ${client}`);
      return found;
    }
    console.error(`quorumkey: creating key '${id}' (${o.threshold}-of-${o.signers}, policy ${policy.contexts.join(',')}, client ${client}) by distributed key generation…`);
    return unary<KeyInfo>(admin, 'CreateKey', { key_id: id, threshold: o.threshold, signer_count: o.signers, policy_json: JSON.stringify(policy), clients: [client] }, 180_000);
  };
  try {
    const ca = await key(o.caKey, caKeyPolicy(o), 'admin');
    const responder = await key(o.responderKey, RESPONDER_KEY_POLICY, OCSP_RESPONDER_IDENTITY);
    const base = coordinatorHttpUrl(o.dir);
    const config = {
      caKey: o.caKey,
      responderKey: o.responderKey,
      ocspUrl: o.ocspUrl ?? `${base}/ocsp`,
      crlUrl: o.crlUrl ?? `${base}/crl`,
      ocspValiditySeconds: OCSP_VALIDITY_SECONDS,
      crlValidityDays: CRL_VALIDITY_DAYS,
    };
    const made = await withSigner(o.dir, o.caKey, (sign) =>
      initCa(caPaths(paths(o.dir).root), {
        config,
        subject: parseSubject(o.subject),
        rootDays: Math.min(DEFAULT_ROOT_DAYS, o.maxValidityDays),
        responderDays: Math.min(RESPONDER_DAYS, o.maxValidityDays),
        caSpki: new Uint8Array(ca.spki_der),
        responderSpki: new Uint8Array(responder.spki_der),
        sign,
      }),
    );
    return { root: made.root, config };
  } finally {
    admin.close();
  }
}

/** `ct`: with SCTs from the coordinator's CT log embedded (`quorumkey ct init` configures it). */
export async function certIssue(dir: string, csr: Uint8Array, profile: Profile, days: number, ct = false): Promise<IssuedCertificate> {
  const p = caPaths(paths(dir).root);
  const logs = ct ? [await localSctLog(dir)] : [];
  return withSigner(dir, readCaConfig(p).caKey, (sign) => issueCertificate(p, csr, profile, days, sign, logs));
}

/** A staple source for a certificate of this CA (issuer: the CA's root unless given). */
export function stapleSource(dir: string, certFile: string, issuerFile?: string, url?: string): StapleSource {
  return {
    certDer: derFrom(readFileSync(certFile), 'CERTIFICATE'),
    issuerDer: derFrom(readFileSync(issuerFile ?? caPaths(paths(dir).root).rootCert), 'CERTIFICATE'),
    ...(url ? { url } : {}),
  };
}

const describeStaple = (s: StapleStatus) => `${s.status}, this update ${s.thisUpdate.toISOString()}, next update ${s.nextUpdate.toISOString()}`;

function list(v: string | undefined): string[] {
  return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter(Boolean);
}

function positiveInt(v: string | undefined, flag: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (!/^[1-9]\d{0,5}$/.test(v)) throw new Error(`--${flag} must be a positive whole number, got '${v}'`);
  return Number(v);
}

export async function runCaCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: '.quorumkey' },
      'ca-key': { type: 'string', default: 'ca' },
      'responder-key': { type: 'string', default: 'ocsp' },
      subject: { type: 'string', default: DEFAULT_SUBJECT },
      'dns-suffix': { type: 'string' },
      'ip-range': { type: 'string' },
      'max-validity-days': { type: 'string' },
      'ocsp-url': { type: 'string' },
      'crl-url': { type: 'string' },
      threshold: { type: 'string' },
      signers: { type: 'string' },
      csr: { type: 'string' },
      days: { type: 'string' },
      profile: { type: 'string', default: 'server' },
      out: { type: 'string' },
      reason: { type: 'string' },
      cert: { type: 'string' },
      issuer: { type: 'string' },
      url: { type: 'string' },
      watch: { type: 'boolean', default: false },
      ct: { type: 'boolean', default: false },
    },
  });
  const dir = values.dir!;
  const p = caPaths(paths(dir).root);
  const [command, sub, arg] = positionals;
  const write = (data: string | Uint8Array) => (values.out ? writeFileSync(values.out, data, { mode: 0o644 }) : process.stdout.write(data));
  if (command === 'ca' && sub === 'init') {
    const suffixes = list(values['dns-suffix']);
    const ranges = list(values['ip-range']);
    if (suffixes.length + ranges.length === 0) throw new Error('ca init needs the names it may certify: --dns-suffix example.com and/or --ip-range 10.0.0.0/8');
    const { root, config } = await caInit({
      dir,
      caKey: values['ca-key']!,
      responderKey: values['responder-key']!,
      subject: values.subject!,
      dnsSuffixes: suffixes,
      ipRanges: ranges,
      maxValidityDays: positiveInt(values['max-validity-days'], 'max-validity-days', DEFAULT_ROOT_DAYS),
      threshold: positiveInt(values.threshold, 'threshold', 3),
      signers: positiveInt(values.signers, 'signers', 5),
      ...(values['ocsp-url'] ? { ocspUrl: values['ocsp-url'] } : {}),
      ...(values['crl-url'] ? { crlUrl: values['crl-url'] } : {}),
    });
    write(pem('CERTIFICATE', root));
    console.error(`quorumkey: CA ready in ${p.root}: root ${p.rootCert}, OCSP ${config.ocspUrl} (key '${config.responderKey}'), CRL ${config.crlUrl}`);
  } else if (command === 'cert' && sub === 'issue') {
    if (!values.csr) throw new Error('cert issue needs --csr FILE');
    if (!(PROFILES as readonly string[]).includes(values.profile!)) throw new Error(`--profile must be one of ${PROFILES.join(', ')}`);
    const issued = await certIssue(dir, readFileSync(values.csr), values.profile as Profile, positiveInt(values.days, 'days', DEFAULT_CERT_DAYS), values.ct);
    write(pem('CERTIFICATE', Buffer.from(issued.der, 'base64')));
    console.error(`quorumkey: issued serial ${issued.serial} to ${issued.subject} (${issued.profile}) until ${issued.notAfter}${values.ct ? ", the CT log's SCT embedded" : ''}`);
  } else if (command === 'cert' && sub === 'revoke') {
    if (!arg) throw new Error('cert revoke needs a SERIAL');
    const cert = await revokeCertificate(p, normaliseSerial(arg), parseReason(values.reason ?? 'unspecified'));
    console.log(`revoked serial ${cert.serial} (${cert.subject}) at ${cert.revoked!.at}: ${cert.revoked!.reason}; the OCSP responder answers revoked now, the CRL after 'quorumkey crl'`);
  } else if (command === 'cert' && sub === 'list') {
    for (const c of readIssued(p).certificates) {
      console.log(`${c.serial}  ${c.revoked ? `revoked ${c.revoked.at} ${c.revoked.reason}` : 'valid'}  ${c.profile}  ${c.notBefore} .. ${c.notAfter}  ${c.subject}`);
    }
  } else if (command === 'crl') {
      const crl = await withSigner(dir, readCaConfig(p).caKey, (sign) => makeCrl(p, sign));
    if (values.out) write(pem('X509 CRL', crl.der));
    console.error(`quorumkey: CRL number ${crl.number} with ${crl.revoked} revocation(s) in ${p.crlPem} (DER ${p.crlDer}, served on GET /crl)`);
  } else if (command === 'ocsp' && sub === 'staple') {
    if (!values.cert || !values.out) throw new Error('ocsp staple needs --cert FILE and --out FILE');
    const source = stapleSource(dir, values.cert, values.issuer, values.url);
    if (!values.watch) return void console.log(`wrote ${values.out}: ${describeStaple(await refreshStaple(source, values.out))}`);
    watchStaple(source, values.out, {
      written: (s) => console.log(`wrote ${values.out}: ${describeStaple(s)}`),
      failed: (e) => console.error(`quorumkey: staple not refreshed (kept the last good one): ${e.message}`),
    });
  } else {
    throw new Error(`unknown command '${positionals.join(' ')}'\n${CA_USAGE}`);
  }
}
