// Server limits end to end, each shrunk through startTestServer({limits}): message rate, auth and
// idle timeouts, connection caps, and the failed-login throttle.

import { describe, expect, test } from "bun:test";
import type { TestClient } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";
import { closedWithin, connect, errorFor, expectUsable, newUser, until } from "./support.ts";

describe("message rate", () => {
  const rate = { messageRatePerSec: 1, messageBurst: 3, maxRateViolations: 5 };

  test("the burst passes, the next message is rate_limited and not relayed, the connection stays", async () => {
    await using server = await startTestServer({ limits: rate });
    await using bob = await connect(server);
    await bob.register("bob", "bob-password");
    await using alice = await connect(server);
    await alice.register("alice", "alice-password");
    await alice.login("alice", "alice-password");
    await bob.login("bob", "bob-password");
    await alice.next("online");

    alice.sendRaw(["1", "2", "3", "4"].map((text) => JSON.stringify({ type: "say", text }) + "\n").join(""));
    expect(await alice.nextError()).toBe("rate_limited");
    for (const text of ["1", "2", "3"]) expect((await bob.next("msg", 2_000)).text).toBe(text);
    await bob.sync();
    expect(bob.take("msg")).toEqual([]);
    expect(alice.isClosed).toBe(false);

    // Waiting out the refill is the behaviour under test, not synchronisation: one token a second.
    await Bun.sleep(1_100);
    alice.send({ type: "say", text: "5" });
    expect((await bob.next("msg")).text).toBe("5");
    expect(alice.take("error")).toEqual([]);
  }, 10_000);

  test("pings and who do not use up the message allowance (the bucket is for room messages and dms)", async () => {
    await using server = await startTestServer({ limits: rate });
    await using bob = (await newUser(server, "bob")).client;
    await using alice = (await newUser(server, "alice")).client;
    for (let i = 0; i < 6; i++) alice.send({ type: "ping", id: i });
    alice.send({ type: "who" });
    await alice.next("who", 2_000);
    expect(alice.take("pong").map((frame) => frame.id)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(alice.take("error")).toEqual([]);
    expect(alice.isClosed).toBe(false);
  });

  test("a sustained flood gets rate_limited errors, then a final rate_limited and the connection closes", async () => {
    await using server = await startTestServer({ limits: rate });
    await using bob = (await newUser(server, "bob")).client;
    await using alice = (await newUser(server, "alice")).client;
    const flood = Array.from({ length: 50 }, (_, i) => JSON.stringify({ type: "say", text: `flood ${i}` }) + "\n").join("");
    alice.sendRaw(flood);
    await closedWithin(alice);
    const errors = alice.received.filter((frame) => frame.type === "error");
    expect(errors.length).toBe(rate.maxRateViolations);
    expect(errors.every((frame) => frame.code === "rate_limited")).toBe(true);
    expect(alice.received.at(-1)).toMatchObject({ type: "error", code: "rate_limited" });

    await bob.sync();
    expect(bob.take("msg").length).toBeLessThanOrEqual(rate.messageBurst);
    expect((await bob.next("offline")).user).toBe("alice");
  });

  test("a flood of dms is limited like room messages", async () => {
    await using server = await startTestServer({ limits: { ...rate, maxRateViolations: 1_000 } });
    const bob = await newUser(server, "bob");
    await using bobClient = bob.client;
    await using alice = (await newUser(server, "alice")).client;
    alice.sendRaw(Array.from({ length: 10 }, () => JSON.stringify({ type: "dm", to: "bob", text: "hi" }) + "\n").join(""));
    expect(await alice.nextError()).toBe("rate_limited");
    expect(alice.isClosed).toBe(false);
  });
});

describe("timeouts", () => {
  test("a connection that does not log in within authTimeoutMs gets timeout and is closed", async () => {
    await using server = await startTestServer({ limits: { authTimeoutMs: 200 } });
    const started = Date.now();
    await using client = await connect(server);
    expect(await client.nextError(3_000)).toBe("timeout");
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    await closedWithin(client);
  });

  test("pinging does not extend the login deadline", async () => {
    await using server = await startTestServer({ limits: { authTimeoutMs: 200 } });
    await using client = await connect(server);
    const pinger = setInterval(() => client.isClosed || client.send({ type: "ping" }), 40);
    try {
      expect(await client.nextError(3_000)).toBe("timeout");
      await closedWithin(client);
    } finally {
      clearInterval(pinger);
    }
  });

  test("a logged-in connection survives the login deadline", async () => {
    // Long enough for a registration and a login (two argon2id hashes) on a loaded machine.
    await using server = await startTestServer({ limits: { authTimeoutMs: 1_500 } });
    await using alice = (await newUser(server, "alice")).client;
    await using late = await connect(server); // this one will time out, after alice's deadline
    expect(await late.nextError(5_000)).toBe("timeout");
    await expectUsable(alice);
  });

  test("a silent logged-in connection gets timeout after idleTimeoutMs; one that pings stays", async () => {
    await using server = await startTestServer({ limits: { idleTimeoutMs: 300 } });
    await using silent = (await newUser(server, "silent")).client;
    const silentSince = Date.now(); // its last frame (login) was just answered
    await using pinging = (await newUser(server, "pinging")).client;
    let pongs = 0;
    let enoughPongs!: () => void;
    const manyPongs = new Promise<void>((resolve) => (enoughPongs = resolve));
    // Load, not synchronisation: a keep-alive every 100 ms.
    const pinger = setInterval(() => {
      if (pinging.isClosed) return;
      pinging.send({ type: "ping" });
      void pinging.next("pong").then(() => ++pongs === 10 && enoughPongs(), () => undefined);
    }, 100);
    try {
      expect(await silent.nextError(3_000)).toBe("timeout");
      expect(Date.now() - silentSince).toBeGreaterThanOrEqual(200); // minus the hashing time between its login frame and this clock
      await closedWithin(silent);
      // Ten pongs take about a second: more than three idle periods.
      await manyPongs;
      expect(pinging.isClosed).toBe(false);
      expect(pinging.take("error")).toEqual([]);
    } finally {
      clearInterval(pinger);
    }
    await expectUsable(pinging);
  });
});

describe("connection caps", () => {
  async function expectRefused(client: TestClient): Promise<void> {
    expect(await client.nextError()).toBe("server_full");
    await closedWithin(client);
  }

  test("maxConnectionsPerIp: the third connection from one address gets server_full; after one closes, a new one is accepted", async () => {
    await using server = await startTestServer({ limits: { maxConnectionsPerIp: 2 } });
    await using first = await connect(server);
    await using second = await connect(server);
    await using third = await connect(server);
    await expectRefused(third);
    await expectUsable(first);
    await expectUsable(second);

    await first.close();
    await until(() => server.connectionCount === 1, "the server to see two connections close");
    await using fourth = await connect(server);
    await expectUsable(fourth);
  });

  test("maxConnections: the fourth connection gets server_full; after one closes, a new one is accepted", async () => {
    await using server = await startTestServer({ limits: { maxConnections: 3 } });
    await using a = (await newUser(server, "alice")).client;
    await using b = await connect(server);
    await using c = await connect(server);
    await using d = await connect(server);
    await expectRefused(d);
    await expectUsable(a);

    await b.close();
    await until(() => server.connectionCount === 2, "the server to see two connections close");
    await using e = await connect(server);
    await expectUsable(e);
    await expectUsable(c);
  });

  test("a refused connection cannot log in or speak", async () => {
    await using server = await startTestServer({ limits: { maxConnectionsPerIp: 1 } });
    const alice = await newUser(server, "alice");
    await using aliceClient = alice.client;
    await using refused = await connect(server);
    refused.send({ type: "resume", user: "alice", token: alice.token });
    refused.send({ type: "say", text: "let me in" });
    await expectRefused(refused);
    expect(refused.received.map((frame) => frame.type)).toEqual(["error"]);
    await aliceClient.sync();
    expect(aliceClient.take("msg")).toEqual([]);
  });
});

describe("failed-login throttle", () => {
  const throttle = { freeFailures: 2, baseDelayMs: 500, maxDelayMs: 10_000, windowMs: 60_000, maxEntries: 1_000 };

  test("after the free failures, the next attempt is throttled at once, even with the right password", async () => {
    await using server = await startTestServer({ limits: { throttle } });
    await using client = await connect(server);
    await client.register("alice", "alice-password");
    for (let i = 0; i < 3; i++) {
      expect(await errorFor(client, { type: "login", user: "alice", password: "wrong-password" })).toBe("auth_failed");
    }
    const started = performance.now();
    const code = await errorFor(client, { type: "login", user: "alice", password: "alice-password" });
    const elapsed = performance.now() - started;
    expect(code).toBe("throttled");
    // Refused before hashing: an argon2id verification alone takes ~35 ms.
    expect(elapsed).toBeLessThan(20);
    await expectUsable(client);

    // The address is throttled too: another user from the same address waits as well.
    expect(await errorFor(client, { type: "login", user: "bob", password: "whatever-password" })).toBe("throttled");
  });

  test("once the delay has passed, the right password logs in", async () => {
    await using server = await startTestServer({ limits: { throttle: { ...throttle, baseDelayMs: 200 } } });
    await using client = await connect(server);
    await client.register("alice", "alice-password");
    for (let i = 0; i < 3; i++) {
      expect(await errorFor(client, { type: "login", user: "alice", password: "wrong-password" })).toBe("auth_failed");
    }
    expect(await errorFor(client, { type: "login", user: "alice", password: "alice-password" })).toBe("throttled");
    // Waiting out the penalty is the behaviour under test.
    await Bun.sleep(250);
    expect((await client.login("alice", "alice-password")).user).toBe("alice");
  });
});
