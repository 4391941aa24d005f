// The message log of a cluster, in Redis: one stream per conversation, ids from one counter that
// every node shares, and the relay's publish made in the same atomic step as the append (a Lua
// script), so what a node acks is stored and what is stored is published. It knows Redis keys
// and the `Published` shape, not sockets or frames; delivery to connections is the fanout's.
// Appends made in one event-loop turn go to Redis together, as one script call per batch (group
// commit, as the embedded log commits a turn in one transaction): a call's own cost in Redis and
// in the node (sending, argument handling, the command deadline) is paid once per batch, and the
// indexes each batch touches are written once per batch, not once per message.
//
// Data layout (names in keys.ts):
// - `message-id`: the counter (INCRBY per batch); a message's id is its value, so ids rise across
//   the cluster.
// - `log:<conversation>`: a stream per room key or dm conversation key; entry id `<id>-0`, fields
//   ts, from, text, and room + room_name (room messages) or to (dms). Pages are XRANGE/XREVRANGE
//   with exclusive bounds; a gap reader parses entries with `entryToMessage`.
// - `message-conversation`: a hash id → conversation key, so get and remove find the stream.
// - `dms:<user>`: a sorted set of the ids (score = id) of every dm the user sent or received. A
//   user's dms span one stream per correspondent; this index pages them by id in one read
//   instead of merging all those streams. A dm's users are read back from its conversation key.
// - `undelivered:<user>`: a sorted set of the ids of dms stored while the user was offline.
// - `ref:<sender>:<ref>`: the id a sender's ref was stored with, expiring after the ref window.
// - `log-conversations`: conversation → timestamp of its oldest message; `log-room-lengths`:
//   room → message count. Retention finds what it must cut from these without a scan.
//
// The scripts build per-conversation and per-user key names from prefixes they are given, so
// they need one Redis (not Redis Cluster, whose slots want every key declared).

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
import { RedisReplyError, RedisScript, type RedisConnection } from "./connection.ts";
import { channels, keys } from "./keys.ts";

/**
 * Entries one retention step (or one step of dropping a room) removes at most, with their index
 * entries: a script holds Redis, and every node's relay, while it runs, so it stays at a few ms.
 */
export const TRIM_BATCH_ENTRIES = 500;
/** Entries read at a time from a conversation's front while looking for where the old ones end. */
const AGE_READ_ENTRIES = 100;
/** Refs of this node's recent appends kept in memory, for retries that reach this node again. */
export const REF_CACHE_ENTRIES = 100_000;
/**
 * Appends sent in one script call at most; a turn with more makes more calls. A call holds Redis
 * (every node's relay) while it runs: some 10 µs per message, so about a millisecond.
 */
export const APPEND_BATCH_MESSAGES = 100;

export interface RedisMessageLogOptions {
  /** How long a resent ref is recognised (the hub's ref window), in ms: the ref keys' expiry. */
  refWindowMs: number;
  /** Entries of the in-memory ref cache; REF_CACHE_ENTRIES when absent. */
  refCacheEntries?: number;
}

/** A stream entry as XRANGE answers it: `<id>-0` and the flat field list. */
export type StreamEntry = [entryId: string, fields: string[]];

/** The stream entry id of a message id: what XRANGE bounds are made of. */
export function entryId(id: number): string {
  return `${id}-0`;
}

/** The message a stream entry of the log holds. */
export function entryToMessage([entry, fields]: StreamEntry): StoredMessage {
  const field = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) field.set(fields[i]!, fields[i + 1]!);
  const message: StoredMessage = { id: Number.parseInt(entry, 10), from: field.get("from")!, text: field.get("text")!, ts: Number(field.get("ts")) };
  const room = field.get("room");
  if (room !== undefined) message.room = { key: room, name: field.get("room_name")! };
  const to = field.get("to");
  if (to !== undefined) message.to = to;
  return message;
}

