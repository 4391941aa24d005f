// A peer that stops reading must be dropped once its outbound queue passes maxOutboundBytes, and
// must never hold up delivery to the others.

import { expect, test } from "bun:test";
import type { Socket } from "bun";
import { Registry } from "../../src/metrics/registry.ts";
import { withTimeout } from "../helpers/client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { newUser, until } from "./support.ts";

/** A logged-in connection (by resume token) that stops reading from its socket once welcomed. */
async function nonReadingPeer(server: TestServer, user: string, token: string): Promise<Socket<undefined>> {
  let handshake!: () => void;
  let welcomed!: () => void;
  const ready = new Promise<void>((resolve) => (handshake = resolve));
  const inRoom = new Promise<void>((resolve) => (welcomed = resolve));
  let text = "";
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: server.port,
    tls: { ca: server.certificate.certPem, serverName: "localhost", rejectUnauthorized: true },
    socket: {
      handshake: () => handshake(),
      data(_socket, chunk) {
        text += new TextDecoder().decode(chunk);
        if (text.includes('"type":"history"')) welcomed();
      },
    },
  });
  await withTimeout(ready, 5_000, "TLS handshake");
  socket.write(JSON.stringify({ type: "resume", user, token }) + "\n");
  await withTimeout(inRoom, 5_000, "welcome and history");
  // Bun sockets have pause() at run time (stop reading: the peer sees TCP backpressure); the
  // type declarations lack it.
  const pausable = socket as unknown as { pause(): unknown };
  expect(typeof pausable.pause).toBe("function");
  pausable.pause();
  return socket;
}

test("a peer that stops reading is dropped as a slow consumer; a reading peer gets every message in order", async () => {
  const metrics = new Registry();
  await using server = await startTestServer({
    limits: { maxOutboundBytes: 64 * 1024, messageRatePerSec: 1_000_000, messageBurst: 1_000_000 },
    metrics,
  });
  const flooder = await newUser(server, "flooder");
  await using flooderClient = flooder.client;
  const reader = await newUser(server, "reader");
  await using readerClient = reader.client;
  const sleepy = await newUser(server, "sleepy");
  await using sleepyReader = sleepy.client;
  const slow = await nonReadingPeer(server, "sleepy", sleepy.token);
  try {
    const text = "x".repeat(4_000);
    let sent = 0;
    const deadline = Date.now() + 10_000;
    const dropped = () => server.logs.some((entry) => entry.event === "slow_consumer");
    while (!dropped()) {
      if (Date.now() > deadline) throw new Error(`no slow_consumer after ${sent} messages`);
      // Batches of 10 (~40 KB, under the cap) paced by the reader's round trip: the reader keeps up.
      for (let i = 0; i < 10; i++) flooderClient.send({ type: "say", text });
      sent += 10;
      await Promise.all([readerClient.sync(), sleepyReader.sync()]);
    }
    const slowEntry = server.logs.find((entry) => entry.event === "slow_consumer")!;
    expect(slowEntry.fields.user).toBe("sleepy");
    await until(
      () => server.logs.some((entry) => entry.event === "disconnect" && entry.fields.reason === "slow_consumer"),
      "the slow consumer's disconnect",
    );

    // The flood goes on for a bit after the drop; the reader still gets everything.
    for (let i = 0; i < 10; i++) flooderClient.send({ type: "say", text });
    sent += 10;
    await readerClient.sync();

    const ids = readerClient.received.filter((frame) => frame.type === "msg").map((frame) => frame.id as number);
    expect(ids).toHaveLength(sent);
    expect(ids).toEqual(Array.from({ length: sent }, (_, i) => ids[0]! + i));
    expect(readerClient.received.filter((frame) => frame.type === "error")).toEqual([]);
    expect(readerClient.isClosed).toBe(false);
    expect(flooderClient.isClosed).toBe(false);
    // The sleepy user's other connection was reading all along: only the paused one was dropped.
    await sleepyReader.sync();
    expect(sleepyReader.take("msg")).toHaveLength(sent);
    expect(sleepyReader.isClosed).toBe(false);
    expect(server.logs.filter((entry) => entry.event === "slow_consumer")).toHaveLength(1);
    expect(metrics.render()).toContain("\ntlschat_slow_consumers_total 1\n");
  } finally {
    slow.terminate();
  }
}, 20_000);

test("past the server-wide outbound budget the reader furthest behind is dropped first; the others stay", async () => {
  await using server = await startTestServer({
    limits: { maxOutboundMemoryBytes: 256 * 1024, messageRatePerSec: 1_000_000, messageBurst: 1_000_000 },
  });
  const flooder = await newUser(server, "flooder");
  await using flooderClient = flooder.client;
  const behind = await newUser(server, "behind");
  const lagging = await newUser(server, "lagging");
  for (const { client } of [flooder, behind]) {
    client.send({ type: "join", room: "#big" });
    await client.next("joined");
  }
  await behind.client.close();
  await lagging.client.close();
  const behindPeer = await nonReadingPeer(server, "behind", behind.token);
  const laggingPeer = await nonReadingPeer(server, "lagging", lagging.token);
  try {
    const text = "x".repeat(4_000);
    const deadline = Date.now() + 10_000;
    const exceeded = () => server.logs.some((entry) => entry.event === "outbound_budget_exceeded");
    while (!exceeded()) {
      if (Date.now() > deadline) throw new Error("the outbound budget was never exceeded");
      // Both paused readers fall behind, "behind" ten times faster: it also gets #big.
      for (let i = 0; i < 10; i++) flooderClient.send({ type: "say", room: "#big", text });
      flooderClient.send({ type: "say", text });
      await flooderClient.sync();
    }
    const drops = server.logs.filter((entry) => entry.event === "slow_consumer").map((entry) => entry.fields.user);
    expect(drops[0]).toBe("behind");
    expect(drops).not.toContain("lagging");
    expect(server.logs.find((entry) => entry.event === "outbound_budget_exceeded")!.fields.budget).toBe(256 * 1024);
    expect(flooderClient.isClosed).toBe(false);
  } finally {
    behindPeer.terminate();
    laggingPeer.terminate();
  }
}, 20_000);
