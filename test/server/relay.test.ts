// Room relaying end to end: say, dm, who, join/leave with several connections per user, history.

import { describe, expect, test } from "bun:test";
import { startTestServer } from "../helpers/server.ts";
import { connect, expectUsable, newUser, sibling, until } from "./support.ts";

describe("say", () => {
  test("reaches every other logged-in connection but not the sending one, nor anonymous ones", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    await using carol = (await newUser(server, "carol")).client;
    await using anonymous = await connect(server);

    const before = Date.now();
    alice.send({ type: "say", text: "hello room" });
    const atBob = await bob.next("msg");
    const atCarol = await carol.next("msg");
    const after = Date.now();

    expect(atBob).toEqual(atCarol);
    expect(atBob).toMatchObject({ type: "msg", from: "alice", text: "hello room" });
    expect(Number.isInteger(atBob.id)).toBe(true);
    expect(atBob.ts).toBeGreaterThanOrEqual(before - 1_000);
    expect(atBob.ts).toBeLessThanOrEqual(after + 1_000);

    await alice.sync();
    await anonymous.sync();
    expect(alice.take("msg")).toEqual([]);
    expect(anonymous.take("msg")).toEqual([]);
  });

  test("message ids are integers that increase across senders", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    await using carol = (await newUser(server, "carol")).client;

    const texts = ["one", "two", "three", "four", "five"];
    for (const [i, text] of texts.entries()) {
      const sender = i % 2 === 0 ? alice : bob;
      sender.send({ type: "say", text });
      await carol.next("msg").then((msg) => expect(msg.text).toBe(text));
    }
    const ids = carol.received.filter((frame) => frame.type === "msg").map((frame) => frame.id as number);
    expect(ids).toHaveLength(texts.length);
    for (let i = 1; i < ids.length; i++) {
      expect(Number.isInteger(ids[i])).toBe(true);
      expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
    }
  });
});

describe("one user, several connections", () => {
  test("who lists the user once, online comes for the first connection and offline after the last", async () => {
    await using server = await startTestServer();
    await using bob = (await newUser(server, "bob")).client;
    const first = await newUser(server, "alice");
    expect((await bob.next("online")).user).toBe("alice");

    const second = await sibling(server, "alice", first.token);
    expect(second.welcome.user).toBe("alice");
    expect(second.welcome.online.filter((name: string) => name === "alice")).toHaveLength(1);
    await bob.sync();
    expect(bob.take("online")).toEqual([]);

    bob.send({ type: "who" });
    const who = await bob.next("who");
    expect([...who.users].sort()).toEqual(["alice", "bob"]);

    await first.client.close();
    await until(() => server.connectionCount === 2, "the server to see the first connection close");
    await bob.sync();
    expect(bob.take("offline")).toEqual([]);

    await second.client.close();
    const leave = await bob.next("offline");
    expect(leave.user).toBe("alice");
    expect(typeof leave.ts).toBe("number");
  });

  test("a room message reaches the sender's other connections, only the sending one is skipped", async () => {
    await using server = await startTestServer();
    const first = await newUser(server, "alice");
    await using alice1 = first.client;
    await using alice2 = (await sibling(server, "alice", first.token)).client;
    await using bob = (await newUser(server, "bob")).client;

    alice1.send({ type: "say", text: "from my laptop" });
    expect(await alice2.next("msg")).toMatchObject({ from: "alice", text: "from my laptop" });
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "from my laptop" });
    await alice1.sync();
    expect(alice1.take("msg")).toEqual([]);
  });
});

