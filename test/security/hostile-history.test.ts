// Attacks on the message log: catch-up marks (`since`) at and past their size limit and with odd
// values, history and search queries at the edges of their bounds, FTS5 syntax in search words, a
// search matching tens of thousands of messages, reading or deleting what belongs to others,
// reusing another user's `ref`, a flood of dms to an offline user, and many connections of one
// user in many rooms of full histories logging in at once. Each gets a clear error code or a
// bounded answer; nothing leaks, and the server keeps serving.

import { describe, expect, test } from "bun:test";
import type { Frame, TestClient } from "../helpers/client.ts";
import {
  Bystanders,
  encodedBytes,
  expectAftermath,
  hostile,
  loggedInHostile,
  seedChatDatabase,
  type HostileClient,
} from "../helpers/hostile.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { joinRoom, moderate, newUsers, partRoom } from "../server/rooms-support.ts";
import { connect, expectUsable, newUser } from "../server/support.ts";

/** The most a history or search reply may carry (MAX_LIST_REPLY_BYTES), plus its own few fields. */
const REPLY_CAP_BYTES = 256 * 1024 + 256;
/** The largest text a 16 KiB say or dm line can carry with a ref: 4,080 four-byte emoji. */
const MAXIMAL_TEXT = "😀".repeat(4_080);

/** Sends a frame and returns the reply of one of `types`, or the error's code. */
async function ask(client: TestClient, frame: object, types: string[]): Promise<Frame | string> {
  client.send(frame);
  const reply = await client.nextOf([...types, "error"]);
  return reply.type === "error" ? reply.code : reply;
}

async function history(client: TestClient, query: object): Promise<Frame | string> {
  return ask(client, { type: "history", ...query }, ["history"]);
}

async function search(client: TestClient, query: object): Promise<Frame | string> {
  return ask(client, { type: "search", ...query }, ["search"]);
}

function texts(reply: Frame | string): string[] {
  if (typeof reply === "string") throw new Error(`expected a reply, got error ${reply}`);
  return reply.messages.map((message: Frame) => message.text);
}

/** Says `text` in `room` and waits for its ack; returns the id. */
async function said(client: TestClient, room: string, text: string): Promise<number> {
  const ref = `ref-${Math.random()}`;
  client.send({ type: "say", room, text, ref });
  const reply = await client.nextOf(["ack", "error"]);
  if (reply.type === "error") throw new Error(`say in ${room} failed: ${reply.code}`);
  expect(reply.ref).toBe(ref);
  return reply.id;
}

/** Sends a dm and waits for its ack; returns the id. */
async function dmed(client: TestClient, to: string, text: string): Promise<number> {
  const ref = `ref-${Math.random()}`;
  client.send({ type: "dm", to, text, ref });
  const reply = await client.nextOf(["ack", "error"]);
  if (reply.type === "error") throw new Error(`dm to ${to} failed: ${reply.code}`);
  return reply.id;
}

/** A login frame's reply on a fresh connection: welcome (its history frames left unread) or the error code. */
async function loginWith(server: TestServer, user: string, fields: object): Promise<{ client: TestClient; reply: Frame | string }> {
  const client = await connect(server);
  client.send({ type: "login", user, password: `pw-${user}-secret`, ...fields });
  const reply = await client.nextOf(["welcome", "error"]);
  return { client, reply: reply.type === "error" ? reply.code : reply };
}

