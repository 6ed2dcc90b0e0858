/**
 * Production KEK: a non-extractable, sensitive AES-256 key object on a PKCS#11 token (an HSM;
 * SoftHSM2 in tests) encrypts the per-file data key with CKM_AES_GCM. The KEK never leaves the
 * token; the data key is in process memory only while a file is sealed or opened.
 *
 * Parameter block:
 *   keyLabelLen u8 | keyLabel (UTF-8) | iv (12) | GCM ciphertext of the data key (32) | tag (16)
 * Inner GCM AAD (given to the token): "quorumkey seal v1 pkcs11-aes-gcm data key" ‖ keyLabel.
 *
 * Every operation loads the module once per process (it stays loaded: unloading libraries that
 * link OpenSSL is unsafe), calls C_Initialize, opens a session, logs in, does its work and then
 * logs out, closes the session and calls C_Finalize — whatever happens. If the module was already
 * initialised by other code in this process we leave it initialised. All PKCS#11 calls are
 * synchronous, so operations never interleave inside one process.
 *
 * Key objects are looked up by label (CKO_SECRET_KEY, CKK_AES, CKA_TOKEN). Sealing creates the
 * key when it is missing (createKeyIfMissing, default true); opening never creates one. A key
 * found on the token is used only if it is CKA_SENSITIVE and not CKA_EXTRACTABLE.
 *
 * Note for real HSMs: the GCM IV is chosen here (random 96 bits) and passed in; tokens in a FIPS
 * mode that insist on generating the IV themselves will refuse it (CKR_MECHANISM_PARAM_INVALID).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import type * as Pkcs11Types from 'pkcs11js';
import { ByteReader, concatBytes } from './bytes.js';
import { DATA_KEY_BYTES, KEK_KIND, type Kek } from './kek.js';
import { SealError } from './seal-error.js';

type Pkcs11Module = typeof Pkcs11Types;
type Handle = Buffer;

const IV_BYTES = 12;
const TAG_BYTES = 16;
const INNER_AAD_LABEL = Buffer.from('quorumkey seal v1 pkcs11-aes-gcm data key', 'utf8');

/** Where distributions put SoftHSM2's module. */
export const SOFTHSM2_MODULE_CANDIDATES: readonly string[] = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib64/pkcs11/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

/** First existing SoftHSM2 module path, or undefined. */
export function findSoftHsm2Module(): string | undefined {
  return SOFTHSM2_MODULE_CANDIDATES.find((p) => existsSync(p));
}

export interface Pkcs11KekOptions {
  /** Path of the PKCS#11 module (.so), e.g. /usr/lib/softhsm/libsofthsm2.so. */
  modulePath: string;
  /** Label of the token (CK_TOKEN_INFO.label, trailing blanks ignored). */
  tokenLabel: string;
  /** User PIN. Kept in memory for the lifetime of the object; dispose() forgets it. */
  pin: string;
  /** CKA_LABEL of the AES-256 key object (1–255 UTF-8 bytes). */
  keyLabel: string;
  /** Create the key on the token when sealing and it does not exist yet (default true). */
  createKeyIfMissing?: boolean;
}

let pkcs11jsCache: Pkcs11Module | undefined;
function loadPkcs11js(): Pkcs11Module {
  if (!pkcs11jsCache) {
    try {
      pkcs11jsCache = createRequire(import.meta.url)('pkcs11js') as Pkcs11Module;
    } catch (e) {
      throw new SealError('pkcs11-module', `the pkcs11js native addon could not be loaded (${(e as Error).message}); run npm install`, { cause: e });
    }
  }
  return pkcs11jsCache;
}

/** One loaded library per module path; never unloaded (see file comment). */
const loadedModules = new Map<string, Pkcs11Types.PKCS11>();

function isPkcs11Error(e: unknown): e is Error & { code: number } {
  if (!(e instanceof Error)) return false;
  const code = (e as unknown as { code?: unknown }).code;
  return typeof code === 'number' && code !== 0;
}

