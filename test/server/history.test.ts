// The message log end to end, against a real server with its chat database: acknowledgements
// (only once durable, once per ref), the order of relayed messages, history queries, what a
// login sends (welcome, each room's history or catch-up after `since`, then missed dms), offline
// dms, and the same basics with `--message-log memory`.

import { describe, expect, test } from "bun:test";
import { CATCH_UP_PER_ROOM } from "../../src/core/limits.ts";
import { MAX_HISTORY_PAGE, MAX_REF_CHARS } from "../../src/protocol/frames.ts";
import type { Frame } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";
import { ask, answerTo, dmAcked, freshRef, idsOf, logIn, offlineUser, sayAcked, storedMessages, textsOf } from "./history-support.ts";
import { joinRoom } from "./rooms-support.ts";
import { connect, errorFor, newUser, resume, sibling } from "./support.ts";

/** Enough allowance for a test to pipeline a few hundred messages from one connection. */
const BULK_LIMITS = { messageRatePerSec: 10_000, messageBurst: 10_000 };

describe("acknowledgements", () => {
  test("a say with a ref is acked once it is in the chat database; the sending connection gets no copy, the user's others and the room do", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const elsewhere = await sibling(server, "alice", alice.token);
    const bob = await newUser(server, "bob");

    const before = Date.now();
    alice.client.send({ type: "say", text: "durable hello", ref: "r-1" });
    const ack = await alice.client.next("ack");
    // Read the moment the ack arrives, by a connection of the test's own: committed, not queued.
    expect(storedMessages(server.chatDbPath)).toContainEqual({ id: ack.id, text: "durable hello" });
    expect(ack).toEqual({ type: "ack", ref: "r-1", id: ack.id, ts: ack.ts });
    expect(ack.ts).toBeGreaterThanOrEqual(before);

    const relayed = { type: "msg", id: ack.id, room: "#lobby", from: "alice", text: "durable hello", ts: ack.ts };
    expect(await elsewhere.client.next("msg")).toEqual(relayed);
    expect(await bob.client.next("msg")).toEqual(relayed);
    await alice.client.sync();
    expect(alice.client.take("msg")).toEqual([]);
    await elsewhere.client.sync();
    expect(elsewhere.client.take("ack")).toEqual([]);
  });

  test("a dm with a ref is acked with the id the recipient and the sender's other connections get", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const elsewhere = await sibling(server, "alice", alice.token);
    const bob = await newUser(server, "bob");

    const ack = await dmAcked(alice.client, "BOB", "psst");
    expect(storedMessages(server.chatDbPath)).toContainEqual({ id: ack.id, text: "psst" });
    const dm = { type: "dm", id: ack.id, from: "alice", to: "bob", text: "psst", ts: ack.ts };
    expect(await bob.client.next("dm")).toEqual(dm);
    expect(await elsewhere.client.next("dm")).toEqual(dm);
    await alice.client.sync();
    expect(alice.client.take("dm")).toEqual([]);
  });

  test("a say or dm without a ref is relayed and stored but not acked", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    alice.client.send({ type: "say", text: "fire and forget" });
    alice.client.send({ type: "dm", to: "bob", text: "no ack either" });
    const msg = await bob.client.next("msg");
    await bob.client.next("dm");
    await alice.client.sync();
    expect(alice.client.take("ack")).toEqual([]);
    expect(storedMessages(server.chatDbPath).map((row) => row.text)).toEqual(["fire and forget", "no ack either"]);
    expect(msg.id).toBe(storedMessages(server.chatDbPath)[0]!.id);
  });

  test("a message resent with the same ref after a reconnect is acked with the first id and stored once", async () => {
    await using server = await startTestServer();
    const first = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    first.client.send({ type: "say", text: "exactly once", ref: "retry-me" });
    first.client.send({ type: "dm", to: "bob", text: "dm exactly once", ref: "retry-dm" });
    const sayAck = await first.client.next("ack");
    const dmAck = await first.client.next("ack");
    await first.client.close();

    const again = await connect(server);
    await resume(again, "alice", first.token);
    again.send({ type: "say", text: "exactly once", ref: "retry-me" });
    again.send({ type: "dm", to: "bob", text: "dm exactly once", ref: "retry-dm" });
    expect(await again.next("ack")).toEqual(sayAck);
    expect(await again.next("ack")).toEqual(dmAck);

    await bob.client.sync();
    expect(bob.client.take("msg").map((msg) => msg.id)).toEqual([sayAck.id]);
    expect(bob.client.take("dm").map((dm) => dm.id)).toEqual([dmAck.id]);
    expect(storedMessages(server.chatDbPath).map((row) => row.text)).toEqual(["exactly once", "dm exactly once"]);
  });

  test(`a ref of ${MAX_REF_CHARS} characters is fine; a longer one is bad_frame and nothing is stored`, async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const longest = "r".repeat(MAX_REF_CHARS);
    alice.client.send({ type: "say", text: "fits", ref: longest });
    expect((await alice.client.next("ack")).ref).toBe(longest);
    expect(await errorFor(alice.client, { type: "say", text: "too long a ref", ref: `${longest}r` })).toBe("bad_frame");
    expect(await errorFor(alice.client, { type: "dm", to: "alice", text: "too long a ref", ref: `${longest}r` })).toBe("bad_frame");
    expect(await errorFor(alice.client, { type: "say", text: "not a string", ref: 7 })).toBe("bad_frame");
    expect(storedMessages(server.chatDbPath).map((row) => row.text)).toEqual(["fits"]);
  });

  test("an error answering a say or dm with a ref carries that ref", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    await joinRoom(bob.client, "#bobs");

    const refusals: Array<[object, string]> = [
      [{ type: "say", room: "#bobs", text: "let me in" }, "not_in_room"],
      [{ type: "say", room: "#nowhere", text: "anyone?" }, "no_such_room"],
      [{ type: "say", text: "bell \u0007" }, "invalid_text"],
      [{ type: "dm", to: "nobody", text: "hello?" }, "no_such_user"],
    ];
    for (const [frame, code] of refusals) {
      const ref = freshRef();
      alice.client.send({ ...frame, ref });
      expect(await answerTo(alice.client, ref)).toMatchObject({ type: "error", code, ref });
    }
  });

  test("rate_limited answering a say with a ref carries that ref", async () => {
    await using server = await startTestServer({ limits: { messageRatePerSec: 1, messageBurst: 1 } });
    const alice = await newUser(server, "alice");
    alice.client.send({ type: "say", text: "one", ref: "first" });
    alice.client.send({ type: "say", text: "two", ref: "second" });
    // The refusal is immediate; the ack waits for the commit, so it may come second.
    const answers = [await alice.client.nextOf(["ack", "error"]), await alice.client.nextOf(["ack", "error"])];
    expect(answers.find((answer) => answer.ref === "first")).toMatchObject({ type: "ack" });
    expect(answers.find((answer) => answer.ref === "second")).toMatchObject({ type: "error", code: "rate_limited" });
  });

  test("messages of two senders sent at once are relayed in id order, the same order at every receiver, each acked in order", async () => {
    const PER_SENDER = 40;
    await using server = await startTestServer({ limits: BULK_LIMITS });
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    const carol = await newUser(server, "carol");
    const dave = await newUser(server, "dave");

    const burst = (from: string) => Array.from({ length: PER_SENDER }, (_, i) => JSON.stringify({ type: "say", text: `${from} ${i}`, ref: `${from}-${i}` }) + "\n").join("");
    alice.client.sendRaw(burst("alice"));
    bob.client.sendRaw(burst("bob"));

    const seenBy = async (client: typeof carol.client, count: number) => {
      const ids: number[] = [];
      while (ids.length < count) ids.push((await client.next("msg")).id);
      return ids;
    };
    const atCarol = await seenBy(carol.client, 2 * PER_SENDER);
    const atDave = await seenBy(dave.client, 2 * PER_SENDER);
    expect(atDave).toEqual(atCarol);
    expect([...atCarol].sort((a, b) => a - b)).toEqual(atCarol);

    for (const sender of [alice.client, bob.client]) {
      const acks: number[] = [];
      while (acks.length < PER_SENDER) acks.push((await sender.next("ack")).id);
      expect([...acks].sort((a, b) => a - b)).toEqual(acks);
    }
    // Each sender sees the other's messages in the same order as the bystanders do.
    const bobAtAlice = await seenBy(alice.client, PER_SENDER);
    expect(bobAtAlice).toEqual(atCarol.filter((id) => bobAtAlice.includes(id)));
  });
});

