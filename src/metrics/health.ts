// Whether this node should get traffic, for a load balancer's health check: several sources
// (the chat server, in cluster mode the shared store) each say ok or why not, and the node is
// healthy only while all of them are. Structural, so a source imports nothing from here.

export type Health = { ok: true } | { ok: false; reason: string };

/** Anything that can say whether it is fit to serve; asked on every health check, so it must be cheap. */
export interface HealthSource {
  health(): Health;
}

export const HEALTHY: Health = { ok: true };

/** Healthy while every source is; otherwise the reasons of those that are not, joined with "; ". */
export function combineHealth(sources: readonly HealthSource[]): HealthSource {
  return {
    health() {
      const reasons: string[] = [];
      for (const source of sources) {
        const health = source.health();
        if (!health.ok) reasons.push(health.reason);
      }
      return reasons.length === 0 ? HEALTHY : { ok: false, reason: reasons.join("; ") };
    },
  };
}
