// The operations endpoint on Bun.serve (plain HTTP, meant for a private address): `/metrics` for
// Prometheus and `/healthz` for load balancers. It serves what the registry and the health
// sources say and knows nothing of the chat.

import type { HealthSource } from "./health.ts";
import { PROMETHEUS_CONTENT_TYPE, type Registry } from "./registry.ts";

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  registry: Registry;
  health: HealthSource;
}

export interface MetricsServer {
  /** The address actually bound (the port chosen when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** e.g. http://127.0.0.1:9464/ */
  readonly url: URL;
  /** Closes the listener and any open scrape connections. */
  stop(): Promise<void>;
}

export const METRICS_PATH = "/metrics";
export const HEALTH_PATH = "/healthz";
/** Scrapes and health checks send no body; anything bigger than this is refused unread. */
const MAX_REQUEST_BODY_BYTES = 1024;
/** A scraper that keeps a connection open without asking anything is dropped after this. */
const IDLE_TIMEOUT_SECONDS = 30;

const TEXT = "text/plain; charset=utf-8";
const ALLOWED_METHODS = "GET, HEAD";

/** Starts listening at once; throws (EADDRINUSE, EADDRNOTAVAIL, …) if the address cannot be bound. */
export function startMetricsServer(options: MetricsServerOptions): MetricsServer {
  const { registry, health } = options;
  const server = Bun.serve({
    hostname: options.host,
    port: options.port,
    // Never Bun's HTML error pages with stack traces: this may be reachable by more than the scraper.
    development: false,
    // With development off, Bun 1.4.5 turns SO_REUSEPORT on unless told not to: a second node
    // given the same address would bind it too and answer every other scrape, instead of failing.
    reusePort: false,
    maxRequestBodySize: MAX_REQUEST_BODY_BYTES,
    idleTimeout: IDLE_TIMEOUT_SECONDS,
    fetch(request) {
      const path = new URL(request.url).pathname;
      if (path !== METRICS_PATH && path !== HEALTH_PATH) return text(404, "not found");
      // Bun answers HEAD with GET's headers and no body.
      if (request.method !== "GET" && request.method !== "HEAD") {
        return text(405, "method not allowed", { Allow: ALLOWED_METHODS });
      }
      if (path === METRICS_PATH) {
        return new Response(registry.render(), { headers: { "Content-Type": PROMETHEUS_CONTENT_TYPE, "Cache-Control": "no-store" } });
      }
      const state = health.health();
      return state.ok ? text(200, "ok") : text(503, oneLine(state.reason));
    },
    error() {
      return text(500, "internal error");
    },
  });
  return {
    host: server.hostname ?? options.host,
    port: server.port ?? options.port,
    url: server.url,
    async stop() {
      await server.stop(true);
    },
  };
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(`${body}\n`, { status, headers: { "Content-Type": TEXT, "Cache-Control": "no-store", ...headers } });
}

/** A reason is one line of the response, whatever a source put in it. */
function oneLine(reason: string): string {
  return reason.replace(/[\r\n]+/g, " ").trim() || "unhealthy";
}