describe("history queries", () => {
  test("a room's history: the newest page by default, oldest first; before, after and limit bound it; more says there is more", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) ids.push((await sayAcked(alice.client, `m${i}`)).id);

    const all = await ask(alice.client, { type: "history", room: "#LOBBY" });
    expect(all).toMatchObject({ type: "history", room: "#lobby", more: false });
    expect(idsOf(all)).toEqual(ids);
    expect(all.messages[0]).toEqual({ type: "msg", id: ids[0], room: "#lobby", from: "alice", text: "m0", ts: all.messages[0].ts });

    const newest = await ask(alice.client, { type: "history", room: "#lobby", limit: 5 });
    expect(textsOf(newest)).toEqual(["m7", "m8", "m9", "m10", "m11"]);
    expect(newest.more).toBe(true);
    const older = await ask(alice.client, { type: "history", room: "#lobby", before: ids[7], limit: 5 });
    expect(textsOf(older)).toEqual(["m2", "m3", "m4", "m5", "m6"]);
    expect(older.more).toBe(true);
    const oldest = await ask(alice.client, { type: "history", room: "#lobby", before: ids[2], limit: 5 });
    expect(textsOf(oldest)).toEqual(["m0", "m1"]);
    expect(oldest.more).toBe(false);
    const later = await ask(alice.client, { type: "history", room: "#lobby", after: ids[8], limit: 2 });
    expect(textsOf(later)).toEqual(["m9", "m10"]);
    expect(later.more).toBe(true);
    const between = await ask(alice.client, { type: "history", room: "#lobby", after: ids[3], before: ids[6] });
    expect(textsOf(between)).toEqual(["m4", "m5"]);
    expect(between.more).toBe(false);
  });

  test("`with` gives the dms with one user, from either side, and none of anyone else's", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    await newUser(server, "carol");
    await dmAcked(alice.client, "bob", "hi bob");
    await dmAcked(bob.client, "alice", "hi alice");
    await dmAcked(alice.client, "carol", "hi carol");
    await sayAcked(alice.client, "hi room");

    const withBob = await ask(alice.client, { type: "history", with: "BOB" });
    expect(withBob).toMatchObject({ type: "history", with: "bob", more: false });
    expect(textsOf(withBob)).toEqual(["hi bob", "hi alice"]);
    expect(withBob.messages[1]).toMatchObject({ type: "dm", from: "bob", to: "alice" });
    expect(textsOf(await ask(bob.client, { type: "history", with: "alice" }))).toEqual(["hi bob", "hi alice"]);
    expect(textsOf(await ask(bob.client, { type: "history", with: "carol" }))).toEqual([]);
  });

  test("only the user's rooms can be read: not_in_room otherwise, no_such_room for none, no_such_user for `with` someone without an account", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    await joinRoom(bob.client, "#public");
    await sayAcked(bob.client, "members only", "#public");

    expect(await errorFor(alice.client, { type: "history", room: "#public" })).toBe("not_in_room");
    expect(await errorFor(alice.client, { type: "history", room: "#nowhere" })).toBe("no_such_room");
    expect(await errorFor(alice.client, { type: "history", with: "nobody" })).toBe("no_such_user");
    alice.client.send({ type: "part", room: "#lobby" });
    await alice.client.next("parted");
    expect(await errorFor(alice.client, { type: "history", room: "#lobby" })).toBe("not_in_room");
  });

  test(`bad queries are bad_frame: before/after not a positive integer, limit outside 1..${MAX_HISTORY_PAGE}, not exactly one of room and with`, async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bad: object[] = [
      ...[0, -1, 1.5, "3", null, 2 ** 53].flatMap((value) => [
        { type: "history", room: "#lobby", before: value },
        { type: "history", room: "#lobby", after: value },
      ]),
      ...[0, MAX_HISTORY_PAGE + 1, 2.5, "10"].map((limit) => ({ type: "history", room: "#lobby", limit })),
      { type: "history" },
      { type: "history", room: "#lobby", with: "alice" },
    ];
    for (const frame of bad) expect([JSON.stringify(frame), await errorFor(alice.client, frame)]).toEqual([JSON.stringify(frame), "bad_frame"]);
    expect((await ask(alice.client, { type: "history", room: "#lobby", limit: MAX_HISTORY_PAGE, before: 1 })).type).toBe("history");
  });
});

