// The message log: every accepted room message and dm gets a server-wide id, strictly
// increasing and never reused, and is kept for history, catch-up, offline delivery and search.
// `append` resolves once the message is durable, so the relay and the sender's ack come after.
// This file holds the interface and the in-memory log (`--message-log memory`: recent messages
// per conversation, bounded by count and size, gone at restart); the chat database holds the
// durable one.

import { ChatError } from "../protocol/errors.ts";
import type { DirectMessage, LoggedMessage } from "../protocol/frames.ts";
import { userKey } from "../protocol/validate.ts";

export interface StoredMessage {
  id: number;
  /** The room's key and name for a room message; absent for a dm. */
  room?: { key: string; name: string };
  /** Sender and (dms) recipient, as registered. */
  from: string;
  to?: string;
  text: string;
  ts: number;
}

/**
 * What a retry's ack needs of the first copy: its id and send time. Caches of recent refs keep
 * only this, not the text (100,000 messages of 4,096 characters held 416 MiB).
 */
export interface StoredRef {
  id: number;
  ts: number;
}

export interface Draft {
  room?: { key: string; name: string };
  from: string;
  to?: string;
  text: string;
  ts: number;
  /** The client's retry key: a second append with the same sender and ref is the same message. */
  ref?: string;
  /** A dm whose recipient was offline: delivered at their next login. */
  undelivered?: boolean;
  /**
   * The sending connection, which the relay skips (it gets its ack instead): published with the
   * message in cluster mode; the other logs ignore it.
   */
  connection?: number;
}

/** A room (its key), or the dms between two users. */
export type Conversation = { room: string } | { between: readonly [string, string] };

export interface PageQuery {
  /** Only messages with ids below / above these. */
  before?: number;
  after?: number;
  limit: number;
}

/** Messages oldest first; `more` when the query's bound cut some off. */
export interface Page {
  messages: StoredMessage[];
  more: boolean;
}

export interface SearchScope {
  /** Room keys to search in. */
  rooms: readonly string[];
  /** Whose dms (sent or received) to search in; none when absent. */
  dmsOf?: string;
}

export interface MessageLog {
  append(draft: Draft): Promise<StoredMessage>;
  /**
   * The newest id the log holds or ever held that this node knows of (0 for none yet): where
   * delivery starts, and a client's mark beyond it is from a log that forgot its ids.
   */
  lastId(): number;
  /**
   * Resolves once every append made so far has committed or failed, and what was done with
   * their results (the relay) has run: a moderation notice waits for it, so no message accepted
   * before a ban reaches the room after the ban's notice.
   */
  settled(): Promise<void>;
  /**
   * The message this sender sent with `ref` at `since` or later, if any (its id and time), settled
   * as its append is: a copy still waiting for its commit is durable only once that commit is.
   * Looked up at once, so a retried frame cannot overtake the frames sent after it.
   */
  findByRef(sender: string, ref: string, since: number): Promise<StoredRef> | undefined;
  /**
   * The same question where `findByRef` may not know every answer (a cluster: the ref may have
   * been stored through another node), asked before a retry is refused; slower, and it may wait.
   */
  findStoredRef(sender: string, ref: string, since: number): Promise<StoredRef | undefined>;
  page(conversation: Conversation, query: PageQuery): Promise<Page>;
  /** A user's dms, sent and received, within the query's bounds. */
  dms(user: string, query: PageQuery): Promise<Page>;
  /** Dms to the user stored while they were offline and not yet delivered, within the query's bounds. */
  undelivered(user: string, query: PageQuery): Promise<Page>;
  markDelivered(user: string, upTo: number): Promise<void>;
  get(id: number): Promise<StoredMessage | undefined>;
  /** Removes the message and its text everywhere (history, search). */
  remove(id: number): Promise<void>;
  /** Newest first; every query word must occur as a word (see `queryPhrases`). */
  search(words: readonly string[], scope: SearchScope, limit: number): Promise<StoredMessage[]>;
  /**
   * One retention step: removes messages older than `before` and, per room, all but the newest
   * `maxPerRoom`, a bounded number at a time; returns how many (0 once nothing is left to do).
   */
  trim(before: number, maxPerRoom: number): Promise<number>;
  dropRoom(room: string): Promise<void>;
  close(): Promise<void>;
}

/** A message as the wire shows it: `msg` in a room, `dm` between two users. */
export function messageFrame(message: StoredMessage): LoggedMessage {
  return message.room ? { type: "msg", id: message.id, room: message.room.name, from: message.from, text: message.text, ts: message.ts } : dmFrame(message);
}

export function dmFrame(message: StoredMessage): DirectMessage {
  return { type: "dm", id: message.id, from: message.from, to: message.to!, text: message.text, ts: message.ts };
}

/** What every dm conversation's key starts with; room keys start with "#". */
export const DM_CONVERSATION_PREFIX = "dm:";

/** The key of the dms between two users, whoever sends. */
export function dmConversationKey(a: string, b: string): string {
  const [first, second] = [userKey(a), userKey(b)].sort();
  return `${DM_CONVERSATION_PREFIX}${first}:${second}`;
}

