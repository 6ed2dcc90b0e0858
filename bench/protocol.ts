/**
 * Protocol benchmark (printed, never asserted): 3-of-5, all parties in this process over the
 * in-memory network, so process CPU time is the sum over the three parties.
 *   npm run bench:protocol
 */
import { randomBytes } from 'node:crypto';
import { Cluster, sha256 } from '../test/protocol/harness.js';
import { curveBackend, nativeCurveBackend, nobleBackend, useCurveBackend, type CurveBackend } from '../src/protocol/math/curve.js';
import type { ProtocolMessage } from '../src/protocol/message.js';
import { defaultOtRowHasher, nativeRowHashVariant } from '../src/protocol/ot/native-hasher.js';
import { voleBackend } from '../src/protocol/vole.js';

const SUBSET = [1, 3, 5];

function cpuMs<T>(work: () => T): { value: T; ms: number } {
  const start = process.cpuUsage();
  const value = work();
  const used = process.cpuUsage(start);
  return { value, ms: (used.user + used.system) / 1000 };
}

function payloadBytes(messages: readonly ProtocolMessage[]): number {
  return messages.reduce((n, m) => n + Object.values(m.payload).reduce((k, v) => k + v.length, 0), 0);
}

function measure(backend: CurveBackend, batches: readonly number[], rounds: number): void {
  useCurveBackend(backend);
  const cluster = new Cluster(5);
  const dkg = cpuMs(() => cluster.keyGen('bench', 3));
  console.log(`\n[${backend.name}] backends: curve ${backend.name}, VOLE arithmetic ${voleBackend().name}, OT row hashing ${defaultOtRowHasher}${nativeRowHashVariant ? ` (${nativeRowHashVariant})` : ''}`);
  console.log(`[${backend.name}] key generation 3-of-5: ${dkg.ms.toFixed(0)} ms CPU (all five parties)`);
  cluster.presign('bench', SUBSET, 1); // warm-up
  for (const batch of batches) {
    let total = 0;
    let bytes = 0;
    for (let r = 0; r < rounds; r++) {
      const { value, ms } = cpuMs(() => cluster.presign('bench', SUBSET, batch));
      total += ms;
      bytes = payloadBytes(value.transcript);
    }
    const pairs = SUBSET.length * (SUBSET.length - 1);
    console.log(
      `[${backend.name}] presign batch ${String(batch).padStart(2)}: ${(total / rounds / batch).toFixed(2)} ms CPU per presignature (3 parties), ` +
        `${Math.round(bytes / batch / pairs)} bytes per presignature per ordered pair`,
    );
  }
  const presignatures = cluster.presign('bench', SUBSET, 50).outputs.get(SUBSET[0]!)!;
  const signing = cpuMs(() => presignatures.forEach((p) => cluster.sign('bench', p, sha256(randomBytes(32)))));
  console.log(`[${backend.name}] online round + combine + verify: ${(signing.ms / presignatures.length).toFixed(3)} ms CPU per signature`);
}

const native = nativeCurveBackend();
const original = curveBackend();
console.log(`quorumkey protocol benchmark — node ${process.version}, 3-of-5, signers ${SUBSET.join(',')}`);
if (native) measure(native, [1, 32], 3);
else console.log('native addon not built: skipping the native backend');
measure(nobleBackend, [1, 32], 1);
useCurveBackend(original);
