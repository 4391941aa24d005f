// queries: latency of `history before` and `search` on a log of 1,000,000 messages. Filling that
// many through the protocol would take most of the bench's budget, so the bench writes the chat
// database itself, once per run, with the server's own code (the schema's migrations, the room
// registry, the message log's appends in large group commits), then serves it with tlschat and
// asks one query at a time over TLS.

import { HISTORY_MAX_MESSAGES_PER_ROOM, HISTORY_RETENTION_MS } from "../../src/core/limits.ts";
import { LOBBY } from "../../src/protocol/validate.ts";
import { openChatDatabase } from "../../src/store/sqlite/database.ts";
import { SqliteMessageLog } from "../../src/store/sqlite/message-log.ts";
import { SqliteRooms } from "../../src/store/sqlite/rooms.ts";
import { ChatText } from "../lib/chat-text.ts";
import { terminateAll, type BenchClient } from "../lib/client.ts";
import { userName } from "../lib/proc.ts";
import { makeClients, startTlschat, type BenchContext } from "../lib/targets.ts";
import { BenchError, log, now, percentiles, Samples, waitUntil, withTimeout } from "../lib/util.ts";
import type { Metrics } from "./messages.ts";

export interface QueriesConfig {
  messages: number;
  /** The messages are spread evenly at random over this many rooms; the asking user is in all. */
  rooms: number;
  /** Authors u1..uN (names only: they never connect). */
  authors: number;
  vocabulary: number;
  minWords: number;
  maxWords: number;
  seed: number;
  /** Messages' timestamps are spread over this many days before the fill, inside the retention. */
  spanDays: number;
  /** Appends per group commit while filling. */
  fillBatch: number;
  /** Longest the fill may take, in ms (checked between batches). */
  fillTimeoutMs: number;
  /** Queries of each kind before measuring, not measured. */
  warmupQueries: number;
  historyQueries: number;
  searchQueries: number;
  /** Longest the measured queries of one kind may take in all, in ms; fewer are made past it. */
  queryBudgetMs: number;
  /** Longest one reply may take, in ms. */
  replyTimeoutMs: number;
}

export const QUERIES: QueriesConfig = {
  messages: 1_000_000,
  rooms: 10,
  authors: 200,
  vocabulary: 30_000,
  minWords: 4,
  maxWords: 16,
  seed: 11,
  spanDays: 30,
  fillBatch: 20_000,
  fillTimeoutMs: 180_000,
  warmupQueries: 50,
  historyQueries: 1_000,
  searchQueries: 500,
  queryBudgetMs: 45_000,
  replyTimeoutMs: 5_000,
};

const DAY_MS = 24 * 60 * 60_000;
/** The user who asks: a member of every room. */
const ASKER = userName(1);
/** Share of searches with two words (all of which must occur); the rest have one. */
const TWO_WORD_SHARE = 0.5;

const roomName = (room: number): string => `#log-${room}`;

/** A filled chat database, shared by the repetitions (each starts a new server on it). */
export interface QueryLog {
  path: string;
  messages: number;
  highestId: number;
  fillSeconds: number;
  text: ChatText;
}

export async function fillQueryLog(ctx: BenchContext, cfg = QUERIES): Promise<QueryLog> {
  const path = ctx.ws.newChatDb();
  const started = now();
  const db = await openChatDatabase(path);
  const rooms = SqliteRooms.load(db);
  const log = new SqliteMessageLog(db);
  const text = new ChatText({ vocabulary: cfg.vocabulary, minWords: cfg.minWords, maxWords: cfg.maxWords, seed: cfg.seed });
  let highestId = 0;
  try {
    const fillTime = Date.now();
    // As the server does on a new database: the lobby first, and a first login makes a member of it.
    await rooms.create(LOBBY, "", fillTime);
    await rooms.welcomeUser(ASKER, LOBBY, fillTime);
    const names = Array.from({ length: cfg.rooms }, (_, room) => roomName(room));
    for (const name of names) {
      await rooms.create(name, ASKER, fillTime);
      await rooms.addMember(name, ASKER);
    }
    const firstTs = fillTime - cfg.spanDays * DAY_MS;
    const tsStep = (cfg.spanDays * DAY_MS) / cfg.messages;
    for (let done = 0; done < cfg.messages; done += cfg.fillBatch) {
      if (now() - started > cfg.fillTimeoutMs) throw new BenchError(`filling the log took over ${cfg.fillTimeoutMs / 1000} s (${done} of ${cfg.messages} messages)`);
      const batch = [];
      for (let i = done; i < Math.min(cfg.messages, done + cfg.fillBatch); i++) {
        const name = names[Math.floor(text.random() * cfg.rooms)]!;
        const from = userName(1 + Math.floor(text.random() * cfg.authors));
        batch.push(log.append({ room: { key: name.toLowerCase(), name }, from, text: text.message(), ts: Math.floor(firstTs + i * tsStep) }));
      }
      // Appends made in one turn are one transaction; awaiting them all commits the batch.
      for (const message of await Promise.all(batch)) highestId = Math.max(highestId, message.id);
    }
  } finally {
    await log.close();
    await rooms.close();
  }
  return { path, messages: cfg.messages, highestId, fillSeconds: (now() - started) / 1000, text };
}

