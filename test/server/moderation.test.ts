// Room moderation end to end: kick, ban (timed and not), unban, mute, unmute, op and deop, who may
// use them, and that each is announced to the room and written to the server's log.

import { describe, expect, test } from "bun:test";
import type { TestClient } from "../helpers/client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { joinRoom, moderate, newUsers, refusedUntilBanEnds } from "./rooms-support.ts";
import { errorFor, expectUsable, newUser, sibling } from "./support.ts";

/** `alice` creates #rust (and so operates it); every other user given joins it, in order. */
async function roomOf(server: TestServer, ...others: string[]): Promise<TestClient[]> {
  const clients = await newUsers(server, "alice", ...others);
  for (const client of clients) await joinRoom(client, "#rust");
  return clients;
}

function moderationLogged(server: TestServer) {
  return server.logs.filter((entry) => entry.event === "moderation").map((entry) => entry.fields);
}

describe("kick", () => {
  test("removes the user from the room now, on all their connections; the room hears it; they may rejoin", async () => {
    await using server = await startTestServer();
    const [alice, carol] = await roomOf(server, "carol");
    const bob = await newUser(server, "bob");
    const bobElsewhere = (await sibling(server, "bob", bob.token)).client;
    await joinRoom(bob.client, "#rust");

    const notice = await moderate(alice!, { type: "kick", room: "#rust", user: "bob", reason: "off topic" });
    expect(notice).toMatchObject({ type: "moderation", action: "kick", room: "#rust", user: "bob", by: "alice", reason: "off topic" });
    expect(await carol!.next("moderation")).toEqual(notice);
    for (const connection of [bob.client, bobElsewhere]) {
      expect(await connection.next("moderation")).toEqual(notice);
      expect(await connection.next("parted")).toEqual({ type: "parted", room: "#rust" });
    }
    expect(await errorFor(bob.client, { type: "say", room: "#rust", text: "hey" })).toBe("not_in_room");

    expect((await joinRoom(bob.client, "#rust")).members).toEqual(["alice", "carol", "bob"]);
  });
});

describe("ban", () => {
  test("a banned member is parted and gets room_banned on join and say; the connection stays open", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await roomOf(server, "bob", "carol");

    const notice = await moderate(alice!, { type: "ban", room: "#rust", user: "bob", reason: "spam" });
    expect(notice).toMatchObject({ action: "ban", room: "#rust", user: "bob", by: "alice", reason: "spam" });
    expect(notice.seconds).toBeUndefined();
    expect(await carol!.next("moderation")).toEqual(notice);
    expect(await bob!.next("parted")).toEqual({ type: "parted", room: "#rust" });

    expect(await errorFor(bob!, { type: "join", room: "#rust" })).toBe("room_banned");
    expect(await errorFor(bob!, { type: "say", room: "#rust", text: "let me in" })).toBe("room_banned");
    await expectUsable(bob!);
    bob!.send({ type: "say", text: "still in the lobby" });
    expect((await carol!.next("msg")).room).toBe("#lobby");
  });

  test("someone banned before ever joining is kept out too", async () => {
    await using server = await startTestServer();
    const [alice, eve] = await newUsers(server, "alice", "eve");
    await joinRoom(alice!, "#rust");
    await moderate(alice!, { type: "ban", room: "#rust", user: "eve" });
    expect(await errorFor(eve!, { type: "join", room: "#rust" })).toBe("room_banned");
  });

  test("a ban for some seconds runs out: the user can join again once it has", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await roomOf(server, "bob");

    const notice = await moderate(alice!, { type: "ban", room: "#rust", user: "bob", seconds: 1 });
    expect(notice.seconds).toBe(1);
    const refusals = await refusedUntilBanEnds("room_banned", () => {
      bob!.send({ type: "join", room: "#rust" });
      return bob!.nextOf(["joined", "error"]);
    });
    expect(refusals).toBeGreaterThan(0);
    expect(Date.now()).toBeGreaterThanOrEqual(notice.ts + 1_000);
  });

  test("unban lets the user back in", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await roomOf(server, "bob");
    await moderate(alice!, { type: "ban", room: "#rust", user: "bob" });

    expect(await moderate(alice!, { type: "unban", room: "#rust", user: "bob" })).toMatchObject({ action: "unban", user: "bob" });
    await joinRoom(bob!, "#rust");
  });
});

describe("mute", () => {
  test("a muted member gets muted and the room hears nothing from them until unmuted", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await roomOf(server, "bob", "carol");

    const notice = await moderate(alice!, { type: "mute", room: "#rust", user: "bob", seconds: 600, reason: "calm down" });
    expect(notice).toMatchObject({ action: "mute", room: "#rust", user: "bob", by: "alice", seconds: 600, reason: "calm down" });
    expect(await errorFor(bob!, { type: "say", room: "#rust", text: "but" })).toBe("muted");
    await carol!.sync();
    expect(carol!.take("msg")).toEqual([]);

    await moderate(alice!, { type: "unmute", room: "#rust", user: "bob" });
    bob!.send({ type: "say", room: "#rust", text: "thanks" });
    expect(await carol!.next("msg")).toMatchObject({ from: "bob", text: "thanks" });
  });

  test("a mute holds in its room only", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await roomOf(server, "bob", "carol");
    await moderate(alice!, { type: "mute", room: "#rust", user: "bob" });

    bob!.send({ type: "say", text: "lobby is fine" });
    expect(await carol!.next("msg")).toMatchObject({ room: "#lobby", from: "bob" });
  });
});

