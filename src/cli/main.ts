#!/usr/bin/env node
/**
 * The quorumkey command line. Every command takes --dir (default ./.quorumkey) and finds the
 * running cluster through <dir>/cluster.json.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { verifyAuditLog, type AuditHead } from '../audit/log.js';
import { crossCheckAudit, type SignerLog } from '../audit/cross-check.js';
import { paths } from '../cluster/config.js';
import { adminClient, adoptPolicyApproval, coordinatorClient, deleteKeyApproval, describeError, pairSetupApproval, unary } from './clients.js';
import { HTTP_SIGN_MODES, up, type HttpSignMode } from './up.js';
import { encodeKeyPolicy, normaliseKeyPolicy } from '../policy/key-policy.js';
import { POLICY_OPTIONS, policyJsonFromFlags } from './policy-flags.js';
import { keyReferenceFor, opensslConf } from './provider-config.js';
import { keyReferencePem } from '../keyref/keyref.js';
import { CT_USAGE, ctCommand, sctCommand } from './ct.js';
import { CA_COMMANDS, CA_USAGE, runCaCommand } from './ca.js';
import { confirmRotation, reloadInstructions, retireKey, rotate, ROTATE_USAGE } from './rotate.js';

const USAGE = `usage: quorumkey <command> [options]          (every command takes --dir DIR, default ./.quorumkey)

  up [--signers N] [--threshold T] [--no-tls]   start the embedded cluster (default 5 signers, 3-of-5 key 'tls',
      [--socket-group GROUP]                     the CA (keys 'embedded-ca', 'embedded-ocsp'), openssl s_server with TLS 1.3 + OCSP staple)
      [--http-sign off|token|mtls]               --socket-group: members of GROUP may connect to the unix socket
      [--http-sign-token-file FILE]                (socket 0660, its directory 0750); default: this user only
      [--http-host NAME]...                      --http-sign: POST /v1/sign off (default), with a bearer token (FILE,
                                                   default DIR/http-sign.token, mode 0600) or with client
                                                   certificates of the cluster CA (HTTPS); --http-host: more names
                                                   accepted in its Host header than 127.0.0.1 and localhost
  key create ID --threshold T --signers N [--clients a,b] [--policy a,b] [policy flags]
                                                policy flags: --policy-file F | --dns-suffix a,b --ip-range c,d
                                                --max-validity-days N --allow-ca --eku a,b (x509-cert keys),
                                                --rate-per-second N --rate-per-hour N
  key grant ID CLIENT / key revoke ID CLIENT    adds / removes a client identity of the key's ACL (audited)
  key delete ID --yes                           erases every holder's share of key ID (audited; signs the approval the
                                                holders check with the admin identity's key); without --yes it only
                                                says what it would erase. Refused while a holder is down
  key list
  key show ID [--pem]                           --pem: the public key as SubjectPublicKeyInfo PEM
  key ref ID [--tcp]                            the provider's key reference (PEM QUORUMKEY KEY) on stdout
  openssl-conf                                  an openssl.cnf activating the default and quorumkey providers
  sign ID --digest HEX | --tbs-file FILE        prints the DER signature as hex
  status [--json]                               signers, quarantine, pair conflicts, usable subsets, pools
  signers reconcile --key ID A B                re-runs the pairwise OT setup of signers A and B for key ID: the way a
                                                conflicting pair (a failed check between them) works together again
                                                (signs the approval both signers check with the admin identity's key)
  signers quarantine I                          operator exclusion: the coordinator stops scheduling signer I
                                                (coordinator state only; no signer is told)
  signers readmit I                             lifts that exclusion only (never a pair conflict: see reconcile)
  refresh ID                                    proactive refresh: new shares, same public key
  audit head                                    the audit log's head (seq, hash) and the Merkle root of all its records:
                                                keep them elsewhere, and later 'audit verify --head SEQ:HASH'
  audit verify [--head SEQ:HASH] [--cross]      checks the audit log's hash chain (with --head: that no record was cut
                                                from its end since that head); --cross also checks it against
                                                every signer's own log (<dir>/signer-*/audit.log): a share a
                                                signer released that the coordinator did not record shows
