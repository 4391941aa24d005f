// The Rooms contract: what every room registry (in memory, the chat database, Redis) must do
// with its state, as one `describe` that each implementation's test file runs, so that they
// cannot drift apart; plus a populated registry and one of every change, for the tests of what
// only a persistent registry promises. Policy (who may do what) is the hub's and is not tested here.

import { describe, expect, test } from "bun:test";
import type { Restriction, RoomView, Rooms } from "../../src/core/rooms.ts";

/** A registry to test, empty, and how to throw it away afterwards. */
export interface RoomsFixture extends AsyncDisposable {
  rooms: Rooms;
}

/** A plain copy of everything a registry tells about its rooms and the given users, to compare. */
export function snapshot(rooms: Rooms, users: readonly string[]) {
  return {
    count: rooms.count,
    rooms: [...rooms.list(undefined)].map(roomSnapshot),
    users: users.map((user) => ({
      user,
      knows: rooms.knows(user),
      serverBan: copyRestriction(rooms.serverBan(user)),
      rooms: rooms.roomsOf(user).map((room) => room.key),
      created: rooms.createdBy(user),
    })),
  };
}

function roomSnapshot(room: RoomView) {
  // Ops, restrictions and invites are sets: their order is not part of the contract.
  return {
    key: room.key,
    name: room.name,
    topic: room.topic,
    inviteOnly: room.inviteOnly,
    createdBy: room.createdBy,
    createdAt: room.createdAt,
    members: [...room.members],
    ops: [...room.ops].sort(),
    bans: restrictionsSnapshot(room.bans),
    mutes: restrictionsSnapshot(room.mutes),
    invites: [...room.invites].sort(),
    emptySince: room.emptySince,
  };
}

function restrictionsSnapshot(restrictions: ReadonlyMap<string, Restriction>) {
  return [...restrictions].map(([user, restriction]) => [user, copyRestriction(restriction)] as const).sort(([a], [b]) => a.localeCompare(b));
}

function copyRestriction(restriction: Restriction | undefined): Restriction | undefined {
  return restriction === undefined ? undefined : { ...restriction };
}

/** The users `populate` touches, and one it never does, for snapshots. */
export const USERS = ["alice", "bob", "carol", "eve", "ghost"];

/** A registry with some of every kind of state, including rooms with no members and a stale one. */
export async function populate(rooms: Rooms): Promise<void> {
  await rooms.create("#lobby", "", 100);
  for (const user of ["Alice", "bob", "carol"]) await rooms.welcomeUser(user, "#lobby", 200);
  await rooms.create("#Rust", "Alice", 300);
  await rooms.addMember("#rust", "Alice");
  await rooms.setOp("#rust", "alice", true);
  await rooms.addMember("#rust", "carol");
  await rooms.addMember("#rust", "bob");
  await rooms.setOp("#rust", "bob", true);
  await rooms.setTopic("#rust", "memory safety ✓");
  await rooms.setInviteOnly("#rust", true);
  await rooms.setInvited("#rust", "dave", true);
  await rooms.restrict("ban", "#rust", "eve", { by: "alice", until: 10_000, reason: "spam" });
  await rooms.restrict("mute", "#rust", "carol", { by: "bob" });
  await rooms.create("#empty", "bob", 400);
  await rooms.addMember("#empty", "bob");
  await rooms.removeMember("#empty", "bob", 500);
  await rooms.create("#never-joined", "carol", 600);
  await rooms.removeMember("#never-joined", "ghost", 700);
  await rooms.setOp("#never-joined", "ghost", true);
  // Parting the lobby and coming back puts it last in bob's rooms.
  await rooms.removeMember("#lobby", "bob", 800);
  await rooms.addMember("#lobby", "bob");
  await rooms.banServerWide("eve", { by: "root" });
  await rooms.banServerWide("ghost", { by: "root", until: 20_000, reason: "bots" });
}

/** One of every change, each meaningful on a `populate`d registry, by the method's name. */
export const EVERY_CHANGE: ReadonlyArray<[string, (rooms: Rooms) => Promise<unknown>]> = [
  ["welcomeUser", (rooms) => rooms.welcomeUser("dave", "#lobby", 900)],
  ["create", (rooms) => rooms.create("#new", "alice", 900)],
  ["addMember", (rooms) => rooms.addMember("#rust", "dave")],
  ["removeMember", (rooms) => rooms.removeMember("#rust", "carol", 900)],
  ["setOp", (rooms) => rooms.setOp("#rust", "carol", true)],
  ["setTopic", (rooms) => rooms.setTopic("#rust", "changed")],
  ["setInviteOnly", (rooms) => rooms.setInviteOnly("#rust", false)],
  ["setInvited", (rooms) => rooms.setInvited("#rust", "dave", false)],
  ["restrict", (rooms) => rooms.restrict("mute", "#rust", "bob", { by: "alice" })],
  ["lift", (rooms) => rooms.lift("ban", "#rust", "eve")],
  ["banServerWide", (rooms) => rooms.banServerWide("carol", { by: "root" })],
  ["unbanServerWide", (rooms) => rooms.unbanServerWide("eve")],
  ["removeEmpty", (rooms) => rooms.removeEmpty(1_000, "#lobby")],
];

