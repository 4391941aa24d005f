// The Redis message log against a real redis-server: the MessageLog contract (search aside: it
// refuses with not_supported), and what only a cluster needs: nodes sharing one id counter, a
// ref retried on another node answered with the first copy and published once, the published
// payload naming the sending node and connection, appends of one turn sent as one script call
// (each answered on its own, duplicates within it found, a failed call failing each), acked
// messages surviving a SIGKILL of Redis with AOF, and store_unavailable, never a hang, while
// Redis is away.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { StoredMessage } from "../../src/core/message-log.ts";
import { RedisConnection, REDIS_COMMAND_TIMEOUT_MS, type StateChange } from "../../src/store/redis/connection.ts";
import { channels, keys, type Published, type PublishedMessage } from "../../src/store/redis/keys.ts";
import { APPEND_BATCH_MESSAGES, entryToMessage, RedisMessageLog, TRIM_BATCH_ENTRIES, type StreamEntry } from "../../src/store/redis/message-log.ts";
import { withTimeout } from "../helpers/client.ts";
import { redisAvailable, startRedis, type TestRedis } from "../helpers/redis.ts";
import { describeMessageLogContract, idAndTime, refusal, said, sentDm, T0 } from "./message-log-contract.ts";

const available = redisAvailable();
const REF_WINDOW_MS = 10 * 60_000;
const LOBBY = { key: "#lobby", name: "#lobby" };
const RUST = { key: "#rust", name: "#Rust" };
/** How long a test waits for a publish or a link state: under bun's default test timeout, so the failure names what it waited for. */
const WAIT_MS = 4_000;

const opened: RedisConnection[] = [];

afterEach(() => {
  for (const connection of opened.splice(0)) connection.close();
});

async function connect(redis: TestRedis, commandTimeoutMs?: number): Promise<RedisConnection> {
  const connection = new RedisConnection({ url: redis.url, commandTimeoutMs });
  opened.push(connection);
  await connection.open();
  return connection;
}

/** A node's log on its own connection. */
async function node(redis: TestRedis, nodeId: string, commandTimeoutMs?: number): Promise<RedisMessageLog> {
  return RedisMessageLog.open(await connect(redis, commandTimeoutMs), nodeId, { refWindowMs: REF_WINDOW_MS });
}

interface Heard {
  /** Every publish on the channels, parsed, in order. */
  heard: Array<{ channel: string; published: Published }>;
  /** The messages published, batches taken apart, in order. */
  messages: Array<{ channel: string; published: PublishedMessage }>;
  /** Waits for n publishes. */
  count(n: number): Promise<void>;
  /** Waits for n published messages. */
  messageCount(n: number): Promise<void>;
}

async function listen(redis: TestRedis, ...names: string[]): Promise<Heard> {
  const connection = await connect(redis);
  const heard: Heard["heard"] = [];
  const messages: Heard["messages"] = [];
  const waiters: Array<() => void> = [];
  for (const name of names) {
    await connection.subscribe(name, (message, channel) => {
      const published = JSON.parse(message) as Published;
      heard.push({ channel, published });
      if (published.kind === "message") messages.push({ channel, published });
      if (published.kind === "batch") for (const one of published.messages) messages.push({ channel, published: one });
      for (const wake of waiters.splice(0)) wake();
    });
  }
  const waitFor = (done: () => boolean, what: string) =>
    withTimeout(
      (async () => {
        while (!done()) await new Promise<void>((resolve) => waiters.push(resolve));
      })(),
      WAIT_MS,
      what,
    );
  return {
    heard,
    messages,
    count: (n) => waitFor(() => heard.length >= n, `${n} publishes`),
    messageCount: (n) => waitFor(() => messages.length >= n, `${n} published messages`),
  };
}

/** Script calls (EVALSHA) Redis ran since its statistics were last reset. */
function scriptCalls(redis: TestRedis): number {
  return Number(/cmdstat_evalsha:calls=(\d+),/.exec(redis.cli("INFO", "commandstats"))?.[1] ?? 0);
}

