/**
 * The native base OT (native/base-ot.cc, with native/hash-to-curve.cc) against the TypeScript
 * reference of src/protocol/ot/base-ot.ts: under the same random bytes, every step gives the
 * same messages and keys, a native party and a reference party interoperate, and invalid
 * points give the same aborts. As in curve.test.ts, a missing addon is a FAILURE, never a skip.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { ProtocolAbort } from '../../src/protocol/errors.js';
import { POINT_BYTES } from '../../src/protocol/math/curve.js';
import { baseOtBackend, baseOtReceiverFinish, baseOtReceiverStart, baseOtSenderRespond, BASE_OT_COUNT, useBaseOtKernels, type NativeBaseOt } from '../../src/protocol/ot/base-ot.js';
import { seededRng, type Rng } from '../../src/protocol/rng.js';

const ADDON_PATH = '../../../build/Release/quorumkey_native.node'; // from dist/test/native/
const nativeDisabled = process.env.QUORUMKEY_NATIVE === '0';
const enc = new TextEncoder();
const CTX = enc.encode('key-1|session-9|sender-4|receiver-2');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function loadAddonDirectly(): NativeBaseOt {
  try {
    return createRequire(import.meta.url)(ADDON_PATH) as NativeBaseOt;
  } catch (err) {
    throw new Error(`native addon not loadable from build/Release/quorumkey_native.node — run \`npm install\`: ${(err as Error).message}`);
  }
}

type Backend = 'native' | 'reference';

describe('native base OT against the TypeScript reference', function () {
  this.timeout(300_000);
  let addon: NativeBaseOt;
  const use = (b: Backend) => useBaseOtKernels(b === 'native' ? addon : undefined);

  before(() => {
    addon = loadAddonDirectly();
    assert.equal(baseOtBackend(), nativeDisabled ? 'typescript' : 'native');
  });
  afterEach(() => useBaseOtKernels(nativeDisabled ? undefined : addon));

  /** One whole base OT, each step on the backend given, from fixed seeds. */
  function run(choices: Uint8Array, receiver: Backend, sender: Backend, finish: Backend, seed: string) {
    const rngR: Rng = seededRng(`${seed}/r`);
    const rngS: Rng = seededRng(`${seed}/s`);
    use(receiver);
    const start = baseOtReceiverStart(CTX, choices, rngR);
    use(sender);
    const reply = baseOtSenderRespond(CTX, start.message, 2, rngS);
    use(finish);
    const keys = baseOtReceiverFinish(CTX, start.state, reply.message, 4);
    return { message: hex(start.message), reply: hex(reply.message), keys0: reply.keys0.map(hex), keys1: reply.keys1.map(hex), keys: keys.map(hex) };
  }

  for (const [name, choices] of [
    ['random choices', seededRng('choices')(16)],
    ['all zero', new Uint8Array(16)],
    ['all one', new Uint8Array(16).fill(0xff)],
  ] as const) {
    it(`every step gives the reference's bytes (${name})`, () => {
      const reference = run(choices, 'reference', 'reference', 'reference', name);
      const native = run(choices, 'native', 'native', 'native', name);
      assert.deepEqual(native, reference);
      for (let i = 0; i < BASE_OT_COUNT; i++) {
        const c = (choices[i >> 3]! >> (i & 7)) & 1;
        assert.equal(native.keys[i], (c ? native.keys1 : native.keys0)[i], `instance ${i}`);
      }
    });
  }

  it('native and reference parties interoperate in every mix', () => {
    const choices = seededRng('mix')(16);
    const expected = run(choices, 'reference', 'reference', 'reference', 'mix');
    const mixes: [Backend, Backend, Backend][] = [
      ['native', 'reference', 'native'],
      ['reference', 'native', 'reference'],
      ['native', 'native', 'reference'],
    ];
    for (const [receiver, sender, finish] of mixes) {
      assert.deepEqual(run(choices, receiver, sender, finish, 'mix'), expected, `${receiver}/${sender}/${finish}`);
    }
  });

  it('invalid points give the same abort on both, naming the first one in message order', () => {
    use('native');
    const start = baseOtReceiverStart(CTX, seededRng('bad')(16), seededRng('bad/r'));
    const reply = baseOtSenderRespond(CTX, start.message, 2, seededRng('bad/s'));
    const offCurve = (() => {
      for (let x = 1; ; x++) {
        const p = new Uint8Array(POINT_BYTES);
        p[0] = 2;
        new DataView(p.buffer).setUint32(29, x);
        if (!(addon as unknown as { p256IsValid(p: Uint8Array): boolean }).p256IsValid(p)) return p;
      }
    })();
    const abortOf = (b: Backend, f: () => unknown): string => {
      use(b);
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof ProtocolAbort, String(e));
        return `${e.reason} ${e.culprit} ${e.message}`;
      }
      assert.fail('no abort');
    };
    const message = start.message.slice();
    message.set(offCurve, 201 * POINT_BYTES);
    message.set(new Uint8Array(POINT_BYTES), 230 * POINT_BYTES); // the identity, later
    const senderAbort = abortOf('native', () => baseOtSenderRespond(CTX, message, 2, seededRng('x')));
    assert.equal(senderAbort, abortOf('reference', () => baseOtSenderRespond(CTX, message, 2, seededRng('x'))));
    assert.match(senderAbort, /^invalid-point 2 .*r\[100\]\[1\]/);
    const z = reply.message.slice();
    z.set(Uint8Array.of(4, ...z.subarray(1, 33)), 77 * POINT_BYTES);
    const finishAbort = abortOf('native', () => baseOtReceiverFinish(CTX, start.state, z, 4));
    assert.equal(finishAbort, abortOf('reference', () => baseOtReceiverFinish(CTX, start.state, z, 4)));
    assert.match(finishAbort, /^invalid-point 4 .*z\[77\]/);
  });

  it('the raw kernels throw TypeError on bad argument lengths and tags', () => {
    const ctx = new Uint8Array(32);
    const dst = enc.encode('dst');
    const scalars = new Uint8Array(128 * 32);
    const choices = new Uint8Array(16);
    assert.throws(() => addon.baseOtReceiverStart(ctx.subarray(1), dst, choices, scalars, scalars), TypeError);
    assert.throws(() => addon.baseOtReceiverStart(ctx, new Uint8Array(0), choices, scalars, scalars), TypeError);
    assert.throws(() => addon.baseOtReceiverStart(ctx, new Uint8Array(256), choices, scalars, scalars), TypeError);
    assert.throws(() => addon.baseOtReceiverStart(ctx, dst, choices.subarray(1), scalars, scalars), TypeError);
    assert.throws(() => addon.baseOtReceiverStart(ctx, dst, choices, scalars.subarray(32), scalars), TypeError);
    assert.throws(() => addon.baseOtSenderRespond(ctx, dst, new Uint8Array(8), new Uint8Array(128 * 66 - 1), scalars), TypeError);
    assert.throws(() => addon.baseOtReceiverFinish(new Uint8Array(8), new Uint8Array(128 * 66), choices, scalars, new Uint8Array(128 * 33 + 1)), TypeError);
    assert.throws(() => (addon.baseOtReceiverFinish as (...a: unknown[]) => unknown)(new Uint8Array(8)), TypeError);
  });
});
