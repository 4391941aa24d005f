// The durable message log from the bundled client's side, against real servers over real TLS:
// our own lines come from the server's acks and a refusal names its message; a reconnect sends
// `since` and shows exactly what was missed, across a server restart too, paging a long catch-up;
// a message typed while disconnected, or whose ack was lost with the connection, is stored and
// shown once; dms reach users who are offline; older pages come on request.

import { describe, expect, test } from "bun:test";
import { Backoff } from "../../src/client/backoff.ts";
import { CATCH_UP_PER_ROOM } from "../../src/core/limits.ts";
import type { TestClient } from "../helpers/client.ts";
import { chatOptions, holdableVerification, type ChatOptionChanges, loggedIn, logEvents, registerUsers, startChatClient, until, type EventLog, type HeldVerification } from "../helpers/chat-support.ts";
import { startRelay } from "../helpers/relay.ts";
import { startTestServer, type TestServer, type TestServerOptions } from "../helpers/server.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";

const ALICE = "alice-password";
const BOB = "bob-password!";
/** Room messages a raw client may send at once in these tests without being rate limited. */
const FAST = { messageRatePerSec: 1_000, messageBurst: 1_000 };

/** Says each text in the lobby with the text as its ref, and waits until the server stored them all. */
async function sayStored(client: TestClient, texts: readonly string[]): Promise<void> {
  for (const text of texts) client.send({ type: "say", text, ref: text });
  for (const text of texts) expect((await client.next("ack", 10_000)).ref).toBe(text);
}

const texts = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);

function reconnecting(held: HeldVerification): ChatOptionChanges {
  return { verification: held.verification, reconnect: true, backoff: new Backoff({ baseMs: 20, maxMs: 100 }) };
}

function waitForStatus(log: EventLog, prefix: string, from = 0): Promise<unknown> {
  return log.waitFor((e) => e.kind === "status" && e.text.startsWith(prefix), `a status "${prefix}…"`, 10_000, from);
}

/**
 * A server on files in `dir` that can be restarted on the same files and port. `restart` stops
 * it, starts the next one, lets `whileAway` act on it while alice's reconnect is held at the
 * certificate check, and then lets her in.
 */
async function restartable(dir: TempDir, options: TestServerOptions = {}) {
  const files = { ...options, storePath: dir.file("users.json"), chatDbPath: dir.file("chat.db") };
  let server = await startTestServer(files);
  return {
    get server() {
      return server;
    },
    async restart(alice: { log: EventLog }, held: HeldVerification, whileAway: (server: TestServer) => Promise<void>): Promise<number> {
      const release = held.hold();
      const checks = held.checks;
      await server.stop();
      await waitForStatus(alice.log, "Connection lost");
      server = await startTestServer({ ...files, port: server.port });
      await until(() => held.checks > checks, "alice's reconnect to reach the restarted server", 10_000);
      await whileAway(server);
      const from = alice.log.events.length;
      release();
      await waitForStatus(alice.log, "Reconnected", from);
      return from;
    },
    [Symbol.asyncDispose]: () => server.stop(),
  };
}

describe("acknowledgements", () => {
  test("our own lines are shown from the server's ack, in order; a refusal names the message it refuses", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));
    await using bob = await loggedIn(server, "bob", BOB);
    alice.client.send({ type: "say", text: "first" });
    alice.client.send({ type: "say", text: "nowhere", room: "#nowhere" });
    alice.client.send({ type: "dm", to: "bob", text: "second" });
    alice.client.send({ type: "dm", to: "nobody", text: "lost" });
    await alice.log.waitFor((e) => e.kind === "refused" && e.message.text === "lost", "the refused dm");

    const answers = alice.log.events.filter((e) => e.kind === "sent" || e.kind === "refused");
    expect(answers.map((e) => (e.kind === "sent" ? `sent ${e.message.text}` : `refused ${e.message.text}: ${e.error.code}`))).toEqual([
      "sent first",
      "refused nowhere: no_such_room",
      "sent second",
      "refused lost: no_such_user",
    ]);
    // The message shown is the one stored: the server's id and time, what bob received.
    const relayed = await bob.next("msg");
    expect(await alice.log.stored("first")).toEqual({ type: "msg", id: relayed.id, room: "#lobby", from: "alice", text: "first", ts: relayed.ts });
    expect((await alice.log.stored("second")).id).toBe((await bob.next("dm")).id);
    expect(alice.log.frames("error")).toEqual([
      expect.objectContaining({ code: "no_such_room", ref: expect.any(String) }),
      expect.objectContaining({ code: "no_such_user", ref: expect.any(String) }),
    ]);
  });

  test("quitting waits until the server has answered every message", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));
    for (const text of texts("q", 20)) alice.client.send({ type: "say", text });
    await alice.client.quit();
    expect(alice.log.events.filter((e) => e.kind === "sent").map((e) => (e.kind === "sent" ? e.message.text : ""))).toEqual(texts("q", 20));
    await using bob = await loggedIn(server, "bob", BOB);
    bob.send({ type: "history", room: "#lobby" });
    expect((await bob.next("history")).messages.map((m: { text: string }) => m.text)).toEqual(texts("q", 20));
  });
});

