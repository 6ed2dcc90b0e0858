/**
 * Binary encoding of a KeyShare, for sealing at rest. Versioned, length-prefixed, and strict on
 * decode: every length and range is checked and trailing bytes are refused.
 *
 * Version 3 (current) adds the key's policy (canonical bytes, length-prefixed) after the key id.
 * Version 2 records, per peer, whether the pair's OT correlation is active (then both
 * OT-extension set-ups follow) or retired (nothing follows: the secret state is gone for good).
 * Versions 1 (every pair active) and 2 are still read, with no policy: such a share signs
 * nothing until the operator seals its policy (`quorumkey key adopt-policy`).
 */
import type { KeyShare } from './keyshare.js';
import { MAX_PARTIES } from './keyshare.js';
import { POINT_BYTES, curveBackend } from './math/curve.js';
import { bytesToBigInt, N, scalarToBytes, SCALAR_BYTES } from './math/scalar.js';
import {
  deserializeOtExtReceiverSetup,
  deserializeOtExtSenderSetup,
  serializeOtExtReceiverSetup,
  serializeOtExtSenderSetup,
} from './ot/extension.js';

const VERSION = 3;
const MAX_POLICY_BYTES = 16 * 1024;
const PAIR_ACTIVE = 0;
const PAIR_RETIRED = 1;
const SEED_BYTES = 32;

class Writer {
  private readonly parts: Uint8Array[] = [];
  u8(v: number) {
    this.parts.push(Uint8Array.of(v));
  }
  u32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v);
    this.parts.push(b);
  }
  bytes(b: Uint8Array) {
    this.parts.push(b);
  }
  sized(b: Uint8Array) {
    this.u32(b.length);
    this.bytes(b);
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of this.parts) out.set(p, (at += p.length) - p.length);
    return out;
  }
}

class Reader {
  private at = 0;
  constructor(private readonly buf: Uint8Array) {}
  take(n: number, what: string): Uint8Array {
    if (this.at + n > this.buf.length) throw new Error(`key share encoding truncated in ${what}`);
    return this.buf.subarray(this.at, (this.at += n));
  }
  u8(what: string) {
    return this.take(1, what)[0]!;
  }
  u32(what: string) {
    const b = this.take(4, what);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  }
  sized(what: string) {
    return this.take(this.u32(what), what);
  }
  point(what: string): Uint8Array {
    const p = this.take(POINT_BYTES, what);
    if (!curveBackend().isValid(p)) throw new Error(`key share encoding: ${what} is not a valid point`);
    return p.slice();
  }
  end() {
    if (this.at !== this.buf.length) throw new Error('key share encoding has trailing bytes');
  }
}

export function encodeKeyShare(share: KeyShare): Uint8Array {
  const w = new Writer();
  w.u8(VERSION);
  w.sized(new TextEncoder().encode(share.keyId));
  w.sized(share.policy);
  w.u32(share.epoch);
  w.u8(share.threshold);
  w.u8(share.parties.length);
  for (const p of share.parties) w.u8(p);
  w.u8(share.self);
  w.bytes(scalarToBytes(share.secretShare));
  w.bytes(share.publicKey);
  for (const p of share.parties) w.bytes(share.publicShares.get(p)!);
  for (const p of share.parties) {
    if (p === share.self) continue;
    w.bytes(share.zeroSeeds.get(p)!);
    if (share.retiredPeers.has(p)) {
      w.u8(PAIR_RETIRED);
      continue;
    }
    w.u8(PAIR_ACTIVE);
    w.sized(serializeOtExtSenderSetup(share.otSender.get(p)!));
    w.sized(serializeOtExtReceiverSetup(share.otReceiver.get(p)!));
  }
  return w.finish();
}

export function decodeKeyShare(bytes: Uint8Array): KeyShare {
  // Copy first: the caller zeroises its plaintext buffer, and a Node Buffer's slices would share it.
  const r = new Reader(new Uint8Array(bytes));
  const version = r.u8('version');
  if (version < 1 || version > VERSION) throw new Error(`unsupported key share encoding version ${version}`);
  const keyId = new TextDecoder('utf-8', { fatal: true }).decode(r.sized('key id'));
  const policy = version >= 3 ? r.sized('policy').slice() : new Uint8Array(0);
  if (policy.length > MAX_POLICY_BYTES) throw new Error('key share encoding: policy too large');
  const epoch = r.u32('epoch');
  const threshold = r.u8('threshold');
  const count = r.u8('party count');
  if (count < 2 || count > MAX_PARTIES || threshold < 2 || threshold > count) throw new Error('key share encoding: bad threshold or party count');
  const parties = Array.from({ length: count }, () => r.u8('parties'));
  if (parties.some((p, i) => p < 1 || (i > 0 && p <= parties[i - 1]!))) throw new Error('key share encoding: parties not ascending');
  const self = r.u8('self');
  if (!parties.includes(self)) throw new Error('key share encoding: self is not a party');
  const secretShare = bytesToBigInt(r.take(SCALAR_BYTES, 'secret share'));
  if (secretShare >= N) throw new Error('key share encoding: secret share out of range');
  const publicKey = r.point('public key');
  const publicShares = new Map(parties.map((p) => [p, r.point(`public share ${p}`)] as const));
  const zeroSeeds = new Map<number, Uint8Array>();
  const otSender = new Map<number, ReturnType<typeof deserializeOtExtSenderSetup>>();
  const otReceiver = new Map<number, ReturnType<typeof deserializeOtExtReceiverSetup>>();
  const retiredPeers = new Set<number>();
  for (const p of parties) {
    if (p === self) continue;
    zeroSeeds.set(p, r.take(SEED_BYTES, 'zero seed').slice());
    const state = version === 1 ? PAIR_ACTIVE : r.u8('pair state');
    if (state === PAIR_RETIRED) {
      retiredPeers.add(p);
      continue;
    }
    if (state !== PAIR_ACTIVE) throw new Error(`key share encoding: unknown pair state ${state}`);
    otSender.set(p, deserializeOtExtSenderSetup(r.sized('OT sender set-up')));
    otReceiver.set(p, deserializeOtExtReceiverSetup(r.sized('OT receiver set-up')));
  }
  r.end();
  return { keyId, epoch, threshold, parties, self, secretShare, publicKey, publicShares, zeroSeeds, otSender, otReceiver, retiredPeers, policy };
}
