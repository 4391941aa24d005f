// Rooms in the bundled client against a real server over real TLS: the ChatClient's record of
// the user's rooms (joined, parted, kicked, and after a reconnect as the server has them), and
// `chat` in scripts, where --room says where lines go and which rooms print, and --json prints
// the room frames.

import { beforeAll, describe, expect, test } from "bun:test";
import { run } from "../../src/cli/program.ts";
import {
  chatOptions,
  clearTlschatEnv,
  cli,
  envFor,
  fedIO,
  holdableVerification,
  idlingReconnects,
  loggedIn,
  outputLines,
  registerUsers,
  startChatClient,
  until,
  writeCa,
} from "../helpers/chat-support.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";

const ALICE = "alice-password";
const BOB = "bob-password!";

beforeAll(clearTlschatEnv);

const membersOf = (rooms: { get(room: string): { members: ReadonlyMap<string, string> } | undefined }, room: string) => [
  ...(rooms.get(room)?.members.values() ?? []),
];

describe("ChatClient's rooms", () => {
  test("follow welcome, joined, join, topic, moderation and parted", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));
    await using bob = await startChatClient(chatOptions(server, "bob", BOB));
    expect(alice.client.rooms.names()).toEqual(["#lobby"]);

    alice.client.send({ type: "join", room: "#Rust" });
    await alice.log.frame("joined", (frame) => frame.room === "#Rust");
    expect(alice.client.rooms.names()).toEqual(["#lobby", "#Rust"]);
    const rust = alice.client.rooms.get("#rust")!;
    expect(rust.topic).toBe("");
    expect(rust.inviteOnly).toBe(false);
    expect(rust.ops).toEqual(new Set(["alice"]));

    bob.client.send({ type: "join", room: "#rust" });
    await bob.log.frame("joined");
    await alice.log.frame("join", (frame) => frame.user === "bob");
    expect(membersOf(alice.client.rooms, "#rust")).toEqual(["alice", "bob"]);
    expect(membersOf(bob.client.rooms, "#rust")).toEqual(["alice", "bob"]);

    alice.client.send({ type: "topic", room: "#rust", topic: "Borrow checker" });
    await bob.log.frame("topic");
    expect(bob.client.rooms.get("#rust")!.topic).toBe("Borrow checker");

    alice.client.send({ type: "op", room: "#rust", user: "bob" });
    await bob.log.frame("moderation", (frame) => frame.action === "op");
    expect(bob.client.rooms.get("#rust")!.ops).toEqual(new Set(["alice", "bob"]));

    alice.client.send({ type: "kick", room: "#rust", user: "bob" });
    await bob.log.frame("parted");
    expect(bob.client.rooms.names()).toEqual(["#lobby"]);
    await alice.log.frame("moderation", (frame) => frame.action === "kick");
    expect(membersOf(alice.client.rooms, "#rust")).toEqual(["alice"]);

    alice.client.send({ type: "mode", room: "#rust", invite_only: true });
    await alice.log.frame("moderation", (frame) => frame.action === "mode");
    expect(alice.client.rooms.get("#rust")!.inviteOnly).toBe(true);

    alice.client.send({ type: "part", room: "#rust" });
    await alice.log.frame("parted");
    expect(alice.client.rooms.names()).toEqual(["#lobby"]);
  });

  test("after a reconnect the rooms are the server's, from welcome", async () => {
    // Alice's connection is dropped for idling and her reconnect held while another connection
    // of hers changes her rooms: the reconnected session must show the change.
    await using server = await startTestServer({ limits: { idleTimeoutMs: 400 } });
    await registerUsers(server, { alice: ALICE });
    const held = holdableVerification(server);
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE, { verification: held.verification, ...idlingReconnects() }));
    alice.client.send({ type: "join", room: "#rust" });
    await alice.log.frame("joined");
    expect(alice.client.rooms.names()).toEqual(["#lobby", "#rust"]);

    const release = held.hold();
    await alice.log.waitFor((e) => e.kind === "status" && e.text.startsWith("Connection lost"), "alice's connection to drop");
    await until(() => held.checks >= 2, "alice's reconnect to reach the certificate check");
    {
      await using other = await loggedIn(server, "alice", ALICE);
      other.send({ type: "part", room: "#rust" });
      await other.next("parted");
      other.send({ type: "join", room: "#go" });
      await other.next("joined");
    }
    const before = alice.log.events.length;
    release();
    await alice.log.waitFor((e) => e.kind === "status" && e.text.startsWith("Reconnected"), "alice's reconnect", 5_000, before);
    expect(alice.client.rooms.names()).toEqual(["#lobby", "#go"]);
  });
});

