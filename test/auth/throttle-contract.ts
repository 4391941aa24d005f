// The ThrottleCounters contract: what every place failed logins are counted in (this process's
// memory, a cluster's Redis) must do, and the LoginThrottle policy over it, as one `describe` that
// each implementation's test file runs, so that they cannot drift apart. The delays are long
// enough that no test waits for one to pass, so the same tests hold on Redis's real clock; a wait
// is read with the slack the test itself may take.

import { describe, expect, test } from "bun:test";
import { LoginThrottle, type ThrottleCounters, type ThrottleSubject } from "../../src/auth/throttle.ts";
import type { ThrottlePolicy } from "../../src/core/limits.ts";

export const CONTRACT_POLICY: ThrottlePolicy = { freeFailures: 2, baseDelayMs: 10_000, maxDelayMs: 40_000, windowMs: 60_000, maxEntries: 1_000 };
/** How much of a delay may have passed by the time a test reads the wait. */
const READ_SLACK_MS = 2_000;

/** Counters to test, empty, with CONTRACT_POLICY, and how to throw them away. */
export interface ThrottleFixture extends AsyncDisposable {
  counters: ThrottleCounters;
}

const ALICE: ThrottleSubject = ["user", "alice"];
const ADDRESS: ThrottleSubject = ["address", "192.0.2.1"];

async function chargeTimes(counters: ThrottleCounters, subject: ThrottleSubject, times: number): Promise<void> {
  for (let i = 0; i < times; i++) await counters.charge(subject);
}

/** A wait that started as `delayMs` and has been running for at most the slack. */
function expectWaitNear(waitMs: number, delayMs: number): void {
  expect(waitMs).toBeLessThanOrEqual(delayMs);
  expect(waitMs).toBeGreaterThan(delayMs - READ_SLACK_MS);
}

export function describeThrottleContract(name: string, open: () => Promise<ThrottleFixture>): void {
  describe(`${name}: the throttle counters contract`, () => {
    test("the free failures cost nothing; then each failure blocks for the next delay, doubling up to the cap", async () => {
      await using fixture = await open();
      const { counters } = fixture;
      await chargeTimes(counters, ALICE, CONTRACT_POLICY.freeFailures);
      expect(await counters.waitMs([ALICE])).toBe(0);
      for (const delay of [10_000, 20_000, 40_000, 40_000]) {
        await counters.charge(ALICE);
        expectWaitNear(await counters.waitMs([ALICE]), delay);
      }
    });

    test("a charge refused because a subject must wait counts nothing and says how long", async () => {
      await using fixture = await open();
      const { counters } = fixture;
      await chargeTimes(counters, ALICE, CONTRACT_POLICY.freeFailures + 1);
      expectWaitNear(await counters.charge(ADDRESS, [ALICE]), 10_000);
      // Had the refused charge counted, the address would be blocked after its free failures.
      await chargeTimes(counters, ADDRESS, CONTRACT_POLICY.freeFailures);
      expect(await counters.waitMs([ADDRESS])).toBe(0);
    });

    test("charges made at once, each guarded by its own subject, pass like serial ones: the free failures and the one that blocks", async () => {
      await using fixture = await open();
      const outcomes = await Promise.all(Array.from({ length: 10 }, () => fixture.counters.charge(ALICE, [ALICE])));
      expect(outcomes.filter((wait) => wait === 0)).toHaveLength(CONTRACT_POLICY.freeFailures + 1);
    });

    test("subjects differ by kind and by name; a wait over several is the longest", async () => {
      await using fixture = await open();
      const { counters } = fixture;
      await chargeTimes(counters, ALICE, CONTRACT_POLICY.freeFailures + 2);
      expect(await counters.waitMs([["address", "alice"]])).toBe(0);
      expect(await counters.waitMs([["user", "bob"]])).toBe(0);
      expectWaitNear(await counters.waitMs([["user", "bob"], ALICE]), 20_000);
      expect(await counters.waitMs([])).toBe(0);
    });

    test("a refund takes one failure back and lifts the block within the free failures; clear forgets everything", async () => {
      await using fixture = await open();
      const { counters } = fixture;
      await chargeTimes(counters, ALICE, CONTRACT_POLICY.freeFailures + 1);
      await counters.refund(ALICE);
      expect(await counters.waitMs([ALICE])).toBe(0);
      await counters.charge(ALICE);
      expectWaitNear(await counters.waitMs([ALICE]), 10_000);
      await counters.clear(ALICE);
      await chargeTimes(counters, ALICE, CONTRACT_POLICY.freeFailures);
      expect(await counters.waitMs([ALICE])).toBe(0);
      // Refunding a subject with no failures changes nothing.
      await counters.refund(["user", "nobody"]);
      expect(await counters.waitMs([["user", "nobody"]])).toBe(0);
    });
  });

  describe(`${name}: LoginThrottle`, () => {
    /** A wrong password, checked to the end. */
    async function fail(throttle: LoginThrottle, address: string, user: string): Promise<void> {
      await throttle.begin(address, user);
      await throttle.finish(address, user, "wrong");
    }

    test("throttles by user from any address and by address for any user", async () => {
      await using fixture = await open();
      const throttle = new LoginThrottle(fixture.counters);
      for (const address of ["a", "b", "c"]) await fail(throttle, address, "alice");
      await expect(throttle.begin("d", "alice")).rejects.toThrow("try again in 10 s");
      for (const user of ["u1", "u2", "u3"]) await fail(throttle, "e", user);
      await expect(throttle.begin("e", "someone-else")).rejects.toThrow();
      await expect(throttle.check("e", "someone-else")).rejects.toThrow();
      await expect(throttle.checkAddress("e")).rejects.toThrow();
      await throttle.begin("f", "bob");
    });

    test("a right password clears the user's record; the address keeps its failures", async () => {
      await using fixture = await open();
      const throttle = new LoginThrottle(fixture.counters);
      await fail(throttle, "x", "alice");
      await fail(throttle, "x", "alice");
      await throttle.begin("x", "alice");
      await throttle.finish("x", "alice", "right");
      // The user starts afresh; the address has two failures, so one more is still free.
      for (let i = 0; i < 2; i++) await fail(throttle, `y${i}`, "alice");
      await fail(throttle, "x", "bob");
      await expect(throttle.begin("x", "carol")).rejects.toThrow();
    });

    test("many right passwords from one address at once (a NAT) are not throttled", async () => {
      await using fixture = await open();
      const throttle = new LoginThrottle(fixture.counters);
      const users = Array.from({ length: 12 }, (_, i) => `user${i}`);
      for (const user of users) await throttle.begin("203.0.113.1", user);
      for (const user of users) await throttle.finish("203.0.113.1", user, "right");
      await throttle.begin("203.0.113.1", "user0");
    });

    test("an attempt that was never checked (server busy) is not held against anyone", async () => {
      await using fixture = await open();
      const throttle = new LoginThrottle(fixture.counters);
      for (let i = 0; i < 10; i++) {
        await throttle.begin("x", "alice");
        await throttle.finish("x", "alice", "unchecked");
      }
      await throttle.begin("x", "alice");
    });

    test("failed key logins (no hashing) are charged to the address only", async () => {
      await using fixture = await open();
      const throttle = new LoginThrottle(fixture.counters);
      for (let i = 0; i <= CONTRACT_POLICY.freeFailures; i++) await throttle.chargeAddress("k");
      await expect(throttle.checkAddress("k")).rejects.toThrow("try again in 10 s");
      await throttle.check("elsewhere", "alice");
    });
  });
}
