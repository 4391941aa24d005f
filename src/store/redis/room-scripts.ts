// The Lua scripts behind the Redis room registry, and the key and argument layout they expect.
// Each change is one script: it updates the room state, takes the next sequence number, appends
// the change to the change stream and publishes it, all in one atomic step, so the state, the
// stream and what nodes hear always agree on one order. Nothing here applies changes in memory.

import { RedisScript } from "./connection.ts";
import { channels, keys, ROOM_PARTS } from "./keys.ts";

/** About how many changes the stream keeps (MAXLEN ~): a node further behind reloads the state. */
export const ROOM_CHANGES_KEPT = 10_000;

/** The keys every change script gets first, in this order; then each room's parts (ROOM_PARTS order). */
const COMMON_KEYS = [keys.roomSequence, keys.roomChanges, keys.roomIndex, keys.knownUsers, keys.serverBans] as const;

export function roomPartKeys(roomKey: string): string[] {
  return ROOM_PARTS.map((part) => keys.room(roomKey, part));
}

/** KEYS for a change script touching these rooms (none for server-wide bans). */
export function changeKeys(roomKeys: readonly string[]): string[] {
  return [...COMMON_KEYS, ...roomKeys.flatMap(roomPartKeys)];
}

/** ARGV for a change script: the channel, the stream's length, the node, then the change's own. */
export function changeArgs(node: string, args: ReadonlyArray<string | number>): Array<string | number> {
  return [channels.roomChanges, ROOM_CHANGES_KEPT, node, ...args];
}

// Every change script starts with this. Sequence numbers stay far below 1e14, the largest integer
// Lua's tostring writes in full. Values in a change are strings (JSON numbers would pass through
// cjson's 14 significant digits); `rooms` of a removal is an array of strings.
const PRELUDE = `
local meta, members, joined, ops, bans, mutes, invites = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]

local function current()
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end

local function log(change)
  local seq = redis.call('INCR', KEYS[1])
  change.seq = tostring(seq)
  change.node = ARGV[3]
  local entry = cjson.encode(change)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'change', entry)
  redis.call('PUBLISH', ARGV[1], entry)
  return seq
end

local function missing()
  return redis.call('EXISTS', meta) == 0
end

local function add_member(seq, user, name)
  redis.call('HSET', members, user, name)
  -- NX: a member joining again keeps their place.
  redis.call('ZADD', joined, 'NX', seq, user)
  redis.call('HDEL', meta, 'empty_since')
end
`;

/**
 * A change script replies `{seq, status}`: the sequence the node must have applied before it
 * answers (the new change's, or the current one when nothing changed), and `ok`, `unchanged` or
 * `no_such_room`.
 */
function changeScript(body: string): RedisScript {
  return new RedisScript(PRELUDE + body);
}