export class Pkcs11Kek implements Kek {
  readonly kind = KEK_KIND.pkcs11AesGcm;
  readonly description: string;
  private readonly modulePath: string;
  private readonly tokenLabel: string;
  private pin: string;
  private readonly keyLabel: string;
  private readonly keyLabelBytes: Buffer;
  private readonly createKeyIfMissing: boolean;
  private disposed = false;

  constructor(options: Pkcs11KekOptions) {
    this.modulePath = options.modulePath;
    this.tokenLabel = options.tokenLabel;
    this.pin = options.pin;
    this.keyLabel = options.keyLabel;
    this.keyLabelBytes = Buffer.from(options.keyLabel, 'utf8');
    if (this.keyLabelBytes.length < 1 || this.keyLabelBytes.length > 255) {
      throw new SealError('bad-params', 'PKCS#11 key label must be 1 to 255 bytes of UTF-8');
    }
    if (this.tokenLabel.length === 0 || Buffer.byteLength(this.tokenLabel, 'utf8') > 32) {
      throw new SealError('bad-params', 'PKCS#11 token label must be 1 to 32 bytes of UTF-8');
    }
    this.createKeyIfMissing = options.createKeyIfMissing ?? true;
    this.description = `PKCS#11 key '${this.keyLabel}' on token '${this.tokenLabel}' (${this.modulePath})`;
  }

  /**
   * Drops the reference to the PIN; further operations fail. (A JavaScript string cannot be
   * zeroised: keep the PIN in a file or an environment variable read at start, not in argv.)
   */
  dispose(): void {
    this.pin = '';
    this.disposed = true;
  }

  async wrapDataKey(dataKey: Uint8Array): Promise<Uint8Array> {
    if (dataKey.length !== DATA_KEY_BYTES) throw new RangeError('data key must be 32 bytes');
    return this.withSession(true, (p11, mod, session, key) => {
      const iv = randomBytes(IV_BYTES);
      p11.C_EncryptInit(session, this.gcmMechanism(mod, iv), key);
      const out = Buffer.alloc(DATA_KEY_BYTES + TAG_BYTES + 16);
      const input = Buffer.isBuffer(dataKey) ? dataKey : Buffer.from(dataKey);
      let ct: Buffer;
      try {
        ct = p11.C_Encrypt(session, input, out);
      } finally {
        if (input !== dataKey) input.fill(0);
      }
      if (ct.length !== DATA_KEY_BYTES + TAG_BYTES) {
        throw new SealError('pkcs11', `token returned ${ct.length} bytes for a GCM-wrapped data key, expected ${DATA_KEY_BYTES + TAG_BYTES}`);
      }
      return concatBytes(Uint8Array.of(this.keyLabelBytes.length), this.keyLabelBytes, iv, ct);
    });
  }

  async unwrapDataKey(block: Uint8Array): Promise<Buffer> {
    const rd = new ByteReader(block, 'PKCS#11 KEK parameters');
    const labelLen = rd.u8('keyLabelLen');
    const label = rd.bytes(labelLen, 'keyLabel');
    const iv = Buffer.from(rd.bytes(IV_BYTES, 'iv'));
    const wrapped = Buffer.from(rd.bytes(DATA_KEY_BYTES + TAG_BYTES, 'wrapped data key'));
    rd.end();
    if (!this.keyLabelBytes.equals(label)) {
      throw new SealError(
        'kek-mismatch',
        `file was sealed with token key ${JSON.stringify(Buffer.from(label).toString('utf8'))}, this KEK is configured for '${this.keyLabel}'`,
      );
    }
    return this.withSession(false, (p11, mod, session, key) => {
      p11.C_DecryptInit(session, this.gcmMechanism(mod, iv), key);
      const out = Buffer.alloc(wrapped.length);
      let pt: Buffer;
      try {
        pt = p11.C_Decrypt(session, wrapped, out);
      } catch (e) {
        out.fill(0);
        if (isPkcs11Error(e) && [mod.CKR_ENCRYPTED_DATA_INVALID, mod.CKR_ENCRYPTED_DATA_LEN_RANGE, mod.CKR_GENERAL_ERROR].includes(e.code)) {
          // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR.
          throw new SealError(
            'wrong-key',
            `wrong token key or corrupted file: ${this.description} could not authenticate the wrapped data key (AES-GCM cannot tell a different key from a modified key header)`,
          );
        }
        throw e;
      }
      if (pt.length !== DATA_KEY_BYTES) {
        out.fill(0);
        throw new SealError('wrong-key', `unwrapped data key has ${pt.length} bytes`);
      }
      const dataKey = Buffer.alloc(DATA_KEY_BYTES);
      pt.copy(dataKey);
      out.fill(0);
      return dataKey;
    });
  }

