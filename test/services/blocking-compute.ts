/**
 * TEST ONLY — the compute-thread entry of the malicious signer wrapper (malicious-signer.ts) in
 * mode keygen-block: the product's sessions (signer-node/compute/specs.ts), except that a key
 * generation's step stops its thread when the first peer message arrives, until the test lets it
 * go. It writes `blockedFile` (the key's id) when it stops and goes on once `releaseFile` exists:
 * the test knows the compute thread is busy for as long as it wants, with no clock involved
 * (test/services/signer-offload-dealing.test.ts).
 *
 * workerData.extra: { blockedFile, releaseFile } (malicious-signer.ts: KEYGEN_BLOCKED_FILE,
 * KEYGEN_RELEASE_FILE in the signer's data directory).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import type { ComputeThreadData } from '../../signer-node/compute/serve.js';
import { serveCompute } from '../../signer-node/compute/serve.js';
import { createSession } from '../../signer-node/compute/specs.js';

const { blockedFile, releaseFile } = (workerData as ComputeThreadData).extra as { blockedFile: string; releaseFile: string };
const pause = new Int32Array(new SharedArrayBuffer(4));

serveCompute((spec) => {
  const session = createSession(spec);
  if (spec.protocol !== 'dkg') return session;
  const receive = session.receive.bind(session);
  let blocked = false;
  session.receive = (message, sender) => {
    if (!blocked) {
      blocked = true;
      writeFileSync(blockedFile, spec.keyId);
      while (!existsSync(releaseFile)) Atomics.wait(pause, 0, 0, 20); // this thread only
    }
    receive(message, sender);
  };
  return session;
});