describe("catching up after a reconnect", () => {
  test("across a server restart, nothing is missed and nothing shown twice: the login sends since", async () => {
    await using dir = await tempDir();
    // A login without since would get only the newest two messages: m4 would be missed.
    await using chat = await restartable(dir, { limits: { historySize: 2 } });
    await registerUsers(chat.server, { alice: ALICE, bob: BOB });
    const held = holdableVerification(chat.server); // Every test server has the same certificate.
    await using alice = await startChatClient(chatOptions(chat.server, "alice", ALICE, reconnecting(held)));
    const bob = await loggedIn(chat.server, "bob", BOB);
    await sayStored(bob, ["m1", "m2", "m3"]);
    await alice.log.frame("msg", (f) => f.text === "m3");

    let bobAgain: TestClient | undefined;
    const from = await chat.restart(alice, held, async (server) => {
      bobAgain = await loggedIn(server, "bob", BOB);
      await sayStored(bobAgain, ["m4", "m5", "m6"]);
    });
    // A live message after the reconnect: everything the login sent has been handled before it.
    await sayStored(bobAgain!, ["m7"]);
    await alice.log.frame("msg", (f) => f.text === "m7", 5_000, from);

    expect(alice.log.shownTexts()).toEqual(["m1", "m2", "m3", "m4", "m5", "m6", "m7"]);
    const ids = alice.log.shown().map((message) => message.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(alice.log.events.slice(from).filter((e) => e.kind === "history")).toEqual([
      { kind: "history", cause: "missed", frame: expect.objectContaining({ room: "#lobby", more: false, messages: [
        expect.objectContaining({ text: "m4" }), expect.objectContaining({ text: "m5" }), expect.objectContaining({ text: "m6" }),
      ] }) },
    ]);
    // The status line comes first, so the missed messages show under it.
    const afterRestart = alice.log.events.slice(from);
    expect(afterRestart.findIndex((e) => e.kind === "status" && e.text.startsWith("Reconnected"))).toBeLessThan(afterRestart.findIndex((e) => e.kind === "history"));
    expect(logEvents(chat.server, "login").filter((e) => e.fields.user === "alice").map((e) => e.fields.method)).toEqual(["token"]);
    await bob.close();
    await bobAgain!.close();
  }, 30_000);

  test("a catch-up longer than one answer is paged to its end, and live messages meanwhile come after it, once", async () => {
    await using dir = await tempDir();
    await using chat = await restartable(dir, { limits: FAST });
    await registerUsers(chat.server, { alice: ALICE, bob: BOB });
    const held = holdableVerification(chat.server);
    await using alice = await startChatClient(chatOptions(chat.server, "alice", ALICE, reconnecting(held)));
    const missed = texts("p", CATCH_UP_PER_ROOM + 50);
    let bob: TestClient | undefined;
    const from = await chat.restart(alice, held, async (server) => {
      bob = await loggedIn(server, "bob", BOB);
      await sayStored(bob, missed);
    });
    // Sent while alice's login may still be paging: before, between or after her pages.
    await sayStored(bob!, ["live 1", "live 2"]);
    await alice.log.frame("msg", (f) => f.text === "live 2", 10_000, from);
    expect(alice.log.shownTexts()).toEqual([...missed, "live 1", "live 2"]);
    const pages = alice.log.events.slice(from).filter((e) => e.kind === "history");
    expect(pages.length).toBeGreaterThanOrEqual(2);
    expect(pages.every((e) => e.kind === "history" && e.cause === "missed")).toBe(true);
    await bob!.close();
  }, 30_000);

  test("a message typed while disconnected goes out after the reconnect, and is stored and shown once", async () => {
    await using dir = await tempDir();
    await using chat = await restartable(dir);
    await registerUsers(chat.server, { alice: ALICE, bob: BOB });
    const held = holdableVerification(chat.server);
    await using alice = await startChatClient(chatOptions(chat.server, "alice", ALICE, reconnecting(held)));
    let bob: TestClient | undefined;
    await chat.restart(alice, held, async (server) => {
      expect(alice.client.connected).toBe(false);
      alice.client.send({ type: "say", text: "typed while away" });
      bob = await loggedIn(server, "bob", BOB);
    });
    expect(await alice.log.stored("typed while away")).toMatchObject({ from: "alice", room: "#lobby" });
    expect((await bob!.next("msg")).text).toBe("typed while away");
    bob!.send({ type: "history", room: "#lobby" });
    expect((await bob!.next("history")).messages.map((m: { text: string }) => m.text)).toEqual(["typed while away"]);
    expect(alice.log.shownTexts()).toEqual(["typed while away"]);
    await bob!.close();
  }, 30_000);

  test("a message whose ack was lost with the connection is sent again with its ref: stored once, shown once", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using relay = await startRelay(server.port);
    await using alice = await startChatClient(
      chatOptions(server, "alice", ALICE, { port: relay.port, reconnect: true, backoff: new Backoff({ baseMs: 20, maxMs: 100 }) }),
    );
    await using bob = await loggedIn(server, "bob", BOB);
    await sayStored(bob, ["before"]);
    await alice.log.frame("msg", (f) => f.text === "before");

    // The server gets the message, stores and relays it, but its ack never reaches alice.
    relay.dropServerBytes();
    alice.client.send({ type: "say", text: "as the link died" });
    const stored = await bob.next("msg");
    expect(stored.text).toBe("as the link died");
    const from = alice.log.events.length;
    relay.cutAndHeal();
    await waitForStatus(alice.log, "Reconnected", from);

    // The catch-up after her mark shows it (it is hers); the resend is acked with the first id.
    const sent = await alice.log.waitFor((e) => e.kind === "sent", "the ack of the resent message", 5_000, from);
    expect(sent).toMatchObject({ kind: "sent", alreadyShown: true, message: { id: stored.id, text: "as the link died" } });
    expect(alice.log.shownTexts()).toEqual(["before", "as the link died"]);
    await bob.sync();
    expect(bob.take("msg")).toEqual([]);
    bob.send({ type: "history", room: "#lobby" });
    const history = (await bob.next("history")).messages;
    expect(history.map((m: { text: string }) => m.text)).toEqual(["before", "as the link died"]);
    expect(history[1].id).toBe(stored.id);
    expect(logEvents(server, "login").filter((e) => e.fields.user === "alice").map((e) => e.fields.method)).toEqual(["password", "token"]);
  }, 30_000);
});

