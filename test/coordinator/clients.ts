/** Test helpers for talking to a coordinator: gRPC clients (unix socket, mTLS), HTTP, verification. */
import { strict as assert } from 'node:assert';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { request } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { loadIdentity } from '../../src/pki/cluster-ca.js';
import { services } from '../../src/transport/proto.js';
import { channelOptions, clientCredentials } from '../../src/transport/tls.js';
export { freePort } from '../../src/cli/children.js';


export type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>;

export function socketClient(socket: string): AnyClient {
  return new services.Coordinator(`unix:${socket}`, grpc.credentials.createInsecure()) as unknown as AnyClient;
}

export function tlsClient(service: 'Coordinator' | 'Admin', pki: string, endpoint: string, identity: string): AnyClient {
  return new services[service](endpoint, clientCredentials(loadIdentity(pki, identity)), channelOptions('coordinator')) as unknown as AnyClient;
}

export interface RpcError extends Error {
  code: grpc.status;
  details: string;
}

export function unary<T>(client: AnyClient, method: string, req: unknown, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method]!(req, new grpc.Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

export async function expectStatus(p: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<RpcError> {
  try {
    await p;
  } catch (e) {
    const err = e as RpcError;
    assert.equal(err.code, code, `expected ${grpc.status[code]}, got ${grpc.status[err.code]}: ${err.details}`);
    if (message) assert.match(err.details, message);
    return err;
  }
  assert.fail(`expected ${grpc.status[code]}, the call succeeded`);
}

/** An HTTP request (JSON body when given); `headers` adds to or overrides the defaults. */
export function httpJson(
  url: string,
  method = 'GET',
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const base: Record<string, string | number> = body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {};
    const req = request(url, { method, headers: { ...base, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          /* not JSON (metrics) */
        }
        resolve({ status: res.statusCode ?? 0, json, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** ECDSA P-256 verification of a DER signature over `data` hashed with `alg`, by OpenSSL (node:crypto). */
export function verifyTbs(spkiDer: Uint8Array, data: Uint8Array, signatureDer: Uint8Array, alg = 'sha256'): boolean {
  const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  return cryptoVerify(alg, data, key, signatureDer);
}

export interface KeyInfoWire {
  key_id: string;
  threshold: number;
  signers: number[];
  public_key: Buffer;
  spki_der: Buffer;
  policy: string[];
  epoch: number;
  created_ms: number;
}

export interface SignResponseWire {
  signature_der: Buffer;
  r: Buffer;
  s: Buffer;
  public_key: Buffer;
  quorum: number[];
  presignature_id: Buffer;
  context: string;
  audit_seq: number;
  timestamp_ms: number;
}

export interface ClusterStatusWire {
  signers: { index: number; endpoint: string; up: boolean; healthy: boolean; quarantined: boolean; boot_id: string; latency_ms: number; last_error: string; quarantine_reason: string }[];
  pools: { key_id: string; subset: number[]; depth: number; target: number }[];
  conflicts: { key_id: string; a: number; b: number; reported_by: number[]; reason: string }[];
  subsets: { key_id: string; total: number; usable: { signers: number[] }[] }[];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}