/** Lets the current event-loop turn end, and with it the group commit of its appends. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function nextState(connection: RedisConnection, wanted: StateChange["state"]): Promise<StateChange> {
  return withTimeout(
    new Promise<StateChange>((resolve) => connection.onStateChange((change) => change.state === wanted && resolve(change))),
    WAIT_MS,
    `Redis link ${wanted}`,
  );
}

describe.skipIf(!available)("RedisMessageLog", () => {
  let redis: TestRedis;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.[Symbol.asyncDispose]();
  });

  describeMessageLogContract(
    "RedisMessageLog",
    async () => {
      const connection = await connect(redis);
      await connection.send("FLUSHDB", []);
      const log = await RedisMessageLog.open(connection, "node-a", { refWindowMs: REF_WINDOW_MS });
      return { log, [Symbol.asyncDispose]: () => log.close() };
    },
    { search: false },
  );

  describe("in a cluster", () => {
    beforeAll(async () => {
      const connection = new RedisConnection({ url: redis.url });
      await connection.open();
      await connection.send("FLUSHDB", []);
      connection.close();
    });

    test("search is refused with not_supported, never an empty result", async () => {
      const log = await node(redis, "a");
      await log.append(said(RUST, "alice", "findable words"));
      const error = await refusal(log.search(["findable"], { rooms: ["#rust"] }, 10));
      expect(error.code).toBe("not_supported");
      expect(error.message).toContain("cluster mode");
    });

    test("two nodes share one counter: every id once, each node's rising, and lastId starts at the counter", async () => {
      const a = await node(redis, "a");
      const b = await node(redis, "b");
      const start = a.lastId();
      const appends: Array<Promise<StoredMessage>> = [];
      for (let i = 0; i < 50; i++) appends.push((i % 2 ? a : b).append(said(LOBBY, i % 2 ? "alice" : "bob", `m${i}`)));
      const stored = await Promise.all(appends);
      const ids = stored.map((message) => message.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(Math.min(...ids)).toBeGreaterThan(start);
      for (const [log, parity] of [[a, 1], [b, 0]] as const) {
        const own = ids.filter((_, i) => i % 2 === parity);
        for (let i = 1; i < own.length; i++) expect(own[i]!).toBeGreaterThan(own[i - 1]!);
        expect(log.lastId()).toBe(own.at(-1)!);
      }
      // A node that starts now begins above everything the others stored.
      const c = await node(redis, "c");
      expect(c.lastId()).toBe(Math.max(...ids));
      // Ids delivered from other nodes move lastId too.
      a.noteId(c.lastId());
      expect(a.lastId()).toBe(c.lastId());
      const next = await c.append(said(LOBBY, "carol", "after"));
      expect(next.id).toBe(Math.max(...ids) + 1);
      expect(c.lastId()).toBe(next.id);
    });

    test("a room message is published once, as a Published message naming the node and the connection", async () => {
      const log = await node(redis, "node-a");
      const { heard, count } = await listen(redis, channels.room(RUST.key));
      const stored = await log.append({ ...said(RUST, "Alice", "hello 🌍 \"quoted\" \\ back"), connection: 42 });
      const anonymous = await log.append(said(RUST, "bob", "no connection"));
      await count(2);
      expect(heard[0]!.published).toEqual({ kind: "message", node: "node-a", connection: 42, message: stored });
      expect(heard[1]!.published).toEqual({ kind: "message", node: "node-a", message: anonymous });
    });

    test("a dm is published on both users' channels, once for a dm to oneself", async () => {
      const log = await node(redis, "a");
      const alice = channels.user("alice");
      const bob = channels.user("bob");
      const { heard, count } = await listen(redis, alice, bob);
      const dm = await log.append({ ...sentDm("Alice", "Bob", "psst"), connection: 7 });
      const self = await log.append(sentDm("alice", "ALICE", "note to self"));
      const last = await log.append(sentDm("bob", "alice", "last"));
      await count(5);
      expect(heard.map(({ channel, published }) => [channel, (published as { message: StoredMessage }).message.id])).toEqual([
        [alice, dm.id],
        [bob, dm.id],
        [alice, self.id],
        [bob, last.id],
        [alice, last.id],
      ]);
      expect(heard[0]!.published).toEqual({ kind: "message", node: "a", connection: 7, message: dm });
    });

    test("a ref stored on node A and resent to node B gets the first copy back, and nothing is stored or published again", async () => {
      const a = await node(redis, "a");
      const b = await node(redis, "b");
      const { heard, count } = await listen(redis, channels.room(LOBBY.key));
      const original = await a.append(said(LOBBY, "Alice", "once", T0, "fail-over-1"));
      // B has never seen the ref: only the script can tell.
      expect(b.findByRef("alice", "fail-over-1", T0)).toBeUndefined();
      const retried = await b.append(said(LOBBY, "alice", "once", T0 + 5_000, "fail-over-1"));
      expect(retried).toEqual(original);
      // Now B knows it too, from the first copy's time.
      expect(idAndTime(await b.findByRef("ALICE", "fail-over-1", T0)!)).toEqual(idAndTime(original));
      // Publishes on one channel arrive in order: once the next message is heard, a second copy would have been.
      const next = await b.append(said(LOBBY, "bob", "next"));
      await count(2);
      expect(heard.map(({ published }) => (published as { message: StoredMessage }).message)).toEqual([original, next]);
      expect((await b.page({ room: LOBBY.key }, { after: original.id - 1, limit: 10 })).messages).toEqual([original, next]);
      expect(next.id).toBe(original.id + 1);
    });

    test("the ref cache keeps a message's id and time, not its text: 2,000 messages of 4,000 characters leave the heap less than half their 8 MB", async () => {
      const log = await RedisMessageLog.open(await connect(redis), "a", { refWindowMs: REF_WINDOW_MS });
      Bun.gc(true);
      const before = process.memoryUsage().heapUsed;
      for (let turn = 0; turn < 20; turn++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(said(LOBBY, "alice", `${turn}-${i} `.padEnd(4_000, "x"), T0, `big-${turn}-${i}`))));
      }
      Bun.gc(true);
      expect(process.memoryUsage().heapUsed - before).toBeLessThan(4_000_000);
      expect(await log.findByRef("alice", "big-19-99", T0)!).toEqual({ id: expect.any(Number), ts: T0 });
    });

    test("the ref cache is bounded: a ref evicted from memory is still answered with its first copy by the script", async () => {
      const log = await RedisMessageLog.open(await connect(redis), "a", { refWindowMs: REF_WINDOW_MS, refCacheEntries: 2 });
      const first = await log.append(said(LOBBY, "alice", "one", T0, "c1"));
      const later = [];
      for (const ref of ["c2", "c3"]) later.push(await log.append(said(LOBBY, "alice", ref, T0, ref)));
      expect(log.findByRef("alice", "c1", T0)).toBeUndefined();
      expect(idAndTime(await log.findByRef("alice", "c3", T0)!)).toEqual(idAndTime(later[1]));
      expect(await log.append(said(LOBBY, "alice", "one", T0 + 1, "c1"))).toEqual(first);
    });

    test("a ref whose message was removed is stored anew by another node", async () => {
      const a = await node(redis, "a");
      const b = await node(redis, "b");
      const original = await a.append(said(LOBBY, "alice", "oops", T0, "r-removed"));
      await a.remove(original.id);
      const again = await b.append(said(LOBBY, "alice", "oops", T0 + 1, "r-removed"));
      expect(again.id).toBeGreaterThan(original.id);
      expect(await a.get(again.id)).toEqual(again);
    });

    test("stream entries parse with entryToMessage, as a gap reader reads them", async () => {
      const log = await node(redis, "a");
      const connection = await connect(redis);
      const room = await log.append(said(RUST, "alice", "in a room"));
      const dm = await log.append(sentDm("alice", "Bob", "in a dm"));
      const roomEntries = (await connection.send("XRANGE", [keys.conversation(RUST.key), `${room.id}-0`, `${room.id}-0`])) as StreamEntry[];
      const dmEntries = (await connection.send("XRANGE", [keys.conversation("dm:alice:bob"), "-", "+"])) as StreamEntry[];
      expect(roomEntries.map(entryToMessage)).toEqual([room]);
      expect(dmEntries.map(entryToMessage)).toContainEqual(dm);
    });

    test("retention works in bounded steps and takes every index entry of what it removes with it", async () => {
      const connection = await connect(redis);
      await connection.send("FLUSHDB", []);
      const log = await RedisMessageLog.open(connection, "a", { refWindowMs: REF_WINDOW_MS });
      const total = TRIM_BATCH_ENTRIES + 20;
      await Promise.all(Array.from({ length: total }, (_, i) => log.append(said(RUST, "alice", `r${i}`, T0))));
      await log.append(sentDm("alice", "bob", "old dm", T0, true));
      const kept = await log.append(said(RUST, "alice", "new", T0 + 10));
      const steps: number[] = [];
      for (let removed = await log.trim(T0 + 1, 1_000); removed > 0; removed = await log.trim(T0 + 1, 1_000)) steps.push(removed);
      expect(Math.max(...steps)).toBeLessThanOrEqual(TRIM_BATCH_ENTRIES);
      expect(steps.reduce((sum, removed) => sum + removed, 0)).toBe(total + 1);
      expect((await log.page({ room: RUST.key }, { limit: 10 })).messages).toEqual([kept]);
      expect(await connection.send("HKEYS", [keys.messageWhere])).toEqual([String(kept.id)]);
      expect(await connection.send("ZCARD", [keys.undelivered("bob")])).toBe(0);
      expect(await connection.send("ZCARD", [keys.userDms("alice")])).toBe(0);
      expect(await connection.send("EXISTS", [keys.conversation("dm:alice:bob")])).toBe(0);
      expect(await connection.send("ZRANGE", [keys.roomLengths, "0", "-1", "WITHSCORES"])).toEqual([[RUST.key, 1]]);
      await log.dropRoom(RUST.key);
      expect(await connection.send("HLEN", [keys.messageWhere])).toBe(0);
      expect(await connection.send("ZCARD", [keys.conversationsByAge])).toBe(0);
      expect(await connection.send("ZCARD", [keys.roomLengths])).toBe(0);
    });

    test("retention indexes out of date (streams deleted behind the log's back) are put right, and trimming goes on past them", async () => {
      const connection = await connect(redis);
      await connection.send("FLUSHDB", []);
      const log = await RedisMessageLog.open(connection, "a", { refWindowMs: REF_WINDOW_MS });
      const stale = Array.from({ length: TRIM_BATCH_ENTRIES }, (_, i) => ({ key: `#stale-${i}`, name: `#stale-${i}` }));
      await Promise.all(stale.map((room) => log.append(said(room, "alice", "old", T0))));
      await connection.send("DEL", stale.map((room) => keys.conversation(room.key)));
      await log.append(said(RUST, "alice", "old too", T0 + 1));
      expect(await log.trim(T0 + 2, 1_000)).toBe(1);
      expect(await log.trim(T0 + 2, 1_000)).toBe(0);
      expect(await connection.send("ZCARD", [keys.conversationsByAge])).toBe(0);
      expect(await connection.send("ZCARD", [keys.roomLengths])).toBe(0);
    });

    test("dropping a room larger than a step takes several bounded steps and leaves nothing behind", async () => {
      const connection = await connect(redis);
      await connection.send("FLUSHDB", []);
      const log = await RedisMessageLog.open(connection, "a", { refWindowMs: REF_WINDOW_MS });
      await Promise.all(Array.from({ length: TRIM_BATCH_ENTRIES * 2 + 1 }, (_, i) => log.append(said(RUST, "alice", `r${i}`))));
      const other = await log.append(said(LOBBY, "alice", "stays"));
      await log.dropRoom(RUST.key);
      expect(await connection.send("EXISTS", [keys.conversation(RUST.key)])).toBe(0);
      expect(await connection.send("HKEYS", [keys.messageWhere])).toEqual([String(other.id)]);
      expect(await log.get(other.id)).toEqual(other);
    });

    test("a Redis error answer (a key of the wrong type) is store_unavailable, and its ref is free for the retry", async () => {
      const connection = await connect(redis);
      await connection.send("FLUSHDB", []);
      const log = await RedisMessageLog.open(connection, "a", { refWindowMs: REF_WINDOW_MS });
      await connection.send("SET", [keys.messageId, "not a number"]);
      const error = await refusal(log.append(said(LOBBY, "alice", "refused", T0, "r1")));
      expect(error.code).toBe("store_unavailable");
      expect(error.message).toContain("Redis refused");
      expect(log.findByRef("alice", "r1", T0)).toBeUndefined();
      expect(await connection.send("EXISTS", [keys.conversation(LOBBY.key)])).toBe(0);
      await connection.send("DEL", [keys.messageId]);
      expect((await log.append(said(LOBBY, "alice", "refused", T0, "r1"))).id).toBe(1);
    });

    describe("appends batched per turn", () => {
      /** A log on an empty Redis whose script is loaded, with the statistics reset. */
      async function fresh(nodeId = "a"): Promise<{ log: RedisMessageLog; connection: RedisConnection }> {
        const connection = await connect(redis);
        await connection.send("FLUSHDB", []);
        const log = await RedisMessageLog.open(connection, nodeId, { refWindowMs: REF_WINDOW_MS });
        await log.append(said(LOBBY, "loader", "loads the append script"));
        await connection.send("CONFIG", ["RESETSTAT"]);
        return { log, connection };
      }

      test("the appends of one turn are one script call, another only per APPEND_BATCH_MESSAGES more; each gets its own message, in order", async () => {
        const { log } = await fresh();
        const drafts = Array.from({ length: 10 }, (_, i) => (i % 3 === 2 ? sentDm("alice", "bob", `d${i}`) : said(i % 2 ? RUST : LOBBY, "alice", `m${i}`)));
        const stored = await Promise.all(drafts.map((draft) => log.append(draft)));
        expect(scriptCalls(redis)).toBe(1);
        expect(stored).toEqual(drafts.map((draft, i) => ({ id: stored[0]!.id + i, ...(draft.room ? { room: draft.room } : { to: draft.to }), from: draft.from, text: draft.text, ts: draft.ts })));
        const many = APPEND_BATCH_MESSAGES * 2 + 5;
        const more = await Promise.all(Array.from({ length: many }, (_, i) => log.append(said(LOBBY, "bob", `n${i}`))));
        expect(scriptCalls(redis)).toBe(1 + 3);
        expect(more.map((message) => message.text)).toEqual(Array.from({ length: many }, (_, i) => `n${i}`));
        expect(more.map((message) => message.id)).toEqual(Array.from({ length: many }, (_, i) => stored.at(-1)!.id + 1 + i));
        expect(log.lastId()).toBe(more.at(-1)!.id);
      });

      test("a batch mixing rooms and dms indexes and publishes each message as appends one by one do", async () => {
        const { log, connection } = await fresh();
        const { messages, messageCount } = await listen(redis, channels.room(LOBBY.key), channels.room(RUST.key), channels.user("alice"), channels.user("bob"));
        const drafts = [
          said(RUST, "alice", "r1", T0 + 1),
          { ...sentDm("Alice", "Bob", "to bob, offline", T0 + 2, true), connection: 3 },
          said(RUST, "bob", "r2", T0 + 3),
          sentDm("bob", "alice", "to alice", T0 + 4),
          sentDm("alice", "alice", "to myself", T0 + 5, true),
          said(LOBBY, "bob", "l1", T0 + 6),
        ];
        const [r1, toBob, r2, toAlice, toSelf, l1] = await Promise.all(drafts.map((draft) => log.append(draft)));
        expect((await log.page({ room: RUST.key }, { limit: 10 })).messages).toEqual([r1!, r2!]);
        expect((await log.page({ between: ["alice", "bob"] }, { limit: 10 })).messages).toEqual([toBob!, toAlice!]);
        expect((await log.dms("alice", { limit: 10 })).messages).toEqual([toBob!, toAlice!, toSelf!]);
        expect((await log.dms("bob", { limit: 10 })).messages).toEqual([toBob!, toAlice!]);
        expect((await log.undelivered("bob", { limit: 10 })).messages).toEqual([toBob!]);
        expect((await log.undelivered("alice", { limit: 10 })).messages).toEqual([toSelf!]);
        for (const message of [r1!, toBob!, toSelf!, l1!]) expect(await log.get(message.id)).toEqual(message);
        // Retention scores: each conversation's oldest message's time (the loader's for the lobby), each room's length.
        expect(await connection.send("ZSCORE", [keys.conversationsByAge, RUST.key])).toBe(T0 + 1);
        expect(await connection.send("ZSCORE", [keys.conversationsByAge, "dm:alice:bob"])).toBe(T0 + 2);
        expect(await connection.send("ZSCORE", [keys.conversationsByAge, LOBBY.key])).toBe(T0);
        expect(await connection.send("ZRANGE", [keys.roomLengths, "0", "-1", "WITHSCORES"])).toEqual([
          [LOBBY.key, 2],
          [RUST.key, 2],
        ]);
        // Every message on its channels, in id order, naming the sending connection where there was one.
        await messageCount(8);
        expect(messages.map(({ channel, published }) => [channel, published.message.id])).toEqual([
          [channels.room(RUST.key), r1!.id],
          [channels.user("alice"), toBob!.id],
          [channels.user("bob"), toBob!.id],
          [channels.room(RUST.key), r2!.id],
          [channels.user("bob"), toAlice!.id],
          [channels.user("alice"), toAlice!.id],
          [channels.user("alice"), toSelf!.id],
          [channels.room(LOBBY.key), l1!.id],
        ]);
        expect(messages[1]!.published).toEqual({ kind: "message", node: "a", connection: 3, message: toBob! });
      });

      test("consecutive messages of a batch for the same channel are one publish, in id order", async () => {
        const { log } = await fresh("node-b");
        const { heard, messages, messageCount } = await listen(redis, channels.room(RUST.key));
        const stored = await Promise.all(Array.from({ length: 5 }, (_, i) => log.append({ ...said(RUST, "alice", `m${i}`), connection: i })));
        await messageCount(5);
        expect(heard).toHaveLength(1);
        expect(heard[0]!.published.kind).toBe("batch");
        expect(messages.map(({ published }) => published)).toEqual(stored.map((message, i) => ({ kind: "message", node: "node-b", connection: i, message })));
      });

      test("the same sender and ref twice in one batch is one message: stored and published once, its id not used up", async () => {
        const { log, connection } = await fresh();
        const { messages, messageCount } = await listen(redis, channels.room(LOBBY.key));
        const [first, again, other] = await Promise.all([
          log.append(said(LOBBY, "alice", "once", T0, "twice-1")),
          log.append(said(LOBBY, "ALICE", "once", T0 + 1, "twice-1")),
          log.append(said(LOBBY, "bob", "other")),
        ]);
        expect(again).toEqual(first!);
        expect(other!.id).toBe(first!.id + 1);
        expect(Number(await connection.send("GET", [keys.messageId]))).toBe(other!.id);
        await messageCount(2);
        expect(messages.map(({ published }) => published.message)).toEqual([first!, other!]);
        expect((await log.page({ room: LOBBY.key }, { after: first!.id - 1, limit: 10 })).messages).toEqual([first!, other!]);
        expect(idAndTime(await log.findByRef("alice", "twice-1", T0)!)).toEqual(idAndTime(first!));
      });

      test("two nodes appending at once: ids strictly rising in each node's order, and published in id order", async () => {
        const a = (await fresh("a")).log;
        const b = await node(redis, "b");
        const { messages, messageCount } = await listen(redis, channels.room(LOBBY.key));
        const TURNS = 20;
        const PER_TURN = 15;
        const appended: Record<"a" | "b", Array<Promise<StoredMessage>>> = { a: [], b: [] };
        for (let turn = 0; turn < TURNS; turn++) {
          for (let i = 0; i < PER_TURN; i++) {
            appended.a.push(a.append(said(LOBBY, "alice", `a${turn}.${i}`)));
            appended.b.push(b.append(said(LOBBY, "bob", `b${turn}.${i}`)));
          }
          await nextTurn();
        }
        const stored = { a: await Promise.all(appended.a), b: await Promise.all(appended.b) };
        for (const own of [stored.a, stored.b]) for (let i = 1; i < own.length; i++) expect(own[i]!.id).toBeGreaterThan(own[i - 1]!.id);
        await messageCount(TURNS * PER_TURN * 2);
        const published = messages.map(({ published }) => published.message.id);
        for (let i = 1; i < published.length; i++) expect(published[i]!).toBeGreaterThan(published[i - 1]!);
        expect(published).toEqual([...stored.a, ...stored.b].map((message) => message.id).sort((x, y) => x - y));
      });

      test("a batch Redis does not answer fails every append in it with store_unavailable, and none of their refs is remembered", async () => {
        const COMMAND_TIMEOUT_MS = 300;
        await using own = await startRedis();
        const log = await node(own, "a", COMMAND_TIMEOUT_MS);
        await log.append(said(LOBBY, "loader", "loads the append script"));
        own.pause();
        try {
          const refused = await Promise.all(Array.from({ length: 20 }, (_, i) => refusal(log.append(said(LOBBY, "alice", `m${i}`, T0, `r${i}`)))));
          expect(refused.map((error) => error.code)).toEqual(Array(20).fill("store_unavailable"));
          for (let i = 0; i < 20; i++) expect(log.findByRef("alice", `r${i}`, T0)).toBeUndefined();
        } finally {
          own.resume();
        }
      });
    });

    test("settled resolves once every append made so far has answered", async () => {
      const log = await node(redis, "a");
      const answered: number[] = [];
      for (let i = 0; i < 10; i++) void log.append(said(LOBBY, "alice", `m${i}`)).then((message) => answered.push(message.id));
      await log.settled();
      expect(answered).toHaveLength(10);
    });
  });
});