/** Adds a message's arguments as the scripts' read_message takes them. */
function pushMessage(args: Array<string | number>, message: Omit<Draft, "ref" | "undelivered">, ref: string, tail: string, undelivered: boolean): void {
  if (message.room) args.push("room", message.room.key, ref, tail, message.ts, message.from, message.text, message.room.name);
  else args.push("dm", dmConversationKey(message.from, message.to!), ref, tail, message.ts, message.from, message.text, message.to!, userKey(message.from), undelivered ? "1" : "");
}

// Every writing script starts with the same three keys and three arguments, so the functions
// they share find the indexes and the key prefixes in the same place.
const WRITE_PRELUDE = `
local where, by_age, room_lengths = KEYS[1], KEYS[2], KEYS[3]
local stream_prefix, dms_prefix, undelivered_prefix = ARGV[1], ARGV[2], ARGV[3]

-- The two user keys of a dm conversation key; nothing for a room.
local function dm_users(conversation)
  return string.match(conversation, '^${DM_CONVERSATION_PREFIX}([^:]+):([^:]+)$')
end

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
end

-- The message id of a stream entry id, as a string.
local function message_id(entry_id)
  return string.match(entry_id, '^(%d+)')
end

-- Takes the ids (removed from the conversation's stream) out of the other indexes.
local function forget(conversation, ids)
  redis.call('HDEL', where, unpack(ids))
  local a, b = dm_users(conversation)
  if a then
    -- A dm to oneself has a == b: removing twice is harmless.
    for _, user in ipairs({a, b}) do
      redis.call('ZREM', dms_prefix .. user, unpack(ids))
      redis.call('ZREM', undelivered_prefix .. user, unpack(ids))
    end
  end
end

-- A message as an append or a restore passes it, from ARGV[at] on: 'room' or 'dm', conversation,
-- ref key (''), the payload after the id, ts, from, text, then the room's name (a room message)
-- or to, the sender's key and '1' if undelivered else '' (a dm). Field names and the recipient's
-- key are made here, so a message costs only what varies. Answers it, and where the next starts.
local function read_message(at)
  local kind, conversation, ref_key, tail, ts, from, text = unpack(ARGV, at, at + 6)
  local message = {conversation = conversation, ref_key = ref_key, tail = tail, ts = ts, recipient = ''}
  message.fields = {'ts', ts, 'from', from, 'text', text}
  if kind == 'room' then
    message.fields[7], message.fields[8], message.fields[9], message.fields[10] = 'room', conversation, 'room_name', ARGV[at + 7]
    return message, at + 8
  end
  local to, sender, undelivered = ARGV[at + 7], ARGV[at + 8], ARGV[at + 9]
  message.fields[7], message.fields[8] = 'to', to
  local a, b = dm_users(conversation)
  message.sender, message.other = sender, a == sender and b or a
  if undelivered ~= '' then message.recipient = message.other end
  return message, at + 10
end

-- The index entries of messages just added to their streams, gathered so that a script adding
-- many writes each index once, not once per message: where each message is, the users' dms
-- (and the recipient's undelivered ones), and each conversation's retention scores.
local function new_index()
  return {where = {}, conversations = {}, oldest_ts = {}, sets = {}, set_keys = {}}
end

local function index_in_set(ix, key, id)
  local set = ix.sets[key]
  if not set then
    set = {}
    ix.sets[key] = set
    ix.set_keys[#ix.set_keys + 1] = key
  end
  set[#set + 1] = id
  set[#set + 1] = id
end

-- Messages come in id order, so a conversation's first one here is its oldest. The recipient
-- key is the one whose undelivered dms it joins, or ''.
local function index_add(ix, conversation, id, ts, undelivered_recipient)
  ix.where[#ix.where + 1] = id
  ix.where[#ix.where + 1] = conversation
  if not ix.oldest_ts[conversation] then
    ix.oldest_ts[conversation] = ts
    ix.conversations[#ix.conversations + 1] = conversation
  end
  local a, b = dm_users(conversation)
  if a then
    index_in_set(ix, dms_prefix .. a, id)
    if b ~= a then index_in_set(ix, dms_prefix .. b, id) end
    if undelivered_recipient ~= '' then index_in_set(ix, undelivered_prefix .. undelivered_recipient, id) end
  end
end

local function index_write(ix)
  if #ix.where == 0 then return end
  redis.call('HSET', where, unpack(ix.where))
  -- NX: a conversation that already has messages keeps its oldest one's time.
  local ages, lengths = {'NX'}, {}
  for _, conversation in ipairs(ix.conversations) do
    ages[#ages + 1] = ix.oldest_ts[conversation]
    ages[#ages + 1] = conversation
    if not dm_users(conversation) then
      lengths[#lengths + 1] = redis.call('XLEN', stream_prefix .. conversation)
      lengths[#lengths + 1] = conversation
    end
  end
  redis.call('ZADD', by_age, unpack(ages))
  if #lengths > 0 then redis.call('ZADD', room_lengths, unpack(lengths)) end
  for _, key in ipairs(ix.set_keys) do redis.call('ZADD', key, unpack(ix.sets[key])) end
end

-- Brings the retention indexes in line with what the stream now holds; drops an empty stream.
local function refresh(conversation)
  local stream = stream_prefix .. conversation
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if not first then
    redis.call('DEL', stream)
    redis.call('ZREM', by_age, conversation)
    redis.call('ZREM', room_lengths, conversation)
    return
  end
  redis.call('ZADD', by_age, field(first[2], 'ts'), conversation)
  if not dm_users(conversation) then redis.call('ZADD', room_lengths, redis.call('XLEN', stream), conversation) end
end

-- Removes the entries from the stream's front up to the last one given, and their index entries.
local function cut_front(conversation, entries)
  local ids = {}
  for i, entry in ipairs(entries) do ids[i] = message_id(entry[1]) end
  -- MINID keeps the entries from that id on: the one after the last to go.
  redis.call('XTRIM', stream_prefix .. conversation, 'MINID', string.format('%d', tonumber(ids[#ids]) + 1))
  forget(conversation, ids)
end
`;

