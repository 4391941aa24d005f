// Floods from logged-in clients: room messages past the rate limit, frames of any kind past the
// frame allowance, several flooders at once, and a client that never reads while others chat
// heavily. The flooders are cut off; bystanders get every one of their messages.

import { describe, expect, test } from "bun:test";
import { Bystanders, expectAftermath, hostile, until, type HostileClient } from "../helpers/hostile.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

async function loggedIn(server: TestServer, user: string, localAddress?: string): Promise<HostileClient> {
  const client = await hostile(server, localAddress ? { localAddress } : {});
  expect((await client.register(user, `${user}-password`)).type).toBe("registered");
  expect((await client.login(user, `${user}-password`)).type).toBe("welcome");
  return client;
}

function errorCodes(client: HostileClient): string[] {
  return client.frames.filter((frame) => frame.type === "error").map((frame) => frame.code);
}

describe("message flood", () => {
  test("500 room messages in one write at the default limits: the burst is relayed, then rate_limited, then disconnected", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    await bystanders.during(async () => {
      await using flooder = await loggedIn(server, "flooder");
      flooder.write(Array.from({ length: 500 }, (_, i) => JSON.stringify({ type: "say", text: `flood ${i}` }) + "\n").join(""));
      await flooder.waitClosed(5_000);
      const codes = errorCodes(flooder);
      expect(codes.length).toBeGreaterThanOrEqual(1);
      expect(new Set(codes)).toEqual(new Set(["rate_limited"]));
      expect(codes).toHaveLength(20); // maxRateViolations in a row; the last one closes
    });
    // Only the burst (plus what the bucket refilled meanwhile) reached anyone, in order.
    const relayed = bystanders.receiver.received.filter((frame) => frame.type === "msg" && frame.from === "flooder").map((frame) => frame.text);
    expect(relayed.length).toBeGreaterThanOrEqual(30);
    expect(relayed.length).toBeLessThan(40);
    expect(relayed).toEqual(Array.from({ length: relayed.length }, (_, i) => `flood ${i}`));
    await until(() => server.logs.some((entry) => entry.event === "disconnect" && entry.fields.user === "flooder" && entry.fields.reason === "rate_limited"), "the flooder's disconnect");
    await expectAftermath(server, bystanders, ["flooder"]);
  });

  test("5000 pings in one write: answered up to the frame allowance, then rate_limited and disconnected", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    await bystanders.during(async () => {
      await using flooder = await loggedIn(server, "pinger");
      flooder.write(Array.from({ length: 5_000 }, (_, i) => `{"type":"ping","id":${i}}\n`).join(""));
      await flooder.waitClosed(5_000);
      const pongs = flooder.frames.filter((frame) => frame.type === "pong");
      expect(pongs.length).toBeGreaterThanOrEqual(1);
      expect(pongs.length).toBeLessThan(5_000);
      expect(errorCodes(flooder)).toEqual(Array(20).fill("rate_limited"));
    });
    await expectAftermath(server, bystanders, ["pinger"]);
  });

  test("10 flooders from 10 addresses at once: all cut off, bystanders get everything", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const names = Array.from({ length: 10 }, (_, i) => `flooder${i}`);
    const flooders = await Promise.all(names.map((name, i) => loggedIn(server, name, `127.0.5.${i + 1}`)));
    try {
      await bystanders.during(async () => {
        const line = (i: number) => JSON.stringify({ type: "say", text: `${"x".repeat(1_000)} ${i}` }) + "\n";
        for (const flooder of flooders) flooder.write(Array.from({ length: 300 }, (_, i) => line(i)).join(""));
        await Promise.all(flooders.map((flooder) => flooder.waitClosed(5_000)));
        for (const flooder of flooders) expect(errorCodes(flooder).at(-1)).toBe("rate_limited");
      });
    } finally {
      await Promise.all(flooders.map((flooder) => flooder[Symbol.asyncDispose]()));
    }
    await expectAftermath(server, bystanders, names);
  });

  test("a client that never reads while others chat heavily (maxOutboundBytes 32 KiB): dropped as slow_consumer, bystanders get everything, memory bounded", async () => {
    const maxOutboundBytes = 32 * 1024;
    // historySize 5: a newcomer's history (5 × 4 KB) must fit the small cap (see the history test below).
    await using server = await startTestServer({
      limits: { maxOutboundBytes, historySize: 5, messageRatePerSec: 1_000_000, messageBurst: 1_000_000 },
    });
    await using bystanders = await Bystanders.start(server);
    const chatters = await Promise.all(["chat1", "chat2", "chat3"].map((name, i) => loggedIn(server, name, `127.0.6.${i + 1}`)));
    const sleeper = await loggedIn(server, "sleeper", "127.0.6.9");
    try {
      const stats = await bystanders.during(async () => {
        sleeper.pause();
        // Collected before both readings, so garbage left by earlier tests in this process is not counted.
        Bun.gc(true);
        const rssBefore = process.memoryUsage().rss;
        const text = "z".repeat(4_000);
        let sent = 0;
        const deadline = Date.now() + 15_000;
        const dropped = () => server.logs.some((entry) => entry.event === "slow_consumer");
        while (!dropped()) {
          if (Date.now() > deadline) throw new Error(`no slow_consumer after ${sent} messages`);
          // 6 × 4 KB per round, under the cap, paced by round trips so readers keep up.
          for (let i = 0; i < 6; i++) chatters[i % 3]!.send({ type: "say", text: `${sent + i} ${text}` });
          sent += 6;
          await Promise.all([...chatters.map((chatter) => chatter.sync()), bystanders.receiver.sync()]);
        }
        // Heavy chat goes on after the drop.
        for (let round = 0; round < 20; round++) {
          for (let i = 0; i < 6; i++) chatters[i % 3]!.send({ type: "say", text: `${sent + i} ${text}` });
          sent += 6;
          await Promise.all([...chatters.map((chatter) => chatter.sync()), bystanders.receiver.sync()]);
        }
        Bun.gc(true);
        return { sent, rssGrowth: process.memoryUsage().rss - rssBefore };
      });
      const drop = server.logs.filter((entry) => entry.event === "slow_consumer");
      expect(drop).toHaveLength(1);
      expect(drop[0]!.fields.user).toBe("sleeper");
      await until(() => server.logs.some((entry) => entry.event === "disconnect" && entry.fields.reason === "slow_consumer"), "the sleeper's disconnect");
      // Every chatter line reached the reading bystander, none was lost to the sleeper's trouble.
      const chat = bystanders.receiver.received.filter((frame) => frame.type === "msg" && String(frame.from).startsWith("chat"));
      expect(chat).toHaveLength(stats.sent);
      // Rough: the server held at most maxOutboundBytes for the sleeper (the rest sat in kernel
      // buffers); the growth seen includes the test clients keeping every frame they received.
      expect(stats.rssGrowth).toBeLessThan(64 * 2 ** 20);
      for (const chatter of chatters) expect(errorCodes(chatter)).toEqual([]);
    } finally {
      sleeper.terminate();
      await Promise.all(chatters.map((chatter) => chatter[Symbol.asyncDispose]()));
    }
    await expectAftermath(server, bystanders, ["chat1", "chat2", "chat3", "sleeper"]);
  }, 20_000);

  test("history poisoning at the default limits: 100 maximal emoji messages must not lock newcomers out (history > maxOutboundBytes)", async () => {
    // Each message is 4,090 emoji (16,360 bytes of UTF-8, the most a 16 KiB say line can carry);
    // the history frame for a newcomer is then ~1.6 MB, above the default 1 MiB outbound cap.
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const text = "😀".repeat(4_090);
    const posters = await Promise.all(["poster1", "poster2", "poster3", "poster4"].map((name, i) => loggedIn(server, name, `127.0.7.${i + 1}`)));
    try {
      await bystanders.during(async () => {
        // 25 each (within the default burst of 30), one poster after the other so that readers
        // keep up (see the burst test below for what happens when they post at once).
        for (const poster of posters) {
          for (let i = 0; i < 25; i++) poster.send({ type: "say", text });
          await poster.sync();
          await bystanders.receiver.sync();
        }
        for (const poster of posters) expect(errorCodes(poster)).toEqual([]);
      });
      // A newcomer logs in: it must get welcome and history, and stay connected.
      await using newcomer = await hostile(server, { localAddress: "127.0.7.9" });
      expect((await newcomer.register("newcomer", "newcomer-password")).type).toBe("registered");
      newcomer.send({ type: "login", user: "newcomer", password: "newcomer-password" });
      const reply = await newcomer.nextOf(["welcome", "error"]).catch(() => ({ type: "connection closed" }));
      const dropped = server.logs.filter((entry) => entry.event === "slow_consumer").map((entry) => entry.fields.user);
      expect({ reply: reply.type, droppedAsSlowConsumer: dropped }).toEqual({ reply: "welcome", droppedAsSlowConsumer: [] });
      await newcomer.next("history");
      await newcomer.sync();
    } finally {
      await Promise.all(posters.map((poster) => poster[Symbol.asyncDispose]()));
    }
  }, 15_000);

  test("4 posters each bursting 25 maximal messages at once (all within their rate limits): reading bystanders must not be dropped as slow consumers", async () => {
    // 100 × 16.4 KB arrive within a few event-loop turns; every reader's queue passes the default
    // 1 MiB cap before the server has tried to write any of it.
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const text = "😀".repeat(4_090);
    const posters = await Promise.all(["burst1", "burst2", "burst3", "burst4"].map((name, i) => loggedIn(server, name, `127.0.8.${i + 1}`)));
    try {
      await bystanders.during(async () => {
        for (const poster of posters) for (let i = 0; i < 25; i++) poster.send({ type: "say", text });
        await Promise.all(posters.map((poster) => poster.sync()));
        for (const poster of posters) expect(errorCodes(poster)).toEqual([]);
        // Every say has been handled (each poster's pong came after its says): drops, if any, are logged.
        const dropped = server.logs.filter((entry) => entry.event === "slow_consumer").map((entry) => entry.fields.user);
        expect(dropped).toEqual([]);
      });
      await bystanders.receiver.sync();
      expect(bystanders.receiver.received.filter((frame) => frame.type === "msg" && String(frame.from).startsWith("burst"))).toHaveLength(100);
      expect(server.logs.filter((entry) => entry.event === "slow_consumer")).toEqual([]);
    } finally {
      await Promise.all(posters.map((poster) => poster[Symbol.asyncDispose]()));
    }
  }, 15_000);
});
