// Failed-login counters of a cluster (ThrottleCounters on Redis): every node counts into the same
// place, so a guesser gains nothing by spreading attempts over nodes. The policy (free failures,
// window, the delay schedule) is auth/throttle.ts's and reaches the scripts as arguments; this
// file only knows how the counts are kept.
//
// One hash per subject, `keys.throttle(kind, name)`:
//   count         failures counted within the window
//   blockedUntil  when the block ends, in ms on Redis's clock (absent: not blocked)
// It expires `max(window, block)` after the last failure, which is how old failures are
// forgotten and what bounds memory. Times come from Redis's TIME, one clock for every node,
// so nodes whose clocks disagree still agree on how long a subject waits.

import type { ThrottlePolicy } from "../../core/limits.ts";
import { delaySchedule, type ThrottleCounters, type ThrottleSubject } from "../../auth/throttle.ts";
import { RedisScript, type RedisConnection } from "./connection.ts";
import { keys } from "./keys.ts";

/** Redis's clock in ms, and the wait of a subject hash: shared by the scripts below. */
const LUA_PRELUDE = `
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function wait_of(key, now)
  return math.max(0, (tonumber(redis.call('HGET', key, 'blockedUntil')) or 0) - now)
end
local function longest_wait(from, now)
  local wait = 0
  for i = from, #KEYS do wait = math.max(wait, wait_of(KEYS[i], now)) end
  return wait
end
`;

/** KEYS: the subjects. Returns the longest wait in ms. */
const WAIT = new RedisScript(`${LUA_PRELUDE}
return longest_wait(1, now_ms())
`);

/**
 * KEYS[1]: the subject to charge; KEYS[2..]: the subjects that must not be waiting.
 * ARGV: free failures, window ms, then the delay schedule. Returns the wait (0: charged).
 */
const CHARGE = new RedisScript(`${LUA_PRELUDE}
local now = now_ms()
local wait = longest_wait(2, now)
if wait > 0 then return wait end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local over = count - tonumber(ARGV[1])
local lifetime = tonumber(ARGV[2])
if over > 0 then
  local delays = #ARGV - 2
  local delay = tonumber(ARGV[2 + math.min(over, delays)])
  redis.call('HSET', KEYS[1], 'blockedUntil', now + delay)
  lifetime = math.max(lifetime, delay)
end
redis.call('PEXPIRE', KEYS[1], lifetime)
return 0
`);

/** KEYS[1]: the subject; ARGV[1]: free failures. */
const REFUND = new RedisScript(`
local count = tonumber(redis.call('HGET', KEYS[1], 'count'))
if not count then return 0 end
count = math.max(0, count - 1)
redis.call('HSET', KEYS[1], 'count', count)
if count <= tonumber(ARGV[1]) then redis.call('HDEL', KEYS[1], 'blockedUntil') end
return 0
`);

export class RedisThrottleCounters implements ThrottleCounters {
  private readonly chargeArgs: number[];

  constructor(
    private readonly connection: RedisConnection,
    private readonly policy: ThrottlePolicy,
  ) {
    this.chargeArgs = [policy.freeFailures, policy.windowMs, ...delaySchedule(policy)];
  }

  async waitMs(subjects: readonly ThrottleSubject[]): Promise<number> {
    if (subjects.length === 0) return 0;
    return Number(await this.connection.run(WAIT, subjects.map(keyOf), []));
  }

  async charge(subject: ThrottleSubject, unlessWaiting: readonly ThrottleSubject[] = []): Promise<number> {
    return Number(await this.connection.run(CHARGE, [keyOf(subject), ...unlessWaiting.map(keyOf)], this.chargeArgs));
  }

  async refund(subject: ThrottleSubject): Promise<void> {
    await this.connection.run(REFUND, [keyOf(subject)], [this.policy.freeFailures]);
  }

  async clear(subject: ThrottleSubject): Promise<void> {
    await this.connection.send("DEL", [keyOf(subject)]);
  }
}

function keyOf([kind, name]: ThrottleSubject): string {
  return keys.throttle(kind, name);
}
