/**
 * A minimal DER splitter for tests, independent of the code under test (src/policy/classify.ts
 * has its own strict reader): the raw TLVs inside the outer TLV of `buf`.
 */
function header(b: Uint8Array, pos: number): { off: number; end: number } {
  let len = b[pos + 1]!;
  let off = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + b[off + k]!;
    off += n;
  }
  return { off, end: off + len };
}

export function derChildren(buf: Buffer): Buffer[] {
  const outer = header(buf, 0);
  const out: Buffer[] = [];
  for (let pos = outer.off; pos < outer.end; ) {
    const h = header(buf, pos);
    out.push(buf.subarray(pos, h.end));
    pos = h.end;
  }
  return out;
}
