/**
 * Development KEK: the data key is wrapped with AES-256-GCM under scrypt(passphrase, salt).
 * A fresh random salt is drawn for every file; the scrypt cost parameters are stored in the header
 * and bounded on read, so a hostile file cannot make the reader allocate gigabytes or spin for
 * minutes.
 *
 * Parameter block (all integers big-endian):
 *   logN u8 | r u32 | p u32 | saltLen u8 | salt | iv (12) | wrapped data key (32) | GCM tag (16)
 * Inner GCM AAD: "quorumkey seal v1 passphrase-scrypt data key" ‖ (logN | r | p | saltLen | salt).
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb } from 'node:crypto';
import { ByteReader, concatBytes, u32be } from './bytes.js';
import { DATA_KEY_BYTES, KEK_KIND, type Kek } from './kek.js';
import { SealError } from './seal-error.js';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  logN: number;
  /** Block size. */
  r: number;
  /** Parallelisation. */
  p: number;
}

export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ logN: 15, r: 8, p: 1 });

/**
 * Bounds applied to parameters read from a file (and to the ones a PassphraseKek is built with).
 * Memory of scrypt is about 128·N·r bytes; work about N·r·p block mixes.
 */
export const SCRYPT_BOUNDS = Object.freeze({
  minLogN: 10,
  maxLogN: 20,
  maxR: 32,
  maxP: 16,
  /** 128·N·r must not exceed this (256 MiB; the default parameters use 32 MiB). */
  maxMemoryBytes: 256 * 1024 * 1024,
  /** N·r·p must not exceed this (64× the default cost). */
  maxWork: 2 ** 24,
  minSaltBytes: 16,
  maxSaltBytes: 64,
});

const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const INNER_AAD_LABEL = Buffer.from('quorumkey seal v1 passphrase-scrypt data key', 'utf8');

export function checkScryptParams(params: ScryptParams): void {
  const { logN, r, p } = params;
  const B = SCRYPT_BOUNDS;
  if (!Number.isInteger(logN) || logN < B.minLogN || logN > B.maxLogN) {
    throw new SealError('bad-params', `scrypt logN=${logN} outside [${B.minLogN}, ${B.maxLogN}]`);
  }
  if (!Number.isInteger(r) || r < 1 || r > B.maxR) {
    throw new SealError('bad-params', `scrypt r=${r} outside [1, ${B.maxR}]`);
  }
  if (!Number.isInteger(p) || p < 1 || p > B.maxP) {
    throw new SealError('bad-params', `scrypt p=${p} outside [1, ${B.maxP}]`);
  }
  const N = 2 ** logN;
  if (128 * N * r > B.maxMemoryBytes) {
    throw new SealError('bad-params', `scrypt N=2^${logN}, r=${r} needs ${(128 * N * r) / 2 ** 20} MiB, limit ${B.maxMemoryBytes / 2 ** 20} MiB`);
  }
  if (N * r * p > B.maxWork) {
    throw new SealError('bad-params', `scrypt cost N·r·p = 2^${Math.log2(N * r * p).toFixed(1)} exceeds 2^${Math.log2(B.maxWork)}`);
  }
}

function deriveKey(passphrase: Buffer, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  const maxmem = 128 * N * params.r + 128 * params.r * params.p + 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scryptCb(passphrase, salt, 32, { N, r: params.r, p: params.p, maxmem }, (err, key) => {
      if (err) reject(new SealError('bad-params', `scrypt failed: ${err.message}`));
      else resolve(key);
    });
  });
}

export interface PassphraseKekOptions {
  /** Cost parameters for new files (default N=2^15, r=8, p=1). Reading uses the file's own. */
  scrypt?: ScryptParams;
}

export class PassphraseKek implements Kek {
  readonly kind = KEK_KIND.passphraseScrypt;
  readonly description = 'passphrase (scrypt)';
  private readonly passphrase: Buffer;
  private readonly params: ScryptParams;
  private disposed = false;

  /**
   * @param passphrase a string (normalised to Unicode NFC, then UTF-8) or raw bytes (copied).
   *   Call dispose() to zeroise the copy when done.
   */
  constructor(passphrase: string | Uint8Array, options: PassphraseKekOptions = {}) {
    const bytes =
      typeof passphrase === 'string' ? Buffer.from(passphrase.normalize('NFC'), 'utf8') : Buffer.from(passphrase);
    if (bytes.length === 0) {
      throw new SealError('bad-params', 'empty passphrase');
    }
    this.passphrase = Buffer.alloc(bytes.length);
    bytes.copy(this.passphrase);
    bytes.fill(0);
    this.params = { ...(options.scrypt ?? DEFAULT_SCRYPT_PARAMS) };
    checkScryptParams(this.params);
  }

  /** Zeroises the stored passphrase; the object is unusable afterwards. */
  dispose(): void {
    this.passphrase.fill(0);
    this.disposed = true;
  }

  private derive(salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
    if (this.disposed) throw new SealError('bad-params', 'this PassphraseKek was disposed');
    return deriveKey(this.passphrase, salt, params);
  }

  async wrapDataKey(dataKey: Uint8Array): Promise<Uint8Array> {
    if (dataKey.length !== DATA_KEY_BYTES) throw new RangeError('data key must be 32 bytes');
    const salt = randomBytes(SALT_BYTES);
    const prefix = concatBytes(Uint8Array.of(this.params.logN), u32be(this.params.r), u32be(this.params.p), Uint8Array.of(salt.length), salt);
    const kek = await this.derive(salt, this.params);
    try {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', kek, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(concatBytes(INNER_AAD_LABEL, prefix));
      const ct = Buffer.concat([cipher.update(dataKey), cipher.final()]);
      return concatBytes(prefix, iv, ct, cipher.getAuthTag());
    } finally {
      kek.fill(0);
    }
  }

  async unwrapDataKey(block: Uint8Array): Promise<Buffer> {
    const rd = new ByteReader(block, 'passphrase KEK parameters');
    const logN = rd.u8('logN');
    const r = rd.u32('r');
    const p = rd.u32('p');
    checkScryptParams({ logN, r, p });
    const saltLen = rd.u8('saltLen');
    if (saltLen < SCRYPT_BOUNDS.minSaltBytes || saltLen > SCRYPT_BOUNDS.maxSaltBytes) {
      throw new SealError('bad-params', `scrypt salt of ${saltLen} bytes outside [${SCRYPT_BOUNDS.minSaltBytes}, ${SCRYPT_BOUNDS.maxSaltBytes}]`);
    }
    const salt = rd.bytes(saltLen, 'salt');
    const prefixLen = rd.offset;
    const iv = rd.bytes(IV_BYTES, 'iv');
    const ct = rd.bytes(DATA_KEY_BYTES, 'wrapped data key');
    const tag = rd.bytes(TAG_BYTES, 'tag');
    rd.end();

    const kek = await this.derive(salt, { logN, r, p });
    const decipher = createDecipheriv('aes-256-gcm', kek, iv, { authTagLength: TAG_BYTES });
    kek.fill(0);
    decipher.setAAD(concatBytes(INNER_AAD_LABEL, block.subarray(0, prefixLen)));
    decipher.setAuthTag(tag);
    const dataKey = Buffer.alloc(DATA_KEY_BYTES);
    const part = decipher.update(ct);
    part.copy(dataKey);
    part.fill(0);
    try {
      decipher.final();
    } catch {
      dataKey.fill(0);
      throw new SealError(
        'wrong-key',
        'wrong passphrase or corrupted file (AES-GCM cannot tell a wrong passphrase from a modified key header)',
      );
    }
    return dataKey;
  }
}
