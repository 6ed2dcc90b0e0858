/**
 * Attack 1 of the review with real processes: this test is the compromised coordinator (it
 * holds the coordinator certificate and calls the Signer service directly), signer 2 is the
 * test-only wrapper in mode replay-collude, signer 1 is an honest signer process. The
 * coordinator records a presign label, kill -9s signer 1, restarts it and sends it the same
 * label again; the colluder repeats its session with its choice bits flipped and hands over the
 * two VOLE messages it got from signer 1. The extraction arithmetic (τ + τ′)/2 that recovered
 * the key share before every party's nonce went into the context must now recover nothing.
 * (test/protocol/replay.test.ts shows, as a control, that the arithmetic does recover the input
 * when the context repeats.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { paths } from '../../src/cluster/config.js';
import { mulBase, pointsEqual } from '../../src/protocol/math/curve.js';
import { bytesToBigInt, invert, mod, SCALAR_BYTES } from '../../src/protocol/math/scalar.js';
import { VOLE_OTS } from '../../src/protocol/vole.js';
import { MALICIOUS_MODE_ENV, OBSERVED_FILE } from './malicious-signer.js';
import { launch, running, stop, type Proc } from './processes.js';
import { client, commitShares, createTestCluster, identity, mtls, ok, policyBytes, SIGNER_MAIN, type Stub, type TestCluster } from './signer-cluster.js';

const MALICIOUS_MAIN = fileURLToPath(new URL('./malicious-signer.js', import.meta.url));
const SIGNER_READY = /^signer (\d+) ready grpc=(\S+) http=(\S+)$/;
const KEY = 'replayed';
const HONEST = 1;
const COLLUDER = 2;

interface Observed {
  label: string;
  from: number;
  tau: string;
  keyShares: string;
  context: string;
}

describe('replayed presign label after kill -9 of an honest signer (real processes, attack 1)', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  const procs = new Map<number, Proc>();
  const stubs = new Map<number, Stub>();
  const args = (i: number) => ['--dir', cluster.dir, '--index', String(i)];
  const startHonest = async () => procs.set(HONEST, await launch('signer 1', SIGNER_MAIN, args(HONEST), cluster.env, SIGNER_READY));

  before(async () => {
    cluster = await createTestCluster({ signers: [HONEST, COLLUDER], sessionTimeoutMs: 10_000 });
    await startHonest();
    procs.set(COLLUDER, await launch('signer 2 (wrapper: replay-collude)', MALICIOUS_MAIN, args(COLLUDER), { ...cluster.env, [MALICIOUS_MODE_ENV]: 'replay-collude' }, SIGNER_READY));
    const creds = mtls(identity(cluster, 'coordinator'));
    for (const s of cluster.config.signers) stubs.set(s.index, client('Signer', s.endpoint, `signer-${s.index}`, creds));
  });

  after(async () => {
    for (const s of stubs.values()) s.close();
    await Promise.all([...running].map((p) => stop(p)));
    if (cluster) rmSync(cluster.root, { recursive: true, force: true });
  });

  const both = <T>(method: string, request: object) => Promise.all([HONEST, COLLUDER].map((i) => ok<T>(stubs.get(i)!, method, request, 60_000)));

  it('the same label twice, the honest signer killed and restarted in between: the extraction yields nothing', async () => {
    const [dealt] = await both<{ epoch: number; public_shares_digest: Buffer }>('KeyGen', { key_id: KEY, session_id: randomBytes(32), parties: [HONEST, COLLUDER], threshold: 2, policy: policyBytes() });
    await commitShares([HONEST, COLLUDER].map((i) => stubs.get(i)!), KEY, dealt!);
    const label = randomBytes(32);
    const presign = { key_id: KEY, session_id: label, subset: [HONEST, COLLUDER], count: 1 };
    await both('Presign', presign);

    const honest = procs.get(HONEST)!;
    process.kill(honest.pid, 'SIGKILL');
    await honest.exited;
    await startHonest();
    await both('Presign', presign); // the replay: accepted, because it is harmless now

    const observed = readFileSync(join(paths(cluster.dir).signer(COLLUDER), OBSERVED_FILE), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Observed)
      .filter((o) => o.from === HONEST && o.label === label.toString('hex'));
    assert.equal(observed.length, 2, 'the colluder saw the honest signer answer the same label twice');
    assert.ok(procs.get(COLLUDER)!.stderr.some((l) => l.includes('"malicious: tampered"') && l.includes('choice-bits')), 'the colluder flipped its choice bits');
    const [first, second] = observed as [Observed, Observed];
    assert.notEqual(first.context, second.context, "the restarted signer's fresh nonce changed the context");

    const tau1 = Buffer.from(first.tau, 'hex');
    const tau2 = Buffer.from(second.tau, 'hex');
    const points = [first.keyShares, second.keyShares].map((k) => Buffer.from(k, 'hex').subarray(0, 33));
    const half = invert(2n);
    for (const ot of [0, 1, 100, VOLE_OTS - 1]) {
      const at = (ot * 3 + 1) * SCALAR_BYTES; // correlation 1: the key-share input
      const candidate = mod((bytesToBigInt(tau1.subarray(at, at + SCALAR_BYTES)) + bytesToBigInt(tau2.subarray(at, at + SCALAR_BYTES))) * half);
      for (const point of points) assert.equal(pointsEqual(mulBase(candidate), point), false, `OT ${ot}: (τ + τ′)/2 is the honest key share`);
    }
  });
});