${CT_USAGE}
${CA_USAGE}
${ROTATE_USAGE}`;

interface PairConflict {
  key_id: string;
  a: number;
  b: number;
  reported_by: number[];
  reason: string;
}

interface KeyEpoch {
  key_id: string;
  epoch: number;
}

interface ClusterStatus {
  signers: (Record<string, unknown> & { index: number; epochs?: KeyEpoch[]; pending?: KeyEpoch[] })[];
  pools: { key_id: string; subset: number[]; depth: number; target: number }[];
  conflicts: PairConflict[];
  subsets: { key_id: string; total: number; usable: { signers: number[] }[] }[];
}

const reconcileCommand = (c: PairConflict) => `quorumkey signers reconcile --key ${c.key_id} ${c.a} ${c.b}`;

/** Each signer's epoch of a key (and a pending one), e.g. "1:3 2:3 3:2 (pending 3)"; flags a split. */
function signerEpochs(status: ClusterStatus, keyId: string, committed: number | undefined): string {
  const parts: string[] = [];
  const seen = new Set<number>();
  for (const s of status.signers) {
    const at = s.epochs?.find((e) => e.key_id === keyId);
    const pending = s.pending?.find((e) => e.key_id === keyId);
    if (!at && !pending) continue;
    if (at) seen.add(at.epoch);
    parts.push(`${s.index}:${at ? at.epoch : '-'}${pending ? ` (pending ${pending.epoch})` : ''}`);
  }
  const split = seen.size > 1 || (committed !== undefined && [...seen].some((e) => e !== committed));
  return `${parts.join(' ') || 'none reported'}${committed !== undefined ? `  committed ${committed}` : ''}${split ? '  SIGNERS ON DIFFERENT EPOCHS (they reconcile when they report)' : ''}`;
}

function printStatus(status: ClusterStatus, keys: readonly KeyInfo[] = []): void {
  console.log('signer  up  healthy  quarantined  latency   boot id');
  for (const s of status.signers) {
    console.log(
      `${String(s.index).padEnd(7)} ${(s.up ? 'yes' : 'no').padEnd(3)} ${(s.healthy ? 'yes' : 'no').padEnd(8)} ${(s.quarantined ? `yes (${s.quarantine_reason})` : 'no').padEnd(12)} ${Number(s.latency_ms).toFixed(1).padStart(6)} ms  ${s.boot_id}${s.last_error ? `  last error: ${s.last_error}` : ''}`,
    );
  }
  for (const k of status.subsets ?? []) {
    const usable = k.usable ?? [];
    const list = usable.length > 0 && usable.length <= 12 ? `  [${usable.map((u) => u.signers.join(',')).join('] [')}]` : '';
    console.log(`\nkey ${k.key_id}: usable subsets: ${usable.length} of ${k.total}${list}`);
    const info = keys.find((i) => i.key_id === k.key_id);
    console.log(`  epochs: ${signerEpochs(status, k.key_id, info?.epoch)}`);
    if (info?.trusts_coordinator) console.log('  raw-digest: TRUSTS THE COORDINATOR (the signers cannot check what a bare digest stands for)');
    if (info && !info.policy_sealed) console.log(`  policy not sealed: signs nothing until 'quorumkey key adopt-policy ${k.key_id}'`);
    const conflicts = (status.conflicts ?? []).filter((c) => c.key_id === k.key_id);
    if (conflicts.length === 0) console.log('  no pair conflicts');
    for (const c of conflicts) {
      console.log(`  conflict {${c.a},${c.b}} reported by [${(c.reported_by ?? []).join(',')}]: ${c.reason}`);
      console.log(`    reconcile: ${reconcileCommand(c)}`);
    }
  }
  console.log('\nkey     subset        depth/target');
  for (const pool of status.pools) console.log(`${pool.key_id.padEnd(7)} ${pool.subset.join(',').padEnd(13)} ${pool.depth}/${pool.target}`);
}

interface KeyInfo {
  key_id: string;
  threshold: number;
  signers: number[];
  public_key: Buffer;
  spki_der: Buffer;
  policy: string[];
  epoch: number;
  policy_json: string;
  clients: string[];
  trusts_coordinator: boolean;
  policy_sealed: boolean;
}

/** The signers' audit logs of a cluster on this machine (`quorumkey up`'s layout). */
function localSignerLogs(dir: string): SignerLog[] {
  const p = paths(dir);
  return readdirSync(p.root)
    .flatMap((name) => {
      const m = /^signer-(\d+)$/.exec(name);
      return m && existsSync(p.signerAudit(Number(m[1]))) ? [{ signer: Number(m[1]), path: p.signerAudit(Number(m[1])) }] : [];
    })
    .sort((a, b) => a.signer - b.signer);
}

function fail(message: string): never {
  console.error(`quorumkey: ${message}`);
  process.exit(2);
}

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

function describeKey(k: KeyInfo): string {
  const lines = [
    `${k.key_id}  ${k.threshold}-of-${k.signers.length} signers [${k.signers.join(',')}]  epoch ${k.epoch}  policy ${k.policy.join(',')}  pubkey ${Buffer.from(k.public_key).toString('hex')}`,
    `  clients: ${k.clients.length ? k.clients.join(', ') : 'nobody (grant with: quorumkey key grant ' + k.key_id + ' CLIENT)'}`,
    `  sealed policy: ${k.policy_json}`,
  ];
  if (k.trusts_coordinator) lines.push('  TRUSTS THE COORDINATOR: raw-digest lets it sign any digest; the signers cannot check what it stands for');
  if (!k.policy_sealed) lines.push(`  POLICY NOT SEALED: the signers sign nothing with this key until 'quorumkey key adopt-policy ${k.key_id}'`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<void> {
  if (CA_COMMANDS.includes(argv[0] ?? '') && !argv.includes('--help') && !argv.includes('-h')) return runCaCommand(argv);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: '.quorumkey' },
      signers: { type: 'string' },
      threshold: { type: 'string' },
      ...POLICY_OPTIONS,
      clients: { type: 'string' },
      pem: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      tcp: { type: 'boolean', default: false },
      'no-tls': { type: 'boolean', default: false },
      'socket-group': { type: 'string' },
      'http-sign': { type: 'string' },
      'http-sign-token-file': { type: 'string' },
      'http-host': { type: 'string', multiple: true },
      digest: { type: 'string' },
      key: { type: 'string' },
      'tbs-file': { type: 'string' },
      cross: { type: 'boolean', default: false },
      head: { type: 'string' },
      root: { type: 'string', multiple: true },
      cert: { type: 'string' },
      out: { type: 'string' },
      yes: { type: 'boolean', default: false },
      connect: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const dir = values.dir!;
  const [command, sub, arg, arg2] = positionals;
  const int = (name: 'signers' | 'threshold', fallback?: number) => {
    const raw = values[name];
    if (raw === undefined) return fallback ?? fail(`--${name} is required`);
    if (!/^\d+$/.test(raw)) fail(`--${name} must be a number`);
    return Number(raw);
  };
  if (values.help || !command) return void console.log(USAGE);

  switch (command) {
    case 'up': {
      const httpSign = values['http-sign'] ?? 'off';
      if (!(HTTP_SIGN_MODES as readonly string[]).includes(httpSign)) fail(`--http-sign must be one of ${HTTP_SIGN_MODES.join(', ')}, got '${httpSign}'`);
      if (values['http-sign-token-file'] !== undefined && httpSign !== 'token') fail('--http-sign-token-file needs --http-sign token');
      if (values['socket-group'] !== undefined && !/^(?:\d+|[A-Za-z_][A-Za-z0-9_.-]{0,31})$/.test(values['socket-group'])) fail(`--socket-group '${values['socket-group']}' is not a group name`);
      return up({
        dir,
        signers: int('signers', 5),
        threshold: int('threshold', 3),
        keyId: 'tls',
        tls: !values['no-tls'],
        socketGroup: values['socket-group'],
        httpSign: httpSign as HttpSignMode,
        httpTokenFile: values['http-sign-token-file'],
        httpHosts: values['http-host'],
      });
    }
    case 'key': {
      const admin = adminClient(dir);
      if (sub === 'create') {
        if (!arg) fail('key create needs an ID');
        let policyJson: string;
        try {
          policyJson = policyJsonFromFlags(values);
        } catch (e) {
          return fail((e as Error).message);
        }
        const clients = values.clients ? values.clients.split(',').map((c) => c.trim()).filter(Boolean) : [];
        const key = await unary<KeyInfo>(admin, 'CreateKey', { key_id: arg, threshold: int('threshold'), signer_count: int('signers'), policy_json: policyJson, clients }, 180_000);
        console.log(describeKey(key));
        if (clients.length === 0) console.error(`quorumkey: key '${arg}' has no clients yet: nobody can sign with it until 'quorumkey key grant ${arg} CLIENT'`);
      } else if (sub === 'adopt-policy') {
        if (!arg) fail('key adopt-policy needs an ID');
        const { keys } = await unary<{ keys: KeyInfo[] }>(admin, 'ListKeys', {});
        const key = keys.find((k) => k.key_id === arg) ?? fail(`unknown key '${arg}'`);
        if (key.policy_sealed) return void console.log(`key '${arg}' already has its policy sealed by every holder`);
        // The approval names the digest of exactly this policy, as keys.json records it: the
        // coordinator cannot substitute another.
        const policy = encodeKeyPolicy(normaliseKeyPolicy(JSON.parse(key.policy_json)));
        console.error(`quorumkey: sealing the policy ${key.policy_json} into every share of '${arg}'`);
        console.log(describeKey(await unary<KeyInfo>(admin, 'AdoptPolicy', { key_id: arg, approval: adoptPolicyApproval(dir, arg, policy) }, 180_000)));
      } else if (sub === 'grant' || sub === 'revoke') {
        if (!arg || !arg2) fail(`key ${sub} needs an ID and a client identity`);
        console.log(describeKey(await unary<KeyInfo>(admin, sub === 'grant' ? 'GrantClient' : 'RevokeClient', { key_id: arg, client: arg2 })));
      } else if (sub === 'delete') {
        if (!arg) fail('key delete needs an ID');
        if (!values.yes) {
          const { keys } = await unary<{ keys: KeyInfo[] }>(admin, 'ListKeys', {});
          const key = keys.find((k) => k.key_id === arg);
          const what = key ? `every share of key '${arg}' (signers [${key.signers.join(',')}], epoch ${key.epoch}, public key ${Buffer.from(key.public_key).toString('hex')})` : `what remains of key '${arg}'`;
          fail(`key delete would erase ${what}; nothing can sign with it afterwards and it cannot be recovered. Run again with --yes to erase it`);
        }
        const r = await unary<{ key_id: string; erased: number[]; remaining: number[] }>(admin, 'DeleteKey', { key_id: arg, approval: deleteKeyApproval(dir, arg) }, 180_000);
        if (r.remaining.length) fail(`key '${arg}' no longer signs, but signers [${r.remaining.join(',')}] still hold a share (erased on [${r.erased.join(',')}]): run 'quorumkey key delete ${arg} --yes' again when they are up`);
        console.log(`key '${arg}' deleted: signers [${r.erased.join(',')}] erased their shares`);
      } else if (sub === 'retire') {
        if (!arg) fail('key retire needs an ID');
        console.log(await retireKey(dir, arg, values.yes!));
      } else if (sub === 'list') {
        const { keys } = await unary<{ keys: KeyInfo[] }>(admin, 'ListKeys', {});
        for (const k of keys) console.log(describeKey(k));
      } else if (sub === 'show') {
        if (!arg) fail('key show needs an ID');
        const key = await unary<KeyInfo>(coordinatorClient(dir), 'GetKey', { key_id: arg });
        console.log(values.pem ? pem('PUBLIC KEY', key.spki_der).trimEnd() : describeKey(key));
      } else if (sub === 'ref') {
        if (!arg) fail('key ref needs an ID');
        const key = await unary<KeyInfo>(coordinatorClient(dir), 'GetKey', { key_id: arg });
        process.stdout.write(keyReferencePem(keyReferenceFor(dir, key.key_id, key.spki_der, values.tcp!)));
      } else fail(`unknown key command '${sub ?? ''}'\n${USAGE}`);
      return;
    }
    case 'sign': {
      if (!sub) fail('sign needs a key ID');
      const request: Record<string, unknown> = { key_id: sub };
      if (values.digest !== undefined) {
        if (!/^([0-9a-fA-F]{2})+$/.test(values.digest)) fail('--digest must be hex');
        request.digest = Buffer.from(values.digest, 'hex');
      } else if (values['tbs-file'] !== undefined) {
        request.tbs = readFileSync(values['tbs-file']);
      } else fail('sign needs --digest HEX or --tbs-file FILE');
      const response = await unary<{ signature_der: Buffer }>(coordinatorClient(dir), 'Sign', request);
      console.log(Buffer.from(response.signature_der).toString('hex'));
      return;
    }
    case 'openssl-conf':
      return void process.stdout.write(opensslConf());
    case 'status': {
      const admin = adminClient(dir);
      const status = await unary<ClusterStatus>(admin, 'Status', {});
      if (values.json) return void console.log(JSON.stringify(status, null, 2));
      const { keys } = await unary<{ keys: KeyInfo[] }>(admin, 'ListKeys', {});
      printStatus(status, keys);
      return;
    }
    case 'signers': {
      const index = (text: string | undefined, what: string) => {
        if (text === undefined) fail(`signers ${sub} needs ${what}`);
        if (!/^[1-9]\d{0,3}$/.test(text!)) fail(`${what} must be a signer index, got '${text}'`);
        return Number(text);
      };
      if (sub === 'reconcile') {
        if (!values.key) fail('signers reconcile needs --key ID');
        const a = index(arg, 'signer A');
        const b = index(arg2, 'signer B');
        if (positionals.length > 4) fail('signers reconcile takes two signers: --key ID A B');
        const [lo, hi] = a < b ? [a, b] : [b, a];
        // The operator's consent, signed with the admin key: each of the two signers checks it.
        const approval = pairSetupApproval(dir, values.key!, lo, hi);
        const status = await unary<ClusterStatus>(adminClient(dir), 'ReconcilePair', { key_id: values.key, a, b, approval }, 180_000);
        if (values.json) return void console.log(JSON.stringify(status, null, 2));
        const left = (status.conflicts ?? []).find((c) => c.key_id === values.key && c.a === lo && c.b === hi);
        console.log(left ? `signers ${lo} and ${hi} re-ran their pair setup for key ${values.key}, but the pair is still in conflict` : `signers ${lo} and ${hi} reconciled for key ${values.key}`);
        printStatus(status);
        if (left) process.exitCode = 1;
      } else if (sub === 'quarantine' || sub === 'readmit') {
        const i = index(arg, 'a signer index');
        const status = await unary<ClusterStatus>(adminClient(dir), sub === 'quarantine' ? 'Quarantine' : 'Readmit', { index: i });
        if (values.json) return void console.log(JSON.stringify(status, null, 2));
        printStatus(status);
      } else fail(`unknown signers command '${sub ?? ''}'\n${USAGE}`);
      return;
    }
    case 'refresh': {
      if (!sub) fail('refresh needs a key ID');
      console.log(describeKey(await unary<KeyInfo>(adminClient(dir), 'RefreshKey', { key_id: sub }, 180_000)));
      return;
    }
    case 'audit': {
      const log = `${paths(dir).coordinator}/audit.log`;
      if (sub === 'head') {
        // The whole chain (every rotated file) is verified on the way.
        const walked = await verifyAuditLog(log);
        if (!walked.ok) fail(`audit log broken: ${walked.file} line ${walked.line}: ${walked.reason}`);
        console.log(`head ${walked.records}:${walked.head}`);
        console.log(`merkle root ${walked.root} over ${walked.records} records`);
        return;
      }
      if (sub !== 'verify') fail(`unknown audit command '${sub ?? ''}'`);
      let expectedHead: AuditHead | undefined;
      if (values.head !== undefined) {
        const m = /^(\d+):([0-9a-f]{64})$/.exec(values.head);
        if (!m) fail(`--head must be SEQ:HASH as 'quorumkey audit head' prints it, got '${values.head}'`);
        expectedHead = { seq: Number(m![1]), hash: m![2]! };
      }
      const result = await verifyAuditLog(log, expectedHead ? { expectedHead } : {});
      if (!result.ok) fail(`audit log ${log} is broken: ${result.file} line ${result.line}: ${result.reason}`);
      console.log(`audit log ${log}: ${result.records} records in every file, chain intact, head ${result.head}, merkle root ${result.root}`);
      if (values.cross) {
        const signerLogs = localSignerLogs(dir);
        if (signerLogs.length === 0) fail(`no signer audit logs under ${paths(dir).root} (signer-*/audit.log)`);
        const report = await crossCheckAudit(log, signerLogs);
        for (const { signer } of signerLogs) {
          const refused = Object.entries(report.refusals[signer] ?? {}).map(([reason, n]) => `${reason} ${n}`);
          console.log(`signer ${signer}: ${report.signerRecords[signer]} records${refused.length ? `, refused: ${refused.join(', ')}` : ''}`);
        }
        for (const f of report.findings) console.log(`MISMATCH ${f.kind}: ${f.message}`);
        if (!report.ok) fail(`cross-check failed: ${report.findings.length} finding(s)`);
        console.log(`cross-check: the ${report.signatures} signatures of the coordinator's log match the ${signerLogs.length} signers' logs`);
      }
      return;
    }
    case 'rotate': {
      if (!sub) fail('rotate needs a key ID');
      if (sub === 'confirm') {
        if (!arg) fail('rotate confirm needs the ID of the key rotated away');
        const r = await confirmRotation(dir, arg, values.connect ?? []);
        return void console.log(`rotation of '${r.from}' to '${r.to}' confirmed: 'quorumkey key retire ${r.from} --yes' deletes the old key`);
      }
      return void console.log(reloadInstructions(await rotate(dir, sub, values.out)));
    }
    case 'ct':
      return ctCommand(dir, sub, values);
    case 'sct':
      return sctCommand(dir, sub, values);
    default:
      fail(`unknown command '${command}'\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  () => {
    // `up` keeps running (its children and signal handlers hold the event loop); the others end here.
  },
  (err) => fail(describeError(err)),
);
