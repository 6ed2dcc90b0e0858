/**
 * The rate limiter with an injected clock: no sleeping, no timing assertions.
 */
import { strict as assert } from 'node:assert';
import { RateLimiter } from '../../src/policy/rate-limit.js';

const MINUTE = 60_000;

class Clock {
  constructor(public t = 1_700_000_000_000) {}
  readonly now = () => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

function takeAll(limiter: RateLimiter, n: number): number {
  let ok = 0;
  for (let k = 0; k < n; k++) if (limiter.take().ok) ok++;
  return ok;
}

describe('RateLimiter', () => {
  it('allows a burst of perSecond, then refuses with the time until the next token', () => {
    const clock = new Clock();
    const limiter = new RateLimiter({ perSecond: 4, perHour: 1000 }, clock.now);
    assert.equal(takeAll(limiter, 4), 4);
    assert.deepEqual(limiter.take(), { ok: false, window: 'second', retryAfterMs: 250 });
    clock.advance(249);
    assert.deepEqual(limiter.take(), { ok: false, window: 'second', retryAfterMs: 1 });
    clock.advance(1);
    assert.deepEqual(limiter.take(), { ok: true });
    assert.equal(limiter.take().ok, false);
  });

  it('refills continuously up to the burst, never beyond it', () => {
    const clock = new Clock();
    const limiter = new RateLimiter({ perSecond: 10, perHour: 100_000 }, clock.now);
    assert.equal(takeAll(limiter, 10), 10);
    clock.advance(500);
    assert.equal(takeAll(limiter, 10), 5);
    clock.advance(3_600);
    assert.equal(takeAll(limiter, 20), 10, 'a long pause refills only the burst');
  });

  it('a refused take consumes nothing', () => {
    const clock = new Clock();
    const limiter = new RateLimiter({ perSecond: 1, perHour: 1000 }, clock.now);
    assert.ok(limiter.take().ok);
    for (let k = 0; k < 50; k++) assert.equal(limiter.take().ok, false);
    clock.advance(1000);
    assert.ok(limiter.take().ok, 'the refusals did not use up the refill');
  });

  it('refuses beyond perHour within the hour, with the time until the oldest minute leaves the window', () => {
    const clock = new Clock(100 * MINUTE);
    const limiter = new RateLimiter({ perSecond: 1000, perHour: 5 }, clock.now);
    assert.equal(takeAll(limiter, 3), 3); // minute 100
    clock.advance(30 * MINUTE);
    assert.equal(takeAll(limiter, 2), 2); // minute 130
    const refused = limiter.take();
    // Minute 100 leaves the window (the current minute and the 60 before it) when minute 161 begins.
    assert.deepEqual(refused, { ok: false, window: 'hour', retryAfterMs: (161 - 130) * MINUTE });
    clock.advance(refused.ok ? 0 : refused.retryAfterMs - 1);
    assert.equal(limiter.take().ok, false);
    clock.advance(1);
    assert.equal(takeAll(limiter, 5), 3, 'minute 100 has left; minute 130 still counts');
  });

  it('never lets more than perHour through in any sliding hour', () => {
    const clock = new Clock(7 * MINUTE + 59_999);
    const limiter = new RateLimiter({ perSecond: 1000, perHour: 10 }, clock.now);
    const times: number[] = [];
    for (let step = 0; step < 4 * 60 * 6; step++) {
      if (limiter.take().ok) times.push(clock.t);
      clock.advance(10_000);
    }
    assert.ok(times.length >= 30, `took ${times.length}`);
    for (const start of times) {
      const within = times.filter((t) => t >= start && t < start + 60 * MINUTE).length;
      assert.ok(within <= 10, `${within} signatures in the hour from ${start}`);
    }
  });

  it('reports the hour window when both are exhausted and the hour is the longer wait', () => {
    const clock = new Clock();
    const limiter = new RateLimiter({ perSecond: 2, perHour: 2 }, clock.now);
    assert.equal(takeAll(limiter, 2), 2);
    const r = limiter.take();
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.window === 'hour' && r.retryAfterMs > 59 * MINUTE);
  });

  it('reports the second window when the token bucket is the longer wait', () => {
    const clock = new Clock(10 * MINUTE);
    const limiter = new RateLimiter({ perSecond: 1, perHour: 2 }, clock.now);
    assert.ok(limiter.take().ok); // minute 10
    clock.advance(61 * MINUTE - 100);
    assert.ok(limiter.take().ok); // minute 70: minute 10 still in the window for 100 ms
    const r = limiter.take();
    assert.deepEqual(r, { ok: false, window: 'second', retryAfterMs: 1000 });
  });

  it('forgets old minutes after a long idle gap', () => {
    const clock = new Clock();
    const limiter = new RateLimiter({ perSecond: 100, perHour: 100 }, clock.now);
    assert.equal(takeAll(limiter, 200), 100);
    clock.advance(1000 * 24 * 60 * MINUTE);
    assert.equal(takeAll(limiter, 200), 100);
  });

  it('a clock that steps back refills nothing and counts into the latest minute', () => {
    const clock = new Clock(50 * MINUTE);
    const bucket = new RateLimiter({ perSecond: 2, perHour: 100 }, clock.now);
    assert.equal(takeAll(bucket, 2), 2);
    clock.advance(-10 * MINUTE);
    assert.deepEqual(bucket.take(), { ok: false, window: 'second', retryAfterMs: 500 });
    clock.advance(10 * MINUTE + 500);
    assert.equal(takeAll(bucket, 3), 1, 'refilled for the 500 ms past the latest time seen, not for 10 minutes');

    clock.t = 50 * MINUTE;
    const hour = new RateLimiter({ perSecond: 10, perHour: 3 }, clock.now);
    assert.ok(hour.take().ok);
    clock.t = 40 * MINUTE;
    assert.ok(hour.take().ok);
    // Counted in minute 50, both leave the window when minute 111 begins (minute 40 would leave at 101).
    clock.t = 105 * MINUTE;
    assert.equal(takeAll(hour, 3), 1);
  });

  it('refuses a limit that is not a positive integer, naming it', () => {
    assert.throws(() => new RateLimiter({ perSecond: 0, perHour: 10 }), /perSecond must be a positive integer, got 0/);
    assert.throws(() => new RateLimiter({ perSecond: 1, perHour: 1.5 }), /perHour must be a positive integer, got 1.5/);
  });
});
