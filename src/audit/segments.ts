/**
 * The files of one audit log. The log at `<path>` is the active file; rotation (log.ts) renames
 * it to `<path>.<n>` (n = 1, 2, …, six digits at least) and starts a new `<path>`, so the log is
 * the closed files in the order of n, then the active file, one hash chain across all of them.
 * Other names beside it (`<path>.partial-…`, set aside by a repair) are not part of the chain.
 */
import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AuditSegment {
  n: number;
  path: string;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The name the n-th closed file of `path` gets. */
export function segmentPath(path: string, n: number): string {
  return `${path}.${String(n).padStart(6, '0')}`;
}

/** The closed files of `path`, oldest first. */
export async function closedSegments(path: string): Promise<AuditSegment[]> {
  const pattern = new RegExp(`^${escape(basename(path))}\\.(\\d{6,})$`);
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: AuditSegment[] = [];
  for (const name of names) {
    const m = pattern.exec(name);
    if (m) out.push({ n: Number(m[1]), path: join(dirname(path), name) });
  }
  return out.sort((a, b) => a.n - b.n);
}
