/**
 * The native OT row hasher (native/ot.cc; src/protocol/ot/native-hasher.ts)
 * against the TypeScript one, nodeCryptoRowHasher: byte-identical output for every shape, and
 * the same OT-extension outputs when it is installed.
 *
 * As in curve.test.ts, a missing addon is a FAILURE, never a skip; with QUORUMKEY_NATIVE=0 the
 * product keeps node:crypto and the addon is loaded directly so that it is still checked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  nodeCryptoRowHasher,
  otExtReceive,
  otExtSend,
  otExtSetupReceiverRespond,
  otExtSetupSenderFinish,
  otExtSetupSenderStart,
  useOtRowHasher,
  type OtRowHasher,
} from '../../src/protocol/ot/extension.js';
import { defaultOtRowHasher, nativeOtRowHasher, nativeRowHasher, type NativeOtHasher } from '../../src/protocol/ot/native-hasher.js';
import { seededRng } from '../../src/protocol/rng.js';

const ADDON_PATH = '../../../build/Release/quorumkey_native.node'; // from dist/test/native/
const nativeDisabled = process.env.QUORUMKEY_NATIVE === '0';

function loadAddonDirectly(): NativeOtHasher {
  const require = createRequire(import.meta.url);
  try {
    return require(ADDON_PATH) as NativeOtHasher;
  } catch (err) {
    throw new Error(`native addon not loadable from build/Release/quorumkey_native.node — run \`npm install\`: ${(err as Error).message}`);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('native OT row hasher', function () {
  this.timeout(120000);
  let raw: NativeOtHasher;
  let native: OtRowHasher;
  const seed = process.env.QUORUMKEY_TEST_SEED ?? randomBytes(8).toString('hex');

  before(() => {
    raw = loadAddonDirectly();
    if (nativeOtRowHasher) native = nativeOtRowHasher;
    else if (nativeDisabled) native = nativeRowHasher(raw);
    else assert.fail('the addon loads directly but src/protocol/ot/native-hasher.ts did not pick it up');
  });

  it('is installed by default (unless QUORUMKEY_NATIVE=0)', () => {
    assert.equal(defaultOtRowHasher, nativeDisabled ? 'node:crypto' : 'native');
    assert.equal(nativeOtRowHasher === undefined, nativeDisabled);
  });

  it(`is byte-identical to nodeCryptoRowHasher for every shape (seed ${seed})`, () => {
    const rng = seededRng(`hasher ${seed}`);
    for (const prefixLength of [0, 1, 32, 116, 117, 135, 136, 200, 272]) {
      for (const m of [0, 1, 2, 7, 33, 416]) {
        for (const outputBytes of [1, 16, 135, 136, 137, 144, 272, 300]) {
          for (const withMask of [false, true]) {
            const prefix = rng(prefixLength);
            const rows = rng(16 * m + 16 * (m % 3)); // sometimes longer than 16·m
            const mask = withMask ? rng(16) : undefined;
            const label = `prefix ${prefixLength}, m ${m}, outputBytes ${outputBytes}, mask ${withMask}`;
            const expected = nodeCryptoRowHasher(prefix, rows, m, outputBytes, mask);
            const got = native(prefix, rows, m, outputBytes, mask);
            assert.ok(got instanceof Uint8Array, label);
            assert.equal(got.length, m * outputBytes, label);
            assert.equal(hex(got), hex(expected), label);
          }
        }
      }
    }
  });

  it('names the Keccak variant it runs (checked against OpenSSL SHAKE256 at load, with every other variant this CPU runs)', () => {
    assert.ok(['avx512', 'avx2', 'words'].includes(raw.otRowHashVariant()), raw.otRowHashVariant());
  });

  it('writes the row index as a 32-bit big-endian number (rows beyond 2^16)', () => {
    const m = (1 << 16) + 5;
    const rows = seededRng(`index ${seed}`)(16 * m);
    const prefix = new Uint8Array([1, 2, 3]);
    const got = native(prefix, rows, m, 4, undefined);
    const expected = nodeCryptoRowHasher(prefix, rows, m, 4, undefined);
    assert.equal(hex(got.subarray(4 * 65530)), hex(expected.subarray(4 * 65530)));
    assert.equal(hex(got), hex(expected));
  });

  it('reads rows and mask at any byte offset, and from Buffers', () => {
    const rng = seededRng(`offsets ${seed}`);
    const m = 50;
    const host = rng(16 * m + 7);
    const rows = host.subarray(7);
    const maskHost = rng(19);
    const mask = maskHost.subarray(3);
    const prefix = rng(40).subarray(5);
    const expected = hex(nodeCryptoRowHasher(prefix.slice(), rows.slice(), m, 144, mask.slice()));
    assert.equal(hex(native(prefix, rows, m, 144, mask)), expected);
    assert.equal(hex(raw.otRowHash(Buffer.from(prefix), Buffer.from(rows), m, 144, Buffer.from(mask))), expected);
    // Rows as the OT extension holds them: the bytes of a Uint32Array.
    const words = new Uint32Array(rows.slice().buffer);
    assert.equal(hex(native(prefix, new Uint8Array(words.buffer), m, 144, mask)), expected);
  });

  it('does not modify its inputs, and returns a fresh buffer each time', () => {
    const rng = seededRng(`inputs ${seed}`);
    const prefix = rng(32);
    const rows = rng(16 * 20);
    const mask = rng(16);
    const copies = [prefix.slice(), rows.slice(), mask.slice()];
    const a = native(prefix, rows, 20, 144, mask);
    const b = native(prefix, rows, 20, 144, mask);
    assert.deepEqual([prefix, rows, mask], copies);
    assert.notEqual(a.buffer, b.buffer);
    assert.deepEqual(a, b);
  });

  it('throws TypeError on bad arguments', () => {
    const call = (...args: unknown[]) => () => (raw.otRowHash as (...a: unknown[]) => unknown)(...args);
    const prefix = new Uint8Array(32);
    const rows = new Uint8Array(16 * 4);
    assert.throws(call(prefix, rows, 5, 16, undefined), TypeError); // rows shorter than 16·m
    assert.throws(call(prefix, rows, 4, 16, new Uint8Array(15)), TypeError);
    assert.throws(call(prefix, rows, 4, 16, new Uint8Array(17)), TypeError);
    assert.throws(call(prefix, rows, -1, 16, undefined), TypeError);
    assert.throws(call(prefix, rows, 1.5, 16, undefined), TypeError);
    assert.throws(call(prefix, rows, 4, Number.NaN, undefined), TypeError);
    assert.throws(call(prefix, rows, 4, 2 ** 40, undefined), TypeError);
    assert.throws(call('prefix', rows, 4, 16, undefined), TypeError);
    assert.throws(call(prefix, Array.from(rows), 4, 16, undefined), TypeError);
    assert.throws(call(prefix, new Uint32Array(16), 4, 16, undefined), TypeError);
    assert.throws(call(prefix, rows, 4), TypeError);
    assert.deepEqual(raw.otRowHash(prefix, rows, 4, 16, null as unknown as undefined), raw.otRowHash(prefix, rows, 4, 16, undefined));
    assert.equal(raw.otRowHash(prefix, rows, 0, 16, undefined).length, 0);
    assert.equal(raw.otRowHash(prefix, rows, 4, 0, undefined).length, 0);
  });

  it('OT extension outputs are identical with the native and the node:crypto hasher', () => {
    const rng = seededRng('native-hasher/setup');
    const enc = new TextEncoder();
    const setupCtx = enc.encode('native-hasher|setup');
    const start = otExtSetupSenderStart(setupCtx, rng);
    const response = otExtSetupReceiverRespond(setupCtx, start.message, 2, rng);
    const sender = otExtSetupSenderFinish(setupCtx, start.state, response.message, 6);
    const run = (hasher: OtRowHasher) => {
      useOtRowHasher(hasher);
      const ctx = enc.encode('native-hasher|session');
      const r = otExtReceive(response.setup, ctx, seededRng('choices')(104), 832, 144, seededRng('pad'));
      const s = otExtSend(sender, ctx, 832, 144, r.message, 6);
      return { r: hex(r.outputs), s0: hex(s.outputs0), s1: hex(s.outputs1) };
    };
    try {
      assert.deepEqual(run(native), run(nodeCryptoRowHasher));
    } finally {
      useOtRowHasher(nativeOtRowHasher); // what the product installed (undefined restores node:crypto)
    }
  });
});