describe("dms and older pages", () => {
  test("a dm to a registered user who is offline is acknowledged, and reaches them once at their next login", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));
    alice.client.send({ type: "dm", to: "bob", text: "while you were out" });
    const stored = await alice.log.stored("while you were out");
    await using bob = await startChatClient(chatOptions(server, "bob", BOB));
    expect(await bob.log.frame("dm")).toEqual({ type: "dm", id: stored.id, from: "alice", to: "bob", text: "while you were out", ts: stored.ts });
    bob.client.send({ type: "say", text: "back" });
    await bob.log.stored("back");
    expect(bob.log.frames("dm")).toHaveLength(1);
    expect(bob.client.lastDmFrom).toBe("alice");
  });

  test("older pages come before the oldest message shown, until there are none", async () => {
    await using server = await startTestServer({ limits: { ...FAST, historySize: 5 } });
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using bob = await loggedIn(server, "bob", BOB);
    await sayStored(bob, texts("o", 8));
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));
    const recent = await alice.log.frame("history");
    expect(recent.messages.map((m) => m.text)).toEqual(["o4", "o5", "o6", "o7", "o8"]);

    expect(alice.client.olderHistory("#lobby")).toBe(true);
    // One page at a time: a second request while the first is on its way is declined.
    expect(alice.client.olderHistory("#lobby")).toBe(false);
    const older = await alice.log.waitFor((e) => e.kind === "history" && e.cause === "older", "the older page");
    expect(older.kind === "history" && older.frame.messages.map((m) => m.text)).toEqual(["o1", "o2", "o3"]);
    const from = alice.log.events.length;
    expect(alice.client.olderHistory("#lobby")).toBe(true);
    const none = await alice.log.waitFor((e) => e.kind === "history" && e.cause === "older", "the empty page", 5_000, from);
    expect(none.kind === "history" && none.frame.messages).toEqual([]);
    expect(alice.client.olderHistory("#nowhere")).toBe(false);
  });
});
