/**
 * Operator approvals with real certificates made by src/pki/cluster-ca.ts (openssl): the cluster
 * CA with `admin` and `coordinator`, and an unrelated CA with its own `admin`.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalJson } from '../../src/audit/canonical.js';
import { ensureClusterPki, loadIdentity, type TlsIdentity } from '../../src/pki/cluster-ca.js';
import {
  ApprovalError,
  createApproval,
  DEFAULT_APPROVAL_MAX_AGE_MS,
  ReplayCache,
  verifyApproval,
  type ApprovalReason,
  type OperatorApproval,
} from '../../src/pki/operator-approval.js';

const MIN = 60_000;

describe('operator approvals (real cluster certificates)', function () {
  this.timeout(60_000);
  let root: string;
  let admin: TlsIdentity;
  let coordinator: TlsIdentity;
  let foreignAdmin: TlsIdentity;
  const expect = { op: 'pair-setup', key: 'tls', a: 1, b: 2 };
  const fields = { key: 'tls', a: 1, b: 2 };

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'qk-approval-'));
    ensureClusterPki(join(root, 'pki'), ['admin', 'coordinator']);
    ensureClusterPki(join(root, 'other'), ['admin']);
    admin = loadIdentity(join(root, 'pki'), 'admin');
    coordinator = loadIdentity(join(root, 'pki'), 'coordinator');
    foreignAdmin = loadIdentity(join(root, 'other'), 'admin');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const check = (approval: OperatorApproval | null | undefined, options: { now?: number; seen?: ReplayCache; expect?: typeof expect | Record<string, string | number> } = {}) =>
    verifyApproval(approval, { caPem: admin.ca, expect: (options.expect ?? expect) as typeof expect, now: options.now ?? Date.now(), seen: options.seen ?? new ReplayCache() });

  const refused = (reason: ApprovalReason, fn: () => unknown, detail?: RegExp) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof ApprovalError, `not an ApprovalError: ${String(e)}`);
      assert.equal(e.reason, reason, e.message);
      assert.ok(e.message.startsWith(`${reason}: `), e.message);
      if (detail) assert.match(e.message, detail);
      return true;
    });

  /** An approval whose statement is `text`, signed with `key` and carrying `cert`. */
  const forged = (text: string, key: Buffer = admin.key, cert: Buffer = admin.cert): OperatorApproval => ({
    statement: new Uint8Array(Buffer.from(text)),
    signature: new Uint8Array(sign('sha256', Buffer.from(text), createPrivateKey(key))),
    certificate: new Uint8Array(new X509Certificate(cert).raw),
  });

  it('createApproval: canonical JSON {op, fields, issued_ms, nonce}, DER ECDSA P-256 over it, the admin certificate DER; it verifies', () => {
    const now = Date.now();
    const approval = createApproval(admin, 'pair-setup', fields, now);
    const text = Buffer.from(approval.statement).toString('utf8');
    const parsed = JSON.parse(text) as Record<string, unknown>;
    assert.equal(canonicalJson(parsed), text);
    assert.deepEqual(Object.keys(parsed).sort(), ['a', 'b', 'issued_ms', 'key', 'nonce', 'op']);
    assert.equal(parsed.op, 'pair-setup');
    assert.equal(parsed.issued_ms, now);
    assert.match(String(parsed.nonce), /^[0-9a-f]{32}$/);
    assert.deepEqual(Buffer.from(approval.certificate), new X509Certificate(admin.cert).raw);
    assert.equal(approval.signature[0], 0x30, 'signature is a DER SEQUENCE');
    assert.ok(verify('sha256', approval.statement, createPublicKey(admin.cert), approval.signature), 'node:crypto does not verify the signature');
    const statement = check(approval, { now });
    assert.deepEqual({ op: statement.op, key: statement.key, a: statement.a, b: statement.b }, expect);
    // Two approvals of the same thing differ (nonce).
    assert.notDeepEqual(createApproval(admin, 'pair-setup', fields).statement, approval.statement);
    assert.throws(() => createApproval(admin, 'pair-setup', { nonce: 'x' }), /reserved/);
    assert.throws(() => createApproval(admin, 'pair-setup', { issued_ms: 1 }), /reserved/);
  });

  it('approval-missing: nothing, null or three empty fields; approval-malformed: some fields empty', () => {
    refused('approval-missing', () => check(undefined), /needs an operator approval of \{"a":1,"b":2,"key":"tls","op":"pair-setup"\}/);
    refused('approval-missing', () => check(null));
    refused('approval-missing', () => check({ statement: new Uint8Array(), signature: new Uint8Array(), certificate: new Uint8Array() }));
    const good = createApproval(admin, 'pair-setup', fields);
    refused('approval-malformed', () => check({ ...good, signature: new Uint8Array() }));
    refused('approval-malformed', () => check({ ...good, certificate: new Uint8Array([1, 2, 3]) }), /not a DER X\.509/);
  });

  it('approval-not-admin: signed with the coordinator identity (its key and certificate)', () => {
    refused('approval-not-admin', () => check(createApproval(coordinator, 'pair-setup', fields)), /signed by 'coordinator'/);
  });

  it("approval-untrusted: an `admin` of another CA; the cluster admin's certificate outside its validity", () => {
    refused('approval-untrusted', () => check(createApproval(foreignAdmin, 'pair-setup', fields)), /not issued by the cluster CA/);
    const cert = new X509Certificate(admin.cert);
    const later = Date.parse(cert.validTo) + 24 * 3600_000;
    refused('approval-untrusted', () => check(createApproval(admin, 'pair-setup', fields, later), { now: later }), /not valid now/);
    const earlier = Date.parse(cert.validFrom) - 24 * 3600_000;
    refused('approval-untrusted', () => check(createApproval(admin, 'pair-setup', fields, earlier), { now: earlier }), /not valid now/);
    // The CA's own certificate (and key) does not sign approvals either.
    const caKey = loadIdentity(join(root, 'pki'), 'ca');
    refused('approval-untrusted', () => check(createApproval({ cert: caKey.cert, key: caKey.key }, 'pair-setup', fields)));
  });

  it('approval-bad-signature: the admin certificate with another key; any byte of the statement changed', () => {
    const now = Date.now();
    const text = canonicalJson({ ...expect, issued_ms: now, nonce: '00'.repeat(16) });
    refused('approval-bad-signature', () => check(forged(text, coordinator.key, admin.cert), { now }));
    const good = createApproval(admin, 'pair-setup', fields, now);
    const tampered = Buffer.from(good.statement);
    tampered[tampered.indexOf('"b":2') + 4] = '3'.charCodeAt(0);
    refused('approval-bad-signature', () => check({ ...good, statement: new Uint8Array(tampered) }, { expect: { ...expect, b: 3 }, now }));
    const sig = Buffer.from(good.signature);
    sig[sig.length - 1]! ^= 1;
    refused('approval-bad-signature', () => check({ ...good, signature: new Uint8Array(sig) }, { now }));
  });

  it('approval-mismatch: another pair, key or op; a number given as a string; a field too many or missing', () => {
    const now = Date.now();
    const a = createApproval(admin, 'pair-setup', fields, now);
    refused('approval-mismatch', () => check(a, { expect: { ...expect, b: 3 } }), /for b 2, not 3/);
    refused('approval-mismatch', () => check(a, { expect: { ...expect, key: 'other' } }), /for key "tls", not "other"/);
    refused('approval-mismatch', () => check(a, { expect: { ...expect, op: 'adopt-policy' } }), /for op "pair-setup", not "adopt-policy"/);
    refused('approval-mismatch', () => check(createApproval(admin, 'pair-setup', { key: 'tls', a: '1', b: 2 }, now)), /for a "1", not 1/);
    refused('approval-mismatch', () => check(createApproval(admin, 'pair-setup', { ...fields, extra: 'x' }, now)), /does not take: extra/);
    refused('approval-mismatch', () => check(createApproval(admin, 'pair-setup', { key: 'tls', a: 1 }, now)), /has no 'b'/);
  });

  it('approval-malformed: validly signed statements that are not canonical JSON objects with an integer issued_ms and a hex nonce', () => {
    const now = Date.now();
    const body = { ...expect, issued_ms: now, nonce: 'ab'.repeat(16) };
    check(forged(canonicalJson(body)), { now }); // the control: the same construction, canonical
    refused('approval-malformed', () => check(forged(JSON.stringify(body, null, 1)), { now }), /not canonical/);
    refused('approval-malformed', () => check(forged('[1,2]'), { now }), /not a JSON object/);
    refused('approval-malformed', () => check(forged('{"op":'), { now }), /not UTF-8 JSON/);
    refused('approval-malformed', () => check(forged(canonicalJson({ ...body, issued_ms: String(now) })), { now }), /issued_ms/);
    refused('approval-malformed', () => check(forged(canonicalJson({ ...body, nonce: 'AB'.repeat(16) })), { now }), /nonce/);
    refused('approval-malformed', () => check(forged(canonicalJson({ ...body, nonce: 'ab' })), { now }), /nonce/);
  });

  it('approval-expired: issued more than maxAge before or after now; accepted just inside', () => {
    const now = Date.now();
    const age = DEFAULT_APPROVAL_MAX_AGE_MS;
    refused('approval-expired', () => check(createApproval(admin, 'pair-setup', fields, now - age - 1), { now }));
    refused('approval-expired', () => check(createApproval(admin, 'pair-setup', fields, now + age + 1), { now }));
    check(createApproval(admin, 'pair-setup', fields, now - age + 1000), { now });
    check(createApproval(admin, 'pair-setup', fields, now + age - 1000), { now });
    const short = new ReplayCache(MIN);
    refused('approval-expired', () => verifyApproval(createApproval(admin, 'pair-setup', fields, now - 2 * MIN), { caPem: admin.ca, expect, now, seen: short }));
    verifyApproval(createApproval(admin, 'pair-setup', fields, now - 2 * MIN), { caPem: admin.ca, expect, now, seen: short, maxAgeMs: 3 * MIN });
  });

  it('approval-replayed: the same approval twice with one cache; a fresh one is fine; refused approvals do not consume a nonce', () => {
    const seen = new ReplayCache();
    const now = Date.now();
    const a = createApproval(admin, 'pair-setup', fields, now);
    refused('approval-mismatch', () => check(a, { seen, now, expect: { ...expect, b: 3 } }));
    assert.equal(seen.size, 0);
    check(a, { seen, now });
    assert.equal(seen.size, 1);
    refused('approval-replayed', () => check(a, { seen, now: now + 1000 }), /used already/);
    check(createApproval(admin, 'pair-setup', fields, now), { seen, now });
    // Another verifier (another signer) has its own cache.
    check(a, { now });
  });

  it('the replay cache forgets a nonce only once its approval has expired, and is bounded', () => {
    const cache = new ReplayCache(MIN, 2);
    const t = 1_000_000;
    assert.ok(cache.remember('a'.repeat(32), t + MIN, t));
    assert.ok(cache.remember('b'.repeat(32), t + 2 * MIN, t));
    assert.equal(cache.remember('c'.repeat(32), t + MIN, t), false, 'a full cache must refuse, not forget an unexpired nonce');
    assert.ok(cache.has('a'.repeat(32), t + MIN));
    assert.equal(cache.has('a'.repeat(32), t + MIN + 1), false);
    assert.ok(cache.has('b'.repeat(32), t + MIN + 1));
    assert.equal(cache.size, 1);
    assert.ok(cache.remember('c'.repeat(32), t + 3 * MIN, t + MIN + 1));

    // Through verifyApproval: a full cache refuses further approvals until entries age out.
    const now = Date.now();
    const small = new ReplayCache(DEFAULT_APPROVAL_MAX_AGE_MS, 1);
    verifyApproval(createApproval(admin, 'pair-setup', fields, now), { caPem: admin.ca, expect, now, seen: small });
    refused('approval-replayed', () => verifyApproval(createApproval(admin, 'pair-setup', fields, now), { caPem: admin.ca, expect, now, seen: small }), /too many approvals/);
    const later = now + DEFAULT_APPROVAL_MAX_AGE_MS + 1;
    verifyApproval(createApproval(admin, 'pair-setup', fields, later), { caPem: admin.ca, expect, now: later, seen: small });
  });
});
