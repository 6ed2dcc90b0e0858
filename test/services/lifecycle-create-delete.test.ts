/**
 * Atomic key creation and explicit deletion on real signer processes (issue 9, DESIGN §7): a
 * creation that fails on one signer — its shares directory immutable, or the signer SIGKILLed
 * during the key generation — leaves no file of the key in any data directory and the id can be
 * created again; `quorumkey key delete ID --yes` (the CLI, admin identity, approval checked by
 * every holder) erases every share, audited by the coordinator and each signer; a delete with a
 * holder down is refused, erasing nothing, and succeeds when run again with it back.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { CoordinatorError } from '../../src/coordinator/errors.js';
import { waitFor } from '../coordinator/clients.js';
import { auditEvent, LifecycleCluster } from './lifecycle-harness.js';
import { call, client, identity, mtls } from './signer-cluster.js';

const HOLDERS = [1, 2, 3];

async function rejected(p: Promise<unknown>): Promise<CoordinatorError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CoordinatorError, `a CoordinatorError, got ${(e as Error)?.message}`);
    return e;
  }
  return assert.fail('expected the call to fail');
}

describe('key lifecycle: atomic creation and delete (real signer processes)', function () {
  this.timeout(300_000);
  let c: LifecycleCluster;

  before(async () => {
    c = await LifecycleCluster.create(HOLDERS, 10_000);
    await c.startCoordinator();
  });
  after(async () => {
    await c?.close();
  });

  it('a creation whose share write fails on one signer leaves no share anywhere; the id is created again', async () => {
    // Root ignores file modes: an immutable directory refuses even root's new files (ext4).
    execFileSync('chattr', ['+i', c.sharesDir(3)]);
    let err: CoordinatorError;
    try {
      err = await rejected(c.createKey('atomic', 2, HOLDERS));
    } finally {
      execFileSync('chattr', ['-i', c.sharesDir(3)]);
    }
    assert.match(err.message, /key generation of 'atomic' failed: signer 3 KeyGen: INTERNAL/);
    assert.match(err.message, /rolled back: no holder keeps a share of this attempt/);
    assert.deepEqual(c.keyFiles('atomic'), [], 'no share, pending share or temp file of the key in any data directory');
    assert.equal(c.coordinator!.keys.get('atomic'), undefined, 'not in keys.json');
    const again = await c.createKey('atomic', 2, HOLDERS);
    assert.equal(again.epoch, 0);
    assert.deepEqual(c.keyFiles('atomic').sort(), HOLDERS.map((i) => `signer-${i}/atomic.share`));
    await c.signAndVerify('atomic');
  });

  it('a signer SIGKILLed during the key generation: no share anywhere (also after it restarts); the id is created again', async () => {
    const victim = c.signers.get(3)!;
    const from = victim.stderr.length;
    const creating = rejected(c.createKey('killed', 2, HOLDERS));
    await waitFor('signer 3 started the key generation', () => victim.stderr.slice(from).some((l) => l.includes('"key generation started"') && l.includes('"killed"')), 60_000, 5);
    await c.killSigner(3);
    const err = await creating;
    assert.match(err.message, /key generation of 'killed' failed/);
    assert.match(err.message, /rolled back/);
    assert.deepEqual(c.keyFiles('killed').filter((f) => !f.startsWith('signer-3/')), [], 'the live signers keep nothing');
    await c.startSigner(3);
    await waitFor('signer 3 up again', () => c.coordinator!.signers.healthy(3), 30_000);
    // Whatever signer 3 had sealed before it died is pending, never committed: discarded.
    await waitFor('no file of the key in any data directory', () => c.keyFiles('killed').length === 0, 30_000, 200);
    await c.createKey('killed', 2, HOLDERS);
    assert.deepEqual(c.keyFiles('killed').sort(), HOLDERS.map((i) => `signer-${i}/killed.share`));
    await c.signAndVerify('killed');
    await c.signAndVerify('atomic'); // the other key never noticed
  });

  it('EraseKey needs the operator approval: the coordinator certificate alone erases nothing', async () => {
    const s = c.cluster.config.signers.find((x) => x.index === 1)!;
    const stub = client('Signer', s.endpoint, 'signer-1', mtls(identity(c.cluster, 'coordinator')));
    try {
      const r = await call(stub, 'EraseKey', { key_id: 'atomic' });
      assert.equal(r.error?.code, grpc.status.PERMISSION_DENIED);
      assert.match(r.error!.details, /approval-missing/);
    } finally {
      stub.close();
    }
    assert.ok(c.keyFiles('atomic').includes('signer-1/atomic.share'));
  });

  it('key delete without --yes says what it would erase and erases nothing', async () => {
    const r = await c.cli('key', 'delete', 'atomic');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /key delete would erase every share of key 'atomic' \(signers \[1,2,3\], epoch 0, public key [0-9a-f]{66}\).*--yes/);
    assert.equal(c.keyFiles('atomic').length, 3);
  });

  it('key delete --yes with a holder down is refused and erases nothing; run again with it back, every share is gone', async () => {
    await c.killSigner(2);
    await waitFor('signer 2 down at the coordinator', async () => {
      await c.coordinator!.signers.probe(2);
      return !c.coordinator!.signers.state(2).up;
    }, 30_000, 200);
    const refused = await c.cli('key', 'delete', 'atomic', '--yes');
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /UNAVAILABLE: cannot delete key 'atomic': signers \[2\] are down; nothing was erased/);
    assert.deepEqual(c.keyFiles('atomic').sort(), HOLDERS.map((i) => `signer-${i}/atomic.share`));
    await c.signAndVerify('atomic'); // still a key: 1 and 3 sign

    await c.startSigner(2);
    await waitFor('signer 2 up again', () => c.coordinator!.signers.healthy(2), 30_000);
    const auditBefore = c.auditRecords().length;
    const done = await c.cli('key', 'delete', 'atomic', '--yes');
    assert.equal(done.status, 0, done.stderr);
    assert.match(done.stdout, /key 'atomic' deleted: signers \[1,2,3\] erased their shares/);
    assert.deepEqual(c.keyFiles('atomic'), [], 'no file of the key in any data directory');
    assert.equal(c.coordinator!.keys.get('atomic'), undefined);
    assert.equal(c.coordinator!.keys.deletingKey('atomic'), undefined, 'nothing left to erase');
    const events = c.auditRecords().slice(auditBefore).map(auditEvent);
    assert.deepEqual(events.map((e) => e.event), ['key-delete', 'key-deleted']);
    assert.equal(events[0]!.operator, 'admin');
    for (const i of HOLDERS) assert.ok(c.auditRecords(i).map(auditEvent).some((e) => e.event === 'key-erased' && e.key_id === 'atomic'), `signer ${i} audited its erasure`);
    const list = await c.cli('key', 'list');
    assert.equal(list.status, 0, list.stderr);
    assert.doesNotMatch(list.stdout, /^atomic /m);
    assert.match(list.stdout, /^killed /m, 'the other key stays');
    await rejected(c.coordinator!.signService.sign({ keyId: 'atomic', tbs: randomBytes(64), digestAlg: 'sha256', caller: 'unix', deadline: Date.now() + 10_000 }));
    await c.signAndVerify('killed');
  });

  it('a deleted id can be created again', async () => {
    await c.createKey('atomic', 2, HOLDERS);
    await c.signAndVerify('atomic');
  });
});
