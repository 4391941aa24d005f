// The chat database file (`data/chat.db`, bun:sqlite in WAL mode): opening it safely and bringing
// its schema up to date through numbered migrations recorded in `PRAGMA user_version`. A file
// that is not a database, or one written by a newer version, stops start-up and is never
// overwritten.

import { Database } from "bun:sqlite";
import { closeSync, existsSync, openSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";

/** Start-up problems with the chat database: the operator reads them as they are. */
export class ChatDatabaseError extends Error {
  override name = "ChatDatabaseError";
}

/** A database that SQLite could not read at start-up (`error`), which is left alone. */
export function unreadableDatabase(path: string, error: unknown): ChatDatabaseError {
  return new ChatDatabaseError(`The chat database ${path} is unreadable (${(error as Error).message}); it was left as it is`);
}

/**
 * Each entry moves the schema from version i to i + 1, inside one transaction. Never edit a
 * released entry: add the next one (and a test that upgrades a file of the previous version).
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE rooms (
     key TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     topic TEXT NOT NULL DEFAULT '',
     invite_only INTEGER NOT NULL DEFAULT 0,
     created_by TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     empty_since INTEGER
   ) STRICT;
   CREATE TABLE members (
     room TEXT NOT NULL REFERENCES rooms(key) ON DELETE CASCADE,
     user TEXT NOT NULL,
     name TEXT NOT NULL,
     op INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (room, user)
   ) STRICT;
   CREATE INDEX members_by_user ON members(user);
   CREATE TABLE restrictions (
     room TEXT NOT NULL REFERENCES rooms(key) ON DELETE CASCADE,
     user TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('ban', 'mute')),
     until INTEGER,
     by TEXT NOT NULL,
     reason TEXT,
     PRIMARY KEY (room, user, kind)
   ) STRICT;
   CREATE TABLE invites (
     room TEXT NOT NULL REFERENCES rooms(key) ON DELETE CASCADE,
     user TEXT NOT NULL,
     PRIMARY KEY (room, user)
   ) STRICT;
   CREATE TABLE known_users (user TEXT PRIMARY KEY, first_seen INTEGER NOT NULL) STRICT;
   CREATE TABLE server_bans (user TEXT PRIMARY KEY, until INTEGER, by TEXT NOT NULL, reason TEXT) STRICT;`,
  // 2: the message log. `conv` is a room key or "dm:" and the two user keys in order; names are
  // kept as registered for display. AUTOINCREMENT keeps ids from ever being reused, even when
  // the newest message is deleted.
  `CREATE TABLE messages (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     conv TEXT NOT NULL,
     room_name TEXT,
     sender TEXT NOT NULL,
     sender_name TEXT NOT NULL,
     recipient TEXT,
     recipient_name TEXT,
     text TEXT NOT NULL,
     ts INTEGER NOT NULL,
     ref TEXT,
     delivered INTEGER NOT NULL DEFAULT 1
   ) STRICT;
   CREATE INDEX messages_by_conv ON messages(conv, id);
   CREATE INDEX messages_by_ts ON messages(ts);
   CREATE INDEX messages_by_ref ON messages(sender, ref) WHERE ref IS NOT NULL;
   CREATE INDEX messages_dms_to ON messages(recipient, id) WHERE recipient IS NOT NULL;
   CREATE INDEX messages_dms_from ON messages(sender, id) WHERE recipient IS NOT NULL;
   CREATE INDEX messages_undelivered ON messages(recipient, id) WHERE delivered = 0;
   CREATE VIRTUAL TABLE messages_fts USING fts5(text, content = 'messages', content_rowid = 'id');
   CREATE TRIGGER messages_indexed AFTER INSERT ON messages BEGIN
     INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
   END;
   CREATE TRIGGER messages_unindexed AFTER DELETE ON messages BEGIN
     INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
   END;`,
  // 3: a deleted message's words are wiped from the search index's pages too, not only unlinked
  // (the table's pages are wiped by PRAGMA secure_delete, set on every open).
  `INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);`,
  // 4: messages are added to the search index in batches after they are stored, not one by one
  // in the commit (a batch costs a seventh as much). `search_progress` says how far the index
  // has come; a message deleted before it was indexed has nothing to remove from the index.
  `CREATE TABLE search_progress (indexed_up_to INTEGER NOT NULL) STRICT;
   INSERT INTO search_progress (indexed_up_to) SELECT COALESCE(MAX(id), 0) FROM messages;
   DROP TRIGGER messages_indexed;
   DROP TRIGGER messages_unindexed;
   CREATE TRIGGER messages_unindexed AFTER DELETE ON messages
     WHEN old.id <= (SELECT indexed_up_to FROM search_progress) BEGIN
     INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
   END;`,
  // 5: refs are indexed in the same batches as the search, in a table of their own: an index on
  // the messages table took a page per sender into every commit (half of a message's cost).
  // Refs above `indexed_up_to` are found by scanning those few newest rows.
  `CREATE TABLE message_refs (
     sender TEXT NOT NULL,
     ref TEXT NOT NULL,
     id INTEGER NOT NULL,
     PRIMARY KEY (sender, ref, id)
   ) STRICT, WITHOUT ROWID;
   INSERT INTO message_refs (sender, ref, id)
     SELECT sender, ref, id FROM messages WHERE ref IS NOT NULL AND id <= (SELECT indexed_up_to FROM search_progress);
   DROP INDEX messages_by_ref;
   DROP TRIGGER messages_unindexed;
   ALTER TABLE search_progress RENAME TO index_progress;
   CREATE TRIGGER messages_unindexed AFTER DELETE ON messages
     WHEN old.id <= (SELECT indexed_up_to FROM index_progress) BEGIN
     INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
     DELETE FROM message_refs WHERE sender = old.sender AND ref = old.ref AND id = old.id;
   END;`,
];

/**
 * How much a commit waits for the disk. `normal` (WAL, synchronous=NORMAL): a committed
 * transaction survives the process being killed, but a power loss may take the last ones.
 * `always` (synchronous=FULL): every commit is on the platter before it returns.
 */
export type FsyncMode = "normal" | "always";

export const SCHEMA_VERSION = MIGRATIONS.length;

/** How long a write waits for another connection's lock before failing. */
const BUSY_TIMEOUT_MS = 5_000;

/** Opens (creating it 0600 in a 0700 directory if missing) and migrates the chat database. */
export async function openChatDatabase(path: string, fsync: FsyncMode = "normal"): Promise<Database> {
  const absolute = resolve(path);
  await mkdir(dirname(absolute), { recursive: true, mode: 0o700 });
  // SQLite creates its -wal and -shm files with the database file's mode: make that 0600 first.
  if (!existsSync(absolute)) closeSync(openSync(absolute, "a", 0o600));
  let db: Database;
  try {
    db = new Database(absolute, { strict: true });
  } catch (error) {
    throw new ChatDatabaseError(`Cannot open the chat database ${absolute}: ${(error as Error).message}`);
  }
  try {
    // Checked before anything writes: switching to WAL rewrites the header of a newer file.
    refuseNewerSchema(db, absolute);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA foreign_keys = ON");
    // A deleted (or expired) message's text is overwritten on disk, not left in free pages.
    db.exec("PRAGMA secure_delete = ON");
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.exec(`PRAGMA synchronous = ${fsync === "always" ? "FULL" : "NORMAL"}`);
    migrate(db);
  } catch (error) {
    db.close();
    if (error instanceof ChatDatabaseError) throw error;
    throw unreadableDatabase(absolute, error);
  }
  return db;
}

function schemaVersion(db: Database): number {
  return db.query<{ user_version: number }, []>("PRAGMA user_version").get()!.user_version;
}

function refuseNewerSchema(db: Database, path: string): void {
  const version = schemaVersion(db);
  if (version > SCHEMA_VERSION) {
    throw new ChatDatabaseError(`The chat database ${path} has schema version ${version}, newer than this tlschat (${SCHEMA_VERSION}); it was left as it is`);
  }
}

function migrate(db: Database): void {
  for (let next = schemaVersion(db); next < SCHEMA_VERSION; next++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[next]!);
      db.exec(`PRAGMA user_version = ${next + 1}`);
    })();
  }
}
