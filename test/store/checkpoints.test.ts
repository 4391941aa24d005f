// The chat database's checkpoints in a worker: the WAL is copied back and started over by the
// worker while the server's connection only commits, and closing hands checkpoints back.

import { describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { until } from "../helpers/chat-support.ts";
import { BackgroundCheckpoints, INLINE_CHECKPOINT_PAGES, SAFETY_NET_CHECKPOINT_PAGES } from "../../src/store/sqlite/checkpoints.ts";
import { openChatDatabase } from "../../src/store/sqlite/database.ts";
import { tempDir } from "../helpers/tmp.ts";

/** Rows of about two pages each (the text and its key): some 1,000 pages of WAL, below the safety net. */
const ROWS = 500;
const ROW_TEXT = "x".repeat(4_000);

const autocheckpoint = (db: { query: (sql: string) => { get: () => unknown } }) =>
  (db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint;

describe("BackgroundCheckpoints", () => {
  test("the worker checkpoints what the server's connection commits, so the WAL starts over while the server only writes", async () => {
    await using dir = await tempDir();
    const db = await openChatDatabase(dir.file("chat.db"));
    const checkpoints = await BackgroundCheckpoints.start(db);
    try {
      expect(autocheckpoint(db)).toBe(SAFETY_NET_CHECKPOINT_PAGES);
      // A WAL that starts over is cut back to nothing, so its size shows whether it did.
      db.exec("PRAGMA journal_size_limit = 0");
      const insert = db.prepare("INSERT INTO known_users (user, first_seen) VALUES (?, ?)");
      db.transaction(() => {
        for (let i = 0; i < ROWS; i++) insert.run(`${ROW_TEXT}${i}`, i);
      })();
      const walBytes = () => statSync(dir.file("chat.db-wal")).size;
      expect(walBytes()).toBeGreaterThan(ROWS * 4_000);
      // Each write starts the WAL over once everything in it was copied back, which only the worker does here.
      await until(() => {
        db.run("UPDATE known_users SET first_seen = first_seen + 1 WHERE rowid = 1");
        return walBytes() < 64 * 1024;
      }, "the WAL started over", 10_000, 50);
      expect(db.query("SELECT COUNT(*) AS count FROM known_users").get()).toEqual({ count: ROWS });
    } finally {
      await checkpoints.close();
      db.close();
    }
  });

  test("close ends the worker and gives the server's connection its own checkpoints back", async () => {
    await using dir = await tempDir();
    const db = await openChatDatabase(dir.file("chat.db"));
    const checkpoints = await BackgroundCheckpoints.start(db);
    await checkpoints.close();
    expect(autocheckpoint(db)).toBe(INLINE_CHECKPOINT_PAGES);
    // A second close is the first one's.
    await checkpoints.close();
    db.close();
  });
});
