import { describe, expect, test } from "bun:test";
import { LoginThrottle } from "../../src/auth/throttle.ts";

const policy = { freeFailures: 2, baseDelayMs: 1_000, maxDelayMs: 8_000, windowMs: 60_000, maxEntries: 100 };

describe("LoginThrottle", () => {
  test("allows the free failures, then delays double up to the cap", () => {
    const clock = { now: 0 };
    const throttle = new LoginThrottle(policy, () => clock.now);
    throttle.recordFailure("1.1.1.1", "alice");
    throttle.recordFailure("1.1.1.1", "alice");
    expect(() => throttle.check("1.1.1.1", "alice")).not.toThrow();
    throttle.recordFailure("1.1.1.1", "alice");
    expect(() => throttle.check("1.1.1.1", "alice")).toThrow("try again in 1 s");
    clock.now = 1_000;
    expect(() => throttle.check("1.1.1.1", "alice")).not.toThrow();
    for (let i = 0; i < 10; i++) throttle.recordFailure("1.1.1.1", "alice");
    expect(() => throttle.check("1.1.1.1", "alice")).toThrow("try again in 8 s");
  });

  test("throttles by user from any address and by address for any user", () => {
    const throttle = new LoginThrottle(policy, () => 0);
    for (const address of ["a", "b", "c"]) throttle.recordFailure(address, "alice");
    expect(() => throttle.check("d", "alice")).toThrow();
    for (const user of ["u1", "u2", "u3"]) throttle.recordFailure("e", user);
    expect(() => throttle.check("e", "someone-else")).toThrow();
    expect(() => throttle.check("f", "bob")).not.toThrow();
  });

  test("a success clears the user's record; old failures are forgotten after the window", () => {
    const clock = { now: 0 };
    const throttle = new LoginThrottle(policy, () => clock.now);
    throttle.recordFailure("x", "alice");
    throttle.recordFailure("y", "alice");
    throttle.recordSuccess("alice");
    throttle.recordFailure("z", "alice");
    expect(() => throttle.check("w", "alice")).not.toThrow();
    for (let i = 0; i < 3; i++) throttle.recordFailure("q", "bob");
    clock.now = 61_000 + 8_000;
    expect(() => throttle.check("q", "bob")).not.toThrow();
  });

  test("memory is bounded by maxEntries", () => {
    const throttle = new LoginThrottle({ ...policy, maxEntries: 10 }, () => 0);
    for (let i = 0; i < 1_000; i++) throttle.recordFailure(`ip${i}`, `user${i}`);
    // The earliest users were evicted, so they are no longer throttled even after 3 failures each.
    expect((throttle as unknown as { entries: Map<string, unknown> }).entries.size).toBeLessThanOrEqual(10);
  });
});
