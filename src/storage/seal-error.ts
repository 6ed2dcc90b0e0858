/**
 * Errors of the sealed-file layer. Every failure carries a stable machine-readable `code` and a
 * message meant for an operator. Messages name files, token labels, key labels and parameter
 * values, never a passphrase, a PIN, a key or any plaintext byte.
 */
export type SealErrorCode =
  // envelope / file
  | 'io' // the file could not be read or written (message carries the errno code)
  | 'not-sealed' // no quorumkey sealed-file magic: garbage, or a different file type
  | 'truncated' // the file ends before the envelope does (empty, cut short)
  | 'too-large' // the file exceeds MAX_SEALED_FILE_BYTES
  | 'unsupported-version' // a format version this build does not know
  | 'unsupported-kek' // a KEK kind this build does not know
  | 'malformed' // the header is inconsistent (bad lengths, bad field values)
  | 'bad-params' // KEK parameters out of the accepted bounds (e.g. hostile scrypt cost)
  | 'kek-mismatch' // the file was sealed by another KEK kind / another token key label
  | 'aad-mismatch' // the file belongs to another slot (signer id / key id / epoch)
  | 'wrong-key' // wrong passphrase or wrong token key, or the key header was corrupted (GCM cannot tell)
  | 'corrupted' // the data key opened but the body failed authentication: the file was modified
  // PKCS#11
  | 'pkcs11-module' // module path missing or not loadable
  | 'no-token' // the module has no initialised token at all
  | 'token-not-found' // initialised tokens exist, none has the configured label
  | 'token-ambiguous' // more than one token carries the configured label
  | 'wrong-pin' // C_Login refused the user PIN
  | 'pin-locked' // the user PIN is locked on the token
  | 'key-not-found' // no AES key object with the configured label on the token
  | 'key-ambiguous' // more than one AES key object with the configured label
  | 'weak-key' // the token key is extractable or not sensitive: refused
  | 'pkcs11'; // any other PKCS#11 failure (message carries the CKR_ name)

export class SealError extends Error {
  readonly code: SealErrorCode;

  constructor(code: SealErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'SealError';
    this.code = code;
  }
}
