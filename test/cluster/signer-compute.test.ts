/** cluster.json's signerCompute: defaults, bad values named, and the coordinator's pool.batch bound by it. */
import assert from 'node:assert/strict';
import { DEFAULT_POOL, DEFAULT_SIGNER_COMPUTE, signerCompute, type ClusterConfig } from '../../src/cluster/config.js';
import { poolConfig } from '../../src/coordinator/service.js';

const config = (extra: Partial<ClusterConfig>): ClusterConfig =>
  ({ signers: [], coordinator: { grpc: '127.0.0.1:1', socket: 's', http: '127.0.0.1:2' }, pool: DEFAULT_POOL, sessionTimeoutMs: 1000, ...extra }) as ClusterConfig;

describe('cluster.json signerCompute', () => {
  it('defaults to nice +10 and batches of at most 64; a partial setting keeps the other default', () => {
    assert.deepEqual(signerCompute(config({})), { niceIncrement: 10, maxPresignBatch: 64 });
    assert.deepEqual(DEFAULT_SIGNER_COMPUTE, { niceIncrement: 10, maxPresignBatch: 64 });
    assert.deepEqual(signerCompute(config({ signerCompute: { maxPresignBatch: 128 } })), { niceIncrement: 10, maxPresignBatch: 128 });
  });

  it('names a bad value', () => {
    assert.throws(() => signerCompute(config({ signerCompute: { niceIncrement: 20 } })), /signerCompute\.niceIncrement must be an integer in \[0, 19\], got 20/);
    assert.throws(() => signerCompute(config({ signerCompute: { maxPresignBatch: 0 } })), /signerCompute\.maxPresignBatch must be an integer in \[1, 256\], got 0/);
    assert.throws(() => signerCompute(config({ signerCompute: { maxPresignBatch: 1.5 } })), /maxPresignBatch .*got 1\.5/);
  });

  it('the coordinator refuses a pool.batch the signers would refuse', () => {
    assert.equal(poolConfig(config({ pool: { ...DEFAULT_POOL, batch: 64 } })).batch, 64);
    assert.throws(() => poolConfig(config({ pool: { ...DEFAULT_POOL, batch: 65 } })), /pool\.batch 65 is above what the signers accept \(signerCompute\.maxPresignBatch 64\)/);
    assert.equal(poolConfig(config({ pool: { ...DEFAULT_POOL, batch: 200 }, signerCompute: { maxPresignBatch: 256 } })).batch, 200);
  });
});
