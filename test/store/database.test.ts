// The chat database file: created private, migrated by number, and never overwritten when it is
// not ours to change (not a database, or written by a newer tlschat).

import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { ChatDatabaseError, MIGRATIONS, openChatDatabase, SCHEMA_VERSION } from "../../src/store/sqlite/database.ts";
import { tempDir } from "../helpers/tmp.ts";

/** A new database file at schema `version`, as a tlschat of that version left it: to be upgraded. */
function databaseAtVersion(path: string, version: number): Database {
  const old = new Database(path, { create: true });
  for (const migration of MIGRATIONS.slice(0, version)) old.exec(migration);
  old.exec(`PRAGMA user_version = ${version}`);
  return old;
}

const PERMISSION_BITS = 0o777;

function userVersion(db: Database): number {
  return db.query<{ user_version: number }, []>("PRAGMA user_version").get()!.user_version;
}

function tableNames(db: Database): string[] {
  return db
    .query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all()
    .map((row) => row.name);
}

describe("openChatDatabase", () => {
  test("creates a missing file 0600 in a created 0700 directory, at the current schema version; its WAL files are 0600 too", async () => {
    await using dir = await tempDir();
    const path = dir.file("data/chat.db");

    const db = await openChatDatabase(path);
    try {
      expect(userVersion(db)).toBe(SCHEMA_VERSION);
      db.run("INSERT INTO known_users (user, first_seen) VALUES ('alice', 1)");
      expect((await stat(dir.file("data"))).mode & PERMISSION_BITS).toBe(0o700);
      for (const file of [path, `${path}-wal`, `${path}-shm`]) expect((await stat(file)).mode & PERMISSION_BITS).toBe(0o600);
    } finally {
      db.close();
    }
  });

  test("migrates an empty file (version 0) to the current version with every table", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    await writeFile(path, "", { mode: 0o600 });

    const db = await openChatDatabase(path);
    try {
      expect(userVersion(db)).toBe(SCHEMA_VERSION);
      expect(tableNames(db)).toEqual([
        "index_progress",
        "invites",
        "known_users",
        "members",
        "message_refs",
        "messages",
        "messages_fts",
        "messages_fts_config",
        "messages_fts_data",
        "messages_fts_docsize",
        "messages_fts_idx",
        "restrictions",
        "rooms",
        "server_bans",
        "sqlite_sequence",
      ]);
      expect(db.query<{ journal_mode: string }, []>("PRAGMA journal_mode").get()!.journal_mode).toBe("wal");
    } finally {
      db.close();
    }
  });

  test("a version 1 database (rooms only) is upgraded to the message log and keeps its rows", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    const old = databaseAtVersion(path, 1);
    old.run("INSERT INTO rooms (key, name, created_by, created_at) VALUES ('#rust', '#Rust', 'alice', 1)");
    old.run("INSERT INTO members (room, user, name, op) VALUES ('#rust', 'alice', 'alice', 1)");
    old.close();

    const db = await openChatDatabase(path);
    try {
      expect(userVersion(db)).toBe(SCHEMA_VERSION);
      expect(db.query<{ name: string; op: number }, []>("SELECT name, op FROM members").all()).toEqual([{ name: "alice", op: 1 }]);
      db.run("INSERT INTO messages (conv, sender, sender_name, text, ts) VALUES ('#rust', 'alice', 'alice', 'first words', 2)");
      expect(db.query<{ count: number }, []>("SELECT COUNT(*) AS count FROM messages").get()!.count).toBe(1);
    } finally {
      db.close();
    }
  });

  test("a version 3 database, indexed message by message, is upgraded to batched indexing: its messages stay found, and deleting one unindexes it", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    const old = databaseAtVersion(path, 3);
    for (const text of ["old lighthouse", "old harbour"]) {
      old.run("INSERT INTO messages (conv, room_name, sender, sender_name, text, ts) VALUES ('#lobby', '#lobby', 'alice', 'alice', ?, 1)", [text]);
    }
    old.close();

    const db = await openChatDatabase(path);
    try {
      expect(db.query<{ indexed_up_to: number }, []>("SELECT indexed_up_to FROM index_progress").get()!.indexed_up_to).toBe(2);
      const found = (word: string) => db.query<{ id: number }, [string]>("SELECT rowid AS id FROM messages_fts WHERE messages_fts MATCH ?").all(word);
      expect(found("lighthouse")).toEqual([{ id: 1 }]);
      db.run("DELETE FROM messages WHERE id = 1");
      expect(found("lighthouse")).toEqual([]);
      expect(found("harbour")).toEqual([{ id: 2 }]);
    } finally {
      db.close();
    }
  });

  test("a version 4 database with refs in a messages index is upgraded to the ref table: indexed refs are moved, the rest wait for the log's next step", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    const old = databaseAtVersion(path, 4);
    const insert = "INSERT INTO messages (conv, room_name, sender, sender_name, text, ts, ref) VALUES ('#lobby', '#lobby', 'alice', 'alice', ?, 1, ?)";
    old.run(insert, ["indexed with a ref", "r1"]);
    old.run(insert, ["indexed without one", null]);
    // What the version 4 log's index step did for the first two.
    old.run("INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages");
    old.run("UPDATE search_progress SET indexed_up_to = 2");
    old.run(insert, ["stored after the index", "r3"]);
    old.close();

    const db = await openChatDatabase(path);
    try {
      expect(userVersion(db)).toBe(SCHEMA_VERSION);
      expect(db.query("SELECT sender, ref, id FROM message_refs").all()).toEqual([{ sender: "alice", ref: "r1", id: 1 }]);
      expect(db.query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE name = 'messages_by_ref'").all()).toEqual([]);
      // Deleting an indexed message takes its ref with it.
      db.run("DELETE FROM messages WHERE id = 1");
      expect(db.query("SELECT id FROM message_refs").all()).toEqual([]);
    } finally {
      db.close();
    }
  });

  test("opening a current database again changes nothing and keeps its rows", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    const first = await openChatDatabase(path);
    first.run("INSERT INTO known_users (user, first_seen) VALUES ('alice', 1)");
    first.close();

    const second = await openChatDatabase(path);
    try {
      expect(userVersion(second)).toBe(SCHEMA_VERSION);
      expect(second.query<{ user: string }, []>("SELECT user FROM known_users").all()).toEqual([{ user: "alice" }]);
    } finally {
      second.close();
    }
  });

  test("refuses a file that is not a database with ChatDatabaseError and leaves it byte for byte", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    const content = "users.json was copied here by mistake\n".repeat(200);
    await writeFile(path, content, { mode: 0o600 });

    const opening = openChatDatabase(path);
    await expect(opening).rejects.toBeInstanceOf(ChatDatabaseError);
    await expect(opening).rejects.toThrow("left as it is");
    expect(await readFile(path, "utf8")).toBe(content);
    expect(existsSync(`${path}-wal`)).toBe(false);
  });

  test("refuses a database of a newer schema version and leaves it byte for byte", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    const newer = new Database(path);
    newer.exec("CREATE TABLE from_the_future (x INTEGER)");
    newer.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    newer.close();
    const before = await readFile(path);

    const opening = openChatDatabase(path);
    await expect(opening).rejects.toBeInstanceOf(ChatDatabaseError);
    await expect(opening).rejects.toThrow(`schema version ${SCHEMA_VERSION + 1}`);
    expect(Buffer.compare(await readFile(path), before)).toBe(0);
    expect(existsSync(`${path}-wal`)).toBe(false);
  });
});