describe("chat --room in scripts", () => {
  let dir: TempDir;
  let server: TestServer;
  let ca: string;

  async function withServer(body: () => Promise<void>): Promise<void> {
    await using d = await tempDir();
    await using s = await startTestServer();
    dir = d;
    server = s;
    ca = await writeCa(d, s);
    await registerUsers(s, { alice: ALICE, bob: BOB });
    await body();
  }

  const alice = (...args: string[]) => ["chat", `alice@localhost:${server.port}`, "--ca", ca, ...args];

  test("joins the room if need be, sends stdin lines there, and prints only that room as name: text", () =>
    withServer(async () => {
      await using bob = await loggedIn(server, "bob", BOB);
      bob.send({ type: "join", room: "#rust" });
      await bob.next("joined");
      bob.send({ type: "say", room: "#rust", text: "rust history" });
      await bob.sync();

      const aliceIO = fedIO(envFor(dir, ALICE));
      const aliceRun = run(alice("--room", "rust"), aliceIO.io);
      expect(await bob.next("join")).toMatchObject({ room: "#rust", user: "alice" });
      await aliceIO.waitForStdout("bob: rust history\n");
      // Relayed in order: the lobby line would be printed before the next one if at all.
      bob.send({ type: "say", room: "#lobby", text: "not for this script" });
      bob.send({ type: "say", room: "#rust", text: "for the script" });
      await aliceIO.waitForStdout("bob: for the script\n");
      aliceIO.stdin.end("to rust\n");
      expect(await bob.next("msg")).toMatchObject({ room: "#rust", from: "alice", text: "to rust" });
      expect(await aliceRun).toBe(0);
      expect(outputLines(aliceIO.stdout())).toEqual(["bob: rust history", "bob: for the script"]);
      expect(aliceIO.stderr()).toBe("");
    }));

  test("with more than one --room, lines go to the first, and each printed line starts with its room", () =>
    withServer(async () => {
      await using bob = await loggedIn(server, "bob", BOB);
      for (const room of ["#go", "#rust"]) {
        bob.send({ type: "join", room });
        await bob.next("joined");
      }
      const aliceIO = fedIO(envFor(dir, ALICE));
      const aliceRun = run(alice("--room", "go", "--room", "#rust"), aliceIO.io);
      await bob.next("join");
      await bob.next("join");
      bob.send({ type: "say", room: "#lobby", text: "lobby" });
      bob.send({ type: "say", room: "#rust", text: "borrow" });
      bob.send({ type: "say", room: "#go", text: "/me gophers" });
      await aliceIO.waitForStdout("#go * bob gophers\n");
      aliceIO.stdin.end("to the first room\n");
      expect(await bob.next("msg")).toMatchObject({ room: "#go", text: "to the first room" });
      expect(await aliceRun).toBe(0);
      expect(outputLines(aliceIO.stdout())).toEqual(["#rust bob: borrow", "#go * bob gophers"]);
    }));

  test("without --room, lines go to the lobby and only the lobby prints", () =>
    withServer(async () => {
      await using bob = await loggedIn(server, "bob", BOB);
      bob.send({ type: "join", room: "#rust" });
      await bob.next("joined");
      {
        await using earlier = await loggedIn(server, "alice", ALICE);
        earlier.send({ type: "join", room: "#rust" });
        await earlier.next("joined");
      }
      await bob.next("offline");
      bob.take("online");

      const aliceIO = fedIO(envFor(dir, ALICE));
      const aliceRun = run(alice(), aliceIO.io);
      await bob.next("online");
      bob.send({ type: "say", room: "#rust", text: "in rust" });
      bob.send({ type: "say", room: "#lobby", text: "in the lobby" });
      await aliceIO.waitForStdout("bob: in the lobby\n");
      aliceIO.stdin.end("hello lobby\n");
      expect(await bob.next("msg")).toMatchObject({ room: "#lobby", text: "hello lobby" });
      expect(await aliceRun).toBe(0);
      expect(outputLines(aliceIO.stdout())).toEqual(["bob: in the lobby"]);
    }));

  test("--send with --room says it in that room; a room the user may not join fails the run", () =>
    withServer(async () => {
      await using bob = await loggedIn(server, "bob", BOB);
      for (const room of ["#news", "#private"]) {
        bob.send({ type: "join", room });
        await bob.next("joined");
      }
      bob.send({ type: "mode", room: "#private", invite_only: true });
      await bob.next("moderation");

      const sent = await cli(alice("--room", "news", "--send", "extra"), fedIO(envFor(dir, ALICE)));
      expect(sent).toMatchObject({ code: 0, stderr: "" });
      expect(await bob.next("msg")).toMatchObject({ room: "#news", from: "alice", text: "extra" });

      const refused = await cli(alice("--room", "private", "--send", "let me in"), fedIO(envFor(dir, ALICE)));
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("not_allowed");
      await bob.sync();
      expect(bob.take("msg")).toEqual([]);
    }));

  test("a --room that is not a room name is a usage error, before connecting", () =>
    withServer(async () => {
      const bad = await cli(alice("--room", "no spaces", "--send", "x"), fedIO(envFor(dir, ALICE)));
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("Room names are");
      expect(server.logs.filter((entry) => entry.event === "login")).toEqual([]);
    }));
});

