// The durable message log in the chat database. Appends made in one event-loop turn are
// committed together in one transaction (group commit) at the end of the turn, and only then
// resolve: nothing is relayed or acknowledged before it is on disk. Ids come from a counter
// that starts above everything the database ever held (AUTOINCREMENT's sequence), so no id that
// was ever relayed is used again: a batch a full disk refused leaves a gap, and one a crash cut
// off was never seen by anyone.

import type { Database, Statement } from "bun:sqlite";
import {
  conversationKey,
  DM_CONVERSATION_PREFIX,
  dmConversationKey,
  toStored,
  type Conversation,
  type Draft,
  type MessageLog,
  type Page,
  type PageQuery,
  type SearchScope,
  type StoredMessage,
} from "../../core/message-log.ts";
import { ChatError } from "../../protocol/errors.ts";
import { userKey } from "../../protocol/validate.ts";
import { unreadableDatabase } from "./database.ts";

interface MessageRow {
  id: number;
  conv: string;
  room_name: string | null;
  sender_name: string;
  recipient_name: string | null;
  text: string;
  ts: number;
}

interface Pending {
  message: StoredMessage;
  draft: Draft;
  /** Settles with the commit: what the append (and any retry of its ref meanwhile) waits for. */
  stored: PromiseWithResolvers<StoredMessage>;
}

/**
 * Rows one retention step deletes at most (with their index entries), so that a step holds the
 * writer, and the relay, for milliseconds; the server repeats steps until nothing is left.
 */
export const TRIM_BATCH_ROWS = 500;

const COLUMNS = "id, conv, room_name, sender_name, recipient_name, text, ts";
const PREFIXED_COLUMNS = COLUMNS.split(", ").map((column) => `m.${column}`).join(", ");

export class SqliteMessageLog implements MessageLog {
  private nextId: number;
  private committedUpTo: number;
  private pending: Pending[] = [];
  private settledWaiters: Array<() => void> = [];
  /** The pending appends by sender and ref, for a retry that comes before the commit. */
  private pendingRefs = new Map<string, Pending>();
  /**
   * Messages per room, kept here so a retention step finds the crowded rooms without counting
   * the whole log; counted once at start from the conversation index.
   */
  private readonly roomCounts: Map<string, number>;
  private readonly insert: Statement;
  private readonly commitBatch: (batch: Pending[]) => void;