export const scripts = {
  /** ARGV 4.. room key, name, creator key, now. A room that exists (another node was first) stays as it is. */
  create: changeScript(`
if not missing() then return {current(), 'unchanged'} end
local seq = log({type = 'create', room = ARGV[4], name = ARGV[5], by = ARGV[6], at = ARGV[7]})
redis.call('HSET', meta, 'name', ARGV[5], 'topic', '', 'invite_only', '0', 'created_by', ARGV[6],
  'created_at', ARGV[7], 'empty_since', ARGV[7], 'seq', seq)
redis.call('SADD', KEYS[3], ARGV[4])
return {seq, 'ok'}
`),

  /** ARGV 4.. room key, user key, name as registered. Joining again updates the name only. */
  join: changeScript(`
if missing() then return {current(), 'no_such_room'} end
local seq = log({type = 'join', room = ARGV[4], name = ARGV[6]})
add_member(seq, ARGV[5], ARGV[6])
return {seq, 'ok'}
`),

  /** ARGV 4.. lobby key, user key, name. Only the first login of a user changes anything. */
  welcome: changeScript(`
if redis.call('SISMEMBER', KEYS[4], ARGV[5]) == 1 then return {current(), 'unchanged'} end
if missing() then return {current(), 'no_such_room'} end
local seq = log({type = 'welcome', room = ARGV[4], name = ARGV[6]})
redis.call('SADD', KEYS[4], ARGV[5])
add_member(seq, ARGV[5], ARGV[6])
return {seq, 'ok'}
`),

  /** ARGV 4.. room key, user key, now. The change says whether the room became empty. */
  leave: changeScript(`
if missing() then return {current(), 'no_such_room'} end
if redis.call('HDEL', members, ARGV[5]) == 0 then return {current(), 'unchanged'} end
redis.call('ZREM', joined, ARGV[5])
redis.call('SREM', ops, ARGV[5])
local change = {type = 'leave', room = ARGV[4], user = ARGV[5]}
if redis.call('HLEN', members) == 0 then
  redis.call('HSET', meta, 'empty_since', ARGV[6])
  change.empty_since = ARGV[6]
end
return {log(change), 'ok'}
`),

  /** ARGV 4.. room key, user key, '1' or '0'. The change carries the outcome: only members become operators. */
  operator: changeScript(`
if missing() then return {current(), 'no_such_room'} end
local op = ARGV[6] == '1' and redis.call('HEXISTS', members, ARGV[5]) == 1
if op then redis.call('SADD', ops, ARGV[5]) else redis.call('SREM', ops, ARGV[5]) end
return {log({type = 'operator', room = ARGV[4], user = ARGV[5], value = op and '1' or '0'}), 'ok'}
`),

  /** ARGV 4.. room key, topic. */
  topic: changeScript(`
if missing() then return {current(), 'no_such_room'} end
redis.call('HSET', meta, 'topic', ARGV[5])
return {log({type = 'topic', room = ARGV[4], topic = ARGV[5]}), 'ok'}
`),

  /** ARGV 4.. room key, '1' or '0'. */
  inviteOnly: changeScript(`
if missing() then return {current(), 'no_such_room'} end
redis.call('HSET', meta, 'invite_only', ARGV[5])
return {log({type = 'invite-only', room = ARGV[4], value = ARGV[5]}), 'ok'}
`),

  /** ARGV 4.. room key, user key, '1' or '0'. */
  invited: changeScript(`
if missing() then return {current(), 'no_such_room'} end
if ARGV[6] == '1' then redis.call('SADD', invites, ARGV[5]) else redis.call('SREM', invites, ARGV[5]) end
return {log({type = 'invited', room = ARGV[4], user = ARGV[5], value = ARGV[6]}), 'ok'}
`),

  /** ARGV 4.. room key, 'ban' or 'mute', user key, restriction JSON. */
  restrict: changeScript(`
if missing() then return {current(), 'no_such_room'} end
redis.call('HSET', ARGV[5] == 'ban' and bans or mutes, ARGV[6], ARGV[7])
return {log({type = 'restrict', room = ARGV[4], kind = ARGV[5], user = ARGV[6], restriction = ARGV[7]}), 'ok'}
`),

  /** ARGV 4.. room key, 'ban' or 'mute', user key. */
  lift: changeScript(`
if missing() then return {current(), 'no_such_room'} end
redis.call('HDEL', ARGV[5] == 'ban' and bans or mutes, ARGV[6])
return {log({type = 'lift', room = ARGV[4], kind = ARGV[5], user = ARGV[6]}), 'ok'}
`),

  /** ARGV 4.. user key, restriction JSON. */
  serverBan: changeScript(`
redis.call('HSET', KEYS[5], ARGV[4], ARGV[5])
return {log({type = 'server-ban', user = ARGV[4], restriction = ARGV[5]}), 'ok'}
`),

  /** ARGV 4.. user key. */
  serverUnban: changeScript(`
redis.call('HDEL', KEYS[5], ARGV[4])
return {log({type = 'server-unban', user = ARGV[4]}), 'ok'}
`),

  /**
   * ARGV 4.. the cutoff, then the candidate room keys (their parts in KEYS, seven each). Each is
   * checked again here, so a room another node removed or someone joined meanwhile stays out.
   * Replies `{seq, removed room keys...}`.
   */
  removeEmpty: changeScript(`
local removed = {}
for i = 5, #ARGV do
  local first = 6 + (i - 5) * 7
  local since = redis.call('HGET', KEYS[first], 'empty_since')
  if since and tonumber(since) < tonumber(ARGV[4]) then
    redis.call('DEL', unpack(KEYS, first, first + 6))
    redis.call('SREM', KEYS[3], ARGV[i])
    removed[#removed + 1] = ARGV[i]
  end
end
if #removed == 0 then return {current()} end
return {log({type = 'remove', rooms = removed}), unpack(removed)}
`),

  /**
   * KEYS: the parts of several rooms, seven each. Replies per room: meta, members, joined (with
   * scores), ops, bans, mutes, invites, read together so that one room is never half old, half new.
   */
  readRooms: new RedisScript(`
local rooms = {}
for first = 1, #KEYS, 7 do
  rooms[#rooms + 1] = {
    redis.call('HGETALL', KEYS[first]),
    redis.call('HGETALL', KEYS[first + 1]),
    redis.call('ZRANGE', KEYS[first + 2], 0, -1, 'WITHSCORES'),
    redis.call('SMEMBERS', KEYS[first + 3]),
    redis.call('HGETALL', KEYS[first + 4]),
    redis.call('HGETALL', KEYS[first + 5]),
    redis.call('SMEMBERS', KEYS[first + 6]),
  }
end
return rooms
`),
} as const;
