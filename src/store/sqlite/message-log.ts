// The durable message log in the chat database. Appends made in one event-loop turn are
// committed together in one transaction (group commit) at the end of the turn, and only then
// resolve: nothing is relayed or acknowledged before it is on disk. The search index and the ref
// index follow in batches (the search index is brought up to date before every search, and refs
// not yet indexed are few and scanned), and recent refs are looked up in memory (those evicted
// from it in a filter that rules out most new refs without a query), so a message costs the
// commit little more than its row. Ids come from a counter
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
  type StoredRef,
} from "../../core/message-log.ts";
import { ChatError } from "../../protocol/errors.ts";
import { userKey } from "../../protocol/validate.ts";
import { unreadableDatabase } from "./database.ts";
import { RefFilter } from "./ref-filter.ts";

/** A stored message as its row holds it (the importer into a cluster reads these too). */
export interface MessageRow {
  id: number;
  conv: string;
  room_name: string | null;
  sender_name: string;
  recipient_name: string | null;
  text: string;
  ts: number;
}

/** A ref as the cache is filled from the database. */
interface RefRow extends StoredRef {
  sender: string;
  ref: string;
}

interface Pending {
  message: StoredMessage;
  draft: Draft;
  /** The draft's sender and ref as one key (`refKey`), when it has a ref. */
  cacheKey: string | undefined;
  /** Settles with the commit: what the append (and any retry of its ref meanwhile) waits for. */
  stored: PromiseWithResolvers<StoredMessage>;
}

/**
 * Rows one retention step deletes at most (with their index entries), so that a step holds the
 * writer, and the relay, for milliseconds; the server repeats steps until nothing is left.
 */
