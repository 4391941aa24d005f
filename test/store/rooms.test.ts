// The room registries against the Rooms contract, and what only the chat database promises:
// everything survives a restart, and a write that fails changes nothing.

import type { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { MemoryRooms, type Rooms } from "../../src/core/rooms.ts";
import { ChatDatabaseError, openChatDatabase } from "../../src/store/sqlite/database.ts";
import { SqliteRooms } from "../../src/store/sqlite/rooms.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";
import { describeRoomsContract, snapshot } from "./rooms-contract.ts";

describeRoomsContract("MemoryRooms", async () => {
  const rooms = new MemoryRooms();
  return { rooms, [Symbol.asyncDispose]: () => rooms.close() };
});

describeRoomsContract("SqliteRooms", async () => {
  const dir = await tempDir();
  const rooms = SqliteRooms.load(await openChatDatabase(dir.file("chat.db")));
  return {
    rooms,
    [Symbol.asyncDispose]: async () => {
      await rooms.close();
      await dir[Symbol.asyncDispose]();
    },
  };
});

const USERS = ["alice", "bob", "carol", "eve", "ghost"];

interface OpenRegistry {
  db: Database;
  rooms: SqliteRooms;
}

async function openRegistry(dir: TempDir): Promise<OpenRegistry> {
  const db = await openChatDatabase(dir.file("chat.db"));
  return { db, rooms: SqliteRooms.load(db) };
}

/** A registry with some of every kind of state, including rooms with no members and a stale one. */
async function populate(rooms: Rooms): Promise<void> {
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

describe("SqliteRooms on disk", () => {
  test("everything survives close and reopen: members in order, ops, restrictions, invites, emptiness, users and bans", async () => {
    await using dir = await tempDir();
    const first = await openRegistry(dir);
    await populate(first.rooms);
    const before = snapshot(first.rooms, USERS);
    await first.rooms.close();

    const second = await openRegistry(dir);
    try {
      expect(snapshot(second.rooms, USERS)).toEqual(before);
    } finally {
      await second.rooms.close();
    }
  });

  test("the same changes made in memory give the same state as the reopened database", async () => {
    await using dir = await tempDir();
    const memory = new MemoryRooms();
    await populate(memory);
    const first = await openRegistry(dir);
    await populate(first.rooms);
    await first.rooms.close();

    const second = await openRegistry(dir);
    try {
      expect(snapshot(second.rooms, USERS)).toEqual(snapshot(memory, USERS));
    } finally {
      await second.rooms.close();
    }
  });

  test("removed rooms stay removed, with their members, restrictions and invites", async () => {
    await using dir = await tempDir();
    const first = await openRegistry(dir);
    await populate(first.rooms);
    await first.rooms.setInvited("#empty", "carol", true);
    await first.rooms.restrict("ban", "#empty", "eve", { by: "bob" });
    expect(await first.rooms.removeEmpty(1_000, "#lobby")).toEqual(["#empty", "#never-joined"]);
    await first.rooms.close();

    const second = await openRegistry(dir);
    try {
      expect(second.rooms.get("#empty")).toBeUndefined();
      expect(second.rooms.createdBy("bob")).toBe(0);
      for (const table of ["invites", "restrictions", "members"]) {
        const orphans = second.db.query<{ n: number }, []>(`SELECT count(*) AS n FROM ${table} WHERE room = '#empty'`).get()!;
        expect(orphans.n).toBe(0);
      }
    } finally {
      await second.rooms.close();
    }
  });
});

describe("SqliteRooms when the database cannot be written", () => {
  type Change = [string, (rooms: Rooms) => Promise<unknown>];
  const changes: Change[] = [
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

  for (const [name, change] of changes) {
    test(`${name} rejects with store_unavailable and changes neither memory nor disk`, async () => {
      await using dir = await tempDir();
      const first = await openRegistry(dir);
      await populate(first.rooms);
      const before = snapshot(first.rooms, [...USERS, "dave"]);
      first.db.exec("PRAGMA query_only = ON");

      await expect(change(first.rooms)).rejects.toMatchObject({ name: "ChatError", code: "store_unavailable" });
      expect(snapshot(first.rooms, [...USERS, "dave"])).toEqual(before);
      await first.rooms.close();

      const second = await openRegistry(dir);
      try {
        expect(snapshot(second.rooms, [...USERS, "dave"])).toEqual(before);
      } finally {
        await second.rooms.close();
      }
    });
  }

  test("a database closed underneath the registry fails the same way", async () => {
    await using dir = await tempDir();
    const { db, rooms } = await openRegistry(dir);
    await populate(rooms);
    const before = snapshot(rooms, USERS);
    db.close();

    await expect(rooms.addMember("#rust", "dave")).rejects.toMatchObject({ code: "store_unavailable" });
    expect(snapshot(rooms, USERS)).toEqual(before);
  });
});

describe("SqliteRooms on a damaged database", () => {
  test("rows that contradict each other stop loading with a ChatDatabaseError naming the file", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    const db = await openChatDatabase(path);
    // Written as another program could, with foreign keys off: a member of a room that does not exist.
    db.exec("PRAGMA foreign_keys = OFF");
    db.run("INSERT INTO members (room, user, name) VALUES ('#nowhere', 'alice', 'alice')");
    try {
      expect(() => SqliteRooms.load(db)).toThrow(ChatDatabaseError);
      expect(() => SqliteRooms.load(db)).toThrow(`The chat database ${path} is unreadable`);
    } finally {
      db.close();
    }
  });
});
