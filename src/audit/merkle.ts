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

/**
 * The RFC 6962 tree of a growing list, kept as its frontier: the roots of the perfect subtrees
 * the leaves so far decompose into (sizes the set bits of `size`, largest first). Appending is
 * O(log n) and the root of all leaves so far needs no earlier leaf, so an append-only log can
 * export its Merkle root at every head and persist the frontier (a few hashes) to resume it.
 */
export class MerkleFrontier {
  private readonly nodes: Uint8Array[];
  private count: number;

  constructor(size = 0, nodes: readonly Uint8Array[] = []) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`Merkle frontier size must be a non-negative integer, got ${size}`);
    if (nodes.length !== popcount(size)) throw new RangeError(`a Merkle frontier of ${size} leaves has ${popcount(size)} subtree roots, got ${nodes.length}`);
    if (nodes.some((n) => n.length !== 32)) throw new RangeError('Merkle frontier nodes must be 32-byte hashes');
    this.count = size;
    this.nodes = nodes.map((n) => new Uint8Array(n));
  }

  get size(): number {
    return this.count;
  }

  /** The subtree roots, largest subtree first (what the constructor takes back). */
  get frontier(): Uint8Array[] {
    return this.nodes.map((n) => new Uint8Array(n));
  }

  push(leaf: Uint8Array): void {
    let node = merkleLeafHash(leaf);
    // Each trailing 1 bit of the old size is a subtree of the new leaf's size: merge them.
    for (let n = this.count; n % 2 === 1; n = Math.floor(n / 2)) node = merkleNodeHash(this.nodes.pop()!, node);
    this.nodes.push(node);
    this.count++;
  }

  /** MTH of every leaf pushed so far (equal to merkleRoot over them). */
  root(): Uint8Array {
    if (this.nodes.length === 0) return merkleRoot([]);
    let acc = this.nodes[this.nodes.length - 1]!;
    for (let k = this.nodes.length - 2; k >= 0; k--) acc = merkleNodeHash(this.nodes[k]!, acc);
    return acc;
  }
}

function popcount(n: number): number {
  let c = 0;
  for (let v = n; v > 0; v = Math.floor(v / 2)) c += v % 2;
  return c;
}
