// The room registries against the Rooms contract, and what only the chat database promises:
// everything survives a restart, and a write that fails changes nothing.

import type { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { MemoryRooms, type Rooms } from "../../src/core/rooms.ts";
import { ChatDatabaseError, openChatDatabase } from "../../src/store/sqlite/database.ts";
import { SqliteRooms } from "../../src/store/sqlite/rooms.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";
import { describeRoomsContract, EVERY_CHANGE, populate, snapshot, USERS } from "./rooms-contract.ts";

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

interface OpenRegistry {
  db: Database;
  rooms: SqliteRooms;
}

async function openRegistry(dir: TempDir): Promise<OpenRegistry> {
  const db = await openChatDatabase(dir.file("chat.db"));
  return { db, rooms: SqliteRooms.load(db) };
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

  for (const [name, change] of EVERY_CHANGE) {
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
