/** Loads proto/quorumkey.proto for grpc-js and converts protocol envelopes to and from the wire. */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import type { ProtocolMessage, ProtocolName } from '../protocol/message.js';

export const PROTO_PATH = fileURLToPath(new URL('../../../proto/quorumkey.proto', import.meta.url));

const definition = protoLoader.loadSync(PROTO_PATH, {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});

interface QuorumkeyPackage {
  Coordinator: grpc.ServiceClientConstructor;
  Admin: grpc.ServiceClientConstructor;
  Signer: grpc.ServiceClientConstructor;
  Peer: grpc.ServiceClientConstructor;
}

export const services = (grpc.loadPackageDefinition(definition) as unknown as { quorumkey: { v1: QuorumkeyPackage } }).quorumkey.v1;

/** The wire form of a ProtocolMessage (field names as in the .proto, keepCase). */
export interface ProtocolEnvelope {
  protocol: string;
  key_id: string;
  session_id: Uint8Array;
  round: number;
  from: number;
  to: number;
  payload: Record<string, Uint8Array>;
}

const PROTOCOLS: readonly ProtocolName[] = ['dkg', 'refresh', 'presign', 'pair-setup', 'sign'];

export function toEnvelope(m: ProtocolMessage): ProtocolEnvelope {
  return { protocol: m.protocol, key_id: m.keyId, session_id: m.sessionId, round: m.round, from: m.from, to: m.to, payload: m.payload };
}

/**
 * Converts a received envelope. Only the shape is checked here; the session checks every
 * binding. Returns undefined for an unknown protocol name.
 */
export function fromEnvelope(e: ProtocolEnvelope): ProtocolMessage | undefined {
  if (!PROTOCOLS.includes(e.protocol as ProtocolName)) return undefined;
  const payload: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(e.payload ?? {})) payload[k] = new Uint8Array(v);
  return {
    protocol: e.protocol as ProtocolName,
    keyId: e.key_id,
    sessionId: new Uint8Array(e.session_id ?? []),
    round: e.round,
    from: e.from,
    to: e.to,
    payload,
  };
}

/** Metadata keys carrying a ProtocolAbort across gRPC (status ABORTED). */
/** DigestAlgorithm as proto-loader gives it (enum name, or its number) ↔ node:crypto's names. */
export type WireDigestAlg = 'sha256' | 'sha384' | 'sha512';
const DIGEST_FROM_WIRE: Record<string, WireDigestAlg> = {
  DIGEST_ALGORITHM_UNSPECIFIED: 'sha256',
  SHA256: 'sha256',
  SHA384: 'sha384',
  SHA512: 'sha512',
  '0': 'sha256',
  '1': 'sha256',
  '2': 'sha384',
  '3': 'sha512',
};
export function digestAlgFromWire(value: unknown): WireDigestAlg | undefined {
  return DIGEST_FROM_WIRE[String(value ?? 0)];
}
export const digestAlgToWire = (alg: WireDigestAlg): string => alg.toUpperCase();

export const ABORT_METADATA = { reason: 'qk-abort-reason', culprit: 'qk-culprit', blame: 'qk-blame' } as const;
/**
 * Trailing metadata naming why a signer refused a call: a Finish under the key's sealed policy
 * (e.g. context-not-allowed, rate-limited), an operator approval (approval-*), a limit (key-limit).
 */
export const REFUSAL_METADATA = 'qk-refusal';
/**
 * Trailing metadata on every status the coordinator itself answers (value: the error name), so a
 * client tells "the coordinator said UNAVAILABLE (no usable signer subset)" from "no connection".
 */
export const COORDINATOR_STATUS_METADATA = 'qk-coordinator-status';

/** Length of PresignRequest.coordinator_generation (random, one per coordinator start). */
export const COORDINATOR_GENERATION_BYTES = 16;