  /** Reads where the log stands; a database too damaged for that is a ChatDatabaseError. */
  constructor(private readonly db: Database) {
    let sequence: number;
    try {
      sequence = db.query<{ seq: number }, []>("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").get()?.seq ?? 0;
      this.roomCounts = new Map(
        db
          .query<{ conv: string; count: number }, [string]>("SELECT conv, COUNT(*) AS count FROM messages WHERE conv NOT LIKE ? GROUP BY conv")
          .all(`${DM_CONVERSATION_PREFIX}%`)
          .map(({ conv, count }) => [conv, count]),
      );
    } catch (error) {
      throw unreadableDatabase(db.filename, error);
    }
    this.committedUpTo = sequence;
    this.nextId = sequence + 1;
    this.insert = db.prepare(
      `INSERT INTO messages (id, conv, room_name, sender, sender_name, recipient, recipient_name, text, ts, ref, delivered)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.commitBatch = db.transaction((batch: Pending[]) => {
      for (const { message, draft } of batch) {
        this.insert.run(
          message.id,
          draft.room ? draft.room.key : dmConversationKey(draft.from, draft.to!),
          draft.room?.name ?? null,
          userKey(draft.from),
          draft.from,
          draft.to === undefined ? null : userKey(draft.to),
          draft.to ?? null,
          draft.text,
          draft.ts,
          draft.ref ?? null,
          draft.undelivered ? 0 : 1,
        );
      }
    });
  }

  append(draft: Draft): Promise<StoredMessage> {
    const entry: Pending = { message: toStored(this.nextId++, draft), draft, stored: Promise.withResolvers() };
    if (this.pending.length === 0) setImmediate(() => this.commit());
    this.pending.push(entry);
    if (draft.ref !== undefined) this.pendingRefs.set(refKey(userKey(draft.from), draft.ref), entry);
    return entry.stored.promise;
  }

  lastId(): number {
    return this.committedUpTo;
  }

  settled(): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  private commit(): void {
    const batch = this.pending;
    // close() may have committed the turn's batch before the turn ended.
    if (batch.length === 0) return;
    this.pending = [];
    this.pendingRefs = new Map();
    const waiters = this.settledWaiters;
    this.settledWaiters = [];
    // After the next turn begins, every reaction to this batch (relays, acks) has run.
    if (waiters.length > 0) setImmediate(() => waiters.forEach((resolve) => resolve()));
    try {
      this.commitBatch(batch);
    } catch (error) {
      const refusal = unavailable(error);
      for (const entry of batch) entry.stored.reject(refusal);
      return;
    }
    for (const { message } of batch) {
      if (message.room) this.roomCounts.set(message.room.key, (this.roomCounts.get(message.room.key) ?? 0) + 1);
    }
    this.committedUpTo = batch.at(-1)!.message.id;
    for (const entry of batch) entry.stored.resolve(entry.message);
  }

  findByRef(sender: string, ref: string, since: number): Promise<StoredMessage> | undefined {
    const key = userKey(sender);
    const waiting = this.pendingRefs.get(refKey(key, ref));
    if (waiting && waiting.draft.ts >= since) return waiting.stored.promise;
    const row = this.db
      .query<MessageRow, [string, string, number]>(`SELECT ${COLUMNS} FROM messages WHERE sender = ? AND ref = ? AND ts >= ? ORDER BY id DESC LIMIT 1`)
      .get(key, ref, since);
    return row ? Promise.resolve(fromRow(row)) : undefined;
  }

  async page(conversation: Conversation, query: PageQuery): Promise<Page> {
    return this.pageWhere("conv = ?", [conversationKey(conversation)], query);
  }

  async dms(user: string, query: PageQuery): Promise<Page> {
    const key = userKey(user);
    return this.pageWhere("recipient IS NOT NULL AND (recipient = ? OR sender = ?)", [key, key], query);
  }

  async undelivered(user: string, query: PageQuery): Promise<Page> {
    return this.pageWhere("recipient = ? AND delivered = 0", [userKey(user)], query);
  }

  async markDelivered(user: string, upTo: number): Promise<void> {
    this.write(() => this.db.run("UPDATE messages SET delivered = 1 WHERE recipient = ? AND delivered = 0 AND id <= ?", [userKey(user), upTo]));
  }

  async get(id: number): Promise<StoredMessage | undefined> {
    const row = this.db.query<MessageRow, [number]>(`SELECT ${COLUMNS} FROM messages WHERE id = ?`).get(id);
    return row ? fromRow(row) : undefined;
  }

  async remove(id: number): Promise<void> {
    this.deleteCounted("DELETE FROM messages WHERE id = ?", [id]);
  }

  async search(words: readonly string[], scope: SearchScope, limit: number): Promise<StoredMessage[]> {
    const key = scope.dmsOf === undefined ? null : userKey(scope.dmsOf);
    const rows = this.db
      .query<MessageRow, [string, string, string | null, string | null, number]>(
        // Walking the index newest first and joining each match stops at the limit; collecting
        // every match first (an IN subquery) cost seconds for a common word in a large log.
        `SELECT ${PREFIXED_COLUMNS} FROM messages_fts f JOIN messages m ON m.id = f.rowid
         WHERE messages_fts MATCH ?
           AND (m.conv IN (SELECT value FROM json_each(?)) OR (m.recipient IS NOT NULL AND (m.recipient = ? OR m.sender = ?)))
         ORDER BY f.rowid DESC LIMIT ?`,
      )
      .all(matchExpression(words), JSON.stringify(scope.rooms), key, key, limit);
    return rows.map(fromRow);
  }

  async trim(before: number, maxPerRoom: number): Promise<number> {
    // Oldest first along the timestamp index, so a step with nothing to remove reads nothing.
    let removed = this.deleteCounted("DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE ts < ? ORDER BY ts LIMIT ?)", [before, TRIM_BATCH_ROWS]);
    for (const [room, count] of this.roomCounts) {
      if (removed >= TRIM_BATCH_ROWS) break;
      if (count <= maxPerRoom) continue;
      const excess = Math.min(count - maxPerRoom, TRIM_BATCH_ROWS - removed);
      removed += this.deleteCounted("DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE conv = ? ORDER BY id LIMIT ?)", [room, excess]);
    }
    return removed;
  }

  async dropRoom(room: string): Promise<void> {
    this.write(() => this.db.run("DELETE FROM messages WHERE conv = ?", [room]));
    this.roomCounts.delete(room);
  }

  async close(): Promise<void> {
    if (this.pending.length > 0) this.commit();
  }

  /** Runs a DELETE and takes what it removed off the room counts; returns how many rows. */
  private deleteCounted(sql: string, params: Array<string | number>): number {
    const gone = this.write(() => this.db.query<{ conv: string }, Array<string | number>>(`${sql} RETURNING conv`).all(...params));
    for (const { conv } of gone) {
      const count = this.roomCounts.get(conv);
      if (count === undefined) continue;
      if (count > 1) this.roomCounts.set(conv, count - 1);
      else this.roomCounts.delete(conv);
    }
    return gone.length;
  }

  private pageWhere(where: string, params: Array<string | number>, query: PageQuery): Promise<Page> {
    const bounds: string[] = [];
    const values = [...params];
    if (query.before !== undefined) {
      bounds.push("id < ?");
      values.push(query.before);
    }
    if (query.after !== undefined) {
      bounds.push("id > ?");
      values.push(query.after);
    }
    const condition = [where, ...bounds].join(" AND ");
    // With `after`, the oldest messages past it; otherwise the newest (before `before`), shown oldest first.
    const order = query.after !== undefined ? "ASC" : "DESC";
    const rows = this.db
      .query<MessageRow, Array<string | number>>(`SELECT ${COLUMNS} FROM messages WHERE ${condition} ORDER BY id ${order} LIMIT ?`)
      .all(...values, query.limit + 1);
    const more = rows.length > query.limit;
    const kept = rows.slice(0, query.limit).map(fromRow);
    if (order === "DESC") kept.reverse();
    return Promise.resolve({ messages: kept, more });
  }

  private write<T>(work: () => T): T {
    try {
      return work();
    } catch (error) {
      throw unavailable(error);
    }
  }
}

function refKey(sender: string, ref: string): string {
  return `${sender}\n${ref}`;
}

function fromRow(row: MessageRow): StoredMessage {
  const message: StoredMessage = { id: row.id, from: row.sender_name, text: row.text, ts: row.ts };
  if (row.room_name !== null) message.room = { key: row.conv, name: row.room_name };
  if (row.recipient_name !== null) message.to = row.recipient_name;
  return message;
}

/**
 * The user's words as an FTS5 query that matches them as words, all of them: each word is a
 * quoted string, so FTS5 syntax inside it (quotes, NEAR, *, column filters) is only text.
 */
export function matchExpression(words: readonly string[]): string {
  return words.map((word) => `"${word.replaceAll('"', '""')}"`).join(" ");
}

function unavailable(error: unknown): ChatError {
  return new ChatError("store_unavailable", `The message log could not be written (${(error as Error).message})`);
}