function names(rooms: Iterable<RoomView>): string[] {
  return Array.from(rooms, (room) => room.name);
}

export function describeRoomsContract(implementation: string, open: () => Promise<RoomsFixture>): void {
  describe(`${implementation} keeps the Rooms contract`, () => {
    test("create makes an empty room, named as given, found by any case", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#Rust", "Alice", 5_000);

      expect(rooms.count).toBe(1);
      expect(snapshot(rooms, []).rooms).toEqual([
        {
          key: "#rust",
          name: "#Rust",
          topic: "",
          inviteOnly: false,
          createdBy: "alice",
          createdAt: 5_000,
          members: [],
          ops: [],
          bans: [],
          mutes: [],
          invites: [],
          emptySince: 5_000,
        },
      ]);
      expect(rooms.get("#RUST")?.name).toBe("#Rust");
      expect(rooms.get("#go")).toBeUndefined();
    });

    test("list walks the rooms in key order, from just after the given key", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      for (const room of ["#b", "#A", "#c"]) await rooms.create(room, "alice", 0);

      expect(names(rooms.list(undefined))).toEqual(["#A", "#b", "#c"]);
      expect(names(rooms.list("#a"))).toEqual(["#b", "#c"]);
      expect(names(rooms.list("#bb"))).toEqual(["#c"]);
      expect(names(rooms.list("#z"))).toEqual([]);
    });

    test("members are listed in the order they joined, with their names as registered", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#r", "carol", 0);
      await rooms.create("#q", "carol", 0);
      for (const user of ["Carol", "alice", "Bob"]) await rooms.addMember("#r", user);
      await rooms.addMember("#q", "ALICE");
      await rooms.addMember("#r", "Carol");

      const room = rooms.get("#r")!;
      expect([...room.members]).toEqual([
        ["carol", "Carol"],
        ["alice", "alice"],
        ["bob", "Bob"],
      ]);
      expect(room.emptySince).toBeUndefined();
      expect(names(rooms.roomsOf("Alice"))).toEqual(["#r", "#q"]);
      expect(rooms.roomsOf("dave")).toEqual([]);
    });

    test("removeMember drops operator status, and the last member out sets emptySince", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#r", "alice", 1_000);
      await rooms.addMember("#r", "alice");
      await rooms.addMember("#r", "bob");
      await rooms.setOp("#r", "alice", true);

      await rooms.removeMember("#r", "Alice", 2_000);
      expect(rooms.get("#r")!.ops.has("alice")).toBe(false);
      expect(rooms.get("#r")!.emptySince).toBeUndefined();
      expect(rooms.roomsOf("alice")).toEqual([]);

      await rooms.addMember("#r", "alice");
      expect(rooms.get("#r")!.ops.has("alice")).toBe(false);
      expect([...rooms.get("#r")!.members.keys()]).toEqual(["bob", "alice"]);

      await rooms.removeMember("#r", "bob", 3_000);
      await rooms.removeMember("#r", "alice", 4_000);
      expect(rooms.get("#r")!.emptySince).toBe(4_000);
    });

    test("only members are operators: making a non-member one changes nothing", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#r", "alice", 1_000);
      await rooms.addMember("#r", "alice");
      const before = snapshot(rooms, ["alice", "ghost"]);

      await rooms.setOp("#r", "ghost", true);
      expect(snapshot(rooms, ["alice", "ghost"])).toEqual(before);
    });

    test("removing a non-member changes nothing, not even when the room became empty", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#r", "alice", 1_000);
      const before = snapshot(rooms, ["ghost"]);

      await rooms.removeMember("#r", "ghost", 2_000);
      expect(snapshot(rooms, ["ghost"])).toEqual(before);
    });

    test("bans and mutes are kept per room and user; a newer one replaces the old; lifting one leaves the other", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#r", "alice", 0);
      await rooms.create("#q", "alice", 0);

      await rooms.restrict("ban", "#r", "Eve", { by: "alice", until: 9_000, reason: "spam" });
      await rooms.restrict("mute", "#R", "eve", { by: "alice" });
      expect(rooms.get("#r")!.bans.get("eve")).toEqual({ by: "alice", until: 9_000, reason: "spam" });
      expect(rooms.get("#r")!.mutes.get("eve")).toEqual({ by: "alice" });
      expect(rooms.get("#q")!.bans.size).toBe(0);

      await rooms.restrict("ban", "#r", "eve", { by: "bob" });
      expect(rooms.get("#r")!.bans.get("eve")).toEqual({ by: "bob" });

      await rooms.lift("ban", "#r", "EVE");
      expect(rooms.get("#r")!.bans.has("eve")).toBe(false);
      expect(rooms.get("#r")!.mutes.get("eve")).toEqual({ by: "alice" });
    });

    test("topic, invite-only and invitations are stored per room", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#r", "alice", 0);

      await rooms.setTopic("#r", "Rust and only Rust");
      await rooms.setInviteOnly("#r", true);
      await rooms.setInvited("#r", "Bob", true);
      await rooms.setInvited("#r", "carol", true);
      await rooms.setInvited("#r", "CAROL", false);

      const room = rooms.get("#r")!;
      expect(room.topic).toBe("Rust and only Rust");
      expect(room.inviteOnly).toBe(true);
      expect([...room.invites]).toEqual(["bob"]);

      await rooms.setInviteOnly("#r", false);
      await rooms.setTopic("#r", "");
      expect(rooms.get("#r")!.inviteOnly).toBe(false);
      expect(rooms.get("#r")!.topic).toBe("");
    });

    test("server-wide bans are kept per user, found by any case, and lifted", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      expect(rooms.serverBan("eve")).toBeUndefined();

      await rooms.banServerWide("Eve", { by: "root", until: 9_000, reason: "abuse" });
      expect(rooms.serverBan("EVE")).toEqual({ by: "root", until: 9_000, reason: "abuse" });
      expect(rooms.serverBan("mallory")).toBeUndefined();

      await rooms.unbanServerWide("eve");
      expect(rooms.serverBan("Eve")).toBeUndefined();
    });

    test("welcomeUser remembers the user and makes them a member of the lobby", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#lobby", "", 0);
      expect(rooms.knows("alice")).toBe(false);

      await rooms.welcomeUser("Alice", "#lobby", 1_000);
      expect(rooms.knows("ALICE")).toBe(true);
      expect([...rooms.get("#lobby")!.members]).toEqual([["alice", "Alice"]]);
      expect(names(rooms.roomsOf("alice"))).toEqual(["#lobby"]);
    });

    test("removeEmpty removes rooms empty since before the cutoff, but never the kept one", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#lobby", "", 0);
      await rooms.create("#old", "alice", 0);
      await rooms.restrict("ban", "#old", "eve", { by: "alice" });
      await rooms.create("#recent", "alice", 0);
      await rooms.addMember("#recent", "alice");
      await rooms.removeMember("#recent", "alice", 5_000);
      await rooms.create("#busy", "alice", 0);
      await rooms.addMember("#busy", "bob");

      expect(await rooms.removeEmpty(4_000, "#LOBBY")).toEqual(["#old"]);
      expect(rooms.get("#old")).toBeUndefined();
      expect(names(rooms.list(undefined))).toEqual(["#busy", "#lobby", "#recent"]);
      expect(rooms.count).toBe(3);

      expect(await rooms.removeEmpty(6_000, "#lobby")).toEqual(["#recent"]);
      expect(await rooms.removeEmpty(Number.MAX_SAFE_INTEGER, "#lobby")).toEqual([]);
      expect(names(rooms.list(undefined))).toEqual(["#busy", "#lobby"]);

      // A room created again under a removed name starts with nothing of the old one.
      await rooms.create("#old", "bob", 7_000);
      expect(rooms.get("#old")!.bans.size).toBe(0);
    });

    test("createdBy counts the existing rooms each user created", async () => {
      await using fixture = await open();
      const { rooms } = fixture;
      await rooms.create("#a", "Alice", 0);
      await rooms.create("#b", "alice", 0);
      await rooms.create("#c", "bob", 0);
      await rooms.addMember("#b", "alice");
      expect(rooms.createdBy("ALICE")).toBe(2);
      expect(rooms.createdBy("bob")).toBe(1);
      expect(rooms.createdBy("carol")).toBe(0);

      await rooms.removeEmpty(1, "#lobby");
      expect(rooms.createdBy("alice")).toBe(1);
      expect(rooms.createdBy("bob")).toBe(0);
    });
  });
}
