/**
 * The signer's sealed share store (DESIGN §7) and its key-encryption key.
 *
 * Layout of a signer's data directory (mode 0700):
 *
 *   <dir>/signer-<i>/seal.passphrase        dev mode only: the passphrase (mode 0600)
 *   <dir>/signer-<i>/seal.check             a sealed canary: proves at start that the KEK is right
 *   <dir>/signer-<i>/shares/<key id>.share  one sealed KeyShare per key (mode 0600)
 *   <dir>/signer-<i>/shares/<key id>.pending  a share not committed yet (a new key, or the next
 *                                            epoch of a refresh): never used to sign; the
 *                                            coordinator's CommitShare renames it over .share
 *                                            (atomic), its DiscardShare removes it
 *
 * A share file is bound (AEAD additional data) to `quorumkey/share/v1/signer-<i>/<key id>`, so a
 * file copied to another signer or renamed to another key fails to open. The canary is bound to
 * `quorumkey/seal-check/v1/signer-<i>`; it lets a wrong passphrase, a wrong PIN or a missing token
 * be reported at start even before the first key exists.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { paths, type SealConfig } from '../src/cluster/config.js';
import { decodeKeyShare, encodeKeyShare } from '../src/protocol/keyshare-codec.js';
import type { KeyShare } from '../src/protocol/keyshare.js';
import { fsyncDirectory } from '../src/storage/atomic-write.js';
import { isTempName, PassphraseKek, Pkcs11Kek, readSealedFile, SealError, writeSealedFile, type Kek } from '../src/storage/seal.js';

export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const SHARE_SUFFIX = '.share';
export const PENDING_SUFFIX = '.pending';
export const PASSPHRASE_FILE = 'seal.passphrase';
export const SEAL_CHECK_FILE = 'seal.check';

/** A problem that prevents the signer from starting; its message is one operator-facing line. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

export const shareAad = (index: number, keyId: string): string => `quorumkey/share/v1/signer-${index}/${keyId}`;
const sealCheckAad = (index: number): string => `quorumkey/seal-check/v1/signer-${index}`;
const SEAL_CHECK_PLAINTEXT = Buffer.from('quorumkey seal check v1', 'utf8');

/** The signer's data directory, created (and tightened) to mode 0700. */
export function ensureSignerDir(dir: string, index: number): string {
  const dataDir = paths(dir).signer(index);
  for (const d of [dataDir, join(dataDir, 'shares')]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    chmodSync(d, 0o700);
  }
  return dataDir;
}

/**
 * Development seal secret: writes 32 random bytes, base64, to <dir>/signer-<index>/seal.passphrase
 * with mode 0600 unless the file exists. Returns its path. Meant for the CLI's embedded cluster;
 * production uses PKCS#11.
 */
export function ensureDevPassphrase(dir: string, index: number): string {
  const dataDir = paths(dir).signer(index);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, PASSPHRASE_FILE);
  if (!existsSync(file)) {
    try {
      writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  return file;
}

function readSecretFile(file: string, what: string, hint: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StartupError(`${what} ${file} does not exist; ${hint}`);
    throw new StartupError(`cannot read ${what} ${file}: ${code ?? 'unknown error'}`);
  }
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d || raw[end - 1] === 0x20 || raw[end - 1] === 0x09)) end--;
  const secret = Buffer.alloc(end);
  raw.copy(secret, 0, 0, end);
  raw.fill(0);
  if (secret.length === 0) throw new StartupError(`${what} ${file} is empty; ${hint}`);
  return secret;
}

export interface KekSetup {
  kek: Kek;
  /** Human description, no secret. */
  description: string;
  /** Warnings for the log (e.g. a passphrase file readable by others). */
  warnings: string[];
  dispose(): void;
}

