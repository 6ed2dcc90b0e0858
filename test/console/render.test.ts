/**
 * The console's pages drawn from a snapshot, without a server: the fields added for epochs,
 * pending shares, pool marks, audit files and CA-issued certificates, all escaped; and the
 * issued-certificate database matched to keys by public key (certificates made by openssl).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { IssuedCertificates } from '../../src/console/certificates.js';
import { renderPage } from '../../src/console/render.js';
import type { ConsoleSnapshot, KeyRow } from '../../src/console/snapshot.js';
import { caPaths } from '../../src/pki/ca/store.js';

const HOSTILE = '<script>window.__pwned=1</script>';

function key(over: Partial<KeyRow>): KeyRow {
  return {
    id: 'tls',
    threshold: 2,
    signers: [1, 2, 3],
    healthy: [1, 2, 3],
    quorum: true,
    epoch: 2,
    contexts: ['tls-handshake'],
    policy: '{}',
    policySealed: true,
    clients: ['provider'],
    publicKey: '02'.padEnd(66, '0'),
    created: 0,
    subsets: { total: 3, usable: 3, available: 3 },
    holderEpochs: [1, 2, 3].map((signer) => ({ signer, epoch: 2, pending: undefined })),
    offEpoch: [],
    pendingOn: [],
    certificates: [],
    ...over,
  };
}

function snapshot(keys: KeyRow[]): ConsoleSnapshot {
  return {
    generated: 0,
    degraded: [],
    signers: [1, 2, 3].map((index) => ({ index, endpoint: `127.0.0.1:${index}`, up: true, quarantined: false, quarantineReason: '', bootId: 'b', latencyMs: 1, lastError: '', epochs: [{ keyId: HOSTILE, epoch: 1 }], pending: index === 2 ? [{ keyId: 'tls', epoch: 3 }] : [], conflicts: [] })),
    keys,
    pools: [{ keyId: 'tls', subset: [1, 2], depth: 3, lowWater: 32, target: 64 }],
    poolBatch: 16,
    certificateProblem: undefined,
    audit: { head: { seq: 0, hash: '0'.repeat(64) }, writable: true, problem: undefined, merkleRoot: '', merkleRecords: 0, verify: { ok: true }, latest: [], files: [{ name: `audit.log.000001${HOSTILE}`, bytes: 10, active: false }, { name: 'audit.log', bytes: 5, active: true }], rotateBytes: 1024 },
    rates: [],
  };
}

describe('console: the pages of epochs, pending shares, pool marks, audit files and certificates', () => {
  const cert = { serial: '0a1b', subject: `CN=${HOSTILE}`, notBefore: '2020-01-01T00:00:00.000Z', notAfter: '2020-02-01T00:00:00.000Z', revoked: undefined };
  const keys = [
    key({ id: 'stale', holderEpochs: [{ signer: 1, epoch: 2, pending: undefined }, { signer: 2, epoch: 2, pending: 3 }, { signer: 3, epoch: 1, pending: undefined }], offEpoch: [3], pendingOn: [2] }),
    key({ certificates: [{ ...cert, serial: '0c', notAfter: '2999-01-01T00:00:00.000Z' }, { ...cert, revoked: { at: '2020-01-15T00:00:00.000Z', reason: 'keyCompromise' } }, cert] }),
  ];

  it('flags a key off its committed epoch and a pending refresh, with the runbook hint', () => {
    const page = renderPage('keys', snapshot(keys), 'admin');
    assert.match(page, /<tr class="key-stale bad pending">/);
    assert.match(page, /signers 3 on another epoch/);
    assert.match(page, /refresh pending on 2/);
    assert.ok(page.includes('1:2 2:2 (pending 3) 3:1'));
    assert.ok(page.includes('# signer 3 holds stale at epoch 1, committed is 2') && page.includes('runbook &quot;restore a backup&quot;'));
  });

  it('shows each certificate of a key: serial, escaped subject, notAfter, valid / revoked / expired', () => {
    const page = renderPage('keys', snapshot(keys), 'admin');
    assert.ok(!page.includes('<script>window'), 'the subject is escaped');
    assert.equal(page.match(/CN=&lt;script&gt;window.__pwned=1&lt;\/script&gt;/g)?.length, 3);
    assert.match(page, /<code class="serial">0c<\/code>.*until <time class="not-after">2999-01-01T00:00:00.000Z<\/time> <span class="state ok">valid<\/span>/);
    assert.match(page, /revoked 2020-01-15T00:00:00.000Z \(keyCompromise\)/);
    assert.match(page, /2020-02-01T00:00:00.000Z<\/time> <span class="state bad">expired<\/span>/);
    assert.ok(page.includes('quorumkey cert list'));
  });

  it('shows signer epochs and pending shares with the hint, pools against both marks, the audit files', () => {
    const cluster = renderPage('cluster', snapshot(keys), 'admin');
    assert.ok(!cluster.includes('<script>window'));
    assert.ok(cluster.includes('&lt;script&gt;window.__pwned=1&lt;/script&gt;@1'));
    assert.ok(cluster.includes('<span class="state warn">tls@3</span>'));
    assert.ok(cluster.includes('# signer 2 holds a pending share of tls (epoch 3): the coordinator commits or discards it'));
    const pools = renderPage('pools', snapshot(keys), 'admin');
    assert.match(pools, /<tr class="pool low">.*<td>32<\/td><td>64<\/td>.*below low water/);
    const audit = renderPage('audit', snapshot(keys), 'admin');
    assert.ok(audit.includes('the active file rotates at 1024 bytes'));
    assert.ok(audit.includes('<td>audit.log.000001&lt;script&gt;') && !audit.includes('<script>window'));
    assert.match(audit, /<td>audit.log<\/td><td>5<\/td><td>active<\/td>/);
  });
});

describe('console: issued certificates by key', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'qk-console-ca-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A self-signed P-256 certificate (openssl) and the compressed public key it certifies. */
  function certificate(cn: string): { der: string; publicKey: string } {
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, `${cn}.key`), '-subj', `/CN=${cn}`, '-days', '1', '-outform', 'DER', '-out', join(dir, `${cn}.der`)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const spki = createPublicKey({ key: readFileSync(join(dir, `${cn}.key`)) }).export({ type: 'spki', format: 'der' });
    const point = new Uint8Array(spki.subarray(spki.length - 65));
    return { der: readFileSync(join(dir, `${cn}.der`)).toString('base64'), publicKey: Buffer.from(p256.Point.fromBytes(point).toBytes(true)).toString('hex') };
  }

  it('matches each certificate to its key, newest first, re-reads the database when it changes, reports a broken one', () => {
    const p = caPaths(dir);
    const view = new IssuedCertificates(p);
    assert.equal(view.current().byKey.size, 0, 'no CA: no certificates, no problem');
    assert.equal(view.current().problem, undefined);
    mkdirSync(p.root);
    const a = certificate('a');
    const b = certificate('b');
    const entry = (serial: string, c: { der: string }, revoked?: { at: string; reason: string }) => ({ serial, subject: `CN=${serial}`, profile: 'tls-server', notBefore: 'x', notAfter: 'y', issuedAt: 'z', der: c.der, ...(revoked ? { revoked } : {}) });
    writeFileSync(p.issued, JSON.stringify({ version: 1, crlNumber: 0, certificates: [entry('01', a), entry('02', b), entry('03', a, { at: 't', reason: 'superseded' })] }));
    const got = view.current();
    assert.deepEqual(got.byKey.get(a.publicKey)?.map((c) => [c.serial, c.revoked?.reason]), [['03', 'superseded'], ['01', undefined]]);
    assert.deepEqual(got.byKey.get(b.publicKey)?.map((c) => c.serial), ['02']);
    writeFileSync(p.issued, '{"version": 1, "certificates": "not a list"}');
    assert.match(view.current().problem ?? '', /issued-certificate database .* is not a quorumkey CA file of version 1/);
  });
});