  private gcmMechanism(mod: Pkcs11Module, iv: Buffer): Pkcs11Types.Mechanism {
    const param: Pkcs11Types.AesGCM = {
      type: mod.CK_PARAMS_AES_GCM_v240,
      iv,
      ivBits: IV_BYTES * 8,
      aad: concatBytes(INNER_AAD_LABEL, this.keyLabelBytes),
      tagBits: TAG_BYTES * 8,
    };
    return { mechanism: mod.CKM_AES_GCM, parameter: param };
  }

  /** Loads/initialises the module, opens a logged-in session, finds (or creates) the key, runs fn, cleans up. */
  private withSession<T>(
    forWrite: boolean,
    fn: (p11: Pkcs11Types.PKCS11, mod: Pkcs11Module, session: Handle, key: Handle) => T,
  ): T {
    if (this.disposed) throw new SealError('bad-params', 'this Pkcs11Kek was disposed');
    const mod = loadPkcs11js();
    const p11 = this.loadModule(mod);
    let initialisedHere = false;
    try {
      p11.C_Initialize();
      initialisedHere = true;
    } catch (e) {
      if (!(isPkcs11Error(e) && e.code === mod.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
        throw this.wrapError(mod, e, 'C_Initialize');
      }
    }
    try {
      const slot = this.findSlot(p11, mod);
      let session: Handle;
      try {
        session = p11.C_OpenSession(slot, mod.CKF_SERIAL_SESSION | (forWrite ? mod.CKF_RW_SESSION : 0));
      } catch (e) {
        throw this.wrapError(mod, e, 'C_OpenSession');
      }
      let loggedInHere = false;
      try {
        try {
          p11.C_Login(session, mod.CKU_USER, this.pin);
          loggedInHere = true;
        } catch (e) {
          if (!(isPkcs11Error(e) && e.code === mod.CKR_USER_ALREADY_LOGGED_IN)) throw this.loginError(mod, e);
        }
        const key = this.findOrCreateKey(p11, mod, session, forWrite && this.createKeyIfMissing);
        try {
          return fn(p11, mod, session, key);
        } catch (e) {
          throw e instanceof SealError ? e : this.wrapError(mod, e, 'key operation');
        }
      } finally {
        if (loggedInHere) {
          try {
            p11.C_Logout(session);
          } catch {
            /* closing the session below ends the login state anyway */
          }
        }
        try {
          p11.C_CloseSession(session);
        } catch {
          /* nothing more we can do */
        }
      }
    } finally {
      if (initialisedHere) {
        try {
          p11.C_Finalize();
        } catch {
          /* ignore */
        }
      }
    }
  }

  private loadModule(mod: Pkcs11Module): Pkcs11Types.PKCS11 {
    const cached = loadedModules.get(this.modulePath);
    if (cached) return cached;
    if (!existsSync(this.modulePath)) {
      throw new SealError(
        'pkcs11-module',
        `PKCS#11 module not found at ${this.modulePath} (for SoftHSM2 install the softhsm2 package; for an HSM use its vendor's module path)`,
      );
    }
    const p11 = new mod.PKCS11();
    try {
      p11.load(this.modulePath);
    } catch (e) {
      throw new SealError('pkcs11-module', `cannot load PKCS#11 module ${this.modulePath}: ${(e as Error).message}`, { cause: e });
    }
    loadedModules.set(this.modulePath, p11);
    return p11;
  }

  private findSlot(p11: Pkcs11Types.PKCS11, mod: Pkcs11Module): Handle {
    let slots: Handle[];
    try {
      slots = p11.C_GetSlotList(true);
    } catch (e) {
      throw this.wrapError(mod, e, 'C_GetSlotList');
    }
    const labels: string[] = [];
    const matches: Handle[] = [];
    for (const slot of slots) {
      let info: Pkcs11Types.TokenInfo;
      try {
        info = p11.C_GetTokenInfo(slot);
      } catch {
        continue; // token removed meanwhile, or unreadable: not ours
      }
      if ((info.flags & mod.CKF_TOKEN_INITIALIZED) === 0) continue;
      const label = info.label.replace(/[ \0]+$/, '');
      labels.push(label);
      if (label === this.tokenLabel) matches.push(slot);
    }
    if (labels.length === 0) {
      throw new SealError(
        'no-token',
        `no initialised token in PKCS#11 module ${this.modulePath} (is the HSM connected? for SoftHSM2 check SOFTHSM2_CONF and run softhsm2-util --init-token)`,
      );
    }
    if (matches.length === 0) {
      throw new SealError(
        'token-not-found',
        `no token labelled '${this.tokenLabel}' in ${this.modulePath}; tokens present: ${labels.map((l) => `'${l}'`).join(', ')}`,
      );
    }
    if (matches.length > 1) {
      throw new SealError('token-ambiguous', `${matches.length} tokens are labelled '${this.tokenLabel}' in ${this.modulePath}; labels must be unique`);
    }
    return matches[0]!;
  }

  private loginError(mod: Pkcs11Module, e: unknown): SealError {
    if (isPkcs11Error(e)) {
      if (e.code === mod.CKR_PIN_INCORRECT || e.code === mod.CKR_PIN_INVALID || e.code === mod.CKR_PIN_LEN_RANGE || e.code === mod.CKR_ARGUMENTS_BAD) {
        return new SealError('wrong-pin', `token '${this.tokenLabel}' rejected the user PIN (${e.message})`);
      }
      if (e.code === mod.CKR_PIN_LOCKED) {
        return new SealError('pin-locked', `the user PIN of token '${this.tokenLabel}' is locked; the security officer must reset it`);
      }
      if (e.code === mod.CKR_USER_PIN_NOT_INITIALIZED) {
        return new SealError('wrong-pin', `token '${this.tokenLabel}' has no user PIN set (softhsm2-util --init-token --pin …)`);
      }
    }
    return this.wrapError(mod, e, 'C_Login');
  }

  private findOrCreateKey(p11: Pkcs11Types.PKCS11, mod: Pkcs11Module, session: Handle, create: boolean): Handle {
    const template: Pkcs11Types.Template = [
      { type: mod.CKA_CLASS, value: mod.CKO_SECRET_KEY },
      { type: mod.CKA_KEY_TYPE, value: mod.CKK_AES },
      { type: mod.CKA_TOKEN, value: true },
      { type: mod.CKA_LABEL, value: this.keyLabelBytes },
    ];
    let found: Handle[];
    try {
      p11.C_FindObjectsInit(session, template);
      try {
        found = p11.C_FindObjects(session, 2);
      } finally {
        p11.C_FindObjectsFinal(session);
      }
    } catch (e) {
      throw this.wrapError(mod, e, 'C_FindObjects');
    }
    if (found.length > 1) {
      throw new SealError('key-ambiguous', `token '${this.tokenLabel}' holds more than one AES key labelled '${this.keyLabel}'`);
    }
    if (found.length === 1) {
      const key = found[0]!;
      this.checkKeyAttributes(p11, mod, session, key);
      return key;
    }
    if (!create) {
      throw new SealError(
        'key-not-found',
        `token '${this.tokenLabel}' has no AES key labelled '${this.keyLabel}' (file sealed with another token, or the key was deleted)`,
      );
    }
    try {
      return p11.C_GenerateKey(session, { mechanism: mod.CKM_AES_KEY_GEN }, [
        ...template,
        { type: mod.CKA_VALUE_LEN, value: 32 },
        { type: mod.CKA_PRIVATE, value: true },
        { type: mod.CKA_SENSITIVE, value: true },
        { type: mod.CKA_EXTRACTABLE, value: false },
        { type: mod.CKA_MODIFIABLE, value: false },
        { type: mod.CKA_ENCRYPT, value: true },
        { type: mod.CKA_DECRYPT, value: true },
        { type: mod.CKA_WRAP, value: false },
        { type: mod.CKA_UNWRAP, value: false },
        { type: mod.CKA_SIGN, value: false },
        { type: mod.CKA_VERIFY, value: false },
        { type: mod.CKA_DERIVE, value: false },
      ]);
    } catch (e) {
      throw this.wrapError(mod, e, 'C_GenerateKey');
    }
  }

  private checkKeyAttributes(p11: Pkcs11Types.PKCS11, mod: Pkcs11Module, session: Handle, key: Handle): void {
    let attrs: Pkcs11Types.TemplateResult;
    try {
      attrs = p11.C_GetAttributeValue(session, key, [
        { type: mod.CKA_SENSITIVE },
        { type: mod.CKA_EXTRACTABLE },
        { type: mod.CKA_VALUE_LEN },
      ]);
    } catch (e) {
      throw this.wrapError(mod, e, 'C_GetAttributeValue');
    }
    const get = (t: number): Buffer | undefined => attrs.find((a) => a.type === t)?.value;
    const sensitive = get(mod.CKA_SENSITIVE);
    const extractable = get(mod.CKA_EXTRACTABLE);
    if (!sensitive || sensitive[0] !== 1 || !extractable || extractable[0] !== 0) {
      throw new SealError(
        'weak-key',
        `token key '${this.keyLabel}' is extractable or not sensitive; refusing to use it as a KEK (recreate it with CKA_SENSITIVE=true, CKA_EXTRACTABLE=false)`,
      );
    }
    const valueLen = get(mod.CKA_VALUE_LEN);
    if (valueLen && (valueLen.length === 8 || valueLen.length === 4)) {
      // CK_ULONG in host byte order.
      const le = endianness() === 'LE';
      const n =
        valueLen.length === 8
          ? Number(le ? valueLen.readBigUInt64LE(0) : valueLen.readBigUInt64BE(0))
          : le
            ? valueLen.readUInt32LE(0)
            : valueLen.readUInt32BE(0);
      if (n !== 32) {
        throw new SealError('weak-key', `token key '${this.keyLabel}' is AES-${n * 8}, an AES-256 key is required`);
      }
    }
  }

  private wrapError(mod: Pkcs11Module, e: unknown, op: string): SealError {
    if (e instanceof SealError) return e;
    if (isPkcs11Error(e)) {
      if (e.code === mod.CKR_TOKEN_NOT_PRESENT || e.code === mod.CKR_DEVICE_REMOVED) {
        return new SealError('no-token', `token '${this.tokenLabel}' is not present (${op}: ${e.message})`, { cause: e });
      }
      return new SealError('pkcs11', `${op} failed on token '${this.tokenLabel}': ${e.message}`, { cause: e });
    }
    return new SealError('pkcs11', `${op} failed on token '${this.tokenLabel}': ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}
