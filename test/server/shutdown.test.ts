// Graceful shutdown end to end: every client hears shutting_down, every connection closes, and
// stop() resolves promptly.

import { expect, test } from "bun:test";
import { JsonFileStore } from "../../src/auth/store.ts";
import { startTestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { closedWithin, connect, newUser } from "./support.ts";

test("stop() tells every client shutting_down, closes every connection and resolves within 2 s", async () => {
  await using server = await startTestServer();
  await using alice = (await newUser(server, "alice")).client;
  await using bob = (await newUser(server, "bob")).client;
  await using anonymous = await connect(server);

  const started = performance.now();
  await server.stop();
  expect(performance.now() - started).toBeLessThan(2_000);

  for (const client of [alice, bob, anonymous]) {
    expect(await client.nextError(1_000)).toBe("shutting_down");
    await closedWithin(client, 1_000);
  }
  expect(server.connectionCount).toBe(0);
});

test("after stop() the port no longer accepts connections", async () => {
  await using server = await startTestServer();
  await server.stop();
  // Bun.connect directly: TestClient.connect leaves its handshake promise rejected unhandled
  // when the TCP connect itself fails.
  const error = await Bun.connect({
    hostname: "127.0.0.1",
    port: server.port,
    tls: { ca: server.certificate.certPem, serverName: "localhost", rejectUnauthorized: true },
    socket: { data() {}, connectError() {} },
  }).then(
    (socket) => {
      socket.terminate();
      return undefined;
    },
    (reason: unknown) => reason,
  );
  expect(error).toMatchObject({ code: "ECONNREFUSED" });
});

test("stop() releases the store: it can be opened again at once", async () => {
  await using dir = await tempDir();
  const storePath = dir.file("users.json");
  const server = await startTestServer({ storePath });
  const alice = await newUser(server, "alice");
  await server.stop();
  await closedWithin(alice.client, 1_000);
  const store = await JsonFileStore.open(storePath);
  try {
    expect((await store.get("alice"))?.name).toBe("alice");
  } finally {
    await store.close();
  }
});

test("stop() resolves within 2 s even when a client never reads", async () => {
  await using server = await startTestServer();
  const alice = await newUser(server, "alice");
  await using aliceClient = alice.client;
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: server.port,
    tls: { ca: server.certificate.certPem, serverName: "localhost", rejectUnauthorized: true },
    socket: { data() {} },
  });
  try {
    (socket as unknown as { pause(): unknown }).pause();
    await aliceClient.sync();
    const started = performance.now();
    await server.stop();
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(server.connectionCount).toBe(0);
  } finally {
    socket.terminate();
  }
});
