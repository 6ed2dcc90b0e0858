/**
 * OT benchmark: base-OT set-up once, then the OT extension for m = 416 (one presignature's
 * multiplications) and m = 416·32, printing milliseconds (median over repetitions) for Bob
 * (otExtReceive), Alice (otExtSend), and a breakdown of the main components at the same size.
 * No assertions; test/protocol/ot/*.test.ts check correctness.
 *   npx tsc -p . && node dist/bench/ot.js          (QUORUMKEY_BENCH_REPS=<n>, default 15)
 */
import { createCipheriv, createHash } from 'node:crypto';
import { curveBackend } from '../src/protocol/math/curve.js';
import { seededRng } from '../src/protocol/rng.js';
import { columnParities, otBitsBackend, transposeToRows } from '../src/protocol/ot/bits.js';
import { defaultOtRowHasher } from '../src/protocol/ot/native-hasher.js';
import {
  otExtReceive,
  otExtSend,
  otExtSetupReceiverRespond,
  otExtSetupSenderFinish,
  otExtSetupSenderStart,
  paddedRows,
} from '../src/protocol/ot/extension.js';

const REPS = Number(process.env.QUORUMKEY_BENCH_REPS ?? 15);
const OUTPUT_BYTES = 144;
const rng = seededRng('bench/ot');
const enc = new TextEncoder();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}
function time(fn: () => unknown, reps = REPS): number {
  for (let i = 0; i < Math.min(3, reps); i++) fn(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    ts.push(performance.now() - t);
  }
  return median(ts);
}
const ms = (x: number): string => x.toFixed(2).padStart(9) + ' ms';

const setupCtx = enc.encode('bench|setup');
let t = performance.now();
const start = otExtSetupSenderStart(setupCtx, rng);
const tStart = performance.now() - t;
t = performance.now();
const resp = otExtSetupReceiverRespond(setupCtx, start.message, 1, rng);
const tResp = performance.now() - t;
t = performance.now();
const senderSetup = otExtSetupSenderFinish(setupCtx, start.state, resp.message, 2);
const tFinish = performance.now() - t;
console.log(`curve backend: ${curveBackend().name}, bit matrices: ${otBitsBackend()}, row hashing: ${defaultOtRowHasher} (components below: node:crypto Hout)`);
console.log(`base OT (κ = 128): receiver start ${ms(tStart)}, sender ${ms(tResp)}, receiver finish ${ms(tFinish)}`);

let session = 0;
for (const m of [416, 416 * 32]) {
  const choices = rng(Math.ceil(m / 8));
  const ctx = enc.encode(`bench|m=${m}`);
  const message = otExtReceive(resp.setup, ctx, choices, m, OUTPUT_BYTES, rng).message;
  const receive = time(() => otExtReceive(resp.setup, enc.encode(`bench|${session++}`), choices, m, OUTPUT_BYTES, rng));
  const send = time(() => otExtSend(senderSetup, ctx, m, OUTPUT_BYTES, message, 2));
  console.log(`m = ${String(m).padStart(5)} (m' = ${paddedRows(m)}, message ${message.length} B, outputs ${OUTPUT_BYTES} B):`);
  console.log(`  otExtReceive (Bob)  ${ms(receive)}`);
  console.log(`  otExtSend (Alice)   ${ms(send)}`);

  // Components at this size.
  const rows = paddedRows(m);
  const w = rows / 32;
  const cols = new Uint32Array(new Uint8Array(rng(16 * rows)).buffer);
  const chi = new Uint32Array(new Uint8Array(rng(16 * rows)).buffer);
  const out = new Uint32Array(Math.ceil(m / 32) * 128);
  const base = createHash('shake256', { outputLength: OUTPUT_BYTES }).update(rng(32));
  const input = rng(20);
  const check = time(() => columnParities(cols, 128, w, chi));
  const transpose = time(() => transposeToRows(cols, w, Math.ceil(m / 32), out));
  const hout = time(() => {
    for (let j = 0; j < m; j++) base.copy({ outputLength: OUTPUT_BYTES }).update(input).digest();
  });
  const fs = time(() => createHash('sha512').update(message).digest());
  const zeros = new Uint8Array(rows / 8);
  const prg = time(() => {
    for (let i = 0; i < 128; i++) {
      const key = createHash('sha256').update(input).update(senderSetup.seeds[i]!).digest();
      createCipheriv('aes-256-ctr', key, new Uint8Array(16)).update(zeros);
    }
  });
  console.log(`  components: 128 PRG columns ${ms(prg)}, FS hash of u ${ms(fs)}, check ${ms(check)}, transpose ${ms(transpose)}, ${m} × Hout ${ms(hout)}`);
}
