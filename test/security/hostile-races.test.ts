// Races and pathological inputs the hostile suites found: a retry that arrives after its sender
// was banned, a search built to make the index work hard, and a message accepted in the same
// turn as its sender's ban.

import { describe, expect, test } from "bun:test";
import type { Frame } from "../helpers/client.ts";
import { seedChatDatabase } from "../helpers/hostile.ts";
import { startTestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { joinRoom, moderate, newUsers } from "../server/rooms-support.ts";
import { connect, turn } from "../server/support.ts";

describe("races and pathological inputs", () => {
  test("a say retried with its ref after the sender was banned is acked with the original id: it was stored and relayed before", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice!, "#rust");
    await joinRoom(bob!, "#rust");
    bob!.send({ type: "say", room: "#rust", text: "sent once", ref: "retry-me" });
    const first = await bob!.next("ack");
    await moderate(alice!, { type: "ban", room: "#rust", user: "bob" });
    // A retry after a reconnect: the same frame again.
    bob!.send({ type: "say", room: "#rust", text: "sent once", ref: "retry-me" });
    const retry = await bob!.nextOf(["ack", "error"]);
    expect(retry).toMatchObject({ type: "ack", ref: "retry-me", id: first.id });
  });

  test("a search whose 128 words each match 50,000 messages holds the event loop (and so the relay) under 50 ms", async () => {
    await using dir = await tempDir();
    const chatDbPath = dir.file("chat.db");
    await seedChatDatabase(chatDbPath, {
      users: ["alice"],
      messages: Array.from({ length: 50_000 }, (_, i) => ({ room: "#lobby", from: "mallory", text: `x ${i}` })),
    });
    await using server = await startTestServer({ chatDbPath });
    await (await connect(server)).register("alice", "pw-alice-secret");
    const alice = await connect(server);
    alice.send({ type: "login", user: "alice", password: "pw-alice-secret" });
    await alice.next("history");
    // The server runs in this process: a timer that cannot fire shows how long the loop was held.
    let last = performance.now();
    let longestGapMs = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
    }, 2);
    try {
      alice.send({ type: "search", query: Array(128).fill("x").join(" ") });
      expect((await alice.next("search", 20_000)).messages.length).toBeGreaterThan(0);
    } finally {
      clearInterval(ticker);
    }
    expect(longestGapMs).toBeLessThan(50);
  }, 30_000);

  test("a message said in the same turn as its sender's ban does not reach the room after the ban notice", async () => {
    await using server = await startTestServer();
    const [alice, carol, bob] = await newUsers(server, "alice", "carol", "bob");
    for (const client of [alice!, carol!, bob!]) await joinRoom(client, "#rust");
    for (let i = 0; i < 25; i++) {
      bob!.send({ type: "say", room: "#rust", text: `bob ${i}` });
      if (i === 12) alice!.send({ type: "ban", room: "#rust", user: "bob" });
      await turn();
    }
    await carol!.sync();
    await carol!.sync();
    const seen = carol!.received.filter((frame: Frame) => (frame.type === "msg" && frame.room === "#rust") || frame.type === "moderation");
    const afterBan = seen.slice(seen.findIndex((frame) => frame.type === "moderation") + 1);
    expect(afterBan.map((frame) => frame.text)).toEqual([]);
  });
});