describe("op and deop", () => {
  test("a member made operator can kick; once deopped they get not_allowed", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await roomOf(server, "bob", "carol");

    await moderate(alice!, { type: "op", room: "#rust", user: "bob" });
    expect((await joinRoom(bob!, "#rust")).ops).toEqual(["alice", "bob"]);
    await moderate(bob!, { type: "kick", room: "#rust", user: "carol" });
    await joinRoom(carol!, "#rust");

    await moderate(alice!, { type: "deop", room: "#rust", user: "bob" });
    expect(await errorFor(bob!, { type: "kick", room: "#rust", user: "carol" })).toBe("not_allowed");
  });

  test("an operator who parts is no longer one when they come back", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await roomOf(server, "bob");
    alice!.send({ type: "part", room: "#rust" });
    await alice!.next("parted");

    expect((await joinRoom(alice!, "#rust")).ops).toEqual([]);
    expect(await errorFor(alice!, { type: "kick", room: "#rust", user: "bob" })).toBe("not_allowed");
  });
});

describe("who may moderate", () => {
  const ACTIONS = ["kick", "ban", "unban", "mute", "unmute", "op", "deop", "invite"] as const;

  test("a member who is not an operator gets not_allowed for every action, and nothing changes", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await roomOf(server, "bob");
    for (const type of ACTIONS) {
      expect(await errorFor(bob!, { type, room: "#rust", user: "alice" })).toBe("not_allowed");
    }
    await alice!.sync();
    expect(alice!.take("moderation")).toEqual([]);
    expect(moderationLogged(server)).toEqual([]);
  });

  test("kick, op and deop name a member: anyone else is not_in_room", async () => {
    await using server = await startTestServer();
    const [alice] = await roomOf(server, "bob");
    await newUsers(server, "carol");
    for (const type of ["kick", "op", "deop"]) {
      expect(await errorFor(alice!, { type, room: "#rust", user: "carol" })).toBe("not_in_room");
    }
  });

  test("an unknown room is no_such_room, a bad room name invalid_room, a bad username invalid_user", async () => {
    await using server = await startTestServer();
    const [alice] = await roomOf(server);
    expect(await errorFor(alice!, { type: "kick", room: "#nowhere", user: "bob" })).toBe("no_such_room");
    expect(await errorFor(alice!, { type: "kick", room: "rust", user: "bob" })).toBe("invalid_room");
    expect(await errorFor(alice!, { type: "kick", room: "#rust", user: "no spaces" })).toBe("invalid_user");
  });

  test("a server administrator moderates any room without being in it", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    const [alice, bob] = await roomOf(server, "bob");
    const [root] = await newUsers(server, "root");

    const notice = await moderate(root!, { type: "kick", room: "#rust", user: "bob" });
    expect(notice).toMatchObject({ action: "kick", room: "#rust", user: "bob", by: "root" });
    expect(await alice!.next("moderation")).toEqual(notice);
    expect(await bob!.next("parted")).toEqual({ type: "parted", room: "#rust" });
  });
});

describe("every moderation action is announced to the room and written to the log", () => {
  test("mute, unmute, op, deop, invite, ban, unban, mode and kick", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await roomOf(server, "bob", "carol");
    await newUsers(server, "dave");
    const actions = [
      { type: "mute", user: "bob", seconds: 60, reason: "flood" },
      { type: "unmute", user: "bob" },
      { type: "op", user: "bob" },
      { type: "deop", user: "bob" },
      { type: "invite", user: "dave" },
      { type: "ban", user: "dave", seconds: 3600 },
      { type: "unban", user: "dave" },
      { type: "mode", invite_only: true },
      { type: "kick", user: "bob", reason: "bye" },
    ];
    for (const { type, ...fields } of actions) {
      const notice = await moderate(alice!, { type, room: "#rust", ...fields });
      expect(notice).toMatchObject({ type: "moderation", action: type, room: "#rust", by: "alice", ...fields });
      expect(await carol!.next("moderation")).toEqual(notice);
    }
    await bob!.next("parted");
    expect(bob!.received.filter((frame) => frame.type === "moderation")).toHaveLength(actions.length);

    expect(moderationLogged(server)).toEqual(
      actions.map(({ type, user, seconds, invite_only }) => ({ action: type, room: "#rust", user, by: "alice", seconds, invite_only })),
    );
  });

  test("setting the topic is logged as a moderation action too, with who and where but not the text", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await roomOf(server, "bob");
    alice!.send({ type: "topic", room: "#rust", topic: "secret plans" });
    expect((await bob!.next("topic")).topic).toBe("secret plans");
    await alice!.sync();
    expect(moderationLogged(server)).toEqual([{ action: "topic", room: "#rust", by: "alice" }]);
    expect(JSON.stringify(server.logs)).not.toContain("secret plans");
  });
});