/**
 * A batch of appends, in order, each stored and published as one append alone would be.
 * KEYS: where, by_age, room_lengths, the id counter. ARGV: the three prefixes, the ref window
 * in ms, the payload before the id, the room and the user channel prefixes, the number of
 * messages, then the messages (read_message). Answers one reply per message: its new id, or
 * {id, fields} of the sender's earlier message with this ref if it is still stored (then
 * nothing is written or published for it; an earlier message of the same batch counts). The
 * ref keys are built by the caller, not declared: one Redis, as above.
 */
const APPEND = new RedisScript(`${WRITE_PRELUDE}
local counter, ref_window, payload_head = KEYS[4], ARGV[4], ARGV[5]
local room_channel_prefix, user_channel_prefix, count = ARGV[6], ARGV[7], tonumber(ARGV[8])
-- The batch's ids in one step. One an error cuts short leaves a gap (what it stored keeps its
-- ids), never an id given twice; the ids its duplicates did not use are given back at the end.
local last = redis.call('INCRBY', counter, count)
local next_id = last - count
local ix = new_index()
-- The entry fields of each message this batch stored, by id: a duplicate within the batch
-- finds them here, as the where hash is written only at the end.
local here = {}

-- The fields of a stored message; nothing if it is no longer stored.
local function stored_fields(id)
  if here[id] then return here[id] end
  local conversation = redis.call('HGET', where, id)
  local entry = conversation and redis.call('XRANGE', stream_prefix .. conversation, id .. '-0', id .. '-0')[1]
  return entry and entry[2]
end

-- Consecutive messages for the same channels go out as one publish (a batch payload): each
-- subscriber gets and parses one payload for the run. Runs follow one another in id order.
local run, run_first, run_second = {}, nil, nil
local function publish_run()
  if #run == 0 then return end
  local payload = #run == 1 and run[1] or '{"kind":"batch","messages":[' .. table.concat(run, ',') .. ']}'
  redis.call('PUBLISH', run_first, payload)
  if run_second ~= '' then redis.call('PUBLISH', run_second, payload) end
  run = {}
end

local replies, at = {}, 9
for m = 1, count do
  local message
  message, at = read_message(at)
  -- Formatted as an integer: tostring would switch to exponent notation past 14 digits.
  local id = string.format('%d', next_id + 1)
  -- One command for both: takes the ref if no message has it, else answers the one that has.
  local earlier = message.ref_key ~= '' and redis.call('SET', message.ref_key, id, 'NX', 'GET', 'PX', ref_window)
  local earlier_fields = earlier and stored_fields(earlier)
  if earlier_fields then
    replies[m] = {earlier, earlier_fields}
  else
    -- The message that had the ref was removed since: the ref is this one's now.
    if earlier then redis.call('SET', message.ref_key, id, 'PX', ref_window) end
    next_id = next_id + 1
    here[id] = message.fields
    redis.call('XADD', stream_prefix .. message.conversation, id .. '-0', unpack(message.fields))
    index_add(ix, message.conversation, id, message.ts, message.recipient)
    local first, second = room_channel_prefix .. message.conversation, ''
    if message.sender then
      first = user_channel_prefix .. message.sender
      if message.other ~= message.sender then second = user_channel_prefix .. message.other end
    end
    if first ~= run_first or second ~= run_second then
      publish_run()
      run_first, run_second = first, second
    end
    run[#run + 1] = payload_head .. id .. message.tail
    replies[m] = id
  end
end
publish_run()
if next_id < last then redis.call('DECRBY', counter, last - next_id) end
index_write(ix)
return replies
`);

