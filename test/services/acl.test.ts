/**
 * A key's client ACL on a real cluster, over TCP with mutual TLS: default deny, a client
 * certificate not in a key's ACL is refused for that key and accepted for a key that grants it,
 * `key grant` / `key revoke` change it for the next call, and each change is an audit record.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { scanAuditLog } from '../../src/audit/log.js';
import { paths } from '../../src/cluster/config.js';
import { expectStatus, tlsClient, unary, verifyTbs, type AnyClient } from '../coordinator/clients.js';
import { certificateVerifyTbs, cli, UpProcess } from './cluster-harness.js';

interface SignResponse {
  signature_der: Buffer;
}

describe('services/client ACL (mTLS identities against key client lists)', function () {
  this.timeout(600_000);
  const up = new UpProcess();
  let provider: AnyClient;
  const spki = new Map<string, Buffer>();

  const sign = (keyId: string, tbs = certificateVerifyTbs()) => unary<SignResponse>(provider, 'Sign', { key_id: keyId, tbs });

  before(async () => {
    await up.start(['--signers', '3', '--threshold', '2', '--no-tls']);
    for (const [id, clients] of [
      ['only-unix', 'unix'],
      ['for-provider', 'provider'],
      ['nobody', undefined],
    ] as const) {
      const r = cli(up.dir, 'key', 'create', id, '--threshold', '2', '--signers', '3', ...(clients ? ['--clients', clients] : []));
      assert.equal(r.status, 0, r.stderr);
      if (!clients) assert.match(r.stderr, /has no clients yet: nobody can sign with it until 'quorumkey key grant nobody CLIENT'/);
      spki.set(id, Buffer.from(cli(up.dir, 'key', 'show', id, '--pem').stdout));
    }
    provider = tlsClient('Coordinator', paths(up.dir).pki, up.config().coordinator.grpc, 'provider');
  });

  after(async () => {
    provider?.close();
    await up.stop();
    rmSync(up.dir, { recursive: true, force: true });
  });

  it('refuses the provider certificate for keys that do not list it (default deny), signs for the key that does', async () => {
    await expectStatus(sign('only-unix'), grpc.status.PERMISSION_DENIED, /client 'provider' may not use key 'only-unix' \(allowed: unix; grant with 'quorumkey key grant only-unix provider'\)/);
    await expectStatus(sign('nobody'), grpc.status.PERMISSION_DENIED, /client 'provider' may not use key 'nobody' \(allowed: nobody;/);
    const tbs = certificateVerifyTbs();
    const ok = await sign('for-provider', tbs);
    assert.ok(verifyTbs(pemToDer(spki.get('for-provider')!), tbs, ok.signature_der), 'the granted key signs and it verifies');
  });

  it('key grant opens a key to a client for the next call, key revoke closes it again; both are audited', async () => {
    const granted = cli(up.dir, 'key', 'grant', 'only-unix', 'provider');
    assert.equal(granted.status, 0, granted.stderr);
    assert.match(granted.stdout, /clients: provider, unix/);
    const tbs = certificateVerifyTbs();
    const ok = await sign('only-unix', tbs);
    assert.ok(verifyTbs(pemToDer(spki.get('only-unix')!), tbs, ok.signature_der));

    const revoked = cli(up.dir, 'key', 'revoke', 'only-unix', 'provider');
    assert.equal(revoked.status, 0, revoked.stderr);
    assert.match(revoked.stdout, /clients: unix\n/);
    await expectStatus(sign('only-unix'), grpc.status.PERMISSION_DENIED, /client 'provider' may not use key 'only-unix'/);

    const events: Record<string, unknown>[] = [];
    const res = await scanAuditLog(join(paths(up.dir).coordinator, 'audit.log'), (e) => {
      const r = e.record as Record<string, unknown>;
      if (r.event === 'acl-grant' || r.event === 'acl-revoke') events.push(r);
    });
    assert.ok(res.ok);
    assert.deepEqual(
      events.map((e) => [e.event, e.key_id, e.client, e.operator, e.clients]),
      [
        ['acl-grant', 'only-unix', 'provider', 'admin', ['provider', 'unix']],
        ['acl-revoke', 'only-unix', 'provider', 'admin', ['unix']],
      ],
    );
    // The ACL records sit in the same chain the cross-check reads; it still agrees.
    const cross = cli(up.dir, 'audit', 'verify', '--cross');
    assert.equal(cross.status, 0, cross.stdout + cross.stderr);
  });

  it('grant and revoke validate their input and need the admin identity', async () => {
    assert.match(cli(up.dir, 'key', 'grant', 'only-unix', 'bad name').stderr, /INVALID_ARGUMENT: client identity "bad name" must match/);
    assert.match(cli(up.dir, 'key', 'grant', 'missing', 'provider').stderr, /NOT_FOUND: unknown key 'missing'/);
    const asProvider = tlsClient('Admin', paths(up.dir).pki, up.config().coordinator.grpc, 'provider');
    await expectStatus(unary(asProvider, 'GrantClient', { key_id: 'only-unix', client: 'provider' }), grpc.status.PERMISSION_DENIED, /may not use the Admin service/);
    asProvider.close();
    await expectStatus(sign('only-unix'), grpc.status.PERMISSION_DENIED);
  });
});

function pemToDer(pem: Buffer): Buffer {
  return Buffer.from(pem.toString().replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}