describe("catch-up marks (since)", () => {
  test("a map of 1,024 entries is honoured; 1,025 entries is bad_frame and the connection stays anonymous", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const alice = await newUser(server, "alice");
    await joinRoom(alice.client, "#quiet");
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push(await said(alice.client, "#quiet", `quiet ${i}`));
    await alice.client.close();
    const marks = (entries: number): Record<string, number> => {
      const since: Record<string, number> = { "#quiet": ids[0]! };
      for (let i = 1; i < entries; i++) since[`#r${i}`] = 0;
      return since;
    };
    await bystanders.during(async () => {
      const tooMany = await loginWith(server, "alice", { since: marks(1_025) });
      expect(tooMany.reply).toBe("bad_frame");
      tooMany.client.send({ type: "say", text: "logged in after all?" });
      expect(await tooMany.client.nextError()).toBe("not_authenticated");
      await tooMany.client.close();

      const most = await loginWith(server, "alice", { since: marks(1_024) });
      expect((most.reply as Frame).rooms).toEqual(["#lobby", "#quiet"]);
      await most.client.next("history");
      const quiet = await most.client.next("history");
      expect(quiet).toMatchObject({ room: "#quiet", more: false });
      expect(texts(quiet)).toEqual(["quiet 1", "quiet 2"]);
      await expectUsable(most.client);
      await most.client.close();
    });
    await expectAftermath(server, bystanders, ["alice"]);
  });

  test("odd marks are bad_frame: negative, fractional, strings, past 2^53, booleans, nested, null", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    await (await newUser(server, "alice")).client.close();
    const odd: unknown[] = [
      -1,
      1.5,
      "5",
      2 ** 53,
      1e300,
      true,
      null,
      [],
      [1, 2],
      { "#lobby": -1 },
      { "#lobby": 0.5 },
      { "#lobby": "1" },
      { "#lobby": 2 ** 53 },
      { "#lobby": null },
      { "#lobby": { "#lobby": 1 } },
      { "#lobby": [1] },
      { "@dm": -5 },
      { "@dm": true },
    ];
    await bystanders.during(async () => {
      await using client = await connect(server);
      for (const since of odd) {
        client.send({ type: "login", user: "alice", password: "pw-alice-secret", since });
        const reply = await client.nextOf(["welcome", "error"]);
        expect({ since, reply: reply.type === "error" ? reply.code : reply.type }).toEqual({ since, reply: "bad_frame" });
      }
      // A literal too big for a double parses as Infinity: not a message id either.
      client.sendRaw('{"type":"login","user":"alice","password":"pw-alice-secret","since":1e400}\n');
      expect(await client.nextError()).toBe("bad_frame");
      // A mark nested 2,500 levels deep (as deep as a 16 KiB line allows).
      client.sendRaw(`{"type":"login","user":"alice","password":"pw-alice-secret","since":${"{\"a\":".repeat(2_500)}1${"}".repeat(2_500)}}\n`);
      expect(await client.nextError()).toBe("bad_frame");
      client.send({ type: "history", room: "#lobby" });
      expect(await client.nextError()).toBe("not_authenticated");
    });
    await expectAftermath(server, bystanders, ["alice"]);
  });

  test("keys special to JavaScript are plain keys: __proto__ changes nothing, #__proto__ is that room's mark", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await joinRoom(alice.client, "#__proto__");
    const first = await said(alice.client, "#__proto__", "proto one");
    await said(alice.client, "#__proto__", "proto two");
    await said(alice.client, "#lobby", "lobby one");
    await alice.client.close();

    const { client, reply } = await loginWith(server, "alice", {
      since: { __proto__: 0, constructor: 0, hasOwnProperty: 0, toString: 0, "#__proto__": first },
    });
    expect((reply as Frame).rooms).toEqual(["#lobby", "#__proto__"]);
    const lobby = await client.next("history");
    const proto = await client.next("history");
    // No mark for #lobby: its recent history. The mark for #__proto__: what followed it.
    expect(texts(lobby)).toEqual(["lobby one"]);
    expect(proto.room).toBe("#__proto__");
    expect(texts(proto)).toEqual(["proto two"]);
    expect(Object.keys(Object.prototype)).toEqual([]);
    await expectUsable(client);
  });

  test("a mark of 2^53 − 1 (past anything the log holds) gets the recent history, within 256 KiB; a mark of 0 on 300 large messages sends the oldest after it, with more", async () => {
    await using dir = await tempDir();
    const chatDbPath = dir.file("chat.db");
    const text = "€".repeat(4_000); // 12 KB of UTF-8 each
    const ids = await seedChatDatabase(chatDbPath, {
      users: ["alice"],
      messages: Array.from({ length: 300 }, (_, i) => ({ room: "#lobby", from: "mallory", text: `${i} ${text}` })),
    });
    await using server = await startTestServer({ chatDbPath });
    await (await connect(server)).register("alice", "pw-alice-secret");

    const beyond = await loginWith(server, "alice", { since: Number.MAX_SAFE_INTEGER });
    const recent = await beyond.client.next("history");
    expect(encodedBytes(recent)).toBeLessThanOrEqual(REPLY_CAP_BYTES);
    expect(recent.messages.map((message: Frame) => message.id)).toEqual(ids.slice(ids.length - recent.messages.length));
    expect(recent.messages.length).toBeGreaterThan(0);
    await beyond.client.close();

    const everything = await loginWith(server, "alice", { since: 0 });
    const page = await everything.client.next("history");
    expect(page.more).toBe(true);
    expect(encodedBytes(page)).toBeLessThanOrEqual(REPLY_CAP_BYTES);
    expect(page.messages.length).toBeGreaterThan(0);
    expect(page.messages.map((message: Frame) => message.id)).toEqual(ids.slice(0, page.messages.length));
    await expectUsable(everything.client);
  });
});

