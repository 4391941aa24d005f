// Metrics about the node rather than the chat: whether it serves (the health sources' verdict),
// which version runs, and the process's start time, memory and CPU under the names Prometheus
// client libraries use, so stock dashboards and alerts find them.

import type { HealthSource } from "./health.ts";
import type { Registry } from "./registry.ts";

const MICROSECONDS_PER_SECOND = 1e6;
const MILLISECONDS_PER_SECOND = 1e3;

export function registerNodeMetrics(registry: Registry, node: { version: string; health: HealthSource }): void {
  registry.computed("gauge", "tlschat_up", "1 while this node serves (its health check passes), 0 while it does not", () => (node.health.health().ok ? 1 : 0));
  registry.computed("gauge", "tlschat_build_info", "Always 1; the version label says which tlschat runs", () => 1, { version: node.version });
  // The time origin is when the runtime started, before any of our code ran.
  const startSeconds = Math.floor(performance.timeOrigin) / MILLISECONDS_PER_SECOND;
  registry.computed("gauge", "process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds", () => startSeconds);
  registry.computed("gauge", "process_resident_memory_bytes", "Resident memory size, in bytes", () => process.memoryUsage.rss());
  registry.computed("counter", "process_cpu_seconds_total", "User and system CPU time spent, in seconds", () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / MICROSECONDS_PER_SECOND;
  });
}
