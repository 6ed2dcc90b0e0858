/**
 * Sealed files (DESIGN §7): the at-rest form of a signer's key share.
 *
 * Envelope, format version 1 (integers big-endian):
 *
 *   offset  size  field
 *   0       4     magic "QKSF"
 *   4       1     format version = 1
 *   5       1     KEK kind (1 = passphrase-scrypt, 2 = pkcs11-aes-gcm; see kek.ts)
 *   6       2     L = length of the KEK parameter block
 *   8       L     KEK parameter block (salt + scrypt cost, or token key label; and the wrapped data key)
 *   8+L     32    SHA-256 of the caller's AAD (only to report a file copied to another slot clearly)
 *   40+L    12    nonce (fresh random per write)
 *   52+L    n     AES-256-GCM ciphertext of the plaintext under the per-file data key
 *   end-16  16    GCM tag
 *
 * The GCM additional data is header ‖ aad, where header is bytes [0, 52+L) — every field above
 * except ciphertext and tag — and aad is the caller's binding (e.g. signer id ‖ key id ‖ epoch).
 * The header is self-delimiting, so the concatenation is unambiguous. A file moved to another
 * slot, or any changed bit, fails to open.
 *
 * The per-file data key is random, wrapped by the KEK provider (passphrase via scrypt, or a
 * PKCS#11 token), and zeroised after use. Plaintext returned by readSealedFile/unseal belongs to
 * the caller, who should zeroise it when done.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-write.js';
import { ByteReader, concatBytes, u16be } from './bytes.js';
import { DATA_KEY_BYTES, KEK_KIND_NAMES, type Kek } from './kek.js';
import { SealError } from './seal-error.js';

export { SealError, type SealErrorCode } from './seal-error.js';
export { KEK_KIND, KEK_KIND_NAMES, DATA_KEY_BYTES, type Kek, type KekKindId } from './kek.js';
export {
  PassphraseKek,
  DEFAULT_SCRYPT_PARAMS,
  SCRYPT_BOUNDS,
  checkScryptParams,
  type PassphraseKekOptions,
  type ScryptParams,
} from './passphrase-kek.js';
export { Pkcs11Kek, SOFTHSM2_MODULE_CANDIDATES, findSoftHsm2Module, type Pkcs11KekOptions } from './pkcs11-kek.js';
export { writeFileAtomic, isTempName } from './atomic-write.js';

export const SEAL_MAGIC = Buffer.from('QKSF', 'ascii');
export const SEAL_FORMAT_VERSION = 1;
/** Files larger than this are refused before they are read (share files are a few KiB). */
export const MAX_SEALED_FILE_BYTES = 16 * 1024 * 1024;

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const AAD_DIGEST_BYTES = 32;
const FIXED_HEADER_BYTES = 8;

export type Aad = Uint8Array | string;

function aadBytes(aad: Aad): Buffer {
  return typeof aad === 'string' ? Buffer.from(aad, 'utf8') : Buffer.from(aad.buffer, aad.byteOffset, aad.byteLength);
}

function aadDigest(aad: Buffer): Buffer {
  return createHash('sha256').update('quorumkey seal v1 aad').update(aad).digest();
}

function kekName(kind: number): string {
  return KEK_KIND_NAMES[kind] ?? `kind ${kind}`;
}

/** Seals `plaintext` into an envelope (in memory). */
export async function seal(plaintext: Uint8Array, kek: Kek, aad: Aad): Promise<Buffer> {
  const ad = aadBytes(aad);
  const dataKey = randomBytes(DATA_KEY_BYTES);
  try {
    const params = await kek.wrapDataKey(dataKey);
    if (params.length > 0xffff) throw new SealError('malformed', `KEK parameter block of ${params.length} bytes is too large`);
    const nonce = randomBytes(NONCE_BYTES);
    const header = concatBytes(SEAL_MAGIC, Uint8Array.of(SEAL_FORMAT_VERSION, kek.kind), u16be(params.length), params, aadDigest(ad), nonce);
    const cipher = createCipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(concatBytes(header, ad));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return concatBytes(header, ct, cipher.getAuthTag());
  } finally {
    dataKey.fill(0);
  }
}

