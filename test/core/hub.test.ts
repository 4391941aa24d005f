// The hub's rules that are awkward to reach end to end: room expiry on the clock, the byte caps on
// list replies, and what operators may not do to administrators.

import { describe, expect, test } from "bun:test";
import type { Hub } from "../../src/core/hub.ts";
import { FakePeer } from "../helpers/fake-peer.ts";
import { testHub } from "../helpers/hub.ts";

/** Logs `user` in on a new fake connection. */
async function online(hub: Hub, user: string): Promise<FakePeer> {
  const peer = new FakePeer();
  await hub.enter(user, peer);
  return peer;
}

const EXPIRY_MS = 60_000;

describe("room expiry", () => {
  test("a room is removed once it has been empty for longer than the expiry, with its history", async () => {
    const { hub, rooms, clock } = await testHub({ roomExpiryMs: EXPIRY_MS });
    const alice = await online(hub, "alice");
    await hub.join("alice", alice, "#tmp");
    await hub.say("alice", alice, "#tmp", "remember me", undefined);
    await hub.part("alice", "#tmp");

    clock.now += EXPIRY_MS;
    expect(await hub.removeExpiredRooms()).toEqual([]);
    clock.now += 1;
    expect(await hub.removeExpiredRooms()).toEqual(["#tmp"]);
    expect(rooms.get("#tmp")).toBeUndefined();

    alice.frames = [];
    await hub.join("alice", alice, "#tmp");
    expect(alice.of("history")).toEqual([{ type: "history", room: "#tmp", messages: [], more: false }]);
  });

  test("the lobby is never removed, even after everyone has parted it", async () => {
    const { hub, rooms, clock } = await testHub({ roomExpiryMs: EXPIRY_MS });
    await online(hub, "alice");
    await hub.part("alice", "#lobby");
    expect(rooms.get("#lobby")!.members.size).toBe(0);

    clock.now += 100 * EXPIRY_MS;
    expect(await hub.removeExpiredRooms()).toEqual([]);
    expect(rooms.get("#lobby")).toBeDefined();
  });

  test("a room with members stays however old it is, and rejoining restarts the empty time", async () => {
    const { hub, rooms, clock } = await testHub({ roomExpiryMs: EXPIRY_MS });
    const alice = await online(hub, "alice");
    await hub.join("alice", alice, "#kept");
    await hub.join("alice", alice, "#revisited");
    await hub.part("alice", "#revisited");

    clock.now += EXPIRY_MS - 1;
    await hub.join("alice", alice, "#revisited");
    await hub.part("alice", "#revisited");
    clock.now += EXPIRY_MS - 1;
    expect(await hub.removeExpiredRooms()).toEqual([]);

    clock.now += 100 * EXPIRY_MS;
    expect(await hub.removeExpiredRooms()).toEqual(["#revisited"]);
    expect(rooms.get("#kept")).toBeDefined();
  });
});

