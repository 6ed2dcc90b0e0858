/**
 * TEST ONLY — a compute-thread entry (signer-node/compute/serve.ts) whose thread exits when it is
 * asked to build a presign of exactly workerData.extra.exitCount presignatures: how a crash of
 * the compute thread looks to the main thread (test/services/compute-thread.test.ts). Any other
 * session is the product's.
 */
import { workerData } from 'node:worker_threads';
import type { ComputeThreadData } from '../../signer-node/compute/serve.js';
import { serveCompute } from '../../signer-node/compute/serve.js';
import { createSession } from '../../signer-node/compute/specs.js';

const { exitCount } = (workerData as ComputeThreadData).extra as { exitCount: number };

serveCompute((spec) => {
  if (spec.protocol === 'presign' && spec.count === exitCount) process.exit(3); // in a worker: ends this thread only
  return createSession(spec);
});