/** Builds the KEK from the signer's seal configuration. Throws StartupError. */
export function createKek(dir: string, index: number, seal: SealConfig | undefined): KekSetup {
  const mode = seal?.mode ?? 'passphrase';
  const warnings: string[] = [];
  if (mode === 'passphrase') {
    const cfg = (seal ?? { mode: 'passphrase' }) as Extract<SealConfig, { mode: 'passphrase' }>;
    const file = cfg.passphraseFile ? resolve(paths(dir).root, cfg.passphraseFile) : join(paths(dir).signer(index), PASSPHRASE_FILE);
    const secret = readSecretFile(
      file,
      'seal passphrase file',
      `create it with 32 random bytes, e.g. (umask 077; head -c 32 /dev/urandom | base64 > ${file}) — 'quorumkey up' creates it for the embedded cluster`,
    );
    try {
      const st = statSync(file);
      if ((st.mode & 0o077) !== 0) warnings.push(`seal passphrase file ${file} is accessible by group/others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    } catch {
      /* read succeeded a moment ago; nothing to add */
    }
    let kek: PassphraseKek;
    try {
      kek = new PassphraseKek(secret);
    } finally {
      secret.fill(0);
    }
    return { kek, description: `passphrase from ${file}`, warnings, dispose: () => kek.dispose() };
  }
  if (mode === 'pkcs11') {
    const cfg = seal as Extract<SealConfig, { mode: 'pkcs11' }>;
    for (const field of ['module', 'tokenLabel', 'keyLabel', 'pinFile'] as const) {
      if (typeof cfg[field] !== 'string' || cfg[field].length === 0) throw new StartupError(`seal configuration of signer ${index}: pkcs11 mode needs '${field}'`);
    }
    const pinFile = resolve(paths(dir).root, cfg.pinFile);
    const pinBytes = readSecretFile(pinFile, 'PKCS#11 PIN file', 'write the token user PIN into it (mode 0600)');
    const pin = pinBytes.toString('utf8');
    pinBytes.fill(0);
    let kek: Pkcs11Kek;
    try {
      kek = new Pkcs11Kek({ modulePath: cfg.module, tokenLabel: cfg.tokenLabel, pin, keyLabel: cfg.keyLabel });
    } catch (e) {
      throw new StartupError(`seal configuration of signer ${index}: ${(e as Error).message}`);
    }
    return { kek, description: kek.description, warnings, dispose: () => kek.dispose() };
  }
  throw new StartupError(`seal configuration of signer ${index}: unknown mode '${String(mode)}' (expected 'passphrase' or 'pkcs11')`);
}

function sealFailure(what: string, e: unknown, kekDescription: string): StartupError {
  if (e instanceof SealError) {
    const hint =
      e.code === 'wrong-key'
        ? ` — the configured KEK (${kekDescription}) does not open the data sealed before; restore the right passphrase/token`
        : '';
    return new StartupError(`${what}: ${e.message}${hint}`);
  }
  return new StartupError(`${what}: ${(e as Error)?.message ?? String(e)}`);
}

export class ShareStore {
  readonly dataDir: string;
  readonly sharesDir: string;

  constructor(
    dir: string,
    readonly index: number,
    private readonly kekSetup: KekSetup,
  ) {
    this.dataDir = paths(dir).signer(index);
    this.sharesDir = join(this.dataDir, 'shares');
  }

  sharePath(keyId: string): string {
    if (!KEY_ID_PATTERN.test(keyId)) throw new Error(`invalid key id '${keyId}'`);
    return join(this.sharesDir, `${keyId}${SHARE_SUFFIX}`);
  }

  /**
   * Proves the KEK: opens the canary when it exists (wrong passphrase / PIN / token → StartupError),
   * or seals a new one (missing token, wrong PIN → StartupError). Returns true when created.
   */
  async checkKek(): Promise<boolean> {
    const file = join(this.dataDir, SEAL_CHECK_FILE);
    if (existsSync(file)) {
      let plain: Buffer;
      try {
        plain = await readSealedFile(file, this.kekSetup.kek, sealCheckAad(this.index));
      } catch (e) {
        throw sealFailure(`cannot open ${file} with the configured seal key`, e, this.kekSetup.description);
      }
      const ok = plain.equals(SEAL_CHECK_PLAINTEXT);
      plain.fill(0);
      if (!ok) throw new StartupError(`${file} opened but holds unexpected content`);
      return false;
    }
    try {
      await writeSealedFile(file, SEAL_CHECK_PLAINTEXT, this.kekSetup.kek, sealCheckAad(this.index));
    } catch (e) {
      throw sealFailure(`cannot seal with the configured seal key (${this.kekSetup.description})`, e, this.kekSetup.description);
    }
    return true;
  }

  pendingPath(keyId: string): string {
    return this.sharePath(keyId).slice(0, -SHARE_SUFFIX.length) + PENDING_SUFFIX;
  }

  /**
   * Opens every share file, committed and pending. Throws StartupError naming the file that
   * cannot be used. A pending share is the same sealed format under the same binding as the
   * committed one (a commit is a rename).
   */
  async loadAll(): Promise<{ shares: KeyShare[]; pending: KeyShare[]; ignored: string[] }> {
    const names = (await readdir(this.sharesDir)).sort();
    const shares: KeyShare[] = [];
    const pending: KeyShare[] = [];
    const ignored: string[] = [];
    for (const name of names) {
      if (isTempName(name)) {
        // Left by a crash during an atomic replace: sealed, incomplete, never renamed into place.
        await rm(join(this.sharesDir, name), { force: true });
        continue;
      }
      const suffix = [SHARE_SUFFIX, PENDING_SUFFIX].find((x) => name.endsWith(x));
      if (!suffix) {
        ignored.push(name);
        continue;
      }
      const share = await this.open(join(this.sharesDir, name), name.slice(0, -suffix.length));
      (suffix === SHARE_SUFFIX ? shares : pending).push(share);
    }
    return { shares, pending, ignored };
  }

  private async open(file: string, keyId: string): Promise<KeyShare> {
    if (!KEY_ID_PATTERN.test(keyId)) throw new StartupError(`share file ${file}: '${keyId}' is not a valid key id`);
    let plain: Buffer;
    try {
      plain = await readSealedFile(file, this.kekSetup.kek, shareAad(this.index, keyId));
    } catch (e) {
      throw sealFailure(`cannot unseal share file ${file}`, e, this.kekSetup.description);
    }
    // decodeKeyShare copies with .slice(), which for a Node Buffer is a view: decode from a
    // plain Uint8Array so that zeroising the plaintext cannot reach into the share.
    const bytes = new Uint8Array(plain.length);
    bytes.set(plain);
    plain.fill(0);
    try {
      let share: KeyShare;
      try {
        share = decodeKeyShare(bytes);
      } catch (e) {
        throw new StartupError(`share file ${file} opened but does not decode: ${(e as Error).message}`);
      }
      if (share.keyId !== keyId) throw new StartupError(`share file ${file} holds key '${share.keyId}'`);
      if (share.self !== this.index) throw new StartupError(`share file ${file} belongs to signer ${share.self}, this is signer ${this.index}`);
      return share;
    } finally {
      bytes.fill(0);
    }
  }

  /** Seals a share, atomically replacing the key's previous file. */
  save(share: KeyShare): Promise<void> {
    return this.seal(share, this.sharePath(share.keyId));
  }

  /** Seals a share as the key's pending one (atomically replacing an older pending one). */
  savePending(share: KeyShare): Promise<void> {
    return this.seal(share, this.pendingPath(share.keyId));
  }

  /** Makes the pending share the key's share: one rename (atomic), then the directory fsynced. */
  async commitPending(keyId: string): Promise<void> {
    await rename(this.pendingPath(keyId), this.sharePath(keyId));
    await fsyncDirectory(this.sharesDir);
  }

  /** Removes the key's pending share (if any), durably. */
  async discardPending(keyId: string): Promise<void> {
    await rm(this.pendingPath(keyId), { force: true });
    await fsyncDirectory(this.sharesDir);
  }

  /** Removes every file of the key (share and pending), durably. */
  async erase(keyId: string): Promise<void> {
    await rm(this.sharePath(keyId), { force: true });
    await rm(this.pendingPath(keyId), { force: true });
    await fsyncDirectory(this.sharesDir);
  }

  private async seal(share: KeyShare, file: string): Promise<void> {
    if (share.self !== this.index) throw new Error(`share of party ${share.self} given to signer ${this.index}`);
    const encoded = encodeKeyShare(share);
    try {
      await writeSealedFile(file, encoded, this.kekSetup.kek, shareAad(this.index, share.keyId));
    } finally {
      encoded.fill(0);
    }
  }
}