describe("dm", () => {
  test("reaches every connection of the target and the sender's other connections, not the sending one", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await using alice1 = alice.client;
    await using alice2 = (await sibling(server, "alice", alice.token)).client;
    const bob = await newUser(server, "bob");
    await using bob1 = bob.client;
    await using bob2 = (await sibling(server, "bob", bob.token)).client;
    await using carol = (await newUser(server, "carol")).client;

    alice1.send({ type: "dm", to: "bob", text: "psst" });
    const expected = { type: "dm", from: "alice", to: "bob", text: "psst" };
    const atBob1 = await bob1.next("dm");
    expect(atBob1).toMatchObject(expected);
    expect(Math.abs(atBob1.ts - Date.now())).toBeLessThan(5_000);
    expect(await bob2.next("dm")).toMatchObject(expected);
    expect(await alice2.next("dm")).toMatchObject(expected);

    await alice1.sync();
    await carol.sync();
    expect(alice1.take("dm")).toEqual([]);
    expect(carol.take("dm")).toEqual([]);
  });

  test("the target name is case-insensitive and the dm carries its registered spelling", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "Bob")).client;
    alice.send({ type: "dm", to: "BOB", text: "hi" });
    expect(await bob.next("dm")).toMatchObject({ from: "alice", to: "Bob", text: "hi" });
  });

  test("to a name with no account is no_such_user and the connection stays usable", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;

    alice.send({ type: "dm", to: "nobody", text: "hello?" });
    expect(await alice.nextError()).toBe("no_such_user");
    await expectUsable(alice);

    await using carol = (await newUser(server, "carol")).client;
    alice.send({ type: "say", text: "still here" });
    expect((await carol.next("msg")).text).toBe("still here");
  });
});

describe("who and welcome", () => {
  test("welcome names the user, includes it in online and carries a token; who lists everyone online", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await using aliceClient = alice.client;
    expect(alice.welcome.user).toBe("alice");
    expect(alice.welcome.online).toEqual(["alice"]);
    expect(typeof alice.welcome.token).toBe("string");
    expect(alice.welcome.token.length).toBeGreaterThan(16);

    const bob = await newUser(server, "bob");
    await using bobClient = bob.client;
    expect([...bob.welcome.online].sort()).toEqual(["alice", "bob"]);

    aliceClient.send({ type: "who" });
    expect([...(await aliceClient.next("who")).users].sort()).toEqual(["alice", "bob"]);

    await bobClient.close();
    await aliceClient.next("offline");
    aliceClient.send({ type: "who" });
    expect((await aliceClient.next("who")).users).toEqual(["alice"]);
  });
});

describe("history", () => {
  test("a new login gets the recent messages in order right after welcome", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    const texts = ["m1", "m2", "m3", "m4", "m5"];
    for (const text of texts) alice.send({ type: "say", text });
    for (const text of texts) expect((await bob.next("msg")).text).toBe(text);

    await using carol = await connect(server);
    await carol.register("carol", "carol-password");
    await carol.login("carol", "carol-password");
    const welcomeAt = carol.received.findIndex((frame) => frame.type === "welcome");
    const history = carol.received[welcomeAt + 1]!;
    expect(history.type).toBe("history");
    expect(history.messages.map((message: { text: string }) => message.text)).toEqual(texts);
    expect(history.messages.every((message: { from: string; type: string }) => message.from === "alice" && message.type === "msg")).toBe(true);
    const ids = history.messages.map((message: { id: number }) => message.id);
    expect(ids).toEqual([...ids].sort((a: number, b: number) => a - b));
  });

  test("keeps only the last historySize messages", async () => {
    await using server = await startTestServer({ limits: { historySize: 3 } });
    const alice = await newUser(server, "alice");
    await using aliceClient = alice.client;
    for (const text of ["m1", "m2", "m3", "m4", "m5"]) aliceClient.send({ type: "say", text });
    await aliceClient.sync();

    await using later = await connect(server);
    later.send({ type: "resume", user: "alice", token: alice.token });
    await later.next("welcome");
    const history = await later.next("history");
    expect(history.messages.map((message: { text: string }) => message.text)).toEqual(["m3", "m4", "m5"]);
  });

  test("is empty on a fresh server", async () => {
    await using server = await startTestServer();
    await using alice = await connect(server);
    await alice.register("alice", "alice-password");
    alice.send({ type: "login", user: "alice", password: "alice-password" });
    await alice.next("welcome");
    expect((await alice.next("history")).messages).toEqual([]);
    await expectUsable(alice);
  });
});
