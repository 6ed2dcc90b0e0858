import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Pkcs11Types from 'pkcs11js';
import {
  DEFAULT_SCRYPT_PARAMS,
  KEK_KIND,
  PassphraseKek,
  Pkcs11Kek,
  SealError,
  findSoftHsm2Module,
  readSealedFile,
  seal,
  unseal,
  writeSealedFile,
  type SealErrorCode,
} from '../../src/storage/seal.js';

const FAST = { scrypt: { logN: 10, r: 8, p: 1 } };
const PASS = 'correct horse battery staple';
const AAD = 'signer=2|key=tls-main|epoch=7';

async function expectSealError(p: Promise<unknown>, codes?: SealErrorCode | SealErrorCode[], secrets: string[] = []): Promise<SealError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof SealError, `expected a SealError, got ${err === undefined ? 'success' : String(err)}`);
  if (codes !== undefined) {
    const list = Array.isArray(codes) ? codes : [codes];
    assert.ok(list.includes(err.code), `expected code ${list.join('|')}, got ${err.code}: ${err.message}`);
  }
  for (const s of secrets) assert.ok(!err.message.includes(s), `error message leaks a secret: ${err.message}`);
  return err;
}

function makeTmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

describe('storage/seal: passphrase KEK', function () {
  let dir: string;
  beforeEach(() => {
    dir = makeTmp('qk-seal-');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips with the default scrypt parameters (N=2^15, r=8, p=1) stored in the header', async () => {
    const kek = new PassphraseKek(PASS);
    const path = join(dir, 'share.qks');
    const plaintext = randomBytes(1000);
    await writeSealedFile(path, plaintext, kek, AAD);
    const file = await readFile(path);
    assert.equal(file.subarray(0, 4).toString('ascii'), 'QKSF');
    assert.equal(file[4], 1, 'format version');
    assert.equal(file[5], KEK_KIND.passphraseScrypt);
    assert.equal(file[8], DEFAULT_SCRYPT_PARAMS.logN);
    assert.equal(file.readUInt32BE(9), 8);
    assert.equal(file.readUInt32BE(13), 1);
    const back = await readSealedFile(path, new PassphraseKek(PASS), AAD);
    assert.deepEqual(back, plaintext);
  });

  it('round-trips an empty plaintext and Uint8Array AAD; two writes differ (fresh salt and nonce)', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    const aad = Uint8Array.of(1, 2, 3);
    const a = await seal(new Uint8Array(0), kek, aad);
    const b = await seal(new Uint8Array(0), kek, aad);
    assert.notDeepEqual(a, b);
    assert.equal((await unseal(a, kek, aad)).length, 0);
  });

  it('wrong passphrase → SealError wrong-key, saying GCM cannot tell it from corruption, without secrets', async () => {
    const path = join(dir, 'share.qks');
    await writeSealedFile(path, Buffer.from('share bytes'), new PassphraseKek(PASS, FAST), AAD);
    const err = await expectSealError(readSealedFile(path, new PassphraseKek('Tr0ub4dor&3', FAST), AAD), 'wrong-key', [PASS, 'Tr0ub4dor&3', 'share bytes']);
    assert.match(err.message, /wrong passphrase or corrupted file/);
    assert.match(err.message, /cannot tell/);
  });

  it('wrong AAD (file copied to another signer/key/epoch slot) → aad-mismatch', async () => {
    const path = join(dir, 'share.qks');
    const kek = new PassphraseKek(PASS, FAST);
    await writeSealedFile(path, Buffer.from('x'), kek, AAD);
    await expectSealError(readSealedFile(path, kek, 'signer=3|key=tls-main|epoch=7'), 'aad-mismatch');
    await expectSealError(readSealedFile(path, kek, 'signer=2|key=tls-main|epoch=8'), 'aad-mismatch');
  });

  it('the AAD is bound by GCM itself, not only by the stored digest', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    const file = await seal(Buffer.from('x'), kek, AAD);
    const other = 'signer=3|key=tls-main|epoch=7';
    // Forge the AAD digest field (offset 8 + L) so the quick check passes for the other slot.
    const L = file.readUInt16BE(6);
    createHash('sha256').update('quorumkey seal v1 aad').update(other).digest().copy(file, 8 + L);
    await expectSealError(unseal(file, kek, other), 'corrupted');
  });

  it('a flipped bit in any byte of the file is detected', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    const file = await seal(Buffer.from('a small share, 32 bytes or so..'), kek, AAD);
    const seen = new Set<string>();
    for (let i = 0; i < file.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const bad = Buffer.from(file);
        bad[i]! ^= mask;
        const err = await expectSealError(unseal(bad, kek, AAD));
        seen.add(err.code);
      }
    }
    // Every part of the envelope is covered: magic, version, kind, params, digest, nonce, body, tag.
    for (const c of ['not-sealed', 'unsupported-version', 'unsupported-kek', 'wrong-key', 'aad-mismatch', 'corrupted'] as const) {
      assert.ok(seen.has(c), `no flip produced ${c} (saw ${[...seen].join(', ')})`);
    }
  });

  it('truncated, empty and garbage files are rejected with clear codes', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    const file = await seal(Buffer.from('payload'), kek, AAD);
    await expectSealError(unseal(Buffer.alloc(0), kek, AAD), 'truncated');
    for (const n of [1, 3, 4, 5, 6, 7, 8, 20, 60, file.length - 17, file.length - 16]) {
      await expectSealError(unseal(file.subarray(0, n), kek, AAD), 'truncated');
    }
    await expectSealError(unseal(file.subarray(0, file.length - 1), kek, AAD), ['truncated', 'corrupted']);
    await expectSealError(unseal(Buffer.from('-----BEGIN PRIVATE KEY-----\n'), kek, AAD), 'not-sealed');
    await expectSealError(unseal(Buffer.concat([Buffer.from([0x7f]), randomBytes(200)]), kek, AAD), 'not-sealed');
    const path = join(dir, 'empty');
    await writeFile(path, '');
    await expectSealError(readSealedFile(path, kek, AAD), 'truncated');
    await expectSealError(readSealedFile(join(dir, 'missing'), kek, AAD), 'io');
    const big = join(dir, 'big');
    await writeFile(big, 'QKSF');
    await truncate(big, 17 * 1024 * 1024);
    await expectSealError(readSealedFile(big, kek, AAD), 'too-large');
  });

  it('unsupported format version and unknown KEK kind', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    const file = await seal(Buffer.from('payload'), kek, AAD);
    const v2 = Buffer.from(file);
    v2[4] = 2;
    const err = await expectSealError(unseal(v2, kek, AAD), 'unsupported-version');
    assert.match(err.message, /version 2/);
    const k9 = Buffer.from(file);
    k9[5] = 9;
    await expectSealError(unseal(k9, kek, AAD), 'unsupported-kek');
  });

  it('a file sealed with one KEK kind opened with another → kek-mismatch (no token touched)', async () => {
    const file = await seal(Buffer.from('payload'), new PassphraseKek(PASS, FAST), AAD);
    const p11 = new Pkcs11Kek({ modulePath: '/nonexistent/libp11.so', tokenLabel: 't', pin: '1234', keyLabel: 'k' });
    await expectSealError(unseal(file, p11, AAD), 'kek-mismatch');
  });

  it('scrypt parameters out of bounds in the header are rejected before scrypt runs', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    const file = await seal(Buffer.from('payload'), kek, AAD);
    // A disposed KEK throws 'disposed' the moment it would derive a key: any other error means the
    // header check refused the file before scrypt (and its allocation) could start.
    const disposed = new PassphraseKek(PASS, FAST);
    disposed.dispose();
    await expectSealError(unseal(file, disposed, AAD), 'bad-params').then((e) => assert.match(e.message, /disposed/, 'control: a valid header reaches the key derivation'));
    const cases: Array<[string, (b: Buffer) => void, RegExp]> = [
      ['logN 31', (b) => (b[8] = 31), /scrypt logN=31 outside \[10, 20\]/],
      ['logN 21', (b) => (b[8] = 21), /scrypt logN=21 outside/],
      ['logN 20 with r=8 (1 GiB)', (b) => (b[8] = 20), /scrypt N=2\^20, r=8 needs 1024 MiB, limit 256 MiB/],
      ['logN 4 (too weak)', (b) => (b[8] = 4), /scrypt logN=4 outside/],
      ['r = 2^32-1', (b) => b.writeUInt32BE(0xffffffff, 9), /scrypt r=4294967295 outside \[1, 32\]/],
      ['r = 0', (b) => b.writeUInt32BE(0, 9), /scrypt r=0 outside/],
      ['p = 1000', (b) => b.writeUInt32BE(1000, 13), /scrypt p=1000 outside \[1, 16\]/],
      ['p = 16 with logN 18 (work bound)', (b) => (b.writeUInt32BE(16, 13), (b[8] = 18)), /scrypt cost N·r·p = 2\^25\.0 exceeds 2\^24/],
      ['salt length 1', (b) => (b[17] = 1), /scrypt salt of 1 bytes outside \[16, 64\]/],
    ];
    for (const [name, edit, reason] of cases) {
      const bad = Buffer.from(file);
      edit(bad);
      const err = await expectSealError(unseal(bad, disposed, AAD), 'bad-params').catch((e: Error) => {
        throw new Error(`${name}: ${e.message}`);
      });
      assert.match(err.message, reason, name);
    }
    assert.throws(() => new PassphraseKek(PASS, { scrypt: { logN: 22, r: 8, p: 1 } }), (e: unknown) => e instanceof SealError && e.code === 'bad-params' && /logN=22/.test(e.message));
  });

  it('file mode is 0600 even with a permissive (0000) or a restrictive (0277) umask', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    for (const mask of [0o000, 0o022, 0o277]) {
      const old = process.umask(mask);
      try {
        const path = join(dir, `share-${mask.toString(8)}.qks`);
        await writeSealedFile(path, Buffer.from('x'), kek, AAD);
        assert.equal((await stat(path)).mode & 0o777, 0o600, `umask ${mask.toString(8)}`);
        // Overwriting keeps 0600 too.
        await writeSealedFile(path, Buffer.from('y'), kek, AAD);
        assert.equal((await stat(path)).mode & 0o777, 0o600);
      } finally {
        process.umask(old);
      }
    }
  });

  it('the sealed file contains no plaintext bytes', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    const marker = Buffer.from('SECRET-SHARE-MARKER-0123456789abcdef');
    const plaintext = Buffer.concat([marker, randomBytes(4096), marker]);
    const path = join(dir, 'share.qks');
    await writeSealedFile(path, plaintext, kek, AAD);
    const file = await readFile(path);
    assert.equal(file.indexOf(marker.subarray(0, 8)), -1);
    for (let i = 0; i + 8 <= plaintext.length; i++) {
      assert.equal(file.indexOf(plaintext.subarray(i, i + 8)), -1, `plaintext window at ${i} found in file`);
    }
    assert.equal(file.indexOf(Buffer.from(PASS)), -1);
  });

  it('atomic writes: replace in place, leave no temp files, also when the write fails', async () => {
    const kek = new PassphraseKek(PASS, FAST);
    const path = join(dir, 'share.qks');
    for (let i = 0; i < 5; i++) await writeSealedFile(path, Buffer.from(`v${i}`), kek, AAD);
    assert.deepEqual(await readdir(dir), ['share.qks']);
    assert.equal((await readSealedFile(path, kek, AAD)).toString(), 'v4');

    // The rename fails: the target is a non-empty directory.
    const blocked = join(dir, 'blocked');
    await mkdir(blocked);
    await writeFile(join(blocked, 'keep'), 'x');
    await expectSealError(writeSealedFile(blocked, Buffer.from('z'), kek, AAD), 'io');
    // The directory does not exist.
    await expectSealError(writeSealedFile(join(dir, 'nope', 'share.qks'), Buffer.from('z'), kek, AAD), 'io');
    assert.deepEqual((await readdir(dir)).sort(), ['blocked', 'share.qks']);
    assert.deepEqual(await readdir(blocked), ['keep']);
    // The failed attempts did not touch the existing file.
    assert.equal((await readSealedFile(path, kek, AAD)).toString(), 'v4');
  });
});

