/**
 * Every signer enforces the key's sealed policy, whoever holds the coordinator certificate: a
 * real `quorumkey up` cluster (3-of-3, so every signer is asked), attacked by a separate
 * malicious coordinator process (malicious-coordinator.ts) that talks to the signers directly.
 * Each forbidden request is refused by every signer with its named reason, no signature comes
 * out, and every refusal is in every signer's audit log; then `audit verify --cross` passes on
 * the honest traffic and reports the signatures the attacker got within the policy.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey, randomBytes, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { scanAuditLog } from '../../src/audit/log.js';
import { paths } from '../../src/cluster/config.js';
import { _der } from '../../src/policy/classify.js';
import { certificateVerifyTbs, cli, runMaliciousCoordinator, signOverGrpc, UpProcess } from './cluster-harness.js';
import type { Attack } from './malicious-coordinator.js';

const SUBSET = [1, 2, 3];
const RATE = 5;

/** The TBSCertificate of a self-signed certificate made by the real openssl with `args`. */
function tbsCertificate(work: string, name: string, args: string[]): Buffer {
  const key = join(work, `${name}.key`);
  const cert = join(work, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-sha256', ...args], { stdio: 'pipe' });
  const der = new X509Certificate(readFileSync(cert)).raw;
  const outer = _der.readTlv(der, 0, der.length);
  const tbs = _der.readTlv(der, outer.offset, outer.end);
  return der.subarray(tbs.start, tbs.end);
}


interface SignerRecord {
  event: string;
  key: string;
  presignature: string;
  result: string;
  reason?: string;
  caller: string;
}

async function signerRecords(dir: string, signer: number): Promise<SignerRecord[]> {
  const out: SignerRecord[] = [];
  const res = await scanAuditLog(paths(dir).signerAudit(signer), (e) => out.push(e.record as unknown as SignerRecord));
  assert.ok(res.ok, `signer ${signer}'s audit log verifies`);
  return out;
}

describe('services/signer policy (a malicious coordinator against real signers)', function () {
  this.timeout(600_000);
  const up = new UpProcess();
  const work = mkdtempSync(join(tmpdir(), 'qk-signer-policy-'));
  let caSpki: Buffer;

  before(async () => {
    await up.start(['--signers', '3', '--threshold', '3', '--no-tls']);
    const ca = cli(up.dir, 'key', 'create', 'ca', '--threshold', '3', '--signers', '3', '--policy', 'x509-cert', '--dns-suffix', 'example.com', '--max-validity-days', '90', '--eku', 'serverAuth', '--clients', 'unix');
    assert.equal(ca.status, 0, ca.stderr);
    const rl = cli(up.dir, 'key', 'create', 'rl', '--threshold', '3', '--signers', '3', '--rate-per-second', String(RATE), '--rate-per-hour', String(RATE), '--clients', 'unix');
    assert.equal(rl.status, 0, rl.stderr);
    caSpki = Buffer.from(cli(up.dir, 'key', 'show', 'ca', '--pem').stdout);
  });

  after(async () => {
    await up.stop();
    rmSync(up.dir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  it('honest traffic through the real coordinator: audit verify --cross finds the signers agree', async () => {
    const client = up.coordinator();
    for (let k = 0; k < 3; k++) {
      const r = await signOverGrpc(client, 'tls', certificateVerifyTbs());
      assert.ok(r.ok, r.details);
    }
    client.close();
    const cross = cli(up.dir, 'audit', 'verify', '--cross');
    assert.equal(cross.status, 0, cross.stdout + cross.stderr);
    assert.match(cross.stdout, /cross-check: the [1-9]\d* signatures of the coordinator's log match the 3 signers' logs/);
  });

  it('every signer refuses what the key policy forbids, with a named reason, and records each refusal', async () => {
    const ok = tbsCertificate(work, 'ok', ['-days', '30', '-subj', '/CN=www.example.com', '-addext', 'subjectAltName=DNS:www.example.com', '-addext', 'extendedKeyUsage=serverAuth', '-addext', 'basicConstraints=critical,CA:FALSE']);
    const bank = tbsCertificate(work, 'bank', ['-days', '30', '-subj', '/CN=www.bank.example', '-addext', 'subjectAltName=DNS:www.bank.example', '-addext', 'extendedKeyUsage=serverAuth', '-addext', 'basicConstraints=critical,CA:FALSE']);
    const long = tbsCertificate(work, 'long', ['-days', '3650', '-subj', '/CN=www.example.com', '-addext', 'subjectAltName=DNS:www.example.com', '-addext', 'extendedKeyUsage=serverAuth', '-addext', 'basicConstraints=critical,CA:FALSE']);
    const caTrue = tbsCertificate(work, 'catrue', ['-days', '30', '-subj', '/CN=sub.example.com', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    const forbidden: { attack: Attack; reason: string }[] = [
      { reason: 'raw-digest-not-allowed', attack: { name: 'raw digest with the TLS key', key: 'tls', subset: SUBSET, digestAlg: 'SHA256', requests: [{ digest: randomBytes(32).toString('hex') }] } },
      { reason: 'context-not-allowed', attack: { name: 'a TBSCertificate with the TLS key', key: 'tls', subset: SUBSET, digestAlg: 'SHA256', requests: [{ tbs: ok.toString('hex') }] } },
      { reason: 'dns-name-not-permitted', attack: { name: 'CN=www.bank.example with the CA key', key: 'ca', subset: SUBSET, digestAlg: 'SHA256', requests: [{ tbs: bank.toString('hex') }] } },
      { reason: 'validity-too-long', attack: { name: '3650 days with the CA key', key: 'ca', subset: SUBSET, digestAlg: 'SHA256', requests: [{ tbs: long.toString('hex') }] } },
      { reason: 'ca-not-allowed', attack: { name: 'CA:TRUE with the CA key', key: 'ca', subset: SUBSET, digestAlg: 'SHA256', requests: [{ tbs: caTrue.toString('hex') }] } },
    ];
    const control: Attack = { name: 'a certificate inside the CA policy', key: 'ca', subset: SUBSET, digestAlg: 'SHA256', requests: [{ tbs: ok.toString('hex') }] };
    const results = runMaliciousCoordinator(up.dir, [...forbidden.map((f) => f.attack), control]);

    const records = new Map(await Promise.all(SUBSET.map(async (i) => [i, await signerRecords(up.dir, i)] as const)));
    forbidden.forEach(({ attack, reason }, k) => {
      const [request] = results[k]!.requests;
      assert.equal(request!.signature, undefined, `${attack.name}: no signature`);
      for (const o of request!.outcomes) {
        assert.equal(o.ok, false, `${attack.name}: signer ${o.signer} refused`);
        assert.equal(o.code, grpc.status.PERMISSION_DENIED, `${attack.name}: signer ${o.signer}: ${o.details}`);
        assert.equal(o.refusal, reason, `${attack.name}: signer ${o.signer}: ${o.details}`);
        const logged = records.get(o.signer)!.filter((r) => r.event === 'finish' && r.presignature === request!.presignature);
        assert.equal(logged.length, 1, `${attack.name}: one record at signer ${o.signer}`);
        assert.deepEqual([logged[0]!.result, logged[0]!.reason, logged[0]!.caller, logged[0]!.key], ['refused', reason, 'attacker', attack.key]);
      }
    });
    // The positive control: the same signers sign what the policy allows, and it verifies.
    const allowed = results[forbidden.length]!.requests[0]!;
    assert.deepEqual(allowed.outcomes.map((o) => o.ok), [true, true, true], JSON.stringify(allowed.outcomes));
    assert.ok(verify('sha256', ok, createPublicKey(caSpki), Buffer.from(allowed.signature!, 'hex')), 'the allowed certificate signature verifies');
  });

  it(`ten times the rate limit: every signer signs ${RATE} and refuses the rest as rate-limited`, async () => {
    const requests = Array.from({ length: 10 * RATE }, () => ({ tbs: certificateVerifyTbs().toString('hex') }));
    const [result] = runMaliciousCoordinator(up.dir, [{ name: 'flood', key: 'rl', subset: SUBSET, digestAlg: 'SHA256', requests }]);
    const signed = result!.requests.filter((r) => r.signature !== undefined);
    const refused = result!.requests.filter((r) => r.outcomes.every((o) => !o.ok && o.code === grpc.status.RESOURCE_EXHAUSTED && o.refusal === 'rate-limited'));
    assert.equal(signed.length, RATE, 'exactly the hourly limit is signed');
    assert.equal(refused.length, 9 * RATE, 'every other request is refused by every signer');
    const spki = createPublicKey(Buffer.from(cli(up.dir, 'key', 'show', 'rl', '--pem').stdout));
    for (const r of signed) {
      const k = result!.requests.indexOf(r);
      assert.ok(verify('sha256', Buffer.from(requests[k]!.tbs, 'hex'), spki, Buffer.from(r.signature!, 'hex')));
    }
    for (const i of SUBSET) {
      const mine = (await signerRecords(up.dir, i)).filter((r) => r.event === 'finish' && r.key === 'rl');
      assert.equal(mine.filter((r) => r.result === 'refused' && r.reason === 'rate-limited').length, 9 * RATE, `signer ${i} recorded every refusal`);
    }
    // The real coordinator's own copy of the limit has not been spent, but the signers' has:
    // its client is told so, as a rate limit (not a failure to route around).
    const client = up.coordinator();
    const r = await signOverGrpc(client, 'rl', certificateVerifyTbs());
    client.close();
    assert.equal(r.ok, false);
    assert.equal(r.code, grpc.status.RESOURCE_EXHAUSTED, r.details);
    assert.match(r.details ?? '', /signer \d refused \(rate-limited\): .*over its rate limit of 5 per hour/);
  });

  it('audit verify --cross reports the signatures the signers made and the coordinator did not record', () => {
    const cross = cli(up.dir, 'audit', 'verify', '--cross');
    assert.notEqual(cross.status, 0);
    // The allowed certificate and the rate-limited key's signatures: one finding per signer.
    const findings = cross.stdout.split('\n').filter((l) => l.startsWith('MISMATCH unrecorded-signature'));
    assert.equal(findings.length, (1 + RATE) * SUBSET.length, cross.stdout);
    assert.ok(findings.some((l) => /key 'ca'/.test(l)) && findings.some((l) => /key 'rl'/.test(l)));
    assert.ok(cross.stderr.includes(`cross-check failed: ${findings.length} finding(s)`), cross.stderr);
    // The flood's refusals and the real coordinator's one request after it.
    assert.match(cross.stdout, new RegExp(`signer 1: \\d+ records, refused: .*rate-limited ${9 * RATE + 1}\n`));
  });
});
