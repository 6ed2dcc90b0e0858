/** Errors the coordinator answers with, and their gRPC status / HTTP status / metric label. */
import { status } from '@grpc/grpc-js';

export type ErrorKind =
  | 'invalid' // malformed input
  | 'not-found' // unknown key
  | 'policy' // policy refused (or caller not allowed)
  | 'quorum' // fewer than T healthy holders
  | 'exhausted' // pool empty and inline presigning impossible
  | 'deadline'
  | 'internal'
  | 'already-exists'
  | 'precondition'
  | 'unavailable'
  | 'busy'
  | 'forbidden' // caller identity may not use this service
  | 'rate-limited'; // the key's rate limit

export class CoordinatorError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'CoordinatorError';
  }
}

export const fail = (kind: ErrorKind, message: string): never => {
  throw new CoordinatorError(kind, message);
};

const GRPC: Record<ErrorKind, status> = {
  invalid: status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  policy: status.PERMISSION_DENIED,
  quorum: status.UNAVAILABLE,
  exhausted: status.RESOURCE_EXHAUSTED,
  deadline: status.DEADLINE_EXCEEDED,
  internal: status.INTERNAL,
  'already-exists': status.ALREADY_EXISTS,
  precondition: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  busy: status.ABORTED,
  forbidden: status.PERMISSION_DENIED,
  'rate-limited': status.RESOURCE_EXHAUSTED,
};

const HTTP: Record<ErrorKind, number> = {
  invalid: 400,
  'not-found': 404,
  policy: 403,
  quorum: 409,
  exhausted: 424,
  deadline: 504,
  internal: 500,
  'already-exists': 409,
  precondition: 412,
  unavailable: 503,
  busy: 409,
  forbidden: 403,
  'rate-limited': 429,
};

/** Stable machine-readable names (HTTP `error` field, metric `result` label). */
const NAME: Record<ErrorKind, string> = {
  invalid: 'invalid_input',
  'not-found': 'not_found',
  policy: 'policy_refused',
  quorum: 'quorum_insufficient',
  exhausted: 'pool_depleted',
  deadline: 'deadline_exceeded',
  internal: 'internal',
  'already-exists': 'already_exists',
  precondition: 'failed_precondition',
  unavailable: 'unavailable',
  busy: 'busy',
  forbidden: 'forbidden',
  'rate-limited': 'rate_limited',
};

export const grpcStatus = (kind: ErrorKind): status => GRPC[kind];
export const httpStatus = (kind: ErrorKind): number => HTTP[kind];
export const errorName = (kind: ErrorKind): string => NAME[kind];

/** Any thrown value as a CoordinatorError (unexpected ones become internal, without their stack). */
export function asCoordinatorError(e: unknown): CoordinatorError {
  if (e instanceof CoordinatorError) return e;
  return new CoordinatorError('internal', `internal error: ${e instanceof Error ? e.message : String(e)}`);
}

/** Compact list of signer indices: [1..5], [1,2], [1,3..6]. */
export function formatSigners(indices: readonly number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let k = 0; k < sorted.length; ) {
    let j = k;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    if (j - k >= 2) parts.push(`${sorted[k]}..${sorted[j]}`);
    else for (let m = k; m <= j; m++) parts.push(String(sorted[m]));
    k = j + 1;
  }
  return `[${parts.join(',')}]`;
}