describe("history queries", () => {
  test("limit, before and after at and past their edges", async () => {
    await using dir = await tempDir();
    const chatDbPath = dir.file("chat.db");
    // In a room of their own: the bystanders' traffic in #lobby must not shift the pages.
    const ids = await seedChatDatabase(chatDbPath, {
      rooms: { "#log": ["alice"] },
      messages: Array.from({ length: 600 }, (_, i) => ({ room: "#log", from: "bob", text: `m${i}` })),
    });
    await using server = await startTestServer({ chatDbPath });
    await using bystanders = await Bystanders.start(server);
    await (await connect(server)).register("alice", "pw-alice-secret");
    const { client } = await loginWith(server, "alice", {});
    await client.next("history");
    await client.next("history");
    const log = { room: "#log" };

    await bystanders.during(async () => {
      for (const limit of [0, -1, 501, 1.5, "5", null, true, 2 ** 53]) {
        expect({ limit, reply: await history(client, { ...log, limit }) }).toEqual({ limit, reply: "bad_frame" });
      }
      for (const bound of ["before", "after"]) {
        for (const value of [0, -1, 1.5, "3", true, null, 2 ** 53, 1e300]) {
          expect({ bound, value, reply: await history(client, { ...log, [bound]: value }) }).toEqual({ bound, value, reply: "bad_frame" });
        }
      }
      client.sendRaw('{"type":"history","room":"#log","before":1e400}\n');
      expect(await client.nextError()).toBe("bad_frame");
      expect(await history(client, {})).toBe("bad_frame");
      expect(await history(client, { room: "#log", with: "bob" })).toBe("bad_frame");

      const one = (await history(client, { ...log, limit: 1 })) as Frame;
      expect(one).toMatchObject({ room: "#log", more: true });
      expect(one.messages.map((message: Frame) => message.id)).toEqual(ids.slice(-1));
      const most = (await history(client, { ...log, limit: 500 })) as Frame;
      expect(most.more).toBe(true);
      expect(most.messages.map((message: Frame) => message.id)).toEqual(ids.slice(-500));
      expect(await history(client, { ...log, before: 1 })).toEqual({ type: "history", room: "#log", messages: [], more: false });
      expect(await history(client, { ...log, after: Number.MAX_SAFE_INTEGER })).toEqual({ type: "history", room: "#log", messages: [], more: false });
      expect(texts(await history(client, { ...log, before: Number.MAX_SAFE_INTEGER, limit: 2 }))).toEqual(["m598", "m599"]);
      // An empty window (after past before) is empty, not an error.
      expect(await history(client, { ...log, after: ids[10]!, before: ids[5]! })).toEqual({ type: "history", room: "#log", messages: [], more: false });
    });
    await expectUsable(client);
    await expectAftermath(server, bystanders, ["alice"]);
  });

  test("500 maximal messages asked for at once: the reply is at most 256 KiB, the newest ones, and says more", async () => {
    await using dir = await tempDir();
    const chatDbPath = dir.file("chat.db");
    const ids = await seedChatDatabase(chatDbPath, {
      users: ["alice"],
      messages: Array.from({ length: 500 }, () => ({ room: "#lobby", from: "mallory", text: MAXIMAL_TEXT })),
    });
    await using server = await startTestServer({ chatDbPath });
    await (await connect(server)).register("alice", "pw-alice-secret");
    const { client } = await loginWith(server, "alice", {});
    expect(encodedBytes(await client.next("history"))).toBeLessThanOrEqual(REPLY_CAP_BYTES);

    const page = (await history(client, { room: "#lobby", limit: 500 })) as Frame;
    expect(page.more).toBe(true);
    expect(encodedBytes(page)).toBeLessThanOrEqual(REPLY_CAP_BYTES);
    const got = page.messages.map((message: Frame) => message.id);
    expect(got.length).toBeGreaterThan(0);
    expect(got).toEqual(ids.slice(-got.length));
    await expectUsable(client);
  });
});

