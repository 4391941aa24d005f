// metrics/http.ts and health.ts on a real Bun.serve at 127.0.0.1:0: /metrics in the 0.0.4 text
// format, /healthz 200 "ok" or 503 with the failing sources' reasons on one line, 404 for other
// paths, 405 for methods other than GET and HEAD, and nothing listening after stop().

import { afterEach, describe, expect, test } from "bun:test";
import { combineHealth, HEALTHY, type Health, type HealthSource } from "../../src/metrics/health.ts";
import { startMetricsServer, type MetricsServer } from "../../src/metrics/http.ts";
import { Registry } from "../../src/metrics/registry.ts";

/** A health source a test flips by hand. */
class Switch implements HealthSource {
  state: Health = HEALTHY;
  health(): Health {
    return this.state;
  }
}

const running: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.stop()));
});

function start(registry = new Registry(), health: HealthSource = new Switch()): MetricsServer {
  const server = startMetricsServer({ host: "127.0.0.1", port: 0, registry, health });
  running.push(server);
  return server;
}

describe("combineHealth", () => {
  test("healthy while every source is; otherwise the failing reasons in order, joined", () => {
    const [a, b, c] = [new Switch(), new Switch(), new Switch()];
    const combined = combineHealth([a, b, c]);
    expect(combined.health()).toEqual({ ok: true });
    b.state = { ok: false, reason: "shared store unreachable" };
    expect(combined.health()).toEqual({ ok: false, reason: "shared store unreachable" });
    a.state = { ok: false, reason: "shutting down" };
    expect(combined.health()).toEqual({ ok: false, reason: "shutting down; shared store unreachable" });
    expect(combineHealth([]).health()).toEqual({ ok: true });
  });
});

describe("startMetricsServer", () => {
  test("port 0 binds a free port, and the url says which", () => {
    const server = start();
    expect(server.port).toBeGreaterThan(0);
    expect(server.host).toBe("127.0.0.1");
    expect(server.url.href).toBe(`http://127.0.0.1:${server.port}/`);
  });

  test("GET /metrics is the registry's exposition with the 0.0.4 content type, read at each scrape", async () => {
    const registry = new Registry();
    const scrapes = registry.counter("scrapes_total", "Scrapes seen");
    const server = start(registry);
    for (const expected of [0, 1]) {
      const response = await fetch(new URL("/metrics", server.url));
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      expect(await response.text()).toBe(`# HELP scrapes_total Scrapes seen\n# TYPE scrapes_total counter\nscrapes_total ${expected}\n`);
      scrapes.inc();
    }
  });

  test("HEAD gets the headers and no body; a query string does not change the path", async () => {
    const registry = new Registry();
    registry.counter("x_total", "X");
    const server = start(registry);
    const head = await fetch(new URL("/metrics", server.url), { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(await head.text()).toBe("");
    const withQuery = await fetch(new URL("/healthz?probe=lb", server.url));
    expect([withQuery.status, await withQuery.text()]).toEqual([200, "ok\n"]);
  });

  test("/healthz is 200 ok while healthy, 503 with a one-line reason while not, and 200 again after", async () => {
    const health = new Switch();
    const server = start(new Registry(), health);
    const check = async () => {
      const response = await fetch(new URL("/healthz", server.url));
      expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
      expect(response.headers.get("cache-control")).toBe("no-store");
      return [response.status, await response.text()];
    };
    expect(await check()).toEqual([200, "ok\n"]);
    health.state = { ok: false, reason: "shutting down" };
    expect(await check()).toEqual([503, "shutting down\n"]);
    health.state = { ok: false, reason: "store down:\nconnection refused\r\n" };
    expect(await check()).toEqual([503, "store down: connection refused\n"]);
    health.state = HEALTHY;
    expect(await check()).toEqual([200, "ok\n"]);
  });

  test("unknown paths are 404; other methods on known paths are 405 with Allow", async () => {
    const server = start();
    for (const path of ["/", "/metrics/", "/health", "/favicon.ico"]) {
      const response = await fetch(new URL(path, server.url));
      expect([path, response.status, await response.text()]).toEqual([path, 404, "not found\n"]);
    }
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
      for (const path of ["/metrics", "/healthz"]) {
        const response = await fetch(new URL(path, server.url), { method });
        expect([method, path, response.status]).toEqual([method, path, 405]);
        expect(response.headers.get("allow")).toBe("GET, HEAD");
      }
    }
  });

  test("a metric callback that throws answers 500 without a stack trace, and the next scrape works", async () => {
    const registry = new Registry();
    let broken = true;
    registry.computed("gauge", "flaky", "Flaky", () => {
      if (broken) throw new Error("secret internals");
      return 1;
    });
    const server = start(registry);
    const failed = await fetch(new URL("/metrics", server.url));
    expect([failed.status, await failed.text()]).toEqual([500, "internal error\n"]);
    broken = false;
    expect(await (await fetch(new URL("/metrics", server.url))).text()).toContain("flaky 1\n");
  });

  test("an address in use is an error at start; after stop() nothing listens", async () => {
    const server = start();
    expect(() => startMetricsServer({ host: "127.0.0.1", port: server.port, registry: new Registry(), health: new Switch() })).toThrow(/in use/);
    await server.stop();
    running.splice(running.indexOf(server), 1);
    await expect(fetch(new URL("/healthz", server.url))).rejects.toThrow();
  });
});
