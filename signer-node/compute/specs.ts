/**
 * What crosses between the signer's main thread and its compute thread for one session: the
 * session's description (a spec, from which the compute thread builds the session), its output
 * and its failure. Plain data that survives structured cloning; no I/O.
 *
 * Secrets that cross:
 * - main → compute: the spec's share, pruned to what the session reads (the subset's OT-extension
 *   state and zero-sharing seeds). The compute thread's copy is wiped when the session ends there
 *   (wipeSpec); the main thread keeps its own.
 * - compute → main: the presignature halves φ, u, v, moved, not copied: gathered into one fresh
 *   buffer that is transferred (the compute thread keeps no view of it) after the originals are
 *   wiped.
 */
import { ProtocolAbort, type AbortReason } from '../../src/protocol/errors.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { wipe } from '../../src/protocol/math/secret-scalar.js';
import { SCALAR_BYTES } from '../../src/protocol/math/scalar.js';
import { PresignSession, type PresignParams, type Presignature } from '../../src/protocol/presign.js';
import type { Session } from '../../src/protocol/session.js';

export interface PresignSpec {
  protocol: 'presign';
  share: KeyShare;
  sessionId: Uint8Array;
  subset: readonly number[];
  count: number;
}

/** Every kind of session the compute thread runs (presign today; the others still run on the main thread). */
export type SessionSpec = PresignSpec;

/** Builds the session a spec describes (the compute thread's only source of sessions). */
export type SessionFactory = (spec: SessionSpec) => Session<unknown>;

export const createSession: SessionFactory = (spec) => new PresignSession({ share: spec.share, sessionId: spec.sessionId, subset: spec.subset, count: spec.count });

/** The spec of a presign, with only the subset's pairwise state of the share. */
export function presignSpec(params: PresignParams): PresignSpec {
  const { share, subset } = params;
  const only = <V>(map: ReadonlyMap<number, V>) => new Map([...map].filter(([peer]) => subset.includes(peer)));
  const pruned: KeyShare = { ...share, zeroSeeds: only(share.zeroSeeds), otSender: only(share.otSender), otReceiver: only(share.otReceiver) };
  return { protocol: 'presign', share: pruned, sessionId: params.sessionId, subset: [...subset], count: params.count };
}

/** Wipes the compute thread's copy of a spec's secret bytes (its bigint share cannot be wiped). */
export function wipeSpec(spec: SessionSpec): void {
  const { share } = spec;
  for (const seed of share.zeroSeeds.values()) seed.fill(0);
  for (const s of share.otSender.values()) wipe(s.delta, ...s.seeds);
  for (const r of share.otReceiver.values()) wipe(...r.seeds0, ...r.seeds1);
}

// --- outputs ---------------------------------------------------------------------------------

/** Presignatures on their way to the main thread: public parts, and φ ‖ u ‖ v of each in `secrets`. */
export interface PresignaturesWire {
  kind: 'presignatures';
  items: Omit<Presignature, 'phi' | 'u' | 'v'>[];
  secrets: ArrayBuffer;
}

export type OutputWire = PresignaturesWire;

const HALF_BYTES = 3 * SCALAR_BYTES;

/** The wire form of a session's output and the buffers to transfer with it. */
export function encodeOutput(output: unknown): { wire: OutputWire; transfer: ArrayBuffer[] } {
  const list = output as Presignature[];
  const secrets = new Uint8Array(list.length * HALF_BYTES);
  const items = list.map((p, i) => {
    secrets.set(p.phi, i * HALF_BYTES);
    secrets.set(p.u, i * HALF_BYTES + SCALAR_BYTES);
    secrets.set(p.v, i * HALF_BYTES + 2 * SCALAR_BYTES);
    wipe(p.phi, p.u, p.v);
    return { id: p.id, keyId: p.keyId, epoch: p.epoch, subset: p.subset, self: p.self, nonce: p.nonce };
  });
  return { wire: { kind: 'presignatures', items, secrets: secrets.buffer }, transfer: [secrets.buffer] };
}

/** Wipes an output nobody will take (its session was ended here while the thread finished it). */
export function discardOutput(wire: OutputWire): void {
  new Uint8Array(wire.secrets).fill(0);
}

export function decodeOutput(wire: OutputWire): Presignature[] {
  return wire.items.map((p, i) => {
    const at = (k: number) => new Uint8Array(wire.secrets, i * HALF_BYTES + k * SCALAR_BYTES, SCALAR_BYTES);
    return { ...p, phi: at(0), u: at(1), v: at(2) };
  });
}

// --- failures --------------------------------------------------------------------------------

export type ErrorWire = { abort: { reason: AbortReason; message: string; culprit?: number; suspects: number[] } } | { message: string };

/** A failure's wire form: a ProtocolAbort keeps its reason and attribution; anything else its message. */
export function encodeError(error: unknown): ErrorWire {
  if (error instanceof ProtocolAbort) {
    return { abort: { reason: error.reason, message: error.message, ...(error.culprit !== undefined ? { culprit: error.culprit } : {}), suspects: [...error.suspects] } };
  }
  return { message: error instanceof Error ? error.message : String(error) };
}

export function decodeError(wire: ErrorWire): Error {
  if ('message' in wire) return new Error(`compute thread: ${wire.message}`);
  const { reason, message, culprit, suspects } = wire.abort;
  // ProtocolAbort prefixes its detail with "reason (party …): "; the detail is what follows.
  const detail = message.slice(message.indexOf(': ') + 2);
  return new ProtocolAbort(reason, detail, culprit, suspects);
}
