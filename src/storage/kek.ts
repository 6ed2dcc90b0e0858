/**
 * Key-encryption-key providers. A sealed file is encrypted under a fresh random 256-bit data key;
 * a KEK provider protects that data key and stores what it needs to recover it (salt and cost
 * parameters, token key label, wrapped key…) in a parameter block of the file header. The block
 * is authenticated as part of the envelope's AAD, so no field of it can be changed unnoticed.
 */

/** KEK kind identifiers, as stored in byte 5 of the sealed-file header. */
export const KEK_KIND = {
  /** Data key wrapped with AES-256-GCM under scrypt(passphrase, per-file salt). Development only. */
  passphraseScrypt: 1,
  /** Data key wrapped with CKM_AES_GCM by a non-extractable AES-256 key on a PKCS#11 token. */
  pkcs11AesGcm: 2,
} as const;

export type KekKindId = (typeof KEK_KIND)[keyof typeof KEK_KIND];

export const KEK_KIND_NAMES: Readonly<Record<number, string>> = {
  [KEK_KIND.passphraseScrypt]: 'passphrase-scrypt',
  [KEK_KIND.pkcs11AesGcm]: 'pkcs11-aes-gcm',
};

/** Length in bytes of the per-file data key (AES-256). */
export const DATA_KEY_BYTES = 32;

export interface Kek {
  /** Stored in the header; a file is only opened by a KEK of the same kind. */
  readonly kind: KekKindId;
  /** Human description for error messages (never contains a secret). */
  readonly description: string;
  /**
   * Protects `dataKey` (DATA_KEY_BYTES long) and returns the parameter block to store in the
   * header. Must not keep a reference to `dataKey`; the caller zeroises it.
   */
  wrapDataKey(dataKey: Uint8Array): Promise<Uint8Array>;
  /**
   * Recovers the data key from a parameter block written by `wrapDataKey`. Throws SealError
   * ('wrong-key' when the block does not authenticate, 'bad-params' / 'malformed' when it cannot
   * be parsed or is out of bounds, 'kek-mismatch' when it names another key). The caller owns
   * the returned buffer and zeroises it.
   */
  unwrapDataKey(params: Uint8Array): Promise<Buffer>;
}
