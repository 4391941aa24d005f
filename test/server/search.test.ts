// Search and delete end to end: words match as words, FTS5 syntax in a query is only text, a
// search covers the user's rooms and own dms and nothing else, and a deleted message is gone
// from history and search, deletable only by its author, the room's operators and administrators.

import { describe, expect, test } from "bun:test";
import { MAX_SEARCH_QUERY_CHARS, MAX_SEARCH_RESULTS } from "../../src/protocol/frames.ts";
import { startTestServer } from "../helpers/server.ts";
import { ask, dmAcked, idsOf, sayAcked, textsOf } from "./history-support.ts";
import { joinRoom } from "./rooms-support.ts";
import { errorFor, newUser } from "./support.ts";

describe("search", () => {
  test("finds the messages with every word of the query, newest first, in any letter case; not a near miss, nor a part of a word", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await sayAcked(alice.client, "The borrow checker is strict");
    await sayAcked(alice.client, "borrowing and borrowed");
    await sayAcked(alice.client, "CHECKER of the BORROW rules");

    const reply = await ask(alice.client, { type: "search", query: "Borrow" });
    expect(reply).toMatchObject({ type: "search", query: "Borrow", more: false });
    expect(textsOf(reply)).toEqual(["CHECKER of the BORROW rules", "The borrow checker is strict"]);
    expect(reply.messages[0]).toMatchObject({ type: "msg", room: "#lobby", from: "alice" });
    expect(textsOf(await ask(alice.client, { type: "search", query: "borrow  checker strict" }))).toEqual(["The borrow checker is strict"]);
    for (const miss of ["borro", "borrows", "check", "checkers", "strictly", "orrow"]) {
      expect([miss, textsOf(await ask(alice.client, { type: "search", query: miss }))]).toEqual([miss, []]);
    }
  });

  test("FTS5 syntax in a query is taken literally and is never an error", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const syntax = await sayAcked(alice.client, 'she said "quoted" then NEAR(a b) and star* text: col');
    const cats = await sayAcked(alice.client, "cats AND dogs");
    const plain = await sayAcked(alice.client, "plain words only");

    const literal: Array<[string, number[]]> = [
      ['"quoted"', [syntax.id]],
      ["NEAR(a b)", [syntax.id]],
      ["NEAR(plain words)", []],
      ["star*", [syntax.id]],
      ["pla*", []],
      ["text:col", [syntax.id]],
      ["text:plain", []],
      ["plain OR cats", []],
      ["plain NOT words", []],
      ["cats AND", [cats.id]],
      ['"', []],
      ['plain "', [plain.id]],
      ['"plain', [plain.id]],
      ["(", []],
      ["{text}: plain", []],
      ["^plain", [plain.id]],
      ["plain\u0000words", [plain.id]],
    ];
    for (const [query, ids] of literal) {
      const reply = await ask(alice.client, { type: "search", query });
      expect([query, reply.type, reply.type === "search" ? idsOf(reply) : reply.code]).toEqual([query, "search", ids]);
    }
  });

  test("covers the rooms the user is in and their own dms; `room` narrows it to one; not_in_room for a room they are not in", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    const carol = await newUser(server, "carol");
    await joinRoom(alice.client, "#ours");
    await joinRoom(bob.client, "#ours");
    await joinRoom(bob.client, "#bobs");
    await sayAcked(bob.client, "secret in bobs", "#bobs");
    await sayAcked(bob.client, "secret in ours", "#ours");
    await sayAcked(bob.client, "secret in lobby");
    await dmAcked(bob.client, "alice", "secret to alice");
    await dmAcked(bob.client, "carol", "secret to carol");
    await dmAcked(alice.client, "carol", "secret from alice");

    expect(textsOf(await ask(alice.client, { type: "search", query: "secret" }))).toEqual(["secret from alice", "secret to alice", "secret in lobby", "secret in ours"]);
    expect(textsOf(await ask(alice.client, { type: "search", query: "secret", room: "#OURS" }))).toEqual(["secret in ours"]);
    expect(textsOf(await ask(carol.client, { type: "search", query: "secret" }))).toEqual(["secret from alice", "secret to carol", "secret in lobby"]);
    expect(await errorFor(alice.client, { type: "search", query: "secret", room: "#bobs" })).toBe("not_in_room");
    expect(await errorFor(alice.client, { type: "search", query: "secret", room: "#nowhere" })).toBe("no_such_room");
  });

  test("limit caps the results, the newest first, and more says there were others", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    for (let i = 0; i < 5; i++) await sayAcked(alice.client, `spam ${i}`);
    const capped = await ask(alice.client, { type: "search", query: "spam", limit: 2 });
    expect(textsOf(capped)).toEqual(["spam 4", "spam 3"]);
    expect(capped.more).toBe(true);
    const all = await ask(alice.client, { type: "search", query: "spam", limit: 5 });
    expect(textsOf(all)).toHaveLength(5);
    expect(all.more).toBe(false);
  });

  test(`bad searches are bad_frame: an empty or blank query (control characters are blanks), one over ${MAX_SEARCH_QUERY_CHARS} characters, a limit outside 1..${MAX_SEARCH_RESULTS}`, async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const longest = "a".repeat(MAX_SEARCH_QUERY_CHARS);
    const bad: object[] = [
      { type: "search", query: "" },
      { type: "search", query: "   \t " },
      { type: "search", query: "\u0000\u0007" },
      { type: "search", query: `${longest}a` },
      { type: "search" },
      { type: "search", query: 7 },
      ...[0, MAX_SEARCH_RESULTS + 1, 1.5, "5"].map((limit) => ({ type: "search", query: "words", limit })),
    ];
    for (const frame of bad) expect([JSON.stringify(frame).slice(0, 60), await errorFor(alice.client, frame)]).toEqual([JSON.stringify(frame).slice(0, 60), "bad_frame"]);
    expect((await ask(alice.client, { type: "search", query: longest, limit: MAX_SEARCH_RESULTS })).type).toBe("search");
  });
});

