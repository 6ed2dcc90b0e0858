/**
 * What crosses between the signer's main thread and its compute thread for one session: the
 * session's description (a spec, from which the compute thread builds the session), its output
 * and its failure. Plain data that survives structured cloning; no I/O.
 *
 * Secrets that cross:
 * - main → compute: the spec's share (presign, refresh, pair re-setup), pruned to what the
 *   session reads. The compute thread's copy is wiped when the session ends there (wipeSpec);
 *   the main thread keeps its own. A key generation's spec holds no secret.
 * - compute → main: the presignature halves φ, u, v, moved, not copied: gathered into one fresh
 *   buffer that is transferred (the compute thread keeps no view of it) after the originals are
 *   wiped. A new share (key generation, refresh) or pair state (pair re-setup) is cloned into
 *   the reply and the compute thread's original wiped right after posting (wipeOutput).
 */
import { ProtocolAbort, type AbortReason } from '../../src/protocol/errors.js';
import type { KeyShare } from '../../src/protocol/keyshare.js';
import { wipe } from '../../src/protocol/math/secret-scalar.js';
import { SCALAR_BYTES } from '../../src/protocol/math/scalar.js';
import type { ProtocolName } from '../../src/protocol/message.js';
import { keyGenSession, refreshSession } from '../../src/protocol/dkg.js';
import { PairSetupSession, type PairState } from '../../src/protocol/pair-setup.js';
import { PresignSession, type PresignParams, type Presignature } from '../../src/protocol/presign.js';
import type { Session } from '../../src/protocol/session.js';

export interface PresignSpec {
  protocol: 'presign';
  share: KeyShare;
  sessionId: Uint8Array;
  subset: readonly number[];
  count: number;
}

export interface KeyGenSpec {
  protocol: 'dkg';
  keyId: string;
  sessionId: Uint8Array;
  self: number;
  parties: readonly number[];
  threshold: number;
  policy: Uint8Array;
}

export interface RefreshSpec {
  protocol: 'refresh';
  share: KeyShare;
  sessionId: Uint8Array;
}

export interface PairSetupSpec {
  protocol: 'pair-setup';
  share: KeyShare;
  sessionId: Uint8Array;
  peer: number;
}

/** Every kind of session the compute thread runs. */
export type SessionSpec = PresignSpec | KeyGenSpec | RefreshSpec | PairSetupSpec;

/** Builds the session a spec describes (the compute thread's only source of sessions). */
export type SessionFactory = (spec: SessionSpec) => Session<unknown>;

export const createSession: SessionFactory = (spec) => {
  switch (spec.protocol) {
    case 'presign':
      return new PresignSession({ share: spec.share, sessionId: spec.sessionId, subset: spec.subset, count: spec.count });
    case 'dkg':
      return keyGenSession({ keyId: spec.keyId, sessionId: spec.sessionId, self: spec.self, parties: spec.parties, threshold: spec.threshold, policy: spec.policy });
    case 'refresh':
      return refreshSession({ share: spec.share, sessionId: spec.sessionId });
    case 'pair-setup':
      return new PairSetupSession({ share: spec.share, sessionId: spec.sessionId, peer: spec.peer });
  }
};

/** What the driver routes by: the spec's protocol, key, own index and the peers it hears from. */
export function specRoute(spec: SessionSpec): { protocol: ProtocolName; keyId: string; peers: number[] } {
  switch (spec.protocol) {
    case 'presign':
      return { protocol: 'presign', keyId: spec.share.keyId, peers: spec.subset.filter((p) => p !== spec.share.self) };
    case 'dkg':
      return { protocol: 'dkg', keyId: spec.keyId, peers: spec.parties.filter((p) => p !== spec.self) };
    case 'refresh':
      return { protocol: 'refresh', keyId: spec.share.keyId, peers: spec.share.parties.filter((p) => p !== spec.share.self) };
    case 'pair-setup':
      return { protocol: 'pair-setup', keyId: spec.share.keyId, peers: [spec.peer] };
  }
}

/** The spec of a presign, with only the subset's pairwise state of the share. */
export function presignSpec(params: PresignParams): PresignSpec {
  const { share, subset } = params;
  const only = <V>(map: ReadonlyMap<number, V>) => new Map([...map].filter(([peer]) => subset.includes(peer)));
  const pruned: KeyShare = { ...share, zeroSeeds: only(share.zeroSeeds), otSender: only(share.otSender), otReceiver: only(share.otReceiver) };
  return { protocol: 'presign', share: pruned, sessionId: params.sessionId, subset: [...subset], count: params.count };
}