describe("reading what belongs to others", () => {
  test("history and search of a room one is not in, was kicked from or banned from: not_in_room; a search over all one's rooms never shows it", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice, mallory] = await newUsers(server, "alice", "mallory");
    await joinRoom(alice!, "#secret");
    alice!.send({ type: "mode", room: "#secret", invite_only: true });
    await alice!.next("moderation");
    await said(alice!, "#secret", "the vault word is hunter2");
    for (const room of ["#ops", "#jail"]) {
      await joinRoom(alice!, room);
      await joinRoom(mallory!, room);
    }
    await said(alice!, "#ops", "launch codes are zebra");
    await said(alice!, "#jail", "the jail key is walrus");
    // While a member, mallory can read #ops.
    expect(texts(await search(mallory!, { query: "zebra" }))).toEqual(["launch codes are zebra"]);
    await moderate(alice!, { type: "kick", room: "#ops", user: "mallory" });
    await moderate(alice!, { type: "ban", room: "#jail", user: "mallory" });

    await bystanders.during(async () => {
      for (const room of ["#secret", "#SECRET", "#ops", "#Ops", "#jail"]) {
        expect({ room, reply: await history(mallory!, { room }) }).toEqual({ room, reply: "not_in_room" });
        expect({ room, reply: await history(mallory!, { room, after: 1, limit: 500 }) }).toEqual({ room, reply: "not_in_room" });
        expect({ room, reply: await search(mallory!, { query: "the", room }) }).toEqual({ room, reply: "not_in_room" });
      }
      expect(await history(mallory!, { room: "#nowhere" })).toBe("no_such_room");
      expect(await search(mallory!, { query: "the", room: "#nowhere" })).toBe("no_such_room");
      for (const word of ["hunter2", "zebra", "walrus", "the", "is"]) {
        expect({ word, found: texts(await search(mallory!, { query: word, limit: 100 })) }).toEqual({ word, found: [] });
      }
    });
    await expectUsable(mallory!);
    await expectAftermath(server, bystanders, ["alice", "mallory"]);
  });

  test("history with a user gives one's own conversation with them, never another pair's; search never shows another pair's dms", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice, bob, mallory] = await newUsers(server, "alice", "bob", "mallory");
    await dmed(alice!, "bob", "between alice and bob only");
    await dmed(bob!, "alice", "bob answers alice privately");
    await bystanders.during(async () => {
      for (const peer of ["bob", "alice", "BOB", "Alice"]) {
        const reply = (await history(mallory!, { with: peer, limit: 500 })) as Frame;
        expect({ peer, messages: reply.messages, more: reply.more }).toEqual({ peer, messages: [], more: false });
      }
      for (const peer of ["nobody", "__proto__", "constructor"]) {
        expect({ peer, reply: await history(mallory!, { with: peer }) }).toEqual({ peer, reply: "no_such_user" });
      }
      // Not a username at all, however close to one it looks or lowercases (U+212A, the Kelvin sign, lowercases to "k").
      for (const peer of ["", "al ice", "\u0430lice", "\u212Alice", "a".repeat(5_000)]) {
        expect({ peer: peer.slice(0, 20), reply: await history(mallory!, { with: peer }) }).toEqual({ peer: peer.slice(0, 20), reply: "invalid_user" });
      }
      for (const peer of [5, null, ["bob"], { user: "bob" }]) {
        expect({ peer, reply: await history(mallory!, { with: peer }) }).toEqual({ peer, reply: "bad_frame" });
      }
      for (const word of ["between", "privately", "alice", "bob"]) {
        expect({ word, found: texts(await search(mallory!, { query: word, limit: 100 })) }).toEqual({ word, found: [] });
      }
      // Her own dm with bob is all she sees of bob's dms.
      await dmed(mallory!, "bob", "mallory says hi");
      expect(texts(await history(mallory!, { with: "bob" }))).toEqual(["mallory says hi"]);
      expect(texts(await history(alice!, { with: "bob" }))).toEqual(["between alice and bob only", "bob answers alice privately"]);
    });
    await expectAftermath(server, bystanders, ["alice", "bob", "mallory"]);
  });

  test("deleting: another's message is not_allowed, an operator's reach ends at their room, dms belong to their author; bad ids are bad_frame", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice, bob, mallory] = await newUsers(server, "alice", "bob", "mallory");
    await joinRoom(alice!, "#rust");
    await joinRoom(bob!, "#rust");
    await joinRoom(mallory!, "#rust");
    await joinRoom(mallory!, "#mine"); // mallory operates #mine, not #rust
    const lobbyId = await said(alice!, "#lobby", "alice in the lobby");
    const rustId = await said(alice!, "#rust", "alice about ownership");
    const dmId = await dmed(alice!, "bob", "alice to bob");
    await bystanders.during(async () => {
      for (const id of [lobbyId, rustId, dmId]) {
        mallory!.send({ type: "delete", id });
        expect({ id, code: await mallory!.nextError() }).toEqual({ id, code: "not_allowed" });
      }
      // The recipient of a dm is not its author.
      bob!.send({ type: "delete", id: dmId });
      expect(await bob!.nextError()).toBe("not_allowed");
      for (const id of [0, -1, 1.5, "1", null, true, 2 ** 53, [lobbyId]]) {
        mallory!.send({ type: "delete", id });
        expect({ id, code: await mallory!.nextError() }).toEqual({ id, code: "bad_frame" });
      }
      mallory!.send({ type: "delete", id: Number.MAX_SAFE_INTEGER });
      expect(await mallory!.nextError()).toBe("no_such_message");
    });
    // Nothing was deleted: no one heard of a deletion, and every message is still there.
    for (const client of [alice!, bob!, mallory!]) {
      await client.sync();
      expect(client.take("deleted")).toEqual([]);
    }
    expect(texts(await history(alice!, { room: "#lobby" }))).toContain("alice in the lobby");
    expect(texts(await history(bob!, { room: "#rust" }))).toEqual(["alice about ownership"]);
    expect(texts(await history(bob!, { with: "alice" }))).toEqual(["alice to bob"]);

    // Its author may: the body leaves history and search, and deleting it again finds nothing.
    alice!.send({ type: "delete", id: rustId });
    expect(await bob!.next("deleted")).toEqual({ type: "deleted", room: "#rust", id: rustId, by: "alice" });
    expect(texts(await history(bob!, { room: "#rust" }))).toEqual([]);
    expect(texts(await search(bob!, { query: "ownership" }))).toEqual([]);
    mallory!.send({ type: "delete", id: rustId });
    expect(await mallory!.nextError()).toBe("no_such_message");
    await expectAftermath(server, bystanders, ["alice", "bob", "mallory"]);
  });

  test("refs: another user's reuse of a ref is a new message of their own; 64 characters are accepted, 65 are bad_frame", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice, mallory, bob] = await newUsers(server, "alice", "mallory", "bob");
    // In a room of their own, away from the bystanders' traffic in #lobby.
    for (const client of [alice!, mallory!, bob!]) await joinRoom(client, "#refs");
    await partRoom(bob!, "#lobby");
    alice!.send({ type: "say", room: "#refs", text: "alice's words", ref: "shared-ref" });
    const first = await alice!.next("ack");
    await bob!.next("msg");
    await bystanders.during(async () => {
      mallory!.send({ type: "say", room: "#refs", text: "mallory's words", ref: "shared-ref" });
      const second = await mallory!.next("ack");
      expect(second.ref).toBe("shared-ref");
      expect(second.id).not.toBe(first.id);
      expect(await bob!.next("msg")).toMatchObject({ id: second.id, from: "mallory", text: "mallory's words" });

      const longest = "r".repeat(64);
      mallory!.send({ type: "say", room: "#refs", text: "with the longest ref", ref: longest });
      expect((await mallory!.next("ack")).ref).toBe(longest);
      expect((await bob!.next("msg")).text).toBe("with the longest ref");
      for (const ref of ["r".repeat(65), "😀".repeat(33), 5, null, ["x"], { x: 1 }]) {
        mallory!.send({ type: "say", room: "#refs", text: "with a bad ref", ref });
        expect({ ref, code: await mallory!.nextError() }).toEqual({ ref, code: "bad_frame" });
        mallory!.send({ type: "dm", to: "bob", text: "with a bad ref", ref });
        expect({ ref, code: await mallory!.nextError() }).toEqual({ ref, code: "bad_frame" });
      }
    });
    await bob!.sync();
    expect(bob!.take("msg").concat(bob!.take("dm")).filter((frame) => frame.text === "with a bad ref")).toEqual([]);
    await mallory!.sync();
    expect(mallory!.take("ack")).toEqual([]);
    // alice's message is alice's, still: it was not replaced by mallory's.
    expect(texts(await history(bob!, { room: "#refs" }))).toEqual(["alice's words", "mallory's words", "with the longest ref"]);
    await expectAftermath(server, bystanders, ["alice", "mallory", "bob"]);
  });
});