export function conversationKey(conversation: Conversation): string {
  return "room" in conversation ? conversation.room : dmConversationKey(conversation.between[0], conversation.between[1]);
}

/** JSON punctuation, field names, type, ids and timestamp of one encoded frame, at most. */
const FRAME_OVERHEAD_BYTES = 112;

/**
 * An upper bound of a message's encoded size without encoding it: texts and names have no
 * control characters, so a UTF-16 unit costs at most 3 bytes.
 */
export function encodedSizeBound(message: StoredMessage): number {
  const names = message.from.length + (message.to?.length ?? 0) + (message.room?.name.length ?? 0);
  return FRAME_OVERHEAD_BYTES + names + message.text.length * 3;
}

export interface MemoryLogOptions {
  /** Messages kept per conversation. */
  perConversation: number;
  /** Encoded bytes kept per conversation. */
  perConversationBytes: number;
}

interface Kept extends StoredMessage {
  conversation: string;
  sender: string;
  ref?: string;
  undelivered?: boolean;
  bytes: number;
}

interface Ring {
  entries: Kept[];
  bytes: number;
}

/** The log in memory: ids restart at 1 with the process, search is a scan of what is kept. */
export class MemoryMessageLog implements MessageLog {
  private readonly conversations = new Map<string, Ring>();
  private readonly byId = new Map<number, Kept>();
  /** The newest message of each sender and ref, so a retry is found without a scan. */
  private readonly byRef = new Map<string, Kept>();
  private nextId = 1;

  constructor(private readonly options: MemoryLogOptions) {}

  async append(draft: Draft): Promise<StoredMessage> {
    const message = toStored(this.nextId++, draft);
    const conversation = draft.room ? draft.room.key : dmConversationKey(draft.from, draft.to!);
    const kept: Kept = { ...message, conversation, sender: userKey(draft.from), bytes: encodedSizeBound(message) };
    if (draft.ref !== undefined) {
      kept.ref = draft.ref;
      this.byRef.set(refKey(kept.sender, draft.ref), kept);
    }
    if (draft.undelivered) kept.undelivered = true;
    let ring = this.conversations.get(conversation);
    if (!ring) this.conversations.set(conversation, (ring = { entries: [], bytes: 0 }));
    ring.entries.push(kept);
    ring.bytes += kept.bytes;
    this.byId.set(kept.id, kept);
    while (ring.entries.length > this.options.perConversation || ring.bytes > this.options.perConversationBytes) {
      this.forget(ring.entries.shift()!, ring);
    }
    return message;
  }

  lastId(): number {
    return this.nextId - 1;
  }

  settled(): Promise<void> {
    // Appends resolve at once; their relays are microtasks, done before the next turn.
    return new Promise((resolve) => setImmediate(resolve));
  }

  findByRef(sender: string, ref: string, since: number): Promise<StoredRef> | undefined {
    const kept = this.byRef.get(refKey(userKey(sender), ref));
    return kept && kept.ts >= since ? Promise.resolve({ id: kept.id, ts: kept.ts }) : undefined;
  }

  async findStoredRef(sender: string, ref: string, since: number): Promise<StoredRef | undefined> {
    return this.findByRef(sender, ref, since);
  }

  async page(conversation: Conversation, query: PageQuery): Promise<Page> {
    const entries = this.conversations.get(conversationKey(conversation))?.entries ?? [];
    return pageOf(entries.filter((kept) => inRange(kept.id, query)), query);
  }

  async dms(user: string, query: PageQuery): Promise<Page> {
    return pageOf(this.dmsOf(user, (kept) => inRange(kept.id, query)), query);
  }

  async undelivered(user: string, query: PageQuery): Promise<Page> {
    const key = userKey(user);
    return pageOf(this.dmsOf(user, (kept) => kept.undelivered === true && userKey(kept.to!) === key && inRange(kept.id, query)), query);
  }

  async markDelivered(user: string, upTo: number): Promise<void> {
    const key = userKey(user);
    for (const kept of this.byId.values()) if (kept.id <= upTo && kept.to !== undefined && userKey(kept.to) === key) delete kept.undelivered;
  }

  async get(id: number): Promise<StoredMessage | undefined> {
    const kept = this.byId.get(id);
    return kept && strip(kept);
  }

  async remove(id: number): Promise<void> {
    const kept = this.byId.get(id);
    if (!kept) return;
    const ring = this.conversations.get(kept.conversation)!;
    ring.entries = ring.entries.filter((entry) => entry !== kept);
    this.forget(kept, ring);
  }

  async search(words: readonly string[], scope: SearchScope, limit: number): Promise<StoredMessage[]> {
    const rooms = new Set(scope.rooms);
    const user = scope.dmsOf === undefined ? undefined : userKey(scope.dmsOf);
    const phrases = queryPhrases(words);
    const found: StoredMessage[] = [];
    if (phrases.length === 0) return found;
    const ids = [...this.byId.keys()].sort((a, b) => b - a);
    for (const id of ids) {
      const kept = this.byId.get(id)!;
      const visible = kept.room ? rooms.has(kept.room.key) : user !== undefined && (kept.sender === user || userKey(kept.to!) === user);
      if (visible && containsPhrases(searchTokens(kept.text), phrases)) found.push(strip(kept));
      if (found.length === limit) break;
    }
    return found;
  }

