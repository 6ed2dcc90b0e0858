/**
 * Staple files for nginx `ssl_stapling_file`, HAProxy `<crt>.ocsp` and `openssl s_server
 * -status_file`: fetched from the certificate's OCSP responder, checked (staple.ts), and only
 * then written atomically, so the file is always the last good staple. A watcher refreshes it
 * half-way through each response's validity, and retries a failure every RETRY_MS meanwhile.
 */
import { X509Certificate } from 'node:crypto';
import { writeFileAtomic } from '../../storage/atomic-write.js';
import { checkStaple, stapleRequest, StapleError, type StapleStatus } from './staple.js';

export const RETRY_MS = 60_000;
const FETCH_TIMEOUT_MS = 15_000;

/** The OCSP URL from the certificate's authorityInfoAccess, if any. */
export function ocspUrlOf(certDer: Uint8Array): string | undefined {
  const access = new X509Certificate(Buffer.from(certDer)).infoAccess ?? '';
  return /^OCSP - URI:(\S+)$/m.exec(access)?.[1];
}

export interface StapleSource {
  certDer: Uint8Array;
  issuerDer: Uint8Array;
  /** Default: the certificate's AIA OCSP URL. */
  url?: string;
}

export async function fetchStaple(s: StapleSource): Promise<{ der: Uint8Array; status: StapleStatus }> {
  const url = s.url ?? ocspUrlOf(s.certDer);
  if (!url) throw new StapleError('the certificate names no OCSP responder (authorityInfoAccess); give --url');
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: Buffer.from(stapleRequest(s.certDer, s.issuerDer)), signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (e) {
    throw new StapleError(`the responder ${url} cannot be reached (${(e as Error).cause ?? (e as Error).message})`);
  }
  if (res.status !== 200) throw new StapleError(`the responder ${url} answered HTTP ${res.status}`);
  const der = new Uint8Array(await res.arrayBuffer());
  return { der, status: checkStaple(der, s.certDer, s.issuerDer) };
}

/** Fetches, checks and atomically writes a staple to `out`; a failure leaves `out` as it was. */
export async function refreshStaple(s: StapleSource, out: string): Promise<StapleStatus> {
  const { der, status } = await fetchStaple(s);
  await writeFileAtomic(out, der, 0o644);
  return status;
}

/** When to fetch the next staple: half-way between thisUpdate and nextUpdate. */
export function nextRefreshAt(status: StapleStatus): number {
  return status.thisUpdate.getTime() + (status.nextUpdate.getTime() - status.thisUpdate.getTime()) / 2;
}

export interface StapleEvents {
  written(status: StapleStatus): void;
  failed(error: Error): void;
}

/** Keeps `out` fresh until stop(); the first refresh runs at once. */
export function watchStaple(s: StapleSource, out: string, events: StapleEvents): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const run = async () => {
    let delay = RETRY_MS;
    try {
      const status = await refreshStaple(s, out);
      events.written(status);
      delay = Math.max(1000, nextRefreshAt(status) - Date.now());
    } catch (e) {
      events.failed(e as Error);
    }
    if (!stopped) timer = setTimeout(() => void run(), delay);
  };
  void run();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
