/**
 * Protocol messages: plain objects of bytes fields, each bound to (protocol, key id, session id,
 * round, sender, receiver). They travel as protobuf later; here they are just data.
 */
import { abort } from './errors.js';

export type ProtocolName = 'dkg' | 'refresh' | 'presign' | 'pair-setup' | 'sign';
export const SESSION_ID_BYTES = 32;

export type Payload = Record<string, Uint8Array>;

export interface ProtocolMessage {
  protocol: ProtocolName;
  keyId: string;
  sessionId: Uint8Array;
  round: number;
  from: number;
  to: number;
  payload: Payload;
}

/** Reads a required bytes field, optionally of an exact length, naming the sender on failure. */
export function field(payload: Payload, name: string, from: number, length?: number): Uint8Array {
  const value = payload[name];
  if (!(value instanceof Uint8Array)) abort('malformed-message', `missing field '${name}'`, from);
  if (length !== undefined && value.length !== length) abort('wrong-length', `field '${name}': expected ${length} bytes, got ${value.length}`, from);
  return value;
}

/** Splits a field holding `count` items of `size` bytes each. */
export function splitField(payload: Payload, name: string, from: number, count: number, size: number): Uint8Array[] {
  const value = field(payload, name, from);
  if (value.length !== count * size) abort('wrong-length', `field '${name}': expected ${count} items of ${size} bytes, got ${value.length} bytes`, from);
  return Array.from({ length: count }, (_, k) => value.subarray(k * size, (k + 1) * size));
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