describe("search", () => {
  test("a query of 256 characters is searched; 257, empty or only whitespace is bad_frame; limit 0 and 101 are bad_frame", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice] = await newUsers(server, "alice");
    const word = "w".repeat(256);
    await said(alice!, "#lobby", word);
    await bystanders.during(async () => {
      expect(texts(await search(alice!, { query: word }))).toEqual([word]);
      for (const query of ["w".repeat(257), "", " ", "\t\t", "  \u00a0 ", "\u2003", 5, null, ["w"]]) {
        expect({ query, reply: await search(alice!, { query }) }).toEqual({ query, reply: "bad_frame" });
      }
      for (const limit of [0, 101, -1, 2.5, "10"]) {
        expect({ limit, reply: await search(alice!, { query: "w", limit }) }).toEqual({ limit, reply: "bad_frame" });
      }
      expect((await search(alice!, { query: "w", limit: 100 })) as Frame).toMatchObject({ type: "search", messages: [], more: false });
    });
    await expectAftermath(server, bystanders, ["alice"]);
  });

  test("FTS5 syntax in a query is only text: quotes, *, NEAR, column filters, -, ^, AND OR NOT, parentheses", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice] = await newUsers(server, "alice");
    await joinRoom(alice!, "#fts");
    const lines = ["alpha beta gamma", "alphabet soup", "x marks the spot", "text x here", "near alpha beta", "and or not", "alpha and beta"];
    for (const line of lines) await said(alice!, "#fts", line);
    // Each query's words must all occur as words; nothing in it is an operator.
    const expected: Array<[string, string[]]> = [
      ["alpha*", ["alpha and beta", "near alpha beta", "alpha beta gamma"]],
      ['"alpha', ["alpha and beta", "near alpha beta", "alpha beta gamma"]],
      ['alpha"', ["alpha and beta", "near alpha beta", "alpha beta gamma"]],
      ['"', []],
      ['""', []],
      ["*", []],
      ["-", []],
      ["^", []],
      ["NEAR(alpha beta)", ["near alpha beta"]],
      ["NEAR(alpha beta, 0)", []],
      ["text:x", ["text x here"]],
      ["{text}: x", ["text x here"]],
      ["-alpha", ["alpha and beta", "near alpha beta", "alpha beta gamma"]],
      ["^alpha", ["alpha and beta", "near alpha beta", "alpha beta gamma"]],
      ["alpha AND beta", ["alpha and beta"]],
      ["alpha OR soup", []],
      ["alpha NOT gamma", []],
      ["AND OR NOT", ["and or not"]],
      ["(alpha)", ["alpha and beta", "near alpha beta", "alpha beta gamma"]],
      ["alpha + beta", ["alpha and beta", "near alpha beta", "alpha beta gamma"]],
      ["alph", []],
      ["ALPHABET", ["alphabet soup"]],
    ];
    await bystanders.during(async () => {
      for (const [query, found] of expected) {
        const reply = await search(alice!, { query, room: "#fts", limit: 100 });
        expect({ query, found: typeof reply === "string" ? reply : texts(reply) }).toEqual({ query, found });
      }
    });
    await expectUsable(alice!);
    await expectAftermath(server, bystanders, ["alice"]);
  });

  test("a word in 20,000 messages: the reply is at most 100 messages and 256 KiB, and comes quickly, for a query of one word and of 128", async () => {
    await using dir = await tempDir();
    const chatDbPath = dir.file("chat.db");
    const filler = "€".repeat(1_000);
    await seedChatDatabase(chatDbPath, {
      users: ["alice"],
      messages: Array.from({ length: 20_000 }, (_, i) => ({ room: "#lobby", from: "mallory", text: `needle x ${i} ${filler}` })),
    });
    await using server = await startTestServer({ chatDbPath });
    await using bystanders = await Bystanders.start(server);
    await (await connect(server)).register("alice", "pw-alice-secret");
    const { client } = await loginWith(server, "alice", {});
    await client.next("history");
    await bystanders.during(async () => {
      // The second query is 128 words (255 characters), each in every message.
      for (const query of ["needle", Array(128).fill("x").join(" ")]) {
        const started = performance.now();
        const reply = (await search(client, { query, limit: 100 })) as Frame;
        const elapsedMs = performance.now() - started;
        expect(reply.more).toBe(true);
        expect(reply.messages.length).toBeGreaterThan(0);
        expect(reply.messages.length).toBeLessThanOrEqual(100);
        expect(encodedBytes(reply)).toBeLessThanOrEqual(REPLY_CAP_BYTES);
        // Newest first: the last messages stored.
        expect(reply.messages[0].text).toStartWith("needle x 19999 ");
        expect({ query: query.slice(0, 20), elapsedMs: elapsedMs < 2_000 }).toEqual({ query: query.slice(0, 20), elapsedMs: true });
      }
    });
    await expectAftermath(server, bystanders, ["alice"]);
  }, 30_000);
});

