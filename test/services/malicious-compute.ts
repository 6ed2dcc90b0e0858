/**
 * TEST ONLY — the compute-thread entry of the malicious signer wrapper (malicious-signer.ts) in
 * mode replay-collude: the product's sessions (signer-node/compute/serve.ts, specs.ts), except
 * that a presign is built by `colludeOnReplays` below. Passed to SignerNode through its `compute` option
 * (the same kind of seam as createPeerTransport); nothing in signer-node/ knows about it.
 *
 * workerData.extra: { observedFile } — where the VOLE messages it receives are written.
 */
import { appendFileSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { toHex } from '../../src/protocol/message.js';
import { PresignSession } from '../../src/protocol/presign.js';
import { systemRng, type Rng } from '../../src/protocol/rng.js';
import { VOLE_OTS } from '../../src/protocol/vole.js';
import { createLogger, logLevelFromEnv } from '../../signer-node/log.js';
import type { ComputeThreadData } from '../../signer-node/compute/serve.js';
import { serveCompute } from '../../signer-node/compute/serve.js';
import { createSession, type SessionFactory } from '../../signer-node/compute/specs.js';

/**
 * replay-collude: a colluder of a coordinator that replays presign labels. Its randomness for a
 * presign label seen before replays the first session's draws one by one, except that its VOLE
 * choice bits (the draws of ⌈ξ·B/8⌉ bytes) come back complemented — the attack of the review
 * that swapped an honest Alice's pads when the context had no fresh randomness. It writes every
 * VOLE message it receives (label, sender, τ, key-share points, context) to `observedFile`.
 */
function colludeOnReplays(observedFile: string): SessionFactory {
  const log = createLogger({ malicious: 'replay-collude', thread: 'compute' }, logLevelFromEnv(process.env.QUORUMKEY_LOG_LEVEL));
  const draws = new Map<string, Uint8Array[]>();
  const choiceBytes = (count: number) => Math.ceil((VOLE_OTS * count) / 8);
  return (spec) => {
    if (spec.protocol !== 'presign') return createSession(spec);
    const label = toHex(spec.sessionId);
    const recorded = draws.get(label);
    let rng: Rng;
    if (recorded) {
      let at = 0;
      rng = (length) => {
        const bytes = (recorded[at++] ?? systemRng(length)).slice();
        return length === choiceBytes(spec.count) ? bytes.map((v) => v ^ 0xff) : bytes;
      };
      log.warn('malicious: tampered', { what: 'presign', fields: ['choice-bits'], session: label.slice(0, 16) });
    } else {
      const list: Uint8Array[] = [];
      draws.set(label, list);
      rng = (length) => {
        const bytes = systemRng(length);
        list.push(bytes.slice());
        return bytes;
      };
    }
    const session = new PresignSession({ share: spec.share, sessionId: spec.sessionId, subset: spec.subset, count: spec.count, rng });
    const receive = session.receive.bind(session);
    session.receive = (message, sender) => {
      const { tau, keyShares, context } = message.payload;
      if (tau && keyShares && context) {
        const line = { label, from: sender, tau: toHex(tau), keyShares: toHex(keyShares), context: toHex(context) };
        appendFileSync(observedFile, JSON.stringify(line) + '\n');
      }
      receive(message, sender);
    };
    return session;
  };
}

const { observedFile } = (workerData as ComputeThreadData).extra as { observedFile: string };
serveCompute(colludeOnReplays(observedFile));