/**
 * A message copied in with the id it already has (an embedded server's history), indexed as an
 * append would, without a publish. KEYS: where, by_age, room_lengths, the id counter. ARGV: the
 * prefixes, the id, the message (read_message; its ref and payload unused). The counter moves
 * up to the id, so new messages come after every imported one.
 */
const RESTORE = new RedisScript(`${WRITE_PRELUDE}
local id = ARGV[4]
local message = read_message(5)
redis.call('XADD', stream_prefix .. message.conversation, id .. '-0', unpack(message.fields))
local ix = new_index()
index_add(ix, message.conversation, id, message.ts, message.recipient)
index_write(ix)
if tonumber(redis.call('GET', KEYS[4]) or '0') < tonumber(id) then redis.call('SET', KEYS[4], id) end
return 1
`);

/** ARGV after the prefixes: the id. Answers 1 if it was there. */
const REMOVE = new RedisScript(`${WRITE_PRELUDE}
local id = ARGV[4]
local conversation = redis.call('HGET', where, id)
if not conversation then return 0 end
redis.call('XDEL', stream_prefix .. conversation, id .. '-0')
forget(conversation, {id})
refresh(conversation)
return 1
`);

/**
 * ARGV after the prefixes: before (ts), max per room, budget. The budget bounds the entries the
 * step reads (so also those it removes). Answers {removed, corrected}: corrected counts
 * conversations whose retention scores were out of date (their stream was changed by something
 * other than these scripts: deleted by hand, an import) and were put right without removing
 * anything, so the caller knows to go on rather than take 0 for "done".
 */
const TRIM = new RedisScript(`${WRITE_PRELUDE}
local before, max_per_room, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local removed, corrected, read = 0, 0, 0

local function cut(conversation, entries)
  if #entries > 0 then cut_front(conversation, entries) else corrected = corrected + 1 end
  refresh(conversation)
  removed = removed + #entries
end

-- By age. Within a conversation messages are in id order and (but for clock skew between
-- nodes) in timestamp order, so the old ones are at the front: read it in chunks until one is not.
for _, conversation in ipairs(redis.call('ZRANGEBYSCORE', by_age, '-inf', '(' .. ARGV[4], 'LIMIT', 0, budget)) do
  if read >= budget then break end
  local stream, old, start, all_old = stream_prefix .. conversation, {}, '-', true
  repeat
    local chunk = redis.call('XRANGE', stream, start, '+', 'COUNT', math.min(${AGE_READ_ENTRIES}, budget - read))
    read = read + #chunk
    all_old = #chunk > 0
    for _, entry in ipairs(chunk) do
      if tonumber(field(entry[2], 'ts')) >= before then
        all_old = false
        break
      end
      old[#old + 1] = entry
    end
    if all_old then start = '(' .. chunk[#chunk][1] end
  until not all_old or read >= budget
  cut(conversation, old)
end

-- By count: the front of each room past its allowance, all of it to go.
for _, room in ipairs(redis.call('ZRANGEBYSCORE', room_lengths, '(' .. ARGV[5], '+inf', 'LIMIT', 0, budget)) do
  if read >= budget then break end
  local excess = redis.call('XLEN', stream_prefix .. room) - max_per_room
  local entries = {}
  if excess > 0 then entries = redis.call('XRANGE', stream_prefix .. room, '-', '+', 'COUNT', math.min(excess, budget - read)) end
  read = read + #entries
  cut(room, entries)
end
return {removed, corrected}
`);

