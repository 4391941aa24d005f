// Connection floods past the per-address and total caps, and far past the refusal headroom.
// Connections come from several loopback addresses (127.0.0.x) so both caps can be reached.
// Bystanders connected before the flood keep chatting; once the flood is gone, newcomers get in.

import { describe, expect, test } from "bun:test";
import { REFUSAL_HEADROOM } from "../../src/core/limits.ts";
import { Bystanders, expectAftermath, hostile, HostileClient, until } from "../helpers/hostile.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const MAX_CONNECTIONS = 20;
const PER_IP = 10;
const limits = { maxConnections: MAX_CONNECTIONS, maxConnectionsPerIp: PER_IP, authTimeoutMs: 2_000 };

interface Outcome {
  accepted: HostileClient[];
  refused: HostileClient[];
  other: HostileClient[];
}

/** Opens TLS connections all at once and sorts them by what the server did with them. */
async function flood(server: TestServer, addresses: string[]): Promise<Outcome> {
  const clients = await Promise.all(
    addresses.map((localAddress) => HostileClient.open({ port: server.port, ca: server.certificate.certPem, localAddress })),
  );
  // A refused connection gets server_full and is closed; an accepted one answers a ping.
  const outcomes = await Promise.all(
    clients.map(async (client) => {
      const ok = await Promise.race([client.handshake, client.closed.then(() => false)]);
      if (!ok) return "other" as const;
      client.send({ type: "ping", id: "alive" });
      const reply = await client.nextOf(["pong", "error"], 5_000).catch(() => undefined);
      if (reply?.type === "pong") return "accepted" as const;
      if (reply?.type === "error" && reply.code === "server_full") {
        await client.waitClosed(2_000);
        return "refused" as const;
      }
      return "other" as const;
    }),
  );
  const pick = (kind: string) => clients.filter((_, i) => outcomes[i] === kind);
  return { accepted: pick("accepted"), refused: pick("refused"), other: pick("other") };
}

function closeAll(clients: HostileClient[]): Promise<unknown> {
  return Promise.all(clients.map((client) => client[Symbol.asyncDispose]()));
}

describe("connection flood", () => {
  test("30 connections from one address (per-IP cap 10): the extra ones get server_full; bystanders unaffected; then new ones are accepted", async () => {
    await using server = await startTestServer({ limits });
    await using bystanders = await Bystanders.start(server); // two connections from 127.0.0.1
    const outcome = await bystanders.during(async () => {
      const result = await flood(server, Array(30).fill("127.0.0.1"));
      expect(result.other).toEqual([]);
      expect(result.accepted).toHaveLength(PER_IP - 2);
      expect(result.refused).toHaveLength(30 - (PER_IP - 2));
      for (const client of result.refused) expect(client.frames).toEqual([]); // nothing after server_full
      return result;
    });
    // Another address is not affected by 127.0.0.1's cap.
    await using elsewhere = await hostile(server, { localAddress: "127.0.0.2" });
    await elsewhere.sync();
    await closeAll(outcome.accepted);
    await until(() => server.connectionCount === 3, "the flood to be gone");
    await expectAftermath(server, bystanders);
  });

  test("40 connections from four addresses (total cap 20): the extra ones get server_full; then new ones are accepted", async () => {
    await using server = await startTestServer({ limits });
    await using bystanders = await Bystanders.start(server);
    const addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"].flatMap((address) => Array(10).fill(address));
    const outcome = await bystanders.during(async () => {
      const result = await flood(server, addresses);
      expect(result.other).toEqual([]);
      expect(result.accepted).toHaveLength(MAX_CONNECTIONS - 2);
      expect(result.refused).toHaveLength(40 - (MAX_CONNECTIONS - 2));
      return result;
    });
    expect(server.logs.filter((entry) => entry.event === "refused" && entry.fields.code === "server_full").length).toBeGreaterThanOrEqual(22);
    await closeAll(outcome.accepted);
    await until(() => server.connectionCount === 2, "the flood to be gone");
    await expectAftermath(server, bystanders);
  });

  test(`far past the refusal headroom (${MAX_CONNECTIONS} + ${REFUSAL_HEADROOM}): the excess is cut without a word, bystanders unaffected`, async () => {
    await using server = await startTestServer({ limits: { ...limits, authTimeoutMs: 500 } });
    await using bystanders = await Bystanders.start(server);
    const total = MAX_CONNECTIONS + REFUSAL_HEADROOM + 44; // 320
    // 32 source addresses × 10: the per-address cap is never the reason.
    const addresses = Array.from({ length: total }, (_, i) => `127.0.1.${1 + Math.floor(i / PER_IP)}`);
    await bystanders.during(async () => {
      // Plain TCP: cheap for the attacker, and still a connection the server must account for.
      const clients = await Promise.all(addresses.map((localAddress) => HostileClient.open({ port: server.port, tls: false, localAddress })));
      const lifetimes = await Promise.all(clients.map((client) => client.waitClosed(5_000)));
      for (const client of clients) expect(client.receivedBytes).toBe(0);
      const connected = server.logs.filter((entry) => entry.event === "connect" && String(entry.fields.address).startsWith("127.0.1.")).length;
      const refused = server.logs.filter((entry) => entry.event === "refused" && String(entry.fields.address).startsWith("127.0.1.")).length;
      const cut = total - connected - refused;
      expect(connected).toBe(MAX_CONNECTIONS - 2);
      expect(refused).toBe(REFUSAL_HEADROOM);
      expect(cut).toBe(total - (MAX_CONNECTIONS - 2) - REFUSAL_HEADROOM);
      // The cut ones went at once; refused ones waited for the close grace, accepted ones for the login deadline.
      const sorted = [...lifetimes].sort((a, b) => a - b);
      expect(sorted[cut - 1]!).toBeLessThan(200);
    });
    await until(() => server.connectionCount === 2, "the flood to be gone");
    await expectAftermath(server, bystanders);
  }, 15_000);
});