describe("offline dms", () => {
  test("6 connections flood an offline user with maximal dms: each connection is held to its burst, each accepted dm is acked, and the next login delivers them all without a slow_consumer drop", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    await (await connect(server)).register("victim", "pw-victim-secret");
    const names = Array.from({ length: 6 }, (_, i) => `flooder${i}`);
    const flooders: HostileClient[] = [];
    for (const [i, name] of names.entries()) flooders.push(await loggedInHostile(server, name, `127.0.11.${i + 1}`));
    const acked: number[] = [];
    try {
      await bystanders.during(async () => {
        for (const [c, flooder] of flooders.entries()) {
          flooder.write(Array.from({ length: 35 }, (_, i) => JSON.stringify({ type: "dm", to: "victim", text: MAXIMAL_TEXT, ref: `${c}-${i}` }) + "\n").join(""));
        }
        for (const flooder of flooders) {
          // 35 dms in one write: the burst of 30 (and what refilled meanwhile) is accepted, the rest rate_limited.
          for (let i = 0; i < 35; i++) {
            const outcome = await flooder.nextOf(["ack", "error"], 10_000);
            if (outcome.type === "ack") acked.push(outcome.id);
            else expect(outcome.code).toBe("rate_limited");
          }
          expect(flooder.isClosed).toBe(false);
        }
      });
    } finally {
      await Promise.all(flooders.map((flooder) => flooder[Symbol.asyncDispose]()));
    }
    expect(acked.length).toBeGreaterThanOrEqual(6 * 30);
    expect(acked.length).toBeLessThan(6 * 35);

    const { client } = await loginWith(server, "victim", {});
    const delivered: number[] = [];
    while (delivered.length < acked.length) delivered.push((await client.next("dm", 10_000)).id);
    expect(delivered).toEqual([...acked].sort((a, b) => a - b));
    await expectUsable(client);
    expect(server.logs.filter((entry) => entry.event === "slow_consumer")).toEqual([]);
    // Delivered once: the login after gets none of them again.
    await client.close();
    const again = await loginWith(server, "victim", {});
    await again.client.next("history");
    await again.client.sync();
    expect(again.client.take("dm")).toEqual([]);
    await expectAftermath(server, bystanders, ["victim", ...names]);
  }, 30_000);
});