describe("delete", () => {
  test("the author deletes their message: the room is told, and history and search no longer show it", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    const kept = await sayAcked(alice.client, "keep these words");
    const gone = await sayAcked(alice.client, "regret these words");

    alice.client.send({ type: "delete", id: gone.id });
    const notice = { type: "deleted", room: "#lobby", id: gone.id, by: "alice" };
    expect(await bob.client.next("deleted")).toEqual(notice);
    expect(await alice.client.next("deleted")).toEqual(notice);
    expect(idsOf(await ask(bob.client, { type: "history", room: "#lobby" }))).toEqual([kept.id]);
    expect(idsOf(await ask(bob.client, { type: "search", query: "words" }))).toEqual([kept.id]);
    expect(idsOf(await ask(bob.client, { type: "search", query: "regret" }))).toEqual([]);
    expect(await errorFor(alice.client, { type: "delete", id: gone.id })).toBe("no_such_message");
  });

  test("a room's operator deletes any message in it, an administrator any anywhere; anyone else gets not_allowed and the message stays", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    const op = await newUser(server, "op");
    const member = await newUser(server, "member");
    const other = await newUser(server, "other");
    const root = await newUser(server, "root");
    await joinRoom(op.client, "#ops");
    await joinRoom(member.client, "#ops");
    const byMember = await sayAcked(member.client, "member's words", "#ops");
    const inLobby = await sayAcked(member.client, "lobby words");
    const dm = await dmAcked(member.client, "other", "private words");

    for (const [client, id] of [[other.client, byMember.id], [op.client, inLobby.id], [op.client, dm.id], [member.client, byMember.id + 100]] as const) {
      const code = await errorFor(client, { type: "delete", id });
      expect(code).toBe(id === byMember.id + 100 ? "no_such_message" : "not_allowed");
    }
    expect(idsOf(await ask(member.client, { type: "history", room: "#ops" }))).toEqual([byMember.id]);

    op.client.send({ type: "delete", id: byMember.id });
    expect(await member.client.next("deleted")).toEqual({ type: "deleted", room: "#ops", id: byMember.id, by: "op" });
    root.client.send({ type: "delete", id: inLobby.id });
    const lobbyNotice = { type: "deleted", room: "#lobby", id: inLobby.id, by: "root" };
    expect(await member.client.next("deleted")).toEqual(lobbyNotice);
    expect(await root.client.next("deleted")).toEqual(lobbyNotice);
    expect(await other.client.next("deleted")).toEqual(lobbyNotice);
    root.client.send({ type: "delete", id: dm.id });
    expect(await member.client.next("deleted")).toEqual({ type: "deleted", with: "other", id: dm.id, by: "root" });
    expect(await other.client.next("deleted")).toEqual({ type: "deleted", with: "member", id: dm.id, by: "root" });
    expect(await root.client.next("deleted")).toEqual({ type: "deleted", with: "other", id: dm.id, by: "root" });

    expect(idsOf(await ask(member.client, { type: "history", room: "#ops" }))).toEqual([]);
    expect(idsOf(await ask(member.client, { type: "history", with: "other" }))).toEqual([]);
    expect(idsOf(await ask(member.client, { type: "search", query: "words" }))).toEqual([]);
  });

  test("deleting one's own dm tells both sides, each with the other's name", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    const dm = await dmAcked(alice.client, "bob", "unsend me");
    await bob.client.next("dm");
    alice.client.send({ type: "delete", id: dm.id });
    expect(await alice.client.next("deleted")).toEqual({ type: "deleted", with: "bob", id: dm.id, by: "alice" });
    expect(await bob.client.next("deleted")).toEqual({ type: "deleted", with: "alice", id: dm.id, by: "alice" });
    expect(idsOf(await ask(bob.client, { type: "history", with: "alice" }))).toEqual([]);
  });

  test("an id that is not a positive integer is bad_frame", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    for (const id of [0, -1, 1.5, "1", null]) expect(await errorFor(alice.client, { type: "delete", id })).toBe("bad_frame");
    expect(await errorFor(alice.client, { type: "delete" })).toBe("bad_frame");
  });
});
