/**
 * Crash-safe file replacement: write a temp file in the same directory (O_CREAT|O_EXCL, the final
 * mode from the start, then fchmod so a restrictive umask cannot change it either), fsync it,
 * rename it over the target, fsync the directory. On any failure the temp file is removed.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
}

/** True for names produced by tempPathFor (e.g. to clean up after a crash). */
export function isTempName(name: string): boolean {
  return /^\..+\.[0-9a-f]{16}\.tmp$/.test(name);
}

export async function fsyncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (e) {
    // Some file systems cannot fsync a directory; nothing more can be done there.
    if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
  } finally {
    await fh.close();
  }
}

/** Atomically replaces `path` with `data`, mode `mode` (default 0600). Throws the underlying errno error. */
export async function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = tempPathFor(path);
  let fh: FileHandle | undefined;
  let tmpExists = false;
  try {
    fh = await open(tmp, 'wx', mode);
    tmpExists = true;
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
    tmpExists = false;
    await fsyncDirectory(dirname(path));
  } catch (e) {
    if (fh) await fh.close().catch(() => undefined);
    if (tmpExists) await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
