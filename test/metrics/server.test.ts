// The chat server's metrics end to end: a real server with its registry served on 127.0.0.1:0,
// real clients logging in, talking and failing, and the exact counts read back over HTTP; the
// health check turns 503 the moment the server starts stopping.

import { describe, expect, test } from "bun:test";
import { mkdirSync, rmSync } from "node:fs";
import { combineHealth } from "../../src/metrics/health.ts";
import { startMetricsServer, type MetricsServer } from "../../src/metrics/http.ts";
import { registerNodeMetrics } from "../../src/metrics/process.ts";
import { Registry } from "../../src/metrics/registry.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { connect, newUser } from "../server/support.ts";

/** The metrics endpoint over a test server's registry, as `serve --metrics` sets it up. */
function serveMetrics(server: TestServer, registry: Registry): MetricsServer {
  const health = combineHealth([server]);
  registerNodeMetrics(registry, { version: "0.0.0-test", health });
  return startMetricsServer({ host: "127.0.0.1", port: 0, registry, health });
}

async function get(metrics: MetricsServer, path: string): Promise<[number, string]> {
  const response = await fetch(new URL(path, metrics.url));
  return [response.status, await response.text()];
}

/** One scrape as series (name and labels) to value. */
async function scrape(metrics: MetricsServer): Promise<Map<string, number>> {
  const [status, text] = await get(metrics, "/metrics");
  expect(status).toBe(200);
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

function pick(samples: Map<string, number>, names: readonly string[]): Record<string, number | undefined> {
  return Object.fromEntries(names.map((name) => [name, samples.get(name)]));
}

describe("serve's metrics", () => {
  test("logins, stored messages, deliveries, auth failures and store errors are counted exactly", async () => {
    const registry = new Registry();
    await using server = await startTestServer({ metrics: registry });
    const metrics = serveMetrics(server, registry);
    try {
      await using alice = (await newUser(server, "alice")).client;
      await using bob = (await newUser(server, "bob")).client;

      alice.send({ type: "say", text: "hello bob", ref: "r1" });
      expect((await bob.next("msg")).text).toBe("hello bob");
      const ack = await alice.next("ack");
      // A retry of the same ref is acknowledged again, not stored again.
      alice.send({ type: "say", text: "hello bob", ref: "r1" });
      expect((await alice.next("ack")).id).toBe(ack.id);
      alice.send({ type: "dm", to: "bob", text: "psst", ref: "r2" });
      expect((await bob.next("dm")).text).toBe("psst");
      await alice.next("ack");

      await using mallory = await connect(server);
      mallory.send({ type: "login", user: "alice", password: "not alices password" });
      expect(await mallory.nextError()).toBe("auth_failed");
      // The account store writes `${path}.${pid}.tmp` first: a directory there fails the write.
      const obstacle = `${server.storePath}.${process.pid}.tmp`;
      mkdirSync(obstacle);
      try {
        mallory.send({ type: "register", user: "mallory", password: "mallory-password" });
        expect(await mallory.nextError()).toBe("store_unavailable");
      } finally {
        rmSync(obstacle, { recursive: true, force: true });
      }

      // After a round trip on each connection everything queued to it has arrived.
      for (const client of [alice, bob, mallory]) await client.sync();
      const framesReceived = alice.received.length + bob.received.length + mallory.received.length;
      const samples = await scrape(metrics);
      expect(
        pick(samples, [
          "tlschat_connections",
          "tlschat_users_online",
          "tlschat_connections_opened_total",
          "tlschat_connections_refused_total",
          "tlschat_logins_total",
          "tlschat_registrations_total",
          "tlschat_auth_failures_total",
          "tlschat_messages_total",
          "tlschat_deliveries_total",
          "tlschat_slow_consumers_total",
          "tlschat_store_errors_total",
          "tlschat_internal_errors_total",
          "tlschat_outbound_bytes",
          "tlschat_up",
          'tlschat_build_info{version="0.0.0-test"}',
        ]),
      ).toEqual({
        tlschat_connections: 3,
        tlschat_users_online: 2,
        tlschat_connections_opened_total: 3,
        tlschat_connections_refused_total: 0,
        tlschat_logins_total: 2,
        tlschat_registrations_total: 2,
        tlschat_auth_failures_total: 1,
        tlschat_messages_total: 2,
        tlschat_deliveries_total: framesReceived,
        tlschat_slow_consumers_total: 0,
        tlschat_store_errors_total: 1,
        tlschat_internal_errors_total: 0,
        tlschat_outbound_bytes: 0,
        tlschat_up: 1,
        'tlschat_build_info{version="0.0.0-test"}': 1,
      });
      expect(samples.get("tlschat_outbound_budget_bytes")).toBeGreaterThan(0);
      expect(samples.get("process_start_time_seconds")).toBeLessThanOrEqual(Date.now() / 1000);
      expect(samples.get("process_resident_memory_bytes")).toBeGreaterThan(0);
      expect(samples.get("process_cpu_seconds_total")).toBeGreaterThan(0);
    } finally {
      await metrics.stop();
    }
  });

  test("/healthz is 200 while the server serves and 503 shutting down from the moment stop() is called", async () => {
    const registry = new Registry();
    const server = await startTestServer({ metrics: registry });
    const metrics = serveMetrics(server, registry);
    try {
      await using alice = (await newUser(server, "alice")).client;
      expect(await get(metrics, "/healthz")).toEqual([200, "ok\n"]);

      const stopping = server.stop();
      expect(server.health()).toEqual({ ok: false, reason: "shutting down" });
      // Asked while the server is still letting its clients go.
      const duringStop = get(metrics, "/healthz");
      const upDuringStop = scrape(metrics);
      expect(await alice.nextError()).toBe("shutting_down");
      expect(await duringStop).toEqual([503, "shutting down\n"]);
      expect((await upDuringStop).get("tlschat_up")).toBe(0);
      await stopping;
      expect(await get(metrics, "/healthz")).toEqual([503, "shutting down\n"]);
    } finally {
      await server.stop();
      await metrics.stop();
    }
  });
});
