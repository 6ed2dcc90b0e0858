/**
 * A client of an RFC 6962 log's HTTP API (this coordinator's or another): add-chain,
 * add-pre-chain, get-sth. Answers are decoded strictly; an error answer becomes a CtClientError
 * carrying the log's message.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { decodeDigitallySigned, HASH_BYTES, type Sct } from './structures.js';

export class CtClientError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'CtClientError';
  }
}

export interface SignedTreeHead {
  treeSize: number;
  timestamp: number;
  rootHash: Uint8Array;
  signature: Uint8Array;
}

const MAX_ANSWER_BYTES = 1024 * 1024;
const TIMEOUT_MS = 30_000;

const bytes = (v: unknown, what: string): Uint8Array => {
  if (typeof v !== 'string') throw new CtClientError(`the log's answer has no ${what}`);
  return Uint8Array.from(Buffer.from(v, 'base64'));
};

const timestamp = (v: unknown, what: string): number => {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new CtClientError(`the log's answer has no valid ${what}`);
  return v as number;
};

export class CtLogClient {
  /** `base`: the log's URL prefix, e.g. http://127.0.0.1:8080 (the /ct/v1/ paths are added); `ca`: for https. */
  constructor(
    private readonly base: string,
    private readonly ca?: Buffer,
  ) {}

  private call(path: string, body?: unknown): Promise<Record<string, unknown>> {
    const url = new URL(`${this.base.replace(/\/+$/, '')}/ct/v1/${path}`);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: payload ? 'POST' : 'GET',
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
          timeout: TIMEOUT_MS,
          // A fresh connection per call: a pooled one may be closed by the server's keep-alive timeout.
          agent: false,
          ...(this.ca ? { ca: this.ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_ANSWER_BYTES) req.destroy(new CtClientError(`the log's answer to ${path} exceeds ${MAX_ANSWER_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('end', () => {
            let json: Record<string, unknown>;
            try {
              json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            } catch {
              return reject(new CtClientError(`the log answered ${path} with HTTP ${res.statusCode} and no JSON`, res.statusCode));
            }
            if (res.statusCode !== 200) return reject(new CtClientError(`the log refused ${path} (HTTP ${res.statusCode}): ${String(json.message ?? json.error ?? '').slice(0, 500)}`, res.statusCode));
            resolve(json);
          });
        },
      );
      req.on('timeout', () => req.destroy(new CtClientError(`the log did not answer ${path} within ${TIMEOUT_MS / 1000} s`)));
      req.on('error', (e) => reject(e instanceof CtClientError ? e : new CtClientError(`cannot reach the CT log at ${url.origin}: ${e.message}`)));
      req.end(payload);
    });
  }

  private async submit(path: string, chain: readonly Uint8Array[]): Promise<Sct> {
    const o = await this.call(path, { chain: chain.map((c) => Buffer.from(c).toString('base64')) });
    if (o.sct_version !== 0) throw new CtClientError('the log answered an SCT that is not v1');
    const logId = bytes(o.id, 'id');
    if (logId.length !== HASH_BYTES) throw new CtClientError("the log's id is not 32 bytes");
    try {
      return { logId, timestamp: timestamp(o.timestamp, 'timestamp'), extensions: bytes(o.extensions, 'extensions'), signature: decodeDigitallySigned(bytes(o.signature, 'signature')) };
    } catch (e) {
      throw e instanceof CtClientError ? e : new CtClientError(`the log's SCT signature is malformed: ${(e as Error).message}`);
    }
  }

  addChain(chain: readonly Uint8Array[]): Promise<Sct> {
    return this.submit('add-chain', chain);
  }

  addPreChain(chain: readonly Uint8Array[]): Promise<Sct> {
    return this.submit('add-pre-chain', chain);
  }

  async getSth(): Promise<SignedTreeHead> {
    const o = await this.call('get-sth');
    const rootHash = bytes(o.sha256_root_hash, 'sha256_root_hash');
    if (rootHash.length !== HASH_BYTES) throw new CtClientError('the root hash is not 32 bytes');
    try {
      return { treeSize: timestamp(o.tree_size, 'tree_size'), timestamp: timestamp(o.timestamp, 'timestamp'), rootHash, signature: decodeDigitallySigned(bytes(o.tree_head_signature, 'tree_head_signature')) };
    } catch (e) {
      throw e instanceof CtClientError ? e : new CtClientError(`the tree head signature is malformed: ${(e as Error).message}`);
    }
  }
}
