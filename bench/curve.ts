/**
 * P-256 micro-benchmark: µs per operation for the TypeScript reference (@noble/curves) and the
 * native addon (OpenSSL libcrypto). No assertions; test/native/curve.test.ts checks correctness.
 *   npm run bench:curve            (QUORUMKEY_BENCH_MS=<ms per measurement>, default 1000)
 */
import { nativeCurveBackend, nobleBackend, type CurveBackend } from '../src/protocol/math/curve.js';
import { randomScalar } from '../src/protocol/math/scalar.js';
import { seededRng } from '../src/protocol/rng.js';

const BUDGET_MS = Number(process.env.QUORUMKEY_BENCH_MS ?? 1000);
const POOL = 64;

const rng = seededRng('bench/curve');
const scalars = Array.from({ length: POOL }, () => randomScalar(rng));
const points = scalars.map((k) => nobleBackend.mulBase(k));

/** Runs `op` repeatedly for about BUDGET_MS after a short warm-up; returns µs per call. */
function measure(op: (i: number) => unknown): number {
  const warmUntil = performance.now() + Math.min(200, BUDGET_MS / 5);
  let i = 0;
  while (performance.now() < warmUntil) op(i++ % POOL);
  let calls = 0;
  const start = performance.now();
  const end = start + BUDGET_MS;
  let now = start;
  while (now < end) {
    for (let j = 0; j < 16; j++) op(calls++ % POOL);
    now = performance.now();
  }
  return ((now - start) * 1000) / calls;
}

function bench(backend: CurveBackend): Record<string, number> {
  return {
    mulBase: measure((i) => backend.mulBase(scalars[i]!)),
    mul: measure((i) => backend.mul(points[i]!, scalars[(i + 1) % POOL]!)),
    add: measure((i) => backend.add(points[i]!, points[(i + 1) % POOL]!)),
    isValid: measure((i) => backend.isValid(points[i]!)),
  };
}

const native = nativeCurveBackend();
const results: Array<[string, Record<string, number>]> = [['noble', bench(nobleBackend)]];
if (native) results.push(['native', bench(native)]);

console.log(`P-256, µs per op (node ${process.version}, ~${BUDGET_MS} ms per measurement)`);
const ops = Object.keys(results[0]![1]);
console.log(['op'.padEnd(10), ...results.map(([name]) => name.padStart(10)), native ? 'speed-up'.padStart(10) : ''].join(''));
for (const op of ops) {
  const cells = results.map(([, r]) => r[op]!.toFixed(2).padStart(10));
  const speedup = native ? `${(results[0]![1][op]! / results[1]![1][op]!).toFixed(1)}×`.padStart(10) : '';
  console.log([op.padEnd(10), ...cells, speedup].join(''));
}
if (!native) {
  console.log(
    process.env.QUORUMKEY_NATIVE === '0'
      ? 'native: disabled by QUORUMKEY_NATIVE=0'
      : 'native: addon not built (run npm install)',
  );
}