export const TRIM_BATCH_ROWS = 500;
/** Messages per INSERT statement in a commit (11 parameters each, well under SQLite's limit). */
const INSERT_ROWS = 50;
/** Messages added to the search and ref indexes in one step; a step holds the event loop a few ms. */
export const INDEX_BATCH_ROWS = 1_000;
/** How long a stored message may wait for the indexes when fewer than a batch are waiting. */
const INDEX_DELAY_MS = 500;
/** Recent refs kept in memory for retries; a lookup for an older one may ask the database. */
export const REF_CACHE_ENTRIES = 100_000;
/** Rows the first ref lookup reads back at most, per cache entry. */
const REF_LOAD_ROWS_PER_ENTRY = 4;

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
  private readonly inserts = new Map<number, Statement>();
  private indexedUpTo: number;
  private indexTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Committed messages that carry a ref, by sender and ref; filled from the database on the
   * first lookup. A miss here is trusted for refs sent since `refsLoadedFrom` unless the ref
   * may have been evicted (`evictedRefs`); other lookups ask the database.
   */
  private recentRefs: Map<string, StoredRef> | undefined;
  /**
   * The keys of `recentRefs` as they were remembered, from `refOrderHead` on: the order of
   * eviction. Kept apart because finding a Map's oldest entry after many deletions from its
   * front walks over all of them (31 µs an eviction at 100,000 entries, measured).
   */
  private refOrder: string[] = [];
  private refOrderHead = 0;
  private refsLoadedFrom = Number.POSITIVE_INFINITY;
  private readonly evictedRefs = new RefFilter();
  private readonly commitBatch: (batch: Pending[]) => void;

  /** Reads where the log stands; a database too damaged for that is a ChatDatabaseError. */
  constructor(
    private readonly db: Database,
    private readonly refCacheEntries = REF_CACHE_ENTRIES,
  ) {
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
    this.indexedUpTo = db.query<{ indexed_up_to: number }, []>("SELECT indexed_up_to FROM index_progress").get()!.indexed_up_to;
    this.commitBatch = db.transaction((batch: Pending[]) => {
      // Several rows per INSERT: one call into SQLite for up to INSERT_ROWS messages.
      for (let start = 0; start < batch.length; start += INSERT_ROWS) {
        const rows = batch.slice(start, start + INSERT_ROWS);
        const values: Array<string | number | null> = [];
        for (const { message, draft } of rows) {
          values.push(
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
        this.insertStatement(rows.length).run(...values);
      }
    });
  }

  /** The INSERT of `rows` messages, prepared once per row count. */
  private insertStatement(rows: number): Statement {
    let statement = this.inserts.get(rows);
    if (!statement) {
      const placeholders = Array.from({ length: rows }, () => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ");
      statement = this.db.prepare(
        `INSERT INTO messages (id, conv, room_name, sender, sender_name, recipient, recipient_name, text, ts, ref, delivered) VALUES ${placeholders}`,
      );
      this.inserts.set(rows, statement);
    }
    return statement;
  }

  append(draft: Draft): Promise<StoredMessage> {
    const key = draft.ref === undefined ? undefined : refKey(userKey(draft.from), draft.ref);
    const entry: Pending = { message: toStored(this.nextId++, draft), draft, cacheKey: key, stored: Promise.withResolvers() };
    if (this.pending.length === 0) setImmediate(() => this.commit());
    this.pending.push(entry);
    if (key !== undefined) this.pendingRefs.set(key, entry);
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
    for (const { message, cacheKey } of batch) {
      if (message.room) this.roomCounts.set(message.room.key, (this.roomCounts.get(message.room.key) ?? 0) + 1);
      if (cacheKey !== undefined) this.rememberRef(cacheKey, { id: message.id, ts: message.ts });
    }
    this.committedUpTo = batch.at(-1)!.message.id;
    this.scheduleIndexing();
    for (const entry of batch) entry.stored.resolve(entry.message);
  }

  private scheduleIndexing(): void {
    if (this.committedUpTo - this.indexedUpTo >= INDEX_BATCH_ROWS) {
      clearTimeout(this.indexTimer);
      this.indexTimer = undefined;
      setImmediate(() => this.indexStep());
    } else {
      this.indexTimer ??= setTimeout(() => {
        this.indexTimer = undefined;
        this.indexStep();
      }, INDEX_DELAY_MS);
    }
  }

  /** Adds up to a batch of stored messages to the search and ref indexes; true if more are waiting. */
  private indexStep(): boolean {
    if (this.indexedUpTo >= this.committedUpTo) return false;
    const upTo = Math.min(this.committedUpTo, this.indexedUpTo + INDEX_BATCH_ROWS);
    try {
      this.write(() =>
        this.db.transaction(() => {
          const range = [this.indexedUpTo, upTo];
          this.db.run("INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages WHERE id > ? AND id <= ?", range);
          this.db.run("INSERT INTO message_refs (sender, ref, id) SELECT sender, ref, id FROM messages WHERE id > ? AND id <= ? AND ref IS NOT NULL", range);
          this.db.run("UPDATE index_progress SET indexed_up_to = ?", [upTo]);
        })(),
      );
    } catch {
      // A full disk: the messages stay stored, and the next commit or search tries again.
      return false;
    }
    this.indexedUpTo = upTo;
    const more = upTo < this.committedUpTo;
    if (more) this.scheduleIndexing();
    return more;
  }

  private rememberRef(key: string, stored: StoredRef): void {
    const refs = this.recentRefs;
    if (!refs) return;
    refs.set(key, stored);
    this.refOrder.push(key);
    while (refs.size > this.refCacheEntries) {
      const oldestKey = this.refOrder[this.refOrderHead++]!;
      // Undefined for a key remembered again later and evicted at its first place in the order.
      const oldest = refs.get(oldestKey);
      if (oldest === undefined) continue;
      refs.delete(oldestKey);
      this.evictedRefs.add(oldestKey, oldest.ts);
    }
    if (this.refOrderHead > this.refCacheEntries) {
      this.refOrder = this.refOrder.slice(this.refOrderHead);
      this.refOrderHead = 0;
    }
  }

  /** Loads the newest refs sent since `since` into memory, once. */
  private loadRefs(since: number): Map<string, StoredRef> {
    // Reading back until the window's start could mean the whole log (a quiet window on a large
    // one: 58 ms a million rows); past this floor the database answers instead.
    const floor = Math.max(0, this.committedUpTo - this.refCacheEntries * REF_LOAD_ROWS_PER_ENTRY);
    // Newest first: the first `refCacheEntries` go into the cache; the older ones of the window go
    // into the filter, as if evicted, or every new ref would be asked of the database until the
    // window had passed them (25–40 µs a say, for up to 10 minutes after a busy server's restart).
    const newest: RefRow[] = [];
    const inWindow = this.db
      .query<RefRow, [number, number]>("SELECT id, ts, sender, ref FROM messages WHERE id > ? AND ref IS NOT NULL AND ts >= ? ORDER BY id DESC")
      .iterate(floor, since);
    for (const row of inWindow) {
      if (newest.length < this.refCacheEntries) newest.push(row);
      else this.evictedRefs.add(refKey(row.sender, row.ref), row.ts);
    }
    const refs = new Map<string, StoredRef>();
    for (const { id, ts, sender, ref } of newest.reverse()) {
      const key = refKey(sender, ref);
      refs.set(key, { id, ts });
      this.refOrder.push(key);
    }
    this.refsLoadedFrom = this.completeFrom(floor, since);
    this.recentRefs = refs;
    return refs;
  }

  /** The send time from which every ref is among the rows above `floor` (ids follow send time). */
  private completeFrom(floor: number, since: number): number {
    if (floor === 0) return since;
    const first = this.db.query<{ ts: number }, [number]>("SELECT ts FROM messages WHERE id > ? ORDER BY id LIMIT 1").get(floor);
    return first && first.ts >= since ? first.ts + 1 : since;
  }

  findByRef(sender: string, ref: string, since: number): Promise<StoredRef> | undefined {
    const senderKey = userKey(sender);
    // One string for the three look-ups: each new string is hashed again.
    const key = refKey(senderKey, ref);
    const waiting = this.pendingRefs.get(key);
    if (waiting && waiting.draft.ts >= since) return waiting.stored.promise;
    const recent = (this.recentRefs ?? this.loadRefs(since)).get(key);
    if (recent && recent.ts >= since) return Promise.resolve(recent);
    if (since >= this.refsLoadedFrom && !this.evictedRefs.mightHold(key, since)) return undefined;
    // The newest copy first: among the rows not yet indexed, then through the index.
    const found =
      this.db
        .query<StoredRef, [number, string, string, number]>("SELECT id, ts FROM messages WHERE id > ? AND sender = ? AND ref = ? AND ts >= ? ORDER BY id DESC LIMIT 1")
        .get(this.indexedUpTo, senderKey, ref, since) ??
      this.db
        .query<StoredRef, [string, string, number]>(
          `SELECT m.id, m.ts FROM message_refs r JOIN messages m ON m.id = r.id
           WHERE r.sender = ? AND r.ref = ? AND m.ts >= ? ORDER BY r.id DESC LIMIT 1`,
        )
        .get(senderKey, ref, since);
    return found ? Promise.resolve(found) : undefined;
  }

  /** `findByRef` knows every answer here: the database is this server's alone. */
  async findStoredRef(sender: string, ref: string, since: number): Promise<StoredRef | undefined> {
    return this.findByRef(sender, ref, since);
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
    // Whatever is stored is searchable: the index catches up first.
    while (this.indexStep());
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
    this.deleteCounted("DELETE FROM messages WHERE conv = ?", [room]);
    this.roomCounts.delete(room);
  }

  async close(): Promise<void> {
    if (this.pending.length > 0) this.commit();
    clearTimeout(this.indexTimer);
    this.indexTimer = undefined;
    while (this.indexStep());
  }

  /**
   * Runs a DELETE and takes what it removed off the room counts and the ref cache (a removed
   * message's ref is free again); returns how many rows.
   */
  private deleteCounted(sql: string, params: Array<string | number>): number {
    const gone = this.write(() =>
      this.db.query<{ id: number; conv: string; sender: string; ref: string | null }, Array<string | number>>(`${sql} RETURNING id, conv, sender, ref`).all(...params),
    );
    for (const { id, conv, sender, ref } of gone) {
      // Only this message's entry: a later message may carry the same ref again.
      const key = ref === null ? undefined : refKey(sender, ref);
      if (key !== undefined && this.recentRefs?.get(key)?.id === id) this.recentRefs.delete(key);
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
