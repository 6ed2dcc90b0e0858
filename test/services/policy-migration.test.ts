/**
 * Keys from before policies were sealed: a real cluster whose shares and keys.json are turned
 * back into the old form (share without a policy, keys.json version 1) while it is stopped. On
 * restart the key signs nothing (the coordinator and every signer say why), `key show` says the
 * policy is not sealed, and only the operator's `key adopt-policy` — an approval signed with the
 * admin identity, checked by every signer — makes it sign again. A sealed policy never changes.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { paths, readClusterConfig } from '../../src/cluster/config.js';
import { createApproval } from '../../src/pki/operator-approval.js';
import { loadIdentity, signerName } from '../../src/pki/cluster-ca.js';
import { encodeKeyPolicy, keyPolicyDigest } from '../../src/policy/key-policy.js';
import { services } from '../../src/transport/proto.js';
import { channelOptions, clientCredentials } from '../../src/transport/tls.js';
import { createKek, ShareStore } from '../../signer-node/shares.js';
import { certificateVerifyTbs, cli, runMaliciousCoordinator, signOverGrpc, UpProcess } from './cluster-harness.js';

async function stripPolicies(dir: string): Promise<void> {
  const config = readClusterConfig(dir);
  for (const s of config.signers) {
    const kek = createKek(dir, s.index, s.seal);
    try {
      const store = new ShareStore(dir, s.index, kek);
      const { shares } = await store.loadAll();
      for (const share of shares) await store.save({ ...share, policy: new Uint8Array(0) });
    } finally {
      kek.dispose();
    }
  }
  const file = join(paths(dir).coordinator, 'keys.json');
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { keys: Record<string, unknown>[] };
  const legacy = { version: 1, keys: doc.keys.map((k) => ({ id: k.id, threshold: k.threshold, signers: k.signers, publicKey: k.publicKey, policy: (k.policy as { contexts: string[] }).contexts, epoch: k.epoch, created: k.created, clients: k.clients })) };
  writeFileSync(file, JSON.stringify(legacy));
}

function setPolicy(dir: string, signer: number, request: unknown): Promise<{ policy: Buffer }> {
  const config = readClusterConfig(dir);
  const endpoint = config.signers.find((s) => s.index === signer)!.endpoint;
  const client = new services.Signer(endpoint, clientCredentials(loadIdentity(paths(dir).pki, 'coordinator')), channelOptions(signerName(signer))) as grpc.Client & Record<string, Function>;
  return new Promise((resolve, reject) =>
    client.SetPolicy!(request, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, res: { policy: Buffer }) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    }),
  );
}

describe('services/policy migration (shares sealed before policies)', function () {
  this.timeout(600_000);
  const up = new UpProcess();

  after(async () => {
    await up.stop();
    rmSync(up.dir, { recursive: true, force: true });
  });

  it('a legacy key signs nothing until the operator adopts its policy, which every signer checks', async () => {
    await up.start(['--signers', '3', '--threshold', '2', '--no-tls']);
    await up.stop();
    await stripPolicies(up.dir);
    await up.start(['--signers', '3', '--threshold', '2', '--no-tls']);

    const show = cli(up.dir, 'key', 'show', 'tls');
    assert.match(show.stdout, /POLICY NOT SEALED: the signers sign nothing with this key until 'quorumkey key adopt-policy tls'/);
    const client = up.coordinator();
    const refused = await signOverGrpc(client, 'tls', certificateVerifyTbs());
    assert.equal(refused.code, grpc.status.PERMISSION_DENIED);
    assert.match(refused.details ?? '', /created before policies were sealed/);

    // Every signer refuses too, whoever asks with the coordinator's certificate.
    const [attempt] = runMaliciousCoordinator(up.dir, [{ name: 'legacy key', key: 'tls', subset: [1, 2], digestAlg: 'SHA256', requests: [{ tbs: certificateVerifyTbs().toString('hex') }] }]);
    for (const o of attempt!.requests[0]!.outcomes) assert.deepEqual([o.ok, o.code, o.refusal], [false, grpc.status.PERMISSION_DENIED, 'policy-not-sealed'], o.details);

    // A coordinator cannot seal a policy by itself: its own key makes no admin approval.
    const policy = encodeKeyPolicy({ contexts: ['tls-server', 'x509-csr'], rate: { perSecond: 1000, perHour: 1_000_000 } });
    const forged = createApproval(loadIdentity(paths(up.dir).pki, 'coordinator'), 'adopt-policy', { key: 'tls', policy_digest: Buffer.from(keyPolicyDigest(policy)).toString('hex') });
    await assert.rejects(setPolicy(up.dir, 1, { key_id: 'tls', policy, approval: forged }), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED && /approval-not-admin/.test(e.details));

    const adopt = cli(up.dir, 'key', 'adopt-policy', 'tls');
    assert.equal(adopt.status, 0, adopt.stderr);
    assert.doesNotMatch(adopt.stdout, /NOT SEALED/);
    const signed = await signOverGrpc(client, 'tls', certificateVerifyTbs());
    client.close();
    assert.ok(signed.ok, signed.details);

    // The sealed policy never changes: even an admin approval of another one is refused.
    const raw = encodeKeyPolicy({ contexts: ['raw-digest'], rate: { perSecond: 1000, perHour: 1_000_000 } });
    const admin = createApproval(loadIdentity(paths(up.dir).pki, 'admin'), 'adopt-policy', { key: 'tls', policy_digest: Buffer.from(keyPolicyDigest(raw)).toString('hex') });
    await assert.rejects(setPolicy(up.dir, 1, { key_id: 'tls', policy: raw, approval: admin }), (e: grpc.ServiceError) => e.code === grpc.status.FAILED_PRECONDITION && /a sealed policy never changes/.test(e.details));
    // And it survives a restart (it is in the sealed share, and keys.json is version 2 again).
    await up.stop();
    await up.start(['--signers', '3', '--threshold', '2', '--no-tls']);
    const again = up.coordinator();
    const after = await signOverGrpc(again, 'tls', certificateVerifyTbs());
    again.close();
    assert.ok(after.ok, after.details);
    assert.equal(JSON.parse(readFileSync(join(paths(up.dir).coordinator, 'keys.json'), 'utf8')).version, 2);
  });
});
