/** Node process metrics (CPU, memory, event loop lag…) under a quorumkey prefix, promtool-clean. */
import { collectDefaultMetrics, type Registry } from 'prom-client';

export function registerProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  // prom-client exports these gauges with a _total suffix, which promtool rejects.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`${prefix}${name}`);
  }
}
