/**
 * A test-only malicious coordinator: a separate process holding the cluster's `coordinator`
 * certificate (what an attacker who owns the coordinator host has) that talks to the signers
 * directly, skipping every check the real coordinator makes. It is never part of the product.
 *
 *   node dist/test/services/malicious-coordinator.js --dir DIR --plan PLAN.json
 *
 * PLAN: [{ name, key, subset, digestAlg, requests: [{ tbs?: hex, digest?: hex }] }]. For each
 * attack it presigns once per request on `subset` (Signer.Presign, as the real coordinator
 * does), then sends each request's Finish to every member and, where all members answered,
 * combines the shares into a signature. Prints one JSON line: the outcome of every Finish at every signer.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { paths, readClusterConfig } from '../../src/cluster/config.js';
import { loadIdentity, signerName } from '../../src/pki/cluster-ca.js';
import { combineSignature, TWEAK_SEED_BYTES } from '../../src/protocol/online.js';
import type { ProtocolMessage } from '../../src/protocol/message.js';
import { ABORT_METADATA, fromEnvelope, REFUSAL_METADATA, services, type ProtocolEnvelope } from '../../src/transport/proto.js';
import { channelOptions, clientCredentials } from '../../src/transport/tls.js';

export interface Attack {
  name: string;
  key: string;
  subset: number[];
  digestAlg: 'SHA256' | 'SHA384' | 'SHA512';
  requests: { tbs?: string; digest?: string }[];
}

export interface FinishOutcome {
  signer: number;
  ok: boolean;
  code?: number;
  refusal?: string;
  details?: string;
}

export interface AttackResult {
  name: string;
  requests: { presignature: string; outcomes: FinishOutcome[]; signature?: string }[];
}

type Signer = grpc.Client & Record<string, Function>;

function call<T>(client: Signer, method: string, request: unknown, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method]!(request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

const metadata = (err: grpc.ServiceError, key: string) => err.metadata?.get(key)[0]?.toString();

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, plan: { type: 'string' } } });
  const dir = values.dir!;
  const plan = JSON.parse(readFileSync(values.plan!, 'utf8')) as Attack[];
  const config = readClusterConfig(dir);
  const identity = loadIdentity(paths(dir).pki, 'coordinator');
  const creds = clientCredentials(identity);
  const signers = new Map(config.signers.map((s) => [s.index, new services.Signer(s.endpoint, creds, channelOptions(signerName(s.index))) as Signer]));
  const results: AttackResult[] = [];
  for (const attack of plan) {
    const members = attack.subset.map((i) => signers.get(i)!);
    const health = await call<{ keys: { key_id: string; public_key: Buffer }[] }>(members[0]!, 'Health', {});
    const publicKey = health.keys.find((k) => k.key_id === attack.key)!.public_key;
    const sessionId = randomBytes(32);
    const presigned = await Promise.all(
      members.map((m) => call<{ presignatures: { id: Buffer; nonce: Buffer }[] }>(m, 'Presign', { key_id: attack.key, session_id: sessionId, subset: attack.subset, count: attack.requests.length })),
    );
    const refs = presigned[0]!.presignatures;
    const result: AttackResult = { name: attack.name, requests: [] };
    for (const [k, request] of attack.requests.entries()) {
      const ref = refs[k]!;
      const tweakSeed = randomBytes(TWEAK_SEED_BYTES);
      const finish = {
        key_id: attack.key,
        presignature_id: ref.id,
        tweak_seed: tweakSeed,
        tbs: request.tbs ? Buffer.from(request.tbs, 'hex') : Buffer.alloc(0),
        digest: request.digest ? Buffer.from(request.digest, 'hex') : Buffer.alloc(0),
        digest_alg: attack.digestAlg,
        caller: 'attacker',
      };
      const settled = await Promise.allSettled(members.map((m) => call<{ share: ProtocolEnvelope }>(m, 'Finish', finish)));
      const outcomes: FinishOutcome[] = settled.map((s, j) => {
        const signer = attack.subset[j]!;
        if (s.status === 'fulfilled') return { signer, ok: true };
        const err = s.reason as grpc.ServiceError;
        return { signer, ok: false, code: err.code, refusal: metadata(err, REFUSAL_METADATA) ?? metadata(err, ABORT_METADATA.reason), details: err.details };
      });
      const entry: AttackResult['requests'][number] = { presignature: ref.id.toString('hex'), outcomes };
      if (settled.every((s) => s.status === 'fulfilled')) {
        const shares = new Map<number, ProtocolMessage>(settled.map((s, j) => [attack.subset[j]!, fromEnvelope((s as PromiseFulfilledResult<{ share: ProtocolEnvelope }>).value.share)!]));
        const digest = finish.digest.length ? finish.digest : createHash(attack.digestAlg.toLowerCase()).update(finish.tbs).digest();
        const sig = combineSignature({ keyId: attack.key, publicKey, presignatureId: ref.id, nonce: ref.nonce, subset: attack.subset, shares, digest, tweakSeed });
        entry.signature = Buffer.from(sig.der).toString('hex');
      }
      result.requests.push(entry);
    }
    results.push(result);
  }
  for (const s of signers.values()) s.close();
  process.stdout.write(JSON.stringify(results) + '\n');
}

main().catch((e) => {
  process.stderr.write(`malicious coordinator: ${(e as Error).message}\n`);
  process.exit(1);
});
