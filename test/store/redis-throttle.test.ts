// The Redis throttle counters against the contract, and what only they promise: every node counts
// into the same place, and a subject's counts expire from Redis on the window (or the block, if
// longer), which is how they are forgotten and what bounds memory.

import { describe, expect, test } from "bun:test";
import { LoginThrottle } from "../../src/auth/throttle.ts";
import { keys } from "../../src/store/redis/keys.ts";
import { RedisThrottleCounters } from "../../src/store/redis/throttle.ts";
import { CONTRACT_POLICY, describeThrottleContract } from "../auth/throttle-contract.ts";
import { redisAvailable } from "../helpers/redis.ts";
import { redisForFile } from "../helpers/redis-fixture.ts";

/** How much of a TTL may have run down by the time the test reads it. */
const READ_SLACK_MS = 2_000;

const available = redisAvailable();
const redis = available ? redisForFile() : undefined;

if (redis) {
  describeThrottleContract("RedisThrottleCounters", async () => ({
    counters: new RedisThrottleCounters(await redis.fresh(), CONTRACT_POLICY),
    [Symbol.asyncDispose]: async () => {},
  }));
}

describe.skipIf(!available)("RedisThrottleCounters", () => {
  test("failures counted by one node throttle the subject on another", async () => {
    const nodeA = new LoginThrottle(new RedisThrottleCounters(await redis!.fresh(), CONTRACT_POLICY));
    const nodeB = new LoginThrottle(new RedisThrottleCounters(await redis!.connect(), CONTRACT_POLICY));
    for (let i = 0; i <= CONTRACT_POLICY.freeFailures; i++) {
      const node = i % 2 === 0 ? nodeA : nodeB;
      await node.begin(`198.51.100.${i}`, "alice");
      await node.finish(`198.51.100.${i}`, "alice", "wrong");
    }
    await expect(nodeB.begin("203.0.113.9", "alice")).rejects.toThrow("try again in 10 s");
    await expect(nodeA.check("203.0.113.9", "alice")).rejects.toThrow();
  });

  test("a subject's counts expire after the window, or after its block when that is longer", async () => {
    const maxDelayMs = 10 * CONTRACT_POLICY.windowMs;
    const counters = new RedisThrottleCounters(await redis!.fresh(), { ...CONTRACT_POLICY, maxDelayMs });
    const ttlOf = (name: string) => Number(redis!.server.cli("PTTL", keys.throttle("user", name)));
    await counters.charge(["user", "bob"]);
    expect(ttlOf("bob")).toBeGreaterThan(CONTRACT_POLICY.windowMs - READ_SLACK_MS);
    expect(ttlOf("bob")).toBeLessThanOrEqual(CONTRACT_POLICY.windowMs);
    // Eight failures past the free ones reach the cap, a block ten times the window.
    for (let i = 0; i < CONTRACT_POLICY.freeFailures + 8; i++) await counters.charge(["user", "carol"]);
    expect(ttlOf("carol")).toBeGreaterThan(maxDelayMs - READ_SLACK_MS);
    await counters.clear(["user", "carol"]);
    expect(ttlOf("carol")).toBe(-2);
  });
});