describe.skipIf(!available)("RedisMessageLog when Redis fails", () => {
  test("after a SIGKILL of Redis with AOF always, every acked message is there and the script runs again", async () => {
    await using redis = await startRedis({ appendfsync: "always" });
    const connection = await connect(redis);
    const log = await RedisMessageLog.open(connection, "a", { refWindowMs: REF_WINDOW_MS });
    const acked = await Promise.all(Array.from({ length: 30 }, (_, i) => log.append(i % 3 ? said(RUST, "alice", `m${i}`) : sentDm("alice", "bob", `d${i}`, T0, true))));
    const down = nextState(connection, "down");
    await redis.kill("SIGKILL");
    await down;
    const up = nextState(connection, "up");
    await redis.start();
    await up;
    // A node started afterwards serves every acked message.
    const fresh = await node(redis, "b");
    expect(fresh.lastId()).toBe(acked.at(-1)!.id);
    const rooms = (await fresh.page({ room: RUST.key }, { limit: 100 })).messages;
    const dms = (await fresh.dms("alice", { after: 0, limit: 100 })).messages;
    expect([...rooms, ...dms].sort((x, y) => x.id - y.id)).toEqual(acked);
    expect((await fresh.undelivered("bob", { after: 0, limit: 100 })).messages).toHaveLength(10);
    // The restarted Redis has no scripts (they are not persisted): the old link's EVALSHA gets
    // NOSCRIPT and loads the script again.
    const after = await log.append(said(RUST, "alice", "after the restart"));
    expect(after.id).toBe(acked.at(-1)!.id + 1);
    expect(await fresh.get(after.id)).toEqual(after);
  });

  test("while Redis is stopped the appends of a turn are all refused with store_unavailable at once, and nothing is remembered of them", async () => {
    await using redis = await startRedis();
    const connection = await connect(redis);
    const log = await RedisMessageLog.open(connection, "a", { refWindowMs: REF_WINDOW_MS });
    const down = nextState(connection, "down");
    await redis.stop();
    await down;
    const started = performance.now();
    const refused = await Promise.all(Array.from({ length: 10 }, (_, i) => refusal(log.append(said(LOBBY, "alice", "lost", T0, `r${i}`)))));
    expect(refused.map((error) => error.code)).toEqual(Array(10).fill("store_unavailable"));
    expect(performance.now() - started).toBeLessThan(REDIS_COMMAND_TIMEOUT_MS);
    for (let i = 0; i < 10; i++) expect(log.findByRef("alice", `r${i}`, T0)).toBeUndefined();
    await log.settled();
    expect((await refusal(log.page({ room: LOBBY.key }, { limit: 10 }))).code).toBe("store_unavailable");
  });

  test("a Redis that stops answering refuses the append with store_unavailable within the command timeout", async () => {
    const COMMAND_TIMEOUT_MS = 300;
    /** The deadline is checked every 100 ms; scheduling on a busy machine adds some. */
    const SLACK_MS = 1_000;
    await using redis = await startRedis();
    const log = await node(redis, "a", COMMAND_TIMEOUT_MS);
    redis.pause();
    try {
      const started = performance.now();
      expect((await refusal(log.append(said(LOBBY, "alice", "unanswered")))).code).toBe("store_unavailable");
      expect(performance.now() - started).toBeLessThan(COMMAND_TIMEOUT_MS + SLACK_MS);
    } finally {
      redis.resume();
    }
  });
});