describe("login storms", () => {
  test("8 connections of one user in 40 rooms of full histories log in at once, and a ninth never reads: each reader gets every room's history within 256 KiB, none is dropped, the sleeper waits", async () => {
    await using dir = await tempDir();
    const chatDbPath = dir.file("chat.db");
    const rooms: Record<string, string[]> = {};
    for (let r = 0; r < 40; r++) rooms[`#room${r}`] = ["many"];
    const text = "€".repeat(4_000);
    await seedChatDatabase(chatDbPath, {
      rooms,
      messages: Object.keys(rooms).flatMap((room) => Array.from({ length: 100 }, (_, i) => ({ room, from: "mallory", text: `${room} ${i} ${text}` }))),
    });
    await using server = await startTestServer({ chatDbPath });
    await using bystanders = await Bystanders.start(server);
    const many = await newUser(server, "many");
    const expectedRooms = ["#lobby", ...Object.keys(rooms)];
    await bystanders.during(async () => {
      const connections = await Promise.all(Array.from({ length: 8 }, () => connect(server)));
      // A ninth that never reads: its 10 MB of histories are far more than the kernel buffers
      // and its 1 MiB queue hold, so only pacing them to the socket keeps it from being dropped.
      await using sleeper = await hostile(server);
      sleeper.send({ type: "resume", user: "many", token: many.token });
      sleeper.pause();
      for (const connection of connections) connection.send({ type: "resume", user: "many", token: many.token });
      await Promise.all(
        connections.map(async (connection) => {
          const welcome = await connection.next("welcome", 20_000);
          expect(welcome.rooms).toEqual(expectedRooms);
          for (const room of expectedRooms) {
            const page = await connection.next("history", 20_000);
            expect(page.room).toBe(room);
            expect(encodedBytes(page)).toBeLessThanOrEqual(REPLY_CAP_BYTES);
            if (room !== "#lobby") expect(page.messages.at(-1).text).toStartWith(`${room} 99 `);
          }
          await expectUsable(connection);
        }),
      );
      await Promise.all(connections.map((connection) => connection.close()));
      expect(sleeper.isClosed).toBe(false);
    });
    expect(server.logs.filter((entry) => entry.event === "slow_consumer")).toEqual([]);
    await expectAftermath(server, bystanders, ["many"]);
  }, 60_000);
});