/**
 * The spec of a refresh: the whole share minus its pairwise OT-extension state (a refresh sets
 * up every pair afresh and reads only the secret share, public shares and policy).
 */
export function refreshSpec(share: KeyShare, sessionId: Uint8Array): RefreshSpec {
  return { protocol: 'refresh', share: { ...share, zeroSeeds: new Map(), otSender: new Map(), otReceiver: new Map() }, sessionId };
}

/** The spec of a pair re-setup: the share's public part (the session reads its key, epoch, holders). */
export function pairSetupSpec(share: KeyShare, sessionId: Uint8Array, peer: number): PairSetupSpec {
  return { protocol: 'pair-setup', share: { ...share, secretShare: 0n, zeroSeeds: new Map(), otSender: new Map(), otReceiver: new Map() }, sessionId, peer };
}

/** Wipes a share's pairwise secret bytes (its bigint share cannot be wiped). */
function wipeShare(share: KeyShare): void {
  for (const seed of share.zeroSeeds.values()) seed.fill(0);
  for (const s of share.otSender.values()) wipe(s.delta, ...s.seeds);
  for (const r of share.otReceiver.values()) wipe(...r.seeds0, ...r.seeds1);
}

function wipePairState(state: PairState): void {
  wipe(state.sender.delta, ...state.sender.seeds, ...state.receiver.seeds0, ...state.receiver.seeds1);
}

/** Wipes the compute thread's copy of a spec's secret bytes. */
export function wipeSpec(spec: SessionSpec): void {
  if (spec.protocol !== 'dkg') wipeShare(spec.share);
}

// --- outputs ---------------------------------------------------------------------------------

/** Presignatures on their way to the main thread: public parts, and φ ‖ u ‖ v of each in `secrets`. */
export interface PresignaturesWire {
  kind: 'presignatures';
  items: Omit<Presignature, 'phi' | 'u' | 'v'>[];
  secrets: ArrayBuffer;
}

/** A new share (key generation, refresh), cloned. */
export interface ShareWire {
  kind: 'share';
  share: KeyShare;
}

/** A pair re-setup's new OT-extension state, cloned. */
export interface PairStateWire {
  kind: 'pair-state';
  state: PairState;
}

export type OutputWire = PresignaturesWire | ShareWire | PairStateWire;

/** A session's output as the main thread takes it. */
export type Output = Presignature[] | KeyShare | PairState;

const HALF_BYTES = 3 * SCALAR_BYTES;

/**
 * The wire form of a session's output of `protocol`, the buffers to transfer with it, and what
 * to wipe once it is posted (a cloned output's originals).
 */
export function encodeOutput(protocol: ProtocolName, output: unknown): { wire: OutputWire; transfer: ArrayBuffer[]; wipeOriginal: () => void } {
  if (protocol === 'dkg' || protocol === 'refresh') {
    const share = output as KeyShare;
    return { wire: { kind: 'share', share }, transfer: [], wipeOriginal: () => wipeShare(share) };
  }
  if (protocol === 'pair-setup') {
    const state = output as PairState;
    return { wire: { kind: 'pair-state', state }, transfer: [], wipeOriginal: () => wipePairState(state) };
  }
  const list = output as Presignature[];
  const secrets = new Uint8Array(list.length * HALF_BYTES);
  const items = list.map((p, i) => {
    secrets.set(p.phi, i * HALF_BYTES);
    secrets.set(p.u, i * HALF_BYTES + SCALAR_BYTES);
    secrets.set(p.v, i * HALF_BYTES + 2 * SCALAR_BYTES);
    wipe(p.phi, p.u, p.v);
    return { id: p.id, keyId: p.keyId, epoch: p.epoch, subset: p.subset, self: p.self, nonce: p.nonce };
  });
  return { wire: { kind: 'presignatures', items, secrets: secrets.buffer }, transfer: [secrets.buffer], wipeOriginal: () => undefined };
}

/** Wipes an output nobody will take (its session was ended here while the thread finished it). */
export function discardOutput(wire: OutputWire): void {
  if (wire.kind === 'presignatures') new Uint8Array(wire.secrets).fill(0);
  else if (wire.kind === 'share') wipeShare(wire.share);
  else wipePairState(wire.state);
}

export function decodeOutput(wire: OutputWire): Output {
  if (wire.kind === 'share') return wire.share;
  if (wire.kind === 'pair-state') return wire.state;
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