  async trim(before: number, maxPerRoom: number): Promise<number> {
    let removed = 0;
    for (const [conversation, ring] of this.conversations) {
      const isRoom = !conversation.startsWith(DM_CONVERSATION_PREFIX);
      const firstKept = isRoom ? Math.max(0, ring.entries.length - maxPerRoom) : 0;
      const [gone, kept] = partition(ring.entries, (entry, index) => entry.ts < before || index < firstKept);
      ring.entries = kept;
      for (const entry of gone) this.forget(entry, ring);
      removed += gone.length;
    }
    return removed;
  }

  async dropRoom(room: string): Promise<void> {
    const ring = this.conversations.get(room);
    if (!ring) return;
    for (const kept of ring.entries) this.forget(kept, ring);
    this.conversations.delete(room);
  }

  async close(): Promise<void> {}

  /** Drops a message its ring no longer holds from the indexes and the ring's byte count. */
  private forget(kept: Kept, ring: Ring): void {
    ring.bytes -= kept.bytes;
    this.byId.delete(kept.id);
    if (kept.ref !== undefined && this.byRef.get(refKey(kept.sender, kept.ref)) === kept) this.byRef.delete(refKey(kept.sender, kept.ref));
  }

  private dmsOf(user: string, keep: (kept: Kept) => boolean): Kept[] {
    const key = userKey(user);
    const found: Kept[] = [];
    for (const kept of this.byId.values()) {
      if (kept.to !== undefined && (kept.sender === key || userKey(kept.to) === key) && keep(kept)) found.push(kept);
    }
    return found.sort((a, b) => a.id - b.id);
  }
}

function refKey(sender: string, ref: string): string {
  return `${sender}\n${ref}`;
}

function partition<T>(items: readonly T[], test: (item: T, index: number) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  items.forEach((item, index) => (test(item, index) ? yes : no).push(item));
  return [yes, no];
}

export function toStored(id: number, draft: Draft): StoredMessage {
  const message: StoredMessage = { id, from: draft.from, text: draft.text, ts: draft.ts };
  if (draft.room) message.room = draft.room;
  if (draft.to !== undefined) message.to = draft.to;
  return message;
}

function strip(kept: Kept): StoredMessage {
  const message: StoredMessage = { id: kept.id, from: kept.from, text: kept.text, ts: kept.ts };
  if (kept.room) message.room = kept.room;
  if (kept.to !== undefined) message.to = kept.to;
  return message;
}

function inRange(id: number, query: PageQuery): boolean {
  return (query.before === undefined || id < query.before) && (query.after === undefined || id > query.after);
}

/** Oldest first; with `after`, the first `limit` of them, else the last `limit`. */
function pageOf(entries: readonly StoredMessage[], query: PageQuery): Page {
  const more = entries.length > query.limit;
  const slice = query.after !== undefined ? entries.slice(0, query.limit) : entries.slice(Math.max(0, entries.length - query.limit));
  return { messages: slice.map((entry) => ("bytes" in entry ? strip(entry as Kept) : entry)), more };
}

/**
 * The words of a search query, or `bad_frame` if there are none. Control characters separate
 * words like spaces do: they are never in a message, and the full-text index cannot take them.
 */
export function searchWords(query: string): string[] {
  // A repeated word asks for nothing more, but each costs the index another pass.
  const words = [...new Set(query.split(/[\s\p{Cc}]+/u).filter((word) => word.length > 0))];
  if (words.length === 0) throw new ChatError("bad_frame", "The search query has no words");
  if (words.length > MAX_SEARCH_WORDS) throw new ChatError("bad_frame", `A search query has at most ${MAX_SEARCH_WORDS} different words`);
  return words;
}

/** Different words in one search; each is one more list of matches to intersect. */
export const MAX_SEARCH_WORDS = 16;

/**
 * How text is cut into searchable tokens, the way SQLite FTS5's default tokenizer (unicode61)
 * does, so both logs find the same messages: runs of letters and digits, in lower case, with
 * diacritics removed; everything else separates.
 */
function searchTokens(text: string): string[] {
  return text.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase().match(/[\p{L}\p{N}\p{Co}]+/gu) ?? [];
}

/**
 * The query's words as phrases of tokens that must each occur, in order and adjacent, for a
 * message to match ("hello-world" is the phrase hello world). A word with no tokens (a lone
 * quote or star) asks for nothing; a query of only such words matches nothing.
 */
function queryPhrases(words: readonly string[]): string[][] {
  return words.map(searchTokens).filter((phrase) => phrase.length > 0);
}

function containsPhrases(tokens: readonly string[], phrases: readonly string[][]): boolean {
  return phrases.every((phrase) => tokens.some((_, start) => phrase.every((token, offset) => tokens[start + offset] === token)));
}
