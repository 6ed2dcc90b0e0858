/**
 * Sign rate, mean sign latency and presign rate over the last minutes, sampled from the
 * coordinator's own metrics (the counters Prometheus scrapes) every few seconds.
 */
import type { CoordinatorMetrics } from '../coordinator/metrics.js';

export const SAMPLE_INTERVAL_MS = 5000;
/** Ten minutes of samples. */
const KEPT_SAMPLES = 120;

export interface RateSample {
  /** End of the interval, ms since the epoch. */
  time: number;
  signsPerSecond: number;
  /** Mean end-to-end latency of the interval's successful signs, ms (undefined: none). */
  meanLatencyMs: number | undefined;
  presignaturesPerSecond: number;
}

interface Totals {
  time: number;
  signs: number;
  latencySum: number;
  latencyCount: number;
  presignatures: number;
}

async function sum(metric: { get(): Promise<{ values: { value: number; metricName?: string }[] }> }, name?: string): Promise<number> {
  const { values } = await metric.get();
  return values.filter((v) => name === undefined || v.metricName === name).reduce((a, v) => a + v.value, 0);
}

export class RateSampler {
  private readonly samples: RateSample[] = [];
  private last: Totals | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly metrics: CoordinatorMetrics) {}

  start(): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  history(): RateSample[] {
    return [...this.samples];
  }

  private async sample(): Promise<void> {
    const m = this.metrics;
    const now: Totals = {
      time: Date.now(),
      signs: await sum(m.signRequests),
      latencySum: await sum(m.signDuration, 'quorumkey_sign_duration_seconds_sum'),
      latencyCount: await sum(m.signDuration, 'quorumkey_sign_duration_seconds_count'),
      presignatures: await sum(m.presignaturesGenerated),
    };
    const prev = this.last;
    this.last = now;
    if (!prev) return;
    const seconds = Math.max(0.001, (now.time - prev.time) / 1000);
    const count = now.latencyCount - prev.latencyCount;
    this.samples.push({
      time: now.time,
      signsPerSecond: (now.signs - prev.signs) / seconds,
      meanLatencyMs: count > 0 ? ((now.latencySum - prev.latencySum) / count) * 1000 : undefined,
      presignaturesPerSecond: (now.presignatures - prev.presignatures) / seconds,
    });
    if (this.samples.length > KEPT_SAMPLES) this.samples.shift();
  }
}