// ---------------------------------------------------------------------------------------------
// PKCS#11 against a real SoftHSM2 token created for this test run.

const SO_PIN = '13572468';
const USER_PIN = '24681357';
const TOKEN = 'qk-test';

describe('storage/seal: PKCS#11 KEK (SoftHSM2)', function () {
  let hsmDir: string;
  let modulePath: string;
  let dir: string;
  let savedConf: string | undefined;
  const req = createRequire(import.meta.url);

  const kekOpts = (over: Partial<ConstructorParameters<typeof Pkcs11Kek>[0]> = {}) => ({
    modulePath,
    tokenLabel: TOKEN,
    pin: USER_PIN,
    keyLabel: 'quorumkey-kek',
    ...over,
  });

  function writeConf(tokendir: string): string {
    const conf = join(hsmDir, `softhsm2-${randomBytes(4).toString('hex')}.conf`);
    writeFileSync(conf, `directories.tokendir = ${tokendir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    return conf;
  }

  function initToken(label: string): void {
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', SO_PIN, '--pin', USER_PIN], {
      env: process.env,
      stdio: 'pipe',
    });
  }

  /** Runs fn in a logged-in session of our own on the test token. */
  function withOwnSession<T>(fn: (p11: Pkcs11Types.PKCS11, m: typeof Pkcs11Types, s: Buffer) => T, rw = false): T {
    const m = req('pkcs11js') as typeof Pkcs11Types;
    const p11 = new m.PKCS11();
    p11.load(modulePath);
    p11.C_Initialize(); // throws CKR_CRYPTOKI_ALREADY_INITIALIZED if Pkcs11Kek forgot C_Finalize
    try {
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === TOKEN);
      assert.ok(slot, 'test token not found');
      const s = p11.C_OpenSession(slot, m.CKF_SERIAL_SESSION | (rw ? m.CKF_RW_SESSION : 0));
      try {
        p11.C_Login(s, m.CKU_USER, USER_PIN);
        return fn(p11, m, s);
      } finally {
        p11.C_CloseSession(s);
      }
    } finally {
      p11.C_Finalize();
    }
  }

  function findKeys(p11: Pkcs11Types.PKCS11, m: typeof Pkcs11Types, s: Buffer, label: string): Buffer[] {
    p11.C_FindObjectsInit(s, [
      { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
      { type: m.CKA_LABEL, value: label },
    ]);
    try {
      return p11.C_FindObjects(s, 10);
    } finally {
      p11.C_FindObjectsFinal(s);
    }
  }

  before(function () {
    const found = findSoftHsm2Module();
    const util = spawnSync('softhsm2-util', ['--version'], { encoding: 'utf8' });
    if (!found || util.error || util.status !== 0) {
      throw new Error(
        'SoftHSM2 is not installed: the PKCS#11 tests need a real SoftHSM2 token. ' +
          'Install it with `apt-get install -y softhsm2` (Debian/Ubuntu; provides softhsm2-util and libsofthsm2.so).',
      );
    }
    modulePath = found;
    hsmDir = makeTmp('qk-softhsm-');
    const tokendir = join(hsmDir, 'tokens');
    execFileSync('mkdir', ['-p', tokendir]);
    savedConf = process.env.SOFTHSM2_CONF;
    // Before the module is initialised anywhere in this process.
    process.env.SOFTHSM2_CONF = writeConf(tokendir);
    initToken(TOKEN);
    initToken('qk-other');
  });

  after(() => {
    if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = savedConf;
    if (hsmDir) rmSync(hsmDir, { recursive: true, force: true });
  });

  beforeEach(() => {
    dir = makeTmp('qk-seal-p11-');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips; creates the token key once and reuses it; finalizes the module after each call', async () => {
    const kek = new Pkcs11Kek(kekOpts());
    const path = join(dir, 'share.qks');
    const plaintext = randomBytes(512);
    await writeSealedFile(path, plaintext, kek, AAD);
    const file = await readFile(path);
    assert.equal(file[5], KEK_KIND.pkcs11AesGcm);
    assert.equal(file.indexOf(plaintext.subarray(0, 16)), -1);
    assert.deepEqual(await readSealedFile(path, new Pkcs11Kek(kekOpts()), AAD), plaintext);
    await writeSealedFile(path, plaintext, kek, AAD);
    assert.deepEqual(await readSealedFile(path, kek, AAD), plaintext);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    withOwnSession((p11, m, s) => assert.equal(findKeys(p11, m, s, 'quorumkey-kek').length, 1));
  });

  it('the token key is non-extractable and sensitive: CKA_VALUE cannot be read', async () => {
    await writeSealedFile(join(dir, 'x'), Buffer.from('x'), new Pkcs11Kek(kekOpts()), AAD);
    withOwnSession((p11, m, s) => {
      const [key] = findKeys(p11, m, s, 'quorumkey-kek');
      assert.ok(key);
      assert.throws(
        () => p11.C_GetAttributeValue(s, key, [{ type: m.CKA_VALUE }]),
        (e: Error & { code?: number }) => e.code === m.CKR_ATTRIBUTE_SENSITIVE,
      );
      const attrs = p11.C_GetAttributeValue(s, key, [
        { type: m.CKA_EXTRACTABLE },
        { type: m.CKA_SENSITIVE },
        { type: m.CKA_TOKEN },
        { type: m.CKA_KEY_TYPE },
      ]);
      const v = (t: number) => attrs.find((a) => a.type === t)!.value;
      assert.equal(v(m.CKA_EXTRACTABLE)[0], 0);
      assert.equal(v(m.CKA_SENSITIVE)[0], 1);
      assert.equal(v(m.CKA_TOKEN)[0], 1);
      assert.equal(v(m.CKA_KEY_TYPE)[0], m.CKK_AES);
      // Wrapping it out under a session key allowed to wrap is refused because it is unextractable;
      // the same wrap of an extractable key works (the control).
      const sessionKey = (extractable: boolean) =>
        p11.C_GenerateKey(s, { mechanism: m.CKM_AES_KEY_GEN }, [
          { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
          { type: m.CKA_KEY_TYPE, value: m.CKK_AES },
          { type: m.CKA_VALUE_LEN, value: 32 },
          { type: m.CKA_TOKEN, value: false },
          { type: m.CKA_WRAP, value: true },
          { type: m.CKA_EXTRACTABLE, value: extractable },
          { type: m.CKA_SENSITIVE, value: false },
        ]);
      const wrapper = sessionKey(false);
      const wrap = (target: Buffer) => p11.C_WrapKey(s, { mechanism: m.CKM_AES_KEY_WRAP_PAD }, wrapper, target, Buffer.alloc(64));
      assert.throws(() => wrap(key), (e: Error & { code?: number }) => e.code === m.CKR_KEY_UNEXTRACTABLE, 'wrapping the KEK out');
      assert.ok(wrap(sessionKey(true)).length > 32, 'control: an extractable key wraps');
    });
  });

  it('wrong PIN → wrong-pin (PIN not in the message)', async () => {
    const path = join(dir, 'share.qks');
    await writeSealedFile(path, Buffer.from('x'), new Pkcs11Kek(kekOpts()), AAD);
    const err = await expectSealError(readSealedFile(path, new Pkcs11Kek(kekOpts({ pin: '99999999' })), AAD), 'wrong-pin', ['99999999', USER_PIN]);
    assert.match(err.message, /rejected the user PIN/);
    await expectSealError(writeSealedFile(path, Buffer.from('x'), new Pkcs11Kek(kekOpts({ pin: '00000000' })), AAD), 'wrong-pin');
  });

  it('missing token label → token-not-found listing the tokens present', async () => {
    const err = await expectSealError(writeSealedFile(join(dir, 's'), Buffer.from('x'), new Pkcs11Kek(kekOpts({ tokenLabel: 'no-such-token' })), AAD), 'token-not-found', [USER_PIN]);
    assert.match(err.message, /no-such-token/);
    assert.match(err.message, /'qk-test'/);
  });

  it('no initialised token at all → no-token', async () => {
    const saved = process.env.SOFTHSM2_CONF;
    const empty = join(hsmDir, 'empty-tokens');
    execFileSync('mkdir', ['-p', empty]);
    process.env.SOFTHSM2_CONF = writeConf(empty);
    try {
      const err = await expectSealError(writeSealedFile(join(dir, 's'), Buffer.from('x'), new Pkcs11Kek(kekOpts()), AAD), 'no-token');
      assert.match(err.message, /no initialised token/);
    } finally {
      process.env.SOFTHSM2_CONF = saved;
    }
  });

  it('missing module path → pkcs11-module', async () => {
    const err = await expectSealError(
      writeSealedFile(join(dir, 's'), Buffer.from('x'), new Pkcs11Kek(kekOpts({ modulePath: '/nonexistent/libsofthsm2.so' })), AAD),
      'pkcs11-module',
    );
    assert.match(err.message, /not found at \/nonexistent\/libsofthsm2\.so/);
    assert.deepEqual(await readdir(dir), []);
    // Not a library at all.
    const notLib = join(dir, 'not-a-lib.so');
    await writeFile(notLib, 'hello');
    await expectSealError(writeSealedFile(join(dir, 's'), Buffer.from('x'), new Pkcs11Kek(kekOpts({ modulePath: notLib })), AAD), 'pkcs11-module');
  });

  it('opening never creates a key: other key label → kek-mismatch; key absent on token → key-not-found', async () => {
    const path = join(dir, 'share.qks');
    await writeSealedFile(path, Buffer.from('x'), new Pkcs11Kek(kekOpts()), AAD);
    await expectSealError(readSealedFile(path, new Pkcs11Kek(kekOpts({ keyLabel: 'another-kek' })), AAD), 'kek-mismatch');
    const onOther = new Pkcs11Kek(kekOpts({ tokenLabel: 'qk-other', keyLabel: 'quorumkey-kek' }));
    const err = await expectSealError(readSealedFile(path, onOther, AAD), 'key-not-found');
    assert.match(err.message, /qk-other/);
    // Still absent afterwards.
    await expectSealError(readSealedFile(path, onOther, AAD), 'key-not-found');
  });

  it('a different key with the same label (other token) → wrong-key "wrong token key or corrupted file"', async () => {
    const path = join(dir, 'share.qks');
    await writeSealedFile(path, Buffer.from('x'), new Pkcs11Kek(kekOpts({ keyLabel: 'same-label' })), AAD);
    const other = new Pkcs11Kek(kekOpts({ tokenLabel: 'qk-other', keyLabel: 'same-label' }));
    await writeSealedFile(join(dir, 'other.qks'), Buffer.from('y'), other, AAD); // creates the key there
    const err = await expectSealError(readSealedFile(path, other, AAD), 'wrong-key', [USER_PIN]);
    assert.match(err.message, /wrong token key or corrupted file/);
  });

  it('tampering: wrapped data key → wrong-key, body → corrupted, AAD → aad-mismatch', async () => {
    const kek = new Pkcs11Kek(kekOpts());
    const file = await seal(Buffer.from('share'), kek, AAD);
    const L = file.readUInt16BE(6);
    const w = Buffer.from(file);
    w[8 + L - 20]! ^= 1; // inside the wrapped data key
    await expectSealError(unseal(w, kek, AAD), 'wrong-key');
    const b = Buffer.from(file);
    b[b.length - 20]! ^= 1;
    await expectSealError(unseal(b, kek, AAD), 'corrupted');
    await expectSealError(unseal(file, kek, 'other slot'), 'aad-mismatch');
    assert.equal((await unseal(file, kek, AAD)).toString(), 'share');
  });

  it('refuses an existing token key that is extractable or not sensitive → weak-key', async () => {
    withOwnSession((p11, m, s) => {
      p11.C_GenerateKey(s, { mechanism: m.CKM_AES_KEY_GEN }, [
        { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
        { type: m.CKA_KEY_TYPE, value: m.CKK_AES },
        { type: m.CKA_VALUE_LEN, value: 32 },
        { type: m.CKA_TOKEN, value: true },
        { type: m.CKA_SENSITIVE, value: false },
        { type: m.CKA_EXTRACTABLE, value: true },
        { type: m.CKA_ENCRYPT, value: true },
        { type: m.CKA_DECRYPT, value: true },
        { type: m.CKA_LABEL, value: 'weak-kek' },
      ]);
    }, true);
    await expectSealError(writeSealedFile(join(dir, 's'), Buffer.from('x'), new Pkcs11Kek(kekOpts({ keyLabel: 'weak-kek' })), AAD), 'weak-key');
    assert.deepEqual(await readdir(dir), []);
  });
});
