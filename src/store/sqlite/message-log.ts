// The durable message log in the chat database. Appends made in one event-loop turn are
// committed together in one transaction (group commit) at the end of the turn, and only then
// resolve: nothing is relayed or acknowledged before it is on disk. Ids come from a counter
// that starts above everything the database ever held (AUTOINCREMENT's sequence), so an id is
// never used twice, even for a batch that a crash or a full disk kept from committing.

import type { Database, Statement } from "bun:sqlite";
import {
  conversationKey,
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
  resolve(message: StoredMessage): void;
  reject(error: Error): void;
}

/** Rows deleted per retention step, so one step never holds the writer for long. */
const TRIM_BATCH_ROWS = 1_000;

const COLUMNS = "id, conv, room_name, sender_name, recipient_name, text, ts";

export class SqliteMessageLog implements MessageLog {
  private nextId: number;
  private pending: Pending[] = [];
  private readonly insert: Statement;
  private readonly commitBatch: (batch: Pending[]) => void;

  constructor(private readonly db: Database) {
    const sequence = db.query<{ seq: number }, []>("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").get()?.seq ?? 0;
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
    const message = toStored(this.nextId++, draft);
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => this.commit());
      this.pending.push({ message, draft, resolve, reject });
    });
  }

  private commit(): void {
    const batch = this.pending;
    this.pending = [];
    try {
      this.commitBatch(batch);
    } catch (error) {
      const refusal = unavailable(error);
      for (const entry of batch) entry.reject(refusal);
      return;
    }
    for (const entry of batch) entry.resolve(entry.message);
  }

  findByRef(sender: string, ref: string, since: number): StoredMessage | undefined {
    const key = userKey(sender);
    // A retry may arrive while the first copy waits for its commit.
    const waiting = this.pending.find((entry) => entry.draft.ref === ref && userKey(entry.draft.from) === key && entry.draft.ts >= since);
    if (waiting) return waiting.message;
    const row = this.db
      .query<MessageRow, [string, string, number]>(`SELECT ${COLUMNS} FROM messages WHERE sender = ? AND ref = ? AND ts >= ? ORDER BY id DESC LIMIT 1`)
      .get(key, ref, since);
    return row ? fromRow(row) : undefined;
  }

  async page(conversation: Conversation, query: PageQuery): Promise<Page> {
    return this.pageWhere("conv = ?", [conversationKey(conversation)], query);
  }

  async dmsAfter(user: string, after: number, limit: number): Promise<Page> {
    const key = userKey(user);
    return this.pageWhere("recipient IS NOT NULL AND (recipient = ? OR sender = ?)", [key, key], { after, limit });
  }

  async undelivered(user: string, limit: number): Promise<Page> {
    return this.pageWhere("recipient = ? AND delivered = 0", [userKey(user)], { after: 0, limit });
  }

  async markDelivered(user: string, upTo: number): Promise<void> {
    this.write(() => this.db.run("UPDATE messages SET delivered = 1 WHERE recipient = ? AND delivered = 0 AND id <= ?", [userKey(user), upTo]));
  }

  async get(id: number): Promise<StoredMessage | undefined> {
    const row = this.db.query<MessageRow, [number]>(`SELECT ${COLUMNS} FROM messages WHERE id = ?`).get(id);
    return row ? fromRow(row) : undefined;
  }

  async remove(id: number): Promise<void> {
    this.write(() => this.db.run("DELETE FROM messages WHERE id = ?", [id]));
  }

  async search(words: readonly string[], scope: SearchScope, limit: number): Promise<StoredMessage[]> {
    const key = scope.dmsOf === undefined ? null : userKey(scope.dmsOf);
    const rows = this.db
      .query<MessageRow, [string, string, string | null, string | null, number]>(
        `SELECT ${COLUMNS} FROM messages
         WHERE id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)
           AND (conv IN (SELECT value FROM json_each(?)) OR (recipient IS NOT NULL AND (recipient = ? OR sender = ?)))
         ORDER BY id DESC LIMIT ?`,
      )
      .all(matchExpression(words), JSON.stringify(scope.rooms), key, key, limit);
    return rows.map(fromRow);
  }

  async trim(before: number, maxPerRoom: number): Promise<number> {
    let removed = this.write(
      () =>
        this.db.run(`DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE ts < ? ORDER BY id LIMIT ${TRIM_BATCH_ROWS})`, [before]).changes,
    );
    const crowded = this.db
      .query<{ conv: string; count: number }, [number]>("SELECT conv, COUNT(*) AS count FROM messages WHERE room_name IS NOT NULL GROUP BY conv HAVING count > ?")
      .all(maxPerRoom);
    for (const { conv, count } of crowded) {
      const excess = Math.min(count - maxPerRoom, TRIM_BATCH_ROWS);
      removed += this.write(
        () => this.db.run("DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE conv = ? ORDER BY id LIMIT ?)", [conv, excess]).changes,
      );
    }
    return removed;
  }

  async dropRoom(room: string): Promise<void> {
    this.write(() => this.db.run("DELETE FROM messages WHERE conv = ?", [room]));
  }

  async close(): Promise<void> {
    if (this.pending.length > 0) this.commit();
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
