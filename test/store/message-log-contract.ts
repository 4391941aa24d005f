// The MessageLog contract: what every message log (in memory, the chat database, Redis) must do
// with the messages it holds, as one `describe` that each implementation's test file runs, so
// that they cannot drift apart. A log without full-text search (Redis) says so with a capability
// flag, and exactly the search tests are skipped. Who may read or delete what is the hub's and is
// not tested here.

import { describe, expect, test } from "bun:test";
import type { Draft, MessageLog, StoredMessage, StoredRef } from "../../src/core/message-log.ts";
import { searchWords } from "../../src/core/message-log.ts";
import { ChatError } from "../../src/protocol/errors.ts";

/** A log to test, empty, and how to throw it away afterwards. */
export interface MessageLogFixture extends AsyncDisposable {
  log: MessageLog;
}

const LOBBY = { key: "#lobby", name: "#lobby" };
const RUST = { key: "#rust", name: "#Rust" };
export const T0 = 1_000_000;

/** A room message draft; `at` is its timestamp. */
export function said(room: Draft["room"], from: string, text: string, at = T0, ref?: string): Draft {
  const draft: Draft = { room, from, text, ts: at };
  if (ref !== undefined) draft.ref = ref;
  return draft;
}

/** A dm draft; `undelivered` when the recipient was offline. */
export function sentDm(from: string, to: string, text: string, at = T0, undelivered = false): Draft {
  return { from, to, text, ts: at, undelivered };
}

/** What a ref lookup promises of the first copy (a log may give more): its id and time. */
export function idAndTime(found: StoredRef | undefined): StoredRef | undefined {
  return found && { id: found.id, ts: found.ts };
}

function texts(messages: readonly StoredMessage[]): string[] {
  return messages.map((message) => message.text);
}

async function appendAll(log: MessageLog, drafts: readonly Draft[]): Promise<StoredMessage[]> {
  const stored: StoredMessage[] = [];
  for (const draft of drafts) stored.push(await log.append(draft));
  return stored;
}

/** What a log may lack; each missing capability skips its tests, by name, and nothing else. */
export interface MessageLogCapabilities {
  /** Full-text search; a log without it must refuse `search` (its own tests check how). */
  search: boolean;
}