describe("chat --json with rooms", () => {
  test("prints the room frames: joined, join, topic, moderation, rooms, online, offline, parted; --room leaves out other rooms", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    const ca = await writeCa(dir, server);
    await registerUsers(server, { alice: ALICE, bob: BOB });
    const bob = await loggedIn(server, "bob", BOB);

    const aliceIO = fedIO(envFor(dir, ALICE));
    const aliceRun = run(["chat", `alice@localhost:${server.port}`, "--ca", ca, "--json", "--room", "mods"], aliceIO.io);
    await aliceIO.waitForStdout('"type":"joined",');
    bob.send({ type: "join", room: "#mods" });
    await bob.next("joined");
    await aliceIO.waitForStdout('"type":"join",');
    aliceIO.stdin.write("/topic Moderators\n/op bob\n/rooms\n");
    await aliceIO.waitForStdout('"type":"rooms",');
    await bob.close();
    await aliceIO.waitForStdout('"type":"offline",');
    await using bobAgain = await loggedIn(server, "bob", BOB);
    await aliceIO.waitForStdout('"type":"online",');
    aliceIO.stdin.end("/part\n");
    expect(await aliceRun).toBe(0);

    const frames = outputLines(aliceIO.stdout()).map((line) => JSON.parse(line));
    // The new room's history is empty, and a history with nothing new is not shown.
    expect(frames.map((frame) => frame.type)).toEqual(["joined", "join", "topic", "moderation", "rooms", "offline", "online", "parted"]);
    expect(frames).toContainEqual({ type: "topic", room: "#mods", topic: "Moderators", by: "alice", ts: expect.any(Number) });
    expect(frames).toContainEqual({ type: "moderation", action: "op", room: "#mods", user: "bob", by: "alice", ts: expect.any(Number) });
    expect(frames).toContainEqual({ type: "rooms", rooms: [{ room: "#lobby", members: 2, topic: "" }, { room: "#mods", members: 2, topic: "Moderators" }], more: false });
    expect(frames.at(-1)).toEqual({ type: "parted", room: "#mods" });
    expect(aliceIO.stderr()).toBe("");
  });
});