/**
 * One retention step as the server runs it every minute on its event loop, timed here in the
 * bench process on the same file with the server's code (nothing is old enough to go, so the
 * step only looks). No server may have the file open meanwhile.
 */
async function timeRetentionStep(path: string): Promise<number> {
  const db = await openChatDatabase(path);
  try {
    const log = new SqliteMessageLog(db);
    const started = now();
    await log.trim(Date.now() - HISTORY_RETENTION_MS, HISTORY_MAX_MESSAGES_PER_ROOM);
    return now() - started;
  } finally {
    db.close();
  }
}

/**
 * A new server on the filled log; the asker logs in (and gets each room's recent history), then
 * sends one query at a time and waits for its reply: `history before` a random id in a random
 * room (the default page of 100), then searches of one or two words drawn with the text's own
 * frequencies, over all the asker's rooms. Latency is from the write to the reply's arrival.
 */
export async function queries(ctx: BenchContext, queryLog: QueryLog, cfg = QUERIES): Promise<Metrics> {
  const retentionStepMs = await timeRetentionStep(queryLog.path);
  const target = await startTlschat(ctx, { chatDb: queryLog.path });
  let clients: BenchClient[] = [];
  let historyFrames = 0;
  let replied: ((at: number, count: number) => void) | undefined;
  try {
    clients = makeClients(1, {
      history: (_client, _room, entries, _more, at) => {
        historyFrames += 1;
        replied?.(at, entries.length);
      },
      search: (_client, found, at) => replied?.(at, found),
    });
    const [asker] = clients;
    await target.join(clients, 1);
    // The login's catch-up: one history frame for the lobby and each room.
    await waitUntil(() => historyFrames >= cfg.rooms + 1, cfg.replyTimeoutMs, "the login's history frames");

    const ask = async (send: () => void): Promise<{ ms: number; count: number }> => {
      const reply = new Promise<{ ms: number; count: number }>((resolve) => {
        const sentAt = now();
        replied = (at, count) => resolve({ ms: at - sentAt, count });
        send();
      });
      try {
        return await withTimeout(reply, cfg.replyTimeoutMs, "a query's reply");
      } finally {
        replied = undefined;
      }
    };
    const historyQuery = () => {
      const room = roomName(Math.floor(queryLog.text.random() * cfg.rooms));
      const before = 1 + Math.floor(queryLog.text.random() * queryLog.highestId);
      return () => asker!.queryHistory(room, { before });
    };
    const searchQuery = () => {
      const words = queryLog.text.random() < TWO_WORD_SHARE ? `${queryLog.text.word()} ${queryLog.text.word()}` : queryLog.text.word();
      return () => asker!.querySearch(words);
    };
    const measure = async (next: () => () => void, count: number) => {
      for (let i = 0; i < cfg.warmupQueries; i++) await ask(next());
      const latency = new Samples(count);
      let results = 0;
      const deadline = now() + cfg.queryBudgetMs;
      while (latency.length < count && now() < deadline) {
        const { ms, count: found } = await ask(next());
        latency.push(ms);
        results += found;
      }
      return { ...percentiles(latency.sorted()), meanResults: results / Math.max(1, latency.length) };
    };
    const history = await measure(historyQuery, cfg.historyQueries);
    const search = await measure(searchQuery, cfg.searchQueries);
    if (history.count < cfg.historyQueries || search.count < cfg.searchQueries) {
      log(`queries: ${history.count} history and ${search.count} search queries within ${cfg.queryBudgetMs / 1000} s each`);
    }
    return {
      messages: queryLog.messages,
      historyQueries: history.count,
      historyP50Ms: history.p50,
      historyP99Ms: history.p99,
      historyMaxMs: history.max,
      historyMessagesPerReply: history.meanResults,
      searchQueries: search.count,
      searchP50Ms: search.p50,
      searchP99Ms: search.p99,
      searchMaxMs: search.max,
      searchResultsPerReply: search.meanResults,
      retentionStepMs,
      serverRssMiB: target.server.rssKiB() / 1024,
    };
  } finally {
    await target.stop();
    terminateAll(clients);
  }
}
