/**
 * Known-answer regression vectors: the whole life of a key (key generation, presigning, two
 * signatures, refresh, a signature after it) under fixed RNG seeds. Any change to a transcript,
 * an encoding or a derivation changes these digests. After an intentional protocol change,
 * regenerate with QUORUMKEY_UPDATE_VECTORS=1 npm test (that run fails on purpose, and is refused
 * under CI), review the diff, and run the tests again without the switch.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { curveBackend, nativeCurveBackend, nobleBackend, useCurveBackend } from '../../src/protocol/math/curve.js';
import type { ProtocolMessage } from '../../src/protocol/message.js';
import { Cluster, sha256 } from './harness.js';

const VECTORS = fileURLToPath(new URL('../../../test/vectors/dkls23-p256.json', import.meta.url));

interface Vector {
  seed: string;
  threshold: number;
  parties: number;
  publicKey: string;
  transcripts: Record<string, string>;
  signatures: string[];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** SHA-256 over every message, fields in sorted order, length-prefixed. */
function transcriptDigest(messages: readonly ProtocolMessage[]): string {
  const h = createHash('sha256');
  const put = (b: Uint8Array | string) => {
    const bytes = typeof b === 'string' ? Buffer.from(b) : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    h.update(len).update(bytes);
  };
  for (const m of messages) {
    put(m.protocol), put(m.keyId), put(m.sessionId), put(String(m.round)), put(String(m.from)), put(String(m.to));
    for (const name of Object.keys(m.payload).sort()) put(name), put(m.payload[name]!);
  }
  return h.digest('hex');
}

function lifecycle(seed: string, threshold: number, parties: number): Vector {
  const cluster = new Cluster(parties, seed);
  const dkg = cluster.keyGen('kat', threshold);
  const publicKey = dkg.outputs.get(1)!.publicKey;
  const subset = Array.from({ length: threshold }, (_, k) => parties - k).reverse();
  const presign = cluster.presign('kat', subset, 2);
  const signatures = presign.outputs.get(subset[0]!)!.map((p, k) => hex(cluster.sign('kat', p, sha256(`message ${k}`)).der));
  const refresh = cluster.refresh('kat');
  const after = cluster.presign('kat', subset, 1);
  signatures.push(hex(cluster.sign('kat', after.outputs.get(subset[0]!)![0]!, sha256('after refresh')).der));
  return {
    seed,
    threshold,
    parties,
    publicKey: hex(publicKey),
    transcripts: {
      dkg: transcriptDigest(dkg.transcript),
      presign: transcriptDigest(presign.transcript),
      refresh: transcriptDigest(refresh.transcript),
      presignAfterRefresh: transcriptDigest(after.transcript),
    },
    signatures,
  };
}

const CASES = [
  ['quorumkey-kat-1', 2, 3],
  ['quorumkey-kat-2', 3, 5],
] as const;

/** QUORUMKEY_UPDATE_VECTORS=1 rewrites the vector file from this build (then this run fails, see below). */
const UPDATE = process.env.QUORUMKEY_UPDATE_VECTORS === '1';
const IN_CI = !!process.env.CI && !['0', 'false'].includes(process.env.CI.toLowerCase());

describe('known-answer vectors (fixed RNG seeds)', function () {
  let computed: Vector[];
  /** The committed vectors, read before any update. */
  let expected: Vector[];
  before(function () {
    computed = CASES.map(([seed, t, n]) => lifecycle(seed, t, n));
    expected = JSON.parse(readFileSync(VECTORS, 'utf8')) as Vector[];
    if (UPDATE) {
      // CI checks the committed vectors; it never produces them.
      assert.ok(!IN_CI, 'QUORUMKEY_UPDATE_VECTORS is refused under CI');
      writeFileSync(VECTORS, JSON.stringify(computed, null, 2) + '\n');
    }
  });

  it('runs against the committed vectors (an update run fails on purpose: review the diff, then run without the switch)', function () {
    assert.ok(!UPDATE, `${VECTORS} was rewritten from this build: review the diff, then run the tests without QUORUMKEY_UPDATE_VECTORS`);
  });

  CASES.forEach(([seed, t, n], k) => {
    it(`${t}-of-${n} (${seed}): public key, transcripts and signatures match the committed vector`, function () {
      assert.deepEqual(computed[k], expected[k]);
    });
  });

  it('the TypeScript reference backend reproduces the same vector as the native backend', function () {
    const active = curveBackend();
    assert.ok(nativeCurveBackend(), 'native addon not built');
    useCurveBackend(nobleBackend);
    try {
      const [seed, t, n] = CASES[0];
      assert.deepEqual(lifecycle(seed, t, n), expected[0]);
    } finally {
      useCurveBackend(active);
    }
  });
});