describe("what a login sends", () => {
  test("welcome, then one history frame per room in welcome's order, then the dms that waited", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    await joinRoom(bob.client, "#zeta");
    await joinRoom(bob.client, "#alpha");
    await sayAcked(bob.client, "in zeta", "#zeta");
    await bob.client.close();
    await dmAcked(alice.client, "bob", "while you were out");

    const login = await logIn(server, "bob");
    expect(login.welcome.rooms).toEqual(["#lobby", "#zeta", "#alpha"]);
    expect(login.frames.map((frame) => (frame.type === "history" ? `history ${frame.room}` : frame.type))).toEqual([
      "welcome",
      "history #lobby",
      "history #zeta",
      "history #alpha",
      "dm",
    ]);
    expect(textsOf(login.histories[1]!)).toEqual(["in zeta"]);
    expect(login.dms.map((dm) => dm.text)).toEqual(["while you were out"]);
  });

  test("since as a number: each room's messages after it instead of its recent history", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await newUser(server, "bob");
    await joinRoom(alice.client, "#side");
    const bobPassword = "pw-bob-secret";
    const seen = await sayAcked(alice.client, "seen");
    await sayAcked(alice.client, "missed in lobby");
    {
      await using bobAgain = await connect(server);
      await bobAgain.login("bob", bobPassword);
      bobAgain.send({ type: "join", room: "#side" });
      await bobAgain.next("joined");
    }
    await sayAcked(alice.client, "missed in side", "#side");

    const login = await logIn(server, "bob", seen.id);
    expect(login.histories.map((history) => [history.room, textsOf(history), history.more])).toEqual([
      ["#lobby", ["missed in lobby"], false],
      ["#side", ["missed in side"], false],
    ]);
  });

  test("since as a map: by room name in any letter case, a room left out gets its recent history, \"@dm\" marks the dms", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    await joinRoom(alice.client, "#Side");
    await joinRoom(bob.client, "#side");
    const lobbySeen = await sayAcked(alice.client, "lobby seen");
    await sayAcked(alice.client, "lobby missed");
    await sayAcked(alice.client, "side recent", "#side");
    const dmSeen = await dmAcked(alice.client, "bob", "dm seen");
    await dmAcked(alice.client, "bob", "dm missed");
    await bob.client.close();

    const login = await logIn(server, "bob", { "#LOBBY": lobbySeen.id, "@dm": dmSeen.id, "#gone": 1 });
    expect(login.histories.map((history) => [history.room, textsOf(history)])).toEqual([
      ["#lobby", ["lobby missed"]],
      ["#Side", ["side recent"]],
    ]);
    expect(login.dms.map((dm) => dm.text)).toEqual(["dm missed"]);
  });

  test(`more than ${CATCH_UP_PER_ROOM} messages after the mark: the first ${CATCH_UP_PER_ROOM} with more, and history after them gives the rest`, async () => {
    const MISSED = CATCH_UP_PER_ROOM + 5;
    await using server = await startTestServer({ limits: BULK_LIMITS });
    const alice = await newUser(server, "alice");
    await newUser(server, "bob");
    const mark = await sayAcked(alice.client, "seen");
    alice.client.sendRaw(Array.from({ length: MISSED }, (_, i) => JSON.stringify({ type: "say", text: `missed ${i}`, ref: `m${i}` }) + "\n").join(""));
    const acks: number[] = [];
    while (acks.length < MISSED) acks.push((await alice.client.next("ack")).id);

    const login = await logIn(server, "bob", mark.id);
    const [lobby] = login.histories;
    expect(idsOf(lobby!)).toEqual(acks.slice(0, CATCH_UP_PER_ROOM));
    expect(lobby!.more).toBe(true);
    const rest = await ask(login.client, { type: "history", room: "#lobby", after: acks[CATCH_UP_PER_ROOM - 1] });
    expect(idsOf(rest)).toEqual(acks.slice(CATCH_UP_PER_ROOM));
    expect(rest.more).toBe(false);
  });

  test("a since mark at the newest message gives empty histories, and bad marks are bad_frame", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const newest = await sayAcked(alice.client, "latest");
    const login = await logIn(server, "alice", newest.id);
    expect(login.histories.map((history) => [history.room, history.messages, history.more])).toEqual([["#lobby", [], false]]);

    for (const since of [-1, 1.5, "7", [1], { "#lobby": -1 }, { "#lobby": "1" }]) {
      await using client = await connect(server);
      expect(await errorFor(client, { type: "login", user: "alice", password: "pw-alice-secret", since })).toBe("bad_frame");
    }
  });
});

