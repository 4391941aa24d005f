// A server's state on one machine: the JSON account store and the chat database (rooms, and the
// message log unless messages stay in memory), its WAL checkpoints in their worker. `serve` and
// the end-to-end tests open it the same way; the caller words the errors (StoreError,
// ChatDatabaseError) and says what a fallback to inline checkpoints means.

import type { Database } from "bun:sqlite";
import { JsonFileStore } from "../auth/store.ts";
import { BackgroundCheckpoints } from "./sqlite/checkpoints.ts";
import { openChatDatabase, type FsyncMode } from "./sqlite/database.ts";
import { SqliteMessageLog } from "./sqlite/message-log.ts";
import { SqliteRooms } from "./sqlite/rooms.ts";

export interface EmbeddedOptions {
  accounts: string;
  chatDb: string;
  fsync?: FsyncMode;
  /** `memory`: messages are kept in memory only (no message log in the database). */
  messageLog: "db" | "memory";
  /** The checkpoints run on the event loop after all: why (the worker did not start, or failed). */
  checkpointsInline(reason: string): void;
}

export interface EmbeddedState {
  store: JsonFileStore;
  rooms: SqliteRooms;
  messageLog: SqliteMessageLog | undefined;
  /** Ends the checkpoint worker; the server closes the store, rooms and log itself. */
  close(): Promise<void>;
}

export async function openEmbedded(options: EmbeddedOptions): Promise<EmbeddedState> {
  const store = await JsonFileStore.open(options.accounts);
  let db: Database | undefined;
  try {
    db = await openChatDatabase(options.chatDb, options.fsync);
    const rooms = SqliteRooms.load(db);
    const messageLog = options.messageLog === "db" ? new SqliteMessageLog(db) : undefined;
    const checkpoints = await BackgroundCheckpoints.start(db, options.checkpointsInline).catch((error: Error) => void options.checkpointsInline(error.message));
    return { store, rooms, messageLog, close: async () => checkpoints?.close() };
  } catch (error) {
    db?.close();
    await store.close();
    throw error;
  }
}