/** ARGV after the prefixes: the room key, budget. Answers how many entries it removed. */
const DROP_ROOM = new RedisScript(`${WRITE_PRELUDE}
local room = ARGV[4]
local entries = redis.call('XRANGE', stream_prefix .. room, '-', '+', 'COUNT', tonumber(ARGV[5]))
if #entries > 0 then cut_front(room, entries) end
refresh(room)
return #entries
`);

/**
 * Messages by id from a sorted set of ids (a user's dms or undelivered dms). KEYS: the set, the
 * where hash. ARGV: stream prefix, min and max score, count, 'newest' or 'oldest' first.
 */
const READ_BY_IDS = new RedisScript(`
local ids
if ARGV[5] == 'newest' then
  ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3], ARGV[2], 'LIMIT', 0, ARGV[4])
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])
end
local entries = {}
for _, id in ipairs(ids) do
  local conversation = redis.call('HGET', KEYS[2], id)
  local entry = conversation and redis.call('XRANGE', ARGV[1] .. conversation, id .. '-0', id .. '-0')[1]
  -- Removal takes an id out of these sets in the same step, so a miss is not expected.
  if entry then entries[#entries + 1] = entry end
end
return entries
`);

const WRITE_KEYS = [keys.messageWhere, keys.conversationsByAge, keys.roomLengths] as const;
const PREFIXES = [keys.conversation(""), keys.userDms(""), keys.undelivered("")] as const;
const WRITE_KEYS_AND_COUNTER = [...WRITE_KEYS, keys.messageId] as const;
const CHANNEL_PREFIXES = [channels.room(""), channels.user("")] as const;

interface RecentRef {
  /** The message's timestamp (the draft's until the append answers). */
  ts: number;
  /** The append's own promise until it answers, then the id and time alone (not the text). */
  stored: Promise<StoredRef>;
  /** Once stored. */
  id?: number;
}

/** An append waiting for its batch's answer. */
interface Pending {
  draft: Draft;
  stored: PromiseWithResolvers<StoredMessage>;
  /** Its entry in the ref cache, when it has a ref. */
  ref?: { key: string; recent: RecentRef };
}

export class RedisMessageLog implements MessageLog {
  private newestId: number;
  /** This turn's appends, sent together when it ends (group commit, as the embedded log does). */
  private queued: Pending[] = [];
  /** Each turn's batches until all their calls have answered (the gathering one too), for settled(). */
  private readonly appending = new Set<Promise<void>>();
  /** The published payload up to the message's id: the same for every message of this node. */
  private readonly payloadHead: string;
  /** Refs of this node's appends, by sender and ref, oldest first (bounded, within the window). */
  private readonly recentRefs = new Map<string, RecentRef>();
  /**
   * The cached refs in the order remembered, from `refOrderHead` on: the order they go in. Kept
   * apart because finding a Map's oldest entry after many deletions from its front walks over
   * all of them (31 µs an eviction at 100,000 entries, measured for the chat database's cache).
   */
  private refOrder: Array<{ key: string; recent: RecentRef }> = [];
  private refOrderHead = 0;
  /** The ref key of each cached message, so removing it frees its ref. */
  private readonly refsById = new Map<number, string>();
  private readonly refCacheEntries: number;

  /** Reads the id counter, so `lastId` is right from the start. */
  static async open(connection: RedisConnection, nodeId: string, options: RedisMessageLogOptions): Promise<RedisMessageLog> {
    const counter = await redisCall(() => connection.send("GET", [keys.messageId]));
    return new RedisMessageLog(connection, nodeId, options, counter === null ? 0 : Number(counter));
  }