describe("list replies are capped by encoded size and say more", () => {
  // Six-character names cost 9 bytes each (quotes and comma): 11 fit in 100 bytes, 12 do not.
  const MAX_LIST_BYTES = 100;
  const FITTING = 11;
  const names = Array.from({ length: 30 }, (_, i) => `user${String(i).padStart(2, "0")}`);

  async function crowd() {
    const test = await testHub({ maxListBytes: MAX_LIST_BYTES, maxRooms: 100, maxRoomsCreatedPerUser: 100 });
    const peers = new Map<string, FakePeer>();
    for (const name of names) peers.set(name, await online(test.hub, name));
    return { ...test, peers };
  }

  test("who, server-wide and for a room", async () => {
    const { hub } = await crowd();
    expect(hub.who("user00", undefined)).toEqual({ type: "who", users: names.slice(0, FITTING), more: true });
    expect(hub.who("user00", "#lobby")).toEqual({ type: "who", room: "#lobby", users: names.slice(0, FITTING), more: true });
  });

  test("a short list is whole and says no more", async () => {
    const { hub, peers } = await crowd();
    await hub.join("user00", peers.get("user00")!, "#pair");
    await hub.join("user01", peers.get("user01")!, "#pair");
    expect(hub.who("user00", "#pair")).toEqual({ type: "who", room: "#pair", users: ["user00", "user01"], more: false });
  });

  test("the members and operators of joined", async () => {
    const { hub, peers } = await crowd();
    for (const [name, peer] of peers) {
      await hub.join(name, peer, "#big");
      await hub.moderate("user00", { type: "op", room: "#big", user: name });
    }
    const latecomer = await online(hub, "zed");
    await hub.join("zed", latecomer, "#big");
    const joined = latecomer.of("joined")[0]!;
    for (const list of [joined.members, joined.ops]) {
      expect(list).toEqual(names.slice(0, FITTING));
      expect(JSON.stringify(list).length).toBeLessThanOrEqual(MAX_LIST_BYTES);
    }
  });

  test("rooms pages by size as well as by count, and the next page starts after the last room shown", async () => {
    // A summary counts 48 bytes beyond its name and topic: two of these fit in 120 bytes, three do not.
    const { hub } = await testHub({ maxListBytes: 120, maxRoomsCreatedPerUser: 10 });
    const alice = await online(hub, "alice");
    for (const room of ["#room-a", "#room-b", "#room-c", "#room-d"]) await hub.join("alice", alice, room);

    expect(hub.roomList("alice", undefined, 1000)).toEqual({
      type: "rooms",
      rooms: [
        { room: "#lobby", members: 1, topic: "" },
        { room: "#room-a", members: 1, topic: "" },
      ],
      more: true,
    });
    expect(hub.roomList("alice", "#room-a", 1000)).toMatchObject({ rooms: [{ room: "#room-b" }, { room: "#room-c" }], more: true });
    expect(hub.roomList("alice", "#room-c", 1000)).toMatchObject({ rooms: [{ room: "#room-d" }], more: false });
  });
});

describe("operators and administrators", () => {
  async function roomWithAdmin() {
    const test = await testHub({ admins: new Set(["root"]) });
    const alice = await online(test.hub, "alice");
    const root = await online(test.hub, "root");
    await test.hub.join("alice", alice, "#r");
    await test.hub.join("root", root, "#r");
    return { ...test, alice, root };
  }

  test("an operator cannot kick, ban, mute or deop an administrator", async () => {
    const { hub, rooms } = await roomWithAdmin();
    for (const type of ["kick", "ban", "mute", "deop"] as const) {
      await expect(hub.moderate("alice", { type, room: "#r", user: "root" })).rejects.toMatchObject({ code: "not_allowed" });
    }
    expect(rooms.get("#r")!.members.has("root")).toBe(true);
    expect(rooms.get("#r")!.bans.size + rooms.get("#r")!.mutes.size).toBe(0);
  });

  test("an operator may still op and invite an administrator", async () => {
    const { hub, rooms } = await roomWithAdmin();
    await hub.moderate("alice", { type: "op", room: "#r", user: "root" });
    await hub.moderate("alice", { type: "invite", room: "#r", user: "root" });
    expect(rooms.get("#r")!.ops.has("root")).toBe(true);
    expect(rooms.get("#r")!.invites.has("root")).toBe(true);
  });

  test("an administrator moderates a room without being its operator", async () => {
    const { hub, rooms, alice, moderation } = await roomWithAdmin();
    await hub.moderate("root", { type: "kick", room: "#r", user: "alice" });
    expect(rooms.get("#r")!.members.has("alice")).toBe(false);
    expect(alice.of("parted")).toEqual([{ type: "parted", room: "#r" }]);
    expect(moderation).toMatchObject([{ action: "kick", room: "#r", user: "alice", by: "root" }]);
  });

  test("an administrator who bans server-wide hears of it once, though sharing rooms with the banned user", async () => {
    const { hub, alice, root } = await roomWithAdmin();
    await hub.moderate("root", { type: "ban", scope: "server", user: "alice" });
    expect(root.of("moderation")).toMatchObject([{ action: "ban", scope: "server", user: "alice", by: "root" }]);
    expect(alice.closedWith).toBe("banned");
  });

  test("an administrator who shares no room with the banned user hears of it too", async () => {
    const { hub, root } = await roomWithAdmin();
    const loner = await online(hub, "loner");
    await hub.part("loner", "#lobby");
    await hub.moderate("root", { type: "ban", scope: "server", user: "loner" });
    expect(root.of("moderation")).toMatchObject([{ action: "ban", scope: "server", user: "loner" }]);
    expect(loner.closedWith).toBe("banned");
  });
});