export function describeMessageLogContract(name: string, open: () => Promise<MessageLogFixture>, capabilities: MessageLogCapabilities = { search: true }): void {
  describe(`${name}: the MessageLog contract`, () => {
    describe("append", () => {
      test("gives every message an id above all before it, across rooms and dms, and returns it as stored", async () => {
        await using fixture = await open();
        const { log } = fixture;
        const first = await log.append(said(RUST, "Alice", "hello", T0));
        const second = await log.append(sentDm("Alice", "Bob", "psst", T0 + 1));
        const third = await log.append(said(LOBBY, "bob", "hi", T0 + 2));
        expect(first).toEqual({ id: first.id, room: RUST, from: "Alice", text: "hello", ts: T0 });
        expect(second).toEqual({ id: second.id, from: "Alice", to: "Bob", text: "psst", ts: T0 + 1 });
        expect(first.id).toBeGreaterThanOrEqual(1);
        expect(second.id).toBeGreaterThan(first.id);
        expect(third.id).toBeGreaterThan(second.id);
        expect(log.lastId()).toBe(third.id);
      });

      test("appends made together keep their order", async () => {
        await using fixture = await open();
        const stored = await Promise.all(Array.from({ length: 20 }, (_, i) => fixture.log.append(said(LOBBY, i % 2 ? "alice" : "bob", `m${i}`))));
        expect(texts(stored)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
        for (let i = 1; i < stored.length; i++) expect(stored[i]!.id).toBeGreaterThan(stored[i - 1]!.id);
      });

      test("get finds a message by id, and nothing for an id never used", async () => {
        await using fixture = await open();
        const stored = await fixture.log.append(said(RUST, "alice", "find me"));
        expect(await fixture.log.get(stored.id)).toEqual(stored);
        expect(await fixture.log.get(stored.id + 1)).toBeUndefined();
      });
    });

    describe("page", () => {
      async function tenInRust(log: MessageLog): Promise<number[]> {
        const stored = await appendAll(log, Array.from({ length: 10 }, (_, i) => said(RUST, "alice", `r${i}`, T0 + i)));
        await log.append(said(LOBBY, "alice", "elsewhere"));
        return stored.map((message) => message.id);
      }

      test("without bounds: the newest `limit` messages, oldest first, and more when older ones were left out", async () => {
        await using fixture = await open();
        await tenInRust(fixture.log);
        const page = await fixture.log.page({ room: "#rust" }, { limit: 3 });
        expect(texts(page.messages)).toEqual(["r7", "r8", "r9"]);
        expect(page.more).toBe(true);
        const all = await fixture.log.page({ room: "#rust" }, { limit: 10 });
        expect(texts(all.messages)).toHaveLength(10);
        expect(all.more).toBe(false);
      });

      test("before: the newest below the id; after: the oldest above it; both: between them", async () => {
        await using fixture = await open();
        const ids = await tenInRust(fixture.log);
        const before = await fixture.log.page({ room: "#rust" }, { before: ids[5]!, limit: 2 });
        expect(texts(before.messages)).toEqual(["r3", "r4"]);
        expect(before.more).toBe(true);
        const after = await fixture.log.page({ room: "#rust" }, { after: ids[5]!, limit: 2 });
        expect(texts(after.messages)).toEqual(["r6", "r7"]);
        expect(after.more).toBe(true);
        const end = await fixture.log.page({ room: "#rust" }, { after: ids[7]!, limit: 5 });
        expect(texts(end.messages)).toEqual(["r8", "r9"]);
        expect(end.more).toBe(false);
        const between = await fixture.log.page({ room: "#rust" }, { after: ids[1]!, before: ids[4]!, limit: 5 });
        expect(texts(between.messages)).toEqual(["r2", "r3"]);
        expect(between.more).toBe(false);
        expect((await fixture.log.page({ room: "#rust" }, { before: ids[0]!, limit: 5 })).messages).toEqual([]);
      });

      test("the dms between two users are one conversation, whoever sends and in any letter case; other pairs are not in it", async () => {
        await using fixture = await open();
        await appendAll(fixture.log, [sentDm("Alice", "bob", "a to b"), sentDm("Bob", "alice", "b to a"), sentDm("alice", "carol", "a to c"), said(RUST, "alice", "room")]);
        const forward = await fixture.log.page({ between: ["alice", "BOB"] }, { limit: 10 });
        const backward = await fixture.log.page({ between: ["bob", "alice"] }, { limit: 10 });
        expect(texts(forward.messages)).toEqual(["a to b", "b to a"]);
        expect(backward).toEqual(forward);
        expect(forward.messages[0]).toMatchObject({ from: "Alice", to: "bob" });
      });
    });

    describe("a retried ref", () => {
      test("findByRef gives the sender's message with that ref sent at `since` or later, in any letter case of the sender", async () => {
        await using fixture = await open();
        const original = await fixture.log.append(said(LOBBY, "Alice", "once", T0, "ref-1"));
        expect(idAndTime(await fixture.log.findByRef("alice", "ref-1", T0))).toEqual(idAndTime(original));
        expect(idAndTime(await fixture.log.findByRef("ALICE", "ref-1", T0 - 1))).toEqual(idAndTime(original));
      });

      test("not another sender's, not another ref, and not one sent before `since`", async () => {
        await using fixture = await open();
        await fixture.log.append(said(LOBBY, "alice", "once", T0, "ref-1"));
        expect(fixture.log.findByRef("bob", "ref-1", T0)).toBeUndefined();
        expect(fixture.log.findByRef("alice", "ref-2", T0)).toBeUndefined();
        expect(fixture.log.findByRef("alice", "ref-1", T0 + 1)).toBeUndefined();
      });

      test("a dm's ref is found like a room message's", async () => {
        await using fixture = await open();
        const original = await fixture.log.append({ ...sentDm("alice", "bob", "psst"), ref: "d1" });
        expect(idAndTime(await fixture.log.findByRef("alice", "d1", T0))).toEqual(idAndTime(original));
      });

      test("a removed message's ref is free again, also once it was looked up", async () => {
        await using fixture = await open();
        const original = await fixture.log.append(said(LOBBY, "alice", "oops", T0, "ref-1"));
        const looked = await fixture.log.append(said(LOBBY, "alice", "looked up first", T0, "ref-2"));
        expect(idAndTime(await fixture.log.findByRef("alice", "ref-2", T0))).toEqual(idAndTime(looked));
        await fixture.log.remove(original.id);
        await fixture.log.remove(looked.id);
        expect(fixture.log.findByRef("alice", "ref-1", T0)).toBeUndefined();
        expect(fixture.log.findByRef("alice", "ref-2", T0)).toBeUndefined();
      });
    });

    describe("dms of one user", () => {
      test("dms gives those the user sent and received within the bounds, oldest first, and none of their room messages", async () => {
        await using fixture = await open();
        const stored = await appendAll(fixture.log, [
          sentDm("alice", "bob", "1"),
          said(LOBBY, "bob", "room"),
          sentDm("carol", "Bob", "2"),
          sentDm("alice", "carol", "not bob's"),
          sentDm("bob", "dave", "3"),
        ]);
        expect(texts((await fixture.log.dms("BOB", { after: 0, limit: 10 })).messages)).toEqual(["1", "2", "3"]);
        const after = await fixture.log.dms("bob", { after: stored[0]!.id, limit: 1 });
        expect(after).toEqual({ messages: [stored[2]!], more: true });
        expect(texts((await fixture.log.dms("bob", { after: 0, before: stored[4]!.id, limit: 10 })).messages)).toEqual(["1", "2"]);
      });

      test("undelivered gives the dms to the user stored while they were offline, until marked delivered up to an id", async () => {
        await using fixture = await open();
        const stored = await appendAll(fixture.log, [
          sentDm("alice", "bob", "waiting 1", T0, true),
          sentDm("alice", "bob", "seen live"),
          sentDm("bob", "alice", "sent by bob while alice was away", T0, true),
          sentDm("carol", "Bob", "waiting 2", T0, true),
          sentDm("carol", "bob", "waiting 3", T0, true),
        ]);
        expect(texts((await fixture.log.undelivered("bob", { after: 0, limit: 10 })).messages)).toEqual(["waiting 1", "waiting 2", "waiting 3"]);
        expect(await fixture.log.undelivered("bob", { after: 0, limit: 1 })).toEqual({ messages: [stored[0]!], more: true });
        expect(texts((await fixture.log.undelivered("bob", { after: 0, before: stored[4]!.id, limit: 10 })).messages)).toEqual(["waiting 1", "waiting 2"]);

        await fixture.log.markDelivered("BOB", stored[3]!.id);
        expect(texts((await fixture.log.undelivered("bob", { after: 0, limit: 10 })).messages)).toEqual(["waiting 3"]);
        expect(texts((await fixture.log.undelivered("alice", { after: 0, limit: 10 })).messages)).toEqual(["sent by bob while alice was away"]);
      });
    });

    describe("remove", () => {
      test("takes the message out of get and pages, and leaves the others", async () => {
        await using fixture = await open();
        const [gone, kept] = await appendAll(fixture.log, [said(RUST, "alice", "secret plans"), said(RUST, "alice", "public plans")]);
        await fixture.log.remove(gone!.id);
        expect(await fixture.log.get(gone!.id)).toBeUndefined();
        expect((await fixture.log.page({ room: "#rust" }, { limit: 10 })).messages).toEqual([kept!]);
      });

      test("takes a dm out of both users' dms and out of undelivered", async () => {
        await using fixture = await open();
        const [gone, kept] = await appendAll(fixture.log, [sentDm("alice", "bob", "gone", T0, true), sentDm("bob", "alice", "kept", T0, true)]);
        await fixture.log.remove(gone!.id);
        expect((await fixture.log.dms("alice", { after: 0, limit: 10 })).messages).toEqual([kept!]);
        expect((await fixture.log.dms("bob", { after: 0, limit: 10 })).messages).toEqual([kept!]);
        expect((await fixture.log.undelivered("bob", { after: 0, limit: 10 })).messages).toEqual([]);
      });

      test("an id that is not there is no error", async () => {
        await using fixture = await open();
        await fixture.log.remove(12345);
      });

      test("the id of a removed newest message is not given again", async () => {
        await using fixture = await open();
        const newest = await fixture.log.append(said(RUST, "alice", "regret"));
        await fixture.log.remove(newest.id);
        expect((await fixture.log.append(said(RUST, "alice", "better"))).id).toBeGreaterThan(newest.id);
      });
    });

    describe.skipIf(!capabilities.search)(`search (${capabilities.search ? "supported" : `skipped: ${name} has none`})`, () => {
      const MESSAGES: Array<[Draft["room"], string]> = [
        [RUST, "The borrow checker is strict"],
        [RUST, "borrowing is fine, borrowed too"],
        [RUST, "CHECKER of borrow rules"],
        [LOBBY, "borrow a cup of sugar"],
        [RUST, "Café au lait, hello-world and x_y"],
        [RUST, 'she said "quoted" NEAR(a b) star* and text: col'],
        [RUST, "cats AND dogs"],
      ];

      async function corpus(log: MessageLog): Promise<StoredMessage[]> {
        return appendAll(log, MESSAGES.map(([room, text], i) => said(room, "alice", text, T0 + i)));
      }

      async function find(log: MessageLog, query: string, rooms = ["#rust", "#lobby"]): Promise<string[]> {
        return texts(await log.search(searchWords(query), { rooms }, 20));
      }

      test("finds a word in any letter case, newest first, every word of the query required", async () => {
        await using fixture = await open();
        await corpus(fixture.log);
        expect(await find(fixture.log, "BORROW")).toEqual(["borrow a cup of sugar", "CHECKER of borrow rules", "The borrow checker is strict"]);
        expect(await find(fixture.log, "borrow checker")).toEqual(["CHECKER of borrow rules", "The borrow checker is strict"]);
        expect(await find(fixture.log, "borrow sugar cup")).toEqual(["borrow a cup of sugar"]);
      });

      test("a near miss or a part of a word is not a match", async () => {
        await using fixture = await open();
        await corpus(fixture.log);
        expect(await find(fixture.log, "borro")).toEqual([]);
        expect(await find(fixture.log, "borrows")).toEqual([]);
        expect(await find(fixture.log, "check")).toEqual([]);
        expect(await find(fixture.log, "borrowed")).toEqual(["borrowing is fine, borrowed too"]);
        expect(await find(fixture.log, "cat")).toEqual([]);
      });

      test("punctuation separates words, and letters match without their accents", async () => {
        await using fixture = await open();
        await corpus(fixture.log);
        const cafe = "Café au lait, hello-world and x_y";
        expect(await find(fixture.log, "cafe")).toEqual([cafe]);
        expect(await find(fixture.log, "hello-world")).toEqual([cafe]);
        expect(await find(fixture.log, "world")).toEqual([cafe]);
        expect(await find(fixture.log, "y")).toEqual([cafe]);
        expect(await find(fixture.log, "world-hello")).toEqual([]);
      });

      test("FTS5 query syntax is only text: quotes, NEAR, *, column filters, AND/OR/NOT and a lone quote", async () => {
        await using fixture = await open();
        await corpus(fixture.log);
        const syntax = 'she said "quoted" NEAR(a b) star* and text: col';
        expect(await find(fixture.log, '"quoted"')).toEqual([syntax]);
        expect(await find(fixture.log, "NEAR(a")).toEqual([syntax]);
        expect(await find(fixture.log, "NEAR(borrow checker)")).toEqual([]);
        expect(await find(fixture.log, "star*")).toEqual([syntax]);
        expect(await find(fixture.log, "borrow*")).toEqual(["borrow a cup of sugar", "CHECKER of borrow rules", "The borrow checker is strict"]);
        expect(await find(fixture.log, "bor*")).toEqual([]);
        expect(await find(fixture.log, "text:col")).toEqual([syntax]);
        expect(await find(fixture.log, "text:borrow")).toEqual([]);
        expect(await find(fixture.log, "cats AND dogs")).toEqual(["cats AND dogs"]);
        expect(await find(fixture.log, "cats OR sugar")).toEqual([]);
        expect(await find(fixture.log, "borrow NOT sugar")).toEqual([]);
        expect(await find(fixture.log, "^borrow")).toEqual(["borrow a cup of sugar", "CHECKER of borrow rules", "The borrow checker is strict"]);
        // Words with no letters or digits ask for nothing: alone they find nothing, and beside a word only that word counts.
        for (const punctuation of ['"', '"")', "*", "(", ")", "-", ":", "{}", "^"]) {
          expect(await find(fixture.log, punctuation)).toEqual([]);
          expect(await find(fixture.log, `${punctuation} sugar`)).toEqual(["borrow a cup of sugar"]);
        }
      });

      test("only in the given rooms, and dms only of the given user, sent or received", async () => {
        await using fixture = await open();
        await appendAll(fixture.log, [
          said(RUST, "alice", "secret rust"),
          said(LOBBY, "alice", "secret lobby"),
          said({ key: "#other", name: "#other" }, "eve", "secret other"),
          sentDm("alice", "bob", "secret to bob"),
          sentDm("carol", "Alice", "secret to alice"),
          sentDm("bob", "carol", "secret not alice's"),
        ]);
        const secret = (scope: { rooms: string[]; dmsOf?: string }) => fixture.log.search(["secret"], scope, 20).then(texts);
        expect(await secret({ rooms: ["#rust"] })).toEqual(["secret rust"]);
        expect(await secret({ rooms: ["#rust", "#lobby"], dmsOf: "ALICE" })).toEqual(["secret to alice", "secret to bob", "secret lobby", "secret rust"]);
        expect(await secret({ rooms: [], dmsOf: "bob" })).toEqual(["secret not alice's", "secret to bob"]);
        expect(await secret({ rooms: [] })).toEqual([]);
      });

      test("gives at most `limit` results, the newest", async () => {
        await using fixture = await open();
        await appendAll(fixture.log, Array.from({ length: 10 }, (_, i) => said(RUST, "alice", `spam ${i}`)));
        expect(await fixture.log.search(["spam"], { rooms: ["#rust"] }, 3).then(texts)).toEqual(["spam 9", "spam 8", "spam 7"]);
      });

      test("finds nothing of a removed message, and the others still", async () => {
        await using fixture = await open();
        const [gone, kept] = await appendAll(fixture.log, [said(RUST, "alice", "secret plans"), said(RUST, "alice", "public plans")]);
        await fixture.log.remove(gone!.id);
        expect(await fixture.log.search(["plans"], { rooms: ["#rust"] }, 10)).toEqual([kept!]);
        expect(await fixture.log.search(["secret"], { rooms: ["#rust"] }, 10)).toEqual([]);
      });

      test("finds nothing of what retention or dropping a room removed", async () => {
        await using fixture = await open();
        await appendAll(fixture.log, [said(RUST, "alice", "old rust", T0), sentDm("alice", "bob", "old dm", T0), said(LOBBY, "alice", "lobby rust", T0 + 2)]);
        expect(await fixture.log.trim(T0 + 1, 100)).toBe(2);
        expect(await fixture.log.search(["old"], { rooms: ["#rust"], dmsOf: "alice" }, 10)).toEqual([]);
        await fixture.log.dropRoom("#lobby");
        expect(await fixture.log.search(["rust"], { rooms: ["#rust", "#lobby"] }, 10)).toEqual([]);
      });
    });

    describe("retention", () => {
      test("trim removes the messages older than `before`, rooms and dms alike, and says how many", async () => {
        await using fixture = await open();
        await appendAll(fixture.log, [said(RUST, "alice", "old", T0), sentDm("alice", "bob", "old dm", T0 + 1), said(RUST, "alice", "new", T0 + 2)]);
        expect(await fixture.log.trim(T0, 100)).toBe(0);
        expect(await fixture.log.trim(T0 + 2, 100)).toBe(2);
        expect(texts((await fixture.log.page({ room: "#rust" }, { limit: 10 })).messages)).toEqual(["new"]);
        expect((await fixture.log.page({ between: ["alice", "bob"] }, { limit: 10 })).messages).toEqual([]);
        expect((await fixture.log.dms("alice", { after: 0, limit: 10 })).messages).toEqual([]);
        expect(await fixture.log.trim(T0 + 2, 100)).toBe(0);
      });

      test("trim keeps the newest `maxPerRoom` of each room; a dm conversation is not a room", async () => {
        await using fixture = await open();
        for (let i = 0; i < 4; i++) {
          await fixture.log.append(said(RUST, "alice", `rust ${i}`));
          await fixture.log.append(said(LOBBY, "alice", `lobby ${i}`));
          await fixture.log.append(sentDm("alice", "bob", `dm ${i}`));
        }
        let removed = 0;
        for (let step = await fixture.log.trim(0, 2); step > 0; step = await fixture.log.trim(0, 2)) removed += step;
        expect(removed).toBe(4);
        expect(texts((await fixture.log.page({ room: "#rust" }, { limit: 10 })).messages)).toEqual(["rust 2", "rust 3"]);
        expect(texts((await fixture.log.page({ room: "#lobby" }, { limit: 10 })).messages)).toEqual(["lobby 2", "lobby 3"]);
        expect((await fixture.log.page({ between: ["alice", "bob"] }, { limit: 10 })).messages).toHaveLength(4);
      });

      test("a room's count takes removed messages into account", async () => {
        await using fixture = await open();
        const stored = await appendAll(fixture.log, [said(RUST, "alice", "a"), said(RUST, "alice", "b"), said(RUST, "alice", "c")]);
        await fixture.log.remove(stored[2]!.id);
        expect(await fixture.log.trim(0, 2)).toBe(0);
        await fixture.log.append(said(RUST, "alice", "d"));
        expect(await fixture.log.trim(0, 2)).toBe(1);
        expect(texts((await fixture.log.page({ room: "#rust" }, { limit: 10 })).messages)).toEqual(["b", "d"]);
      });

      test("dropRoom removes a room's messages and no others", async () => {
        await using fixture = await open();
        const stored = await appendAll(fixture.log, [said(RUST, "alice", "rust"), said(LOBBY, "alice", "lobby"), sentDm("alice", "bob", "dm")]);
        await fixture.log.dropRoom("#rust");
        expect((await fixture.log.page({ room: "#rust" }, { limit: 10 })).messages).toEqual([]);
        expect(texts((await fixture.log.page({ room: "#lobby" }, { limit: 10 })).messages)).toEqual(["lobby"]);
        expect(texts((await fixture.log.page({ between: ["alice", "bob"] }, { limit: 10 })).messages)).toEqual(["dm"]);
        expect(await fixture.log.get(stored[0]!.id)).toBeUndefined();
      });
    });
  });
}

/** The error a rejected promise carries, to check its code. */
export async function refusal(promise: Promise<unknown>): Promise<ChatError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ChatError);
    return error as ChatError;
  }
  throw new Error("expected a refusal");
}
