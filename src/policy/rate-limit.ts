/**
 * A key's signing rate limit (key-policy.ts RateLimit). Pure: the clock is injected.
 *
 * - Per second: a token bucket holding at most perSecond tokens (the burst), refilled
 *   continuously at perSecond tokens a second. Kept in milli-tokens so integer clocks refill
 *   exactly.
 * - Per hour: fixed one-minute sub-buckets. A take is allowed while the current minute and the 60
 *   before it hold fewer than perHour signatures; that span covers every sliding hour ending now,
 *   so no sliding 60-minute interval ever holds more than perHour, at the price of a refusal
 *   coming up to a minute early.
 *
 * A refused take consumes nothing. A clock that steps backwards refills nothing and counts into
 * the latest minute seen.
 */
import type { RateLimit } from './key-policy.js';

export type RateDecision = { ok: true } | { ok: false; window: 'second' | 'hour'; retryAfterMs: number };

const SECOND_MS = 1000;
const MINUTE_MS = 60_000;
/** The current minute and the 60 before it. */
const HOUR_BUCKETS = 61;

function slot(minute: number): number {
  return ((minute % HOUR_BUCKETS) + HOUR_BUCKETS) % HOUR_BUCKETS;
}

export class RateLimiter {
  private readonly capacity: number;
  private milliTokens: number;
  private refilledAt: number;
  private readonly perMinute = new Array<number>(HOUR_BUCKETS).fill(0);
  private currentMinute: number;
  private inWindow = 0;

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = Date.now,
  ) {
    for (const field of ['perSecond', 'perHour'] as const) {
      const v = limit[field];
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`rate limit ${field} must be a positive integer, got ${v}`);
    }
    this.capacity = limit.perSecond * SECOND_MS;
    this.milliTokens = this.capacity;
    const t = now();
    this.refilledAt = t;
    this.currentMinute = Math.floor(t / MINUTE_MS);
  }

  take(): RateDecision {
    const t = this.now();
    this.refill(t);
    this.advance(Math.floor(t / MINUTE_MS));
    const second = this.milliTokens >= SECOND_MS ? 0 : Math.ceil((SECOND_MS - this.milliTokens) / this.limit.perSecond);
    const hour = this.inWindow < this.limit.perHour ? 0 : this.hourRetry(t);
    if (second === 0 && hour === 0) {
      this.milliTokens -= SECOND_MS;
      this.perMinute[slot(this.currentMinute)]!++;
      this.inWindow++;
      return { ok: true };
    }
    // Both must allow the next take, so the caller waits for the later of the two.
    return hour >= second ? { ok: false, window: 'hour', retryAfterMs: hour } : { ok: false, window: 'second', retryAfterMs: second };
  }

  private refill(t: number): void {
    if (t > this.refilledAt) {
      this.milliTokens = Math.min(this.capacity, this.milliTokens + (t - this.refilledAt) * this.limit.perSecond);
      this.refilledAt = t;
    }
  }

  /** Moves the window to `minute`, forgetting the minutes that fall out of it. */
  private advance(minute: number): void {
    if (minute <= this.currentMinute) return;
    const steps = Math.min(minute - this.currentMinute, HOUR_BUCKETS);
    for (let k = 1; k <= steps; k++) {
      const i = slot(this.currentMinute + k);
      this.inWindow -= this.perMinute[i]!;
      this.perMinute[i] = 0;
    }
    this.currentMinute = minute;
  }

  /** Time until enough of the oldest minutes leave the window for one more take. */
  private hourRetry(t: number): number {
    // The buckets hold inWindow ≥ perHour, so the loop stops within the window.
    let excess = this.inWindow - this.limit.perHour + 1;
    let minute = this.currentMinute - (HOUR_BUCKETS - 1);
    while ((excess -= this.perMinute[slot(minute)]!) > 0) minute++;
    // That minute leaves the window when minute + HOUR_BUCKETS begins.
    return (minute + HOUR_BUCKETS) * MINUTE_MS - t;
  }
}