/** Opens an envelope produced by `seal`. Throws SealError; the result belongs to the caller. */
export async function unseal(file: Uint8Array, kek: Kek, aad: Aad): Promise<Buffer> {
  if (file.length === 0) throw new SealError('truncated', 'empty file');
  const magicPart = file.subarray(0, SEAL_MAGIC.length);
  if (!SEAL_MAGIC.subarray(0, magicPart.length).equals(magicPart)) {
    throw new SealError('not-sealed', 'not a quorumkey sealed file (bad magic)');
  }
  const rd = new ByteReader(file, 'sealed file header');
  rd.bytes(SEAL_MAGIC.length, 'magic');
  const version = rd.u8('version');
  if (version !== SEAL_FORMAT_VERSION) {
    throw new SealError('unsupported-version', `sealed-file format version ${version}; this build reads version ${SEAL_FORMAT_VERSION}`);
  }
  const kind = rd.u8('kek kind');
  if (!(kind in KEK_KIND_NAMES)) {
    throw new SealError('unsupported-kek', `unknown KEK kind ${kind}`);
  }
  const paramsLen = rd.u16('kek params length');
  const minTotal = FIXED_HEADER_BYTES + paramsLen + AAD_DIGEST_BYTES + NONCE_BYTES + TAG_BYTES;
  if (file.length < minTotal) {
    throw new SealError('truncated', `file has ${file.length} bytes, its header announces at least ${minTotal}`);
  }
  if (kind !== kek.kind) {
    throw new SealError('kek-mismatch', `file was sealed with a ${kekName(kind)} KEK, opened with ${kek.description}`);
  }
  const params = rd.bytes(paramsLen, 'kek params');
  const storedAadDigest = rd.bytes(AAD_DIGEST_BYTES, 'aad digest');
  const nonce = rd.bytes(NONCE_BYTES, 'nonce');
  const headerLen = rd.offset;
  const ct = file.subarray(headerLen, file.length - TAG_BYTES);
  const tag = file.subarray(file.length - TAG_BYTES);

  const ad = aadBytes(aad);
  if (!aadDigest(ad).equals(storedAadDigest)) {
    throw new SealError('aad-mismatch', 'file is bound to another slot (signer id / key id / epoch differ from the expected AAD), or its header was modified');
  }

  const dataKey = await kek.unwrapDataKey(params);
  let out: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(concatBytes(file.subarray(0, headerLen), ad));
    decipher.setAuthTag(tag);
    out = Buffer.alloc(ct.length);
    const part = decipher.update(ct);
    part.copy(out);
    part.fill(0);
    try {
      decipher.final();
    } catch {
      out.fill(0);
      throw new SealError('corrupted', 'file content failed authentication: it was modified or corrupted after sealing (the key itself is right)');
    }
  } finally {
    dataKey.fill(0);
  }
  return out;
}

function ioError(op: string, path: string, e: unknown): SealError {
  const code = (e as NodeJS.ErrnoException)?.code ?? 'unknown error';
  return new SealError('io', `cannot ${op} ${path}: ${code}`, { cause: e });
}

/**
 * Seals `plaintext` and atomically replaces `path` with it (temp file in the same directory,
 * fsync, rename, fsync of the directory), mode 0600 whatever the umask. Leaves no temp file behind.
 */
export async function writeSealedFile(path: string, plaintext: Uint8Array, kek: Kek, aad: Aad): Promise<void> {
  const envelope = await seal(plaintext, kek, aad);
  try {
    await writeFileAtomic(path, envelope, 0o600);
  } catch (e) {
    throw ioError('write', path, e);
  }
}

/** Reads and opens a sealed file. Throws SealError with a code naming what is wrong. */
export async function readSealedFile(path: string, kek: Kek, aad: Aad): Promise<Buffer> {
  let data: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new SealError('io', `${path} is not a regular file`);
      if (st.size > MAX_SEALED_FILE_BYTES) {
        throw new SealError('too-large', `${path} has ${st.size} bytes, more than the ${MAX_SEALED_FILE_BYTES} a sealed file may have`);
      }
      data = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof SealError) throw e;
    throw ioError('read', path, e);
  }
  return unseal(data, kek, aad);
}
