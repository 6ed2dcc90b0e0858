/**
 * RFC 6962 §2.1 Merkle Tree Hash over SHA-256:
 *   MTH({})      = SHA-256()
 *   MTH({d0})    = SHA-256(0x00 ‖ d0)
 *   MTH(D[0:n])  = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])), k the largest power of two < n.
 * For the audit log the leaves d_i are the 32-byte record hashes of a period, in log order.
 */
import { createHash } from 'node:crypto';

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

export function merkleLeafHash(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(LEAF_PREFIX).update(data).digest());
}

export function merkleNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest());
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function mth(leaves: readonly Uint8Array[], lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  if (n === 1) return merkleLeafHash(leaves[lo]!);
  const k = largestPowerOfTwoBelow(n);
  return merkleNodeHash(mth(leaves, lo, lo + k), mth(leaves, lo + k, hi));
}

/** RFC 6962 Merkle Tree Hash of `leaves` (each leaf is hashed with the 0x00 prefix). */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return new Uint8Array(createHash('sha256').digest());
  return mth(leaves, 0, leaves.length);
}