  constructor(
    private readonly connection: RedisConnection,
    private readonly nodeId: string,
    private readonly options: RedisMessageLogOptions,
    lastId = 0,
  ) {
    this.newestId = lastId;
    this.refCacheEntries = options.refCacheEntries ?? REF_CACHE_ENTRIES;
    this.payloadHead = `{"kind":"message","node":${JSON.stringify(nodeId)},"message":{"id":`;
  }

  /**
   * Queued until the turn ends, then sent with the turn's other appends; resolves once its batch
   * has answered. A retry of its ref is recognised from now on (findByRef).
   */
  append(draft: Draft): Promise<StoredMessage> {
    const entry: Pending = { draft, stored: Promise.withResolvers() };
    if (this.queued.length === 0) this.commitAtTurnEnd();
    this.queued.push(entry);
    if (draft.ref !== undefined) {
      const key = refKey(userKey(draft.from), draft.ref);
      entry.ref = { key, recent: this.rememberRef(key, draft.ts, entry.stored.promise) };
    }
    return entry.stored.promise;
  }

  private commitAtTurnEnd(): void {
    const answered = new Promise<void>((resolve) => setImmediate(() => resolve(this.commit())));
    this.appending.add(answered);
    void answered.then(() => this.appending.delete(answered));
  }

  /**
   * Sends the turn's appends, up to APPEND_BATCH_MESSAGES per call, all at once: one connection
   * runs them in the order sent, so ids follow the order of the appends. Never rejects.
   */
  private commit(): Promise<void> {
    const queued = this.queued;
    this.queued = [];
    const calls: Array<Promise<void>> = [];
    for (let start = 0; start < queued.length; start += APPEND_BATCH_MESSAGES) calls.push(this.send(queued.slice(start, start + APPEND_BATCH_MESSAGES)));
    return Promise.all(calls).then(() => undefined);
  }

  /**
   * One call for the batch; each append gets its own reply. A call that fails fails all of its
   * appends with store_unavailable: what Redis may have stored of it (it went away after running
   * the script; an error cut the script short) is found by a retry's ref, never acked unseen.
   */
  private async send(batch: readonly Pending[]): Promise<void> {
    let replies: Array<string | StreamEntry>;
    try {
      replies = (await redisCall(() => this.connection.run(APPEND, WRITE_KEYS_AND_COUNTER, this.batchArgs(batch)))) as Array<string | StreamEntry>;
    } catch (error) {
      for (const { stored, ref } of batch) {
        // A retry must go to the script again (which finds the ref if Redis did store it), not
        // be answered with this failure.
        if (ref && this.recentRefs.get(ref.key) === ref.recent) this.forgetRef(ref.key);
        stored.reject(error);
      }
      return;
    }
    batch.forEach(({ draft, stored, ref }, i) => {
      const reply = replies[i]!;
      const message = typeof reply === "string" ? toStored(Number(reply), draft) : entryToMessage(reply);
      this.noteId(message.id);
      if (ref && this.recentRefs.get(ref.key) === ref.recent) {
        // A duplicate answers with the first copy: its time is what the window counts from.
        ref.recent.ts = message.ts;
        ref.recent.id = message.id;
        ref.recent.stored = Promise.resolve({ id: message.id, ts: message.ts });
        this.refsById.set(message.id, ref.key);
      }
      stored.resolve(message);
    });
  }

  /** The APPEND script's arguments for the batch. */
  private batchArgs(batch: readonly Pending[]): Array<string | number> {
    const args: Array<string | number> = [...PREFIXES, this.options.refWindowMs, this.payloadHead, ...CHANNEL_PREFIXES, batch.length];
    for (const { draft } of batch) {
      const ref = draft.ref === undefined ? "" : keys.ref(userKey(draft.from), draft.ref);
      pushMessage(args, draft, ref, payloadTail(draft), draft.undelivered === true);
    }
    return args;
  }

