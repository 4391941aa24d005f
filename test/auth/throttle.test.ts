// The in-memory throttle counters against the contract, and what only they promise on a clock a
// test moves: delays double to the cap over time, old failures are forgotten after the window,
// and memory stays bounded. Also the delay schedule both implementations read.

import { describe, expect, test } from "bun:test";
import { delaySchedule, LoginThrottle, MemoryThrottleCounters } from "../../src/auth/throttle.ts";
import { CONTRACT_POLICY, describeThrottleContract } from "./throttle-contract.ts";

const policy = { freeFailures: 2, baseDelayMs: 1_000, maxDelayMs: 8_000, windowMs: 60_000, maxEntries: 100 };

describeThrottleContract("MemoryThrottleCounters", async () => ({
  counters: new MemoryThrottleCounters(CONTRACT_POLICY, () => 0),
  [Symbol.asyncDispose]: async () => {},
}));

/** A wrong password, checked to the end. */
async function fail(throttle: LoginThrottle, address: string, user: string): Promise<void> {
  await throttle.begin(address, user);
  await throttle.finish(address, user, "wrong");
}

describe("delaySchedule", () => {
  test("doubles from the base up to the cap, which it ends with", () => {
    expect(delaySchedule(policy)).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(delaySchedule({ ...policy, maxDelayMs: 5_000 })).toEqual([1_000, 2_000, 4_000, 5_000]);
    expect(delaySchedule({ ...policy, baseDelayMs: 10_000 })).toEqual([8_000]);
    expect(delaySchedule({ ...policy, baseDelayMs: 0 })).toEqual([0]);
  });
});

describe("MemoryThrottleCounters over time", () => {
  test("allows the free failures, then delays double up to the cap", async () => {
    const clock = { now: 0 };
    const throttle = new LoginThrottle(new MemoryThrottleCounters(policy, () => clock.now));
    for (let i = 0; i < 3; i++) await fail(throttle, "1.1.1.1", "alice");
    await expect(throttle.begin("1.1.1.1", "alice")).rejects.toThrow("try again in 1 s");
    clock.now = 1_000;
    for (let i = 0; i < 10; i++) {
      await fail(throttle, "1.1.1.1", "alice");
      clock.now += 8_000;
    }
    await fail(throttle, "1.1.1.1", "alice");
    await expect(throttle.begin("1.1.1.1", "alice")).rejects.toThrow("try again in 8 s");
  });

  test("old failures are forgotten after the window", async () => {
    const clock = { now: 0 };
    const throttle = new LoginThrottle(new MemoryThrottleCounters(policy, () => clock.now));
    for (let i = 0; i < 3; i++) await fail(throttle, "q", "bob");
    await expect(throttle.begin("q", "bob")).rejects.toThrow();
    clock.now = 61_000 + 8_000;
    await throttle.begin("q", "bob");
  });

  test("memory is bounded by maxEntries", async () => {
    const counters = new MemoryThrottleCounters({ ...policy, maxEntries: 10 }, () => 0);
    const throttle = new LoginThrottle(counters);
    for (let i = 0; i < 1_000; i++) await fail(throttle, `ip${i}`, `user${i}`);
    expect((counters as unknown as { entries: Map<string, unknown> }).entries.size).toBeLessThanOrEqual(10);
  });
});
