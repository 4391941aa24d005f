import { describe, expect, test } from "bun:test";
import { LoginThrottle } from "../../src/auth/throttle.ts";

const policy = { freeFailures: 2, baseDelayMs: 1_000, maxDelayMs: 8_000, windowMs: 60_000, maxEntries: 100 };

/** A wrong password, checked to the end. */
function fail(throttle: LoginThrottle, address: string, user: string): void {
  throttle.begin(address, user);
  throttle.finish(address, user, "wrong");
}

describe("LoginThrottle", () => {
  test("allows the free failures, then delays double up to the cap", () => {
    const clock = { now: 0 };
    const throttle = new LoginThrottle(policy, () => clock.now);
    fail(throttle, "1.1.1.1", "alice");
    fail(throttle, "1.1.1.1", "alice");
    fail(throttle, "1.1.1.1", "alice");
    expect(() => throttle.begin("1.1.1.1", "alice")).toThrow("try again in 1 s");
    clock.now = 1_000;
    for (let i = 0; i < 10; i++) {
      fail(throttle, "1.1.1.1", "alice");
      clock.now += 8_000;
    }
    fail(throttle, "1.1.1.1", "alice");
    expect(() => throttle.begin("1.1.1.1", "alice")).toThrow("try again in 8 s");
  });

  test("checks still running count against the user: parallel guesses are throttled like serial ones", () => {
    const throttle = new LoginThrottle(policy, () => 0);
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      try {
        throttle.begin(`10.0.0.${i}`, "alice");
        outcomes.push("checked");
      } catch {
        outcomes.push("throttled");
      }
    }
    expect(outcomes.filter((outcome) => outcome === "checked")).toHaveLength(3);
  });

  test("throttles by user from any address and by address for any user", () => {
    const throttle = new LoginThrottle(policy, () => 0);
    for (const address of ["a", "b", "c"]) fail(throttle, address, "alice");
    expect(() => throttle.begin("d", "alice")).toThrow();
    for (const user of ["u1", "u2", "u3"]) fail(throttle, "e", user);
    expect(() => throttle.begin("e", "someone-else")).toThrow();
    expect(() => throttle.begin("f", "bob")).not.toThrow();
  });

  test("a right password clears the user's record; the address keeps its failures", () => {
    const throttle = new LoginThrottle(policy, () => 0);
    fail(throttle, "x", "alice");
    fail(throttle, "x", "alice");
    throttle.begin("x", "alice");
    throttle.finish("x", "alice", "right");
    // The user starts afresh; the address has two failures, so one more is still free.
    for (let i = 0; i < 2; i++) fail(throttle, `y${i}`, "alice");
    fail(throttle, "x", "bob");
    expect(() => throttle.begin("x", "carol")).toThrow();
  });

  test("many right passwords from one address at once (a NAT) are not throttled", () => {
    const throttle = new LoginThrottle(policy, () => 0);
    const users = Array.from({ length: 12 }, (_, i) => `user${i}`);
    for (const user of users) throttle.begin("203.0.113.1", user);
    for (const user of users) throttle.finish("203.0.113.1", user, "right");
    expect(() => throttle.begin("203.0.113.1", "user0")).not.toThrow();
  });

  test("an attempt that was never checked (server busy) is not held against anyone", () => {
    const throttle = new LoginThrottle(policy, () => 0);
    for (let i = 0; i < 10; i++) {
      throttle.begin("x", "alice");
      throttle.finish("x", "alice", "unchecked");
    }
    expect(() => throttle.begin("x", "alice")).not.toThrow();
  });

  test("old failures are forgotten after the window", () => {
    const clock = { now: 0 };
    const throttle = new LoginThrottle(policy, () => clock.now);
    for (let i = 0; i < 3; i++) fail(throttle, "q", "bob");
    expect(() => throttle.begin("q", "bob")).toThrow();
    clock.now = 61_000 + 8_000;
    expect(() => throttle.begin("q", "bob")).not.toThrow();
  });

  test("memory is bounded by maxEntries", () => {
    const throttle = new LoginThrottle({ ...policy, maxEntries: 10 }, () => 0);
    for (let i = 0; i < 1_000; i++) fail(throttle, `ip${i}`, `user${i}`);
    expect((throttle as unknown as { entries: Map<string, unknown> }).entries.size).toBeLessThanOrEqual(10);
  });
});