  /**
   * Copies in a message that already has its id (an import). Messages must come in id order,
   * into a log that has none with a higher id: stream ids only grow.
   */
  async restore(message: StoredMessage, undelivered: boolean): Promise<void> {
    const args: Array<string | number> = [...PREFIXES, message.id];
    pushMessage(args, message, "", "", undelivered);
    await redisCall(() => this.connection.run(RESTORE, WRITE_KEYS_AND_COUNTER, args));
    this.noteId(message.id);
  }

  lastId(): number {
    return this.newestId;
  }

  /** An id this node saw stored elsewhere (the fanout delivered it): lastId covers it from now on. */
  noteId(id: number): void {
    if (id > this.newestId) this.newestId = id;
  }

  settled(): Promise<void> {
    if (this.appending.size === 0) return Promise.resolve();
    // After the next turn begins, every reaction to those answers (relays, acks) has run.
    return Promise.all(this.appending).then(() => new Promise<void>((resolve) => setImmediate(resolve)));
  }

  /**
   * Answers from memory: the refs this node appended within the window. A retry that reaches
   * another node (a client that failed over) is recognised by the append script instead.
   */
  findByRef(sender: string, ref: string, since: number): Promise<StoredRef> | undefined {
    const recent = this.recentRefs.get(refKey(userKey(sender), ref));
    return recent && recent.ts >= since ? recent.stored : undefined;
  }

  /** This node's refs, else the ref key the append script set, whichever node stored it. */
  async findStoredRef(sender: string, ref: string, since: number): Promise<StoredRef | undefined> {
    const here = this.findByRef(sender, ref, since);
    if (here) return here;
    const id = (await redisCall(() => this.connection.send("GET", [keys.ref(userKey(sender), ref)]))) as string | null;
    const message = id === null ? undefined : await this.get(Number(id));
    return message && message.ts >= since ? { id: message.id, ts: message.ts } : undefined;
  }

  /** Caches the ref until its append answers (send fills in its id and time, or forgets it). */
  private rememberRef(key: string, ts: number, stored: Promise<StoredRef>): RecentRef {
    const recent: RecentRef = { ts, stored };
    this.forgetRef(key);
    this.recentRefs.set(key, recent);
    this.refOrder.push({ key, recent });
    // Oldest first: past the window, or past the cap, they go.
    while (this.refOrderHead < this.refOrder.length) {
      const oldest = this.refOrder[this.refOrderHead]!;
      // Already forgotten, or remembered again since (then its later place counts).
      const live = this.recentRefs.get(oldest.key) === oldest.recent;
      if (live && this.recentRefs.size <= this.refCacheEntries && oldest.recent.ts >= ts - this.options.refWindowMs) break;
      if (live) this.forgetRef(oldest.key);
      this.refOrderHead++;
    }
    if (this.refOrderHead > this.refCacheEntries) {
      this.refOrder = this.refOrder.slice(this.refOrderHead);
      this.refOrderHead = 0;
    }
    return recent;
  }

  private forgetRef(key: string): void {
    const recent = this.recentRefs.get(key);
    if (!recent) return;
    this.recentRefs.delete(key);
    if (recent.id !== undefined) this.refsById.delete(recent.id);
  }

  async page(conversation: Conversation, query: PageQuery): Promise<Page> {
    const stream = keys.conversation(conversationKey(conversation));
    const end = query.before === undefined ? "+" : `(${entryId(query.before)}`;
    const count = String(query.limit + 1);
    if (query.after !== undefined) {
      const entries = (await redisCall(() => this.connection.send("XRANGE", [stream, `(${entryId(query.after!)}`, end, "COUNT", count]))) as StreamEntry[];
      return pageOf(entries, query.limit, false);
    }
    const entries = (await redisCall(() => this.connection.send("XREVRANGE", [stream, end, "-", "COUNT", count]))) as StreamEntry[];
    return pageOf(entries, query.limit, true);
  }

  dms(user: string, query: PageQuery): Promise<Page> {
    return this.pageByIds(keys.userDms(userKey(user)), query);
  }

  undelivered(user: string, query: PageQuery): Promise<Page> {
    return this.pageByIds(keys.undelivered(userKey(user)), query);
  }

