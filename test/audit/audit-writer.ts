/**
 * Test-only writer process for durability.test.ts: opens an audit log as the services do (torn
 * tail repaired, rotation by size), then appends waves of concurrent records and prints each
 * answer as soon as its append resolves:
 *
 *   node audit-writer.js PATH ROTATE_BYTES CONCURRENCY WAVES   (WAVES 0: until killed)
 *   stdout: "open SEQ HASH" once, then "ok SEQ HASH" per answered record, then "done".
 *
 * The parent kills it (SIGKILL) or traces it (strace) and checks that no answer came before its
 * record was written and fsynced.
 */
import { AuditLog } from '../../src/audit/log.js';

const [path, rotate, concurrency, waves] = process.argv.slice(2);
const log = await AuditLog.open(path!, { repairTruncatedTail: true, rotateBytes: Number(rotate) });
const say = (line: string) => process.stdout.write(line + '\n');
say(`open ${log.head().seq} ${log.head().hash}`);
for (let wave = 0; Number(waves) === 0 || wave < Number(waves); wave++) {
  await Promise.all(
    Array.from({ length: Number(concurrency) }, (_, k) =>
      log.append({ event: 'sign', wave, k, pad: 'p'.repeat(200) }).then((r) => say(`ok ${r.seq} ${r.hash}`)),
    ),
  );
}
await log.close();
say('done');