describe("offline dms", () => {
  test("a dm to a user who is offline is acked and stored, delivered at their next login, and not again at the one after", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await offlineUser(server, "bob");
    const ack = await dmAcked(alice.client, "Bob", "for later");
    expect(storedMessages(server.chatDbPath)).toContainEqual({ id: ack.id, text: "for later" });

    const first = await logIn(server, "bob");
    expect(first.dms).toEqual([{ type: "dm", id: ack.id, from: "alice", to: "bob", text: "for later", ts: ack.ts }]);
    await first.client.close();
    const second = await logIn(server, "bob");
    expect(second.dms).toEqual([]);
  });

  test("with since, the dms that waited come once, also when the mark is below them, and not again at the next login", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await offlineUser(server, "bob");
    const mark = await sayAcked(alice.client, "before the dms");
    await dmAcked(alice.client, "bob", "one");
    await dmAcked(alice.client, "bob", "two");

    const first = await logIn(server, "bob", mark.id);
    expect(first.dms.map((dm) => dm.text)).toEqual(["one", "two"]);
    await first.client.close();
    const withRoomMarkOnly = await logIn(server, "bob", { "#lobby": mark.id });
    expect(withRoomMarkOnly.dms).toEqual([]);
    await withRoomMarkOnly.client.close();
    // With a dm mark below them they are sent again: the client asked for everything after it.
    const again = await logIn(server, "bob", { "@dm": mark.id });
    expect(again.dms.map((dm) => dm.text)).toEqual(["one", "two"]);
  });

  test("a mark past the newest id (a client of a memory log before its restart) counts as no mark: the recent history comes", async () => {
    await using server = await startTestServer({ messageLog: "memory" });
    const alice = await newUser(server, "alice");
    await sayAcked(alice.client, "after the restart");
    await newUser(server, "bob");
    const login = await logIn(server, "bob", { "#lobby": 5_000, "@dm": 5_000 });
    expect(login.histories.flatMap((history) => history.messages.map((message: Frame) => message.text))).toEqual(["after the restart"]);
  });

  test("with a dm mark, every dm after it comes at login, more than one catch-up page of them", async () => {
    await using server = await startTestServer({ limits: { messageRatePerSec: 1_000_000, messageBurst: 1_000_000 } });
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    const mark = await dmAcked(alice.client, "bob", "seen");
    const count = CATCH_UP_PER_ROOM + 20;
    for (let i = 0; i < count; i++) await dmAcked(alice.client, "bob", `dm ${i}`);
    await bob.client.close();

    const login = await logIn(server, "bob", { "@dm": mark.id });
    expect(login.dms.map((dm) => dm.text)).toEqual(Array.from({ length: count }, (_, i) => `dm ${i}`));
  });

  test("a dm reaches a recipient online on one connection at once, and a later login does not get it again", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    const ack = await dmAcked(alice.client, "bob", "live");
    expect((await bob.client.next("dm")).id).toBe(ack.id);
    const later = await logIn(server, "bob");
    expect(later.dms).toEqual([]);
  });

  test("no_such_user is for a name with no account; a registered user who is offline is no error", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await offlineUser(server, "bob");
    expect(await errorFor(alice.client, { type: "dm", to: "nobody", text: "hello?" })).toBe("no_such_user");
    expect((await dmAcked(alice.client, "bob", "hello!")).type).toBe("ack");
  });
});

describe("--message-log memory", () => {
  test("acks, relay without echo, history and catch-up after since work as with the database, and nothing is written to it", async () => {
    await using server = await startTestServer({ messageLog: "memory" });
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    const first = await sayAcked(alice.client, "first");
    expect((await bob.client.next("msg")).id).toBe(first.id);
    const second = await sayAcked(alice.client, "second");
    expect(second.id).toBeGreaterThan(first.id);
    alice.client.send({ type: "say", text: "first", ref: "again" });
    const retried = await alice.client.next("ack");
    alice.client.send({ type: "say", text: "first", ref: "again" });
    expect(await alice.client.next("ack")).toEqual(retried);
    await alice.client.sync();
    expect(alice.client.take("msg")).toEqual([]);

    expect(textsOf(await ask(bob.client, { type: "history", room: "#lobby" }))).toEqual(["first", "second", "first"]);
    await bob.client.close();
    const dm = await dmAcked(alice.client, "bob", "offline dm");
    const login = await logIn(server, "bob", first.id);
    expect(textsOf(login.histories[0]!)).toEqual(["second", "first"]);
    expect(login.dms.map((frame) => frame.id)).toEqual([dm.id]);
    expect(storedMessages(server.chatDbPath)).toEqual([]);
  });
});