  private async pageByIds(set: string, query: PageQuery): Promise<Page> {
    const min = query.after === undefined ? "-inf" : `(${query.after}`;
    const max = query.before === undefined ? "+inf" : `(${query.before}`;
    const newestFirst = query.after === undefined;
    const entries = (await redisCall(() =>
      this.connection.run(READ_BY_IDS, [set, keys.messageWhere], [keys.conversation(""), min, max, query.limit + 1, newestFirst ? "newest" : "oldest"]),
    )) as StreamEntry[];
    return pageOf(entries, query.limit, newestFirst);
  }

  async markDelivered(user: string, upTo: number): Promise<void> {
    await redisCall(() => this.connection.send("ZREMRANGEBYSCORE", [keys.undelivered(userKey(user)), "-inf", upTo]));
  }

  async get(id: number): Promise<StoredMessage | undefined> {
    const conversation = (await redisCall(() => this.connection.send("HGET", [keys.messageWhere, id]))) as string | null;
    if (conversation === null) return undefined;
    const entries = (await redisCall(() => this.connection.send("XRANGE", [keys.conversation(conversation), entryId(id), entryId(id)]))) as StreamEntry[];
    return entries[0] && entryToMessage(entries[0]);
  }

  async remove(id: number): Promise<void> {
    await redisCall(() => this.connection.run(REMOVE, WRITE_KEYS, [...PREFIXES, id]));
    const key = this.refsById.get(id);
    if (key !== undefined) this.forgetRef(key);
  }

  /** Redis 7.0 as Debian ships it has no search module: refused, never an empty "no match". */
  search(_words: readonly string[], _scope: SearchScope, _limit: number): Promise<StoredMessage[]> {
    return Promise.reject(new ChatError("not_supported", "Search is not available in cluster mode"));
  }

  async trim(before: number, maxPerRoom: number): Promise<number> {
    for (;;) {
      const [removed, corrected] = (await redisCall(() => this.connection.run(TRIM, WRITE_KEYS, [...PREFIXES, before, maxPerRoom, TRIM_BATCH_ENTRIES]))) as [
        number,
        number,
      ];
      // A step that only put scores right found no work there; the next one may find some.
      if (removed > 0 || corrected === 0) return removed;
    }
  }

  async dropRoom(room: string): Promise<void> {
    let removed: number;
    do removed = (await redisCall(() => this.connection.run(DROP_ROOM, WRITE_KEYS, [...PREFIXES, room, TRIM_BATCH_ENTRIES]))) as number;
    while (removed > 0);
  }

  /** Waits for the appends in flight; the connection is the caller's (other stores share it). */
  async close(): Promise<void> {
    await this.settled();
  }
}

/**
 * The `Published` JSON after the message's id, which only the script knows: built here, where
 * JSON is exact, and joined there as text (Lua's cjson would round numbers past 14 digits). The
 * sending connection comes last, so everything before the id is the same for the whole node.
 */
function payloadTail(draft: Draft): string {
  const body: Omit<StoredMessage, "id"> = { from: draft.from, text: draft.text, ts: draft.ts };
  if (draft.room) body.room = draft.room;
  if (draft.to !== undefined) body.to = draft.to;
  const connection = draft.connection === undefined ? "" : `,"connection":${draft.connection}`;
  // `{"from":...}` becomes `,"from":...}` after the id, closing the message; then the payload's end.
  return `,${JSON.stringify(body).slice(1)}${connection}}`;
}

function refKey(sender: string, ref: string): string {
  return `${sender}\n${ref}`;
}

/** Entries in the order read; newest first ones are reversed, so the page is oldest first. */
function pageOf(entries: readonly StreamEntry[], limit: number, newestFirst: boolean): Page {
  const messages = entries.slice(0, limit).map(entryToMessage);
  if (newestFirst) messages.reverse();
  return { messages, more: entries.length > limit };
}

/**
 * Runs a Redis call with every failure as store_unavailable: the link already reports Redis
 * being away so; an error Redis answered (out of memory, a key of the wrong type) means the
 * same to a client, and nothing was stored.
 */
async function redisCall(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof RedisReplyError) throw new ChatError("store_unavailable", `Redis refused a message log command (${error.message})`);
    throw error;
  }
}
