// Failed-login throttling per address and per user: a few free failures, then a delay that
// doubles with each further failure. A throttled attempt is refused before any hashing, so
// brute force costs the server almost nothing, however many connections it uses. The counts
// live behind ThrottleCounters: in this process's memory for a single server (here), in Redis
// for a cluster (store/redis/throttle.ts), so that a guesser cannot spread attempts over nodes.

import type { ThrottlePolicy } from "../core/limits.ts";
import { ChatError } from "../protocol/errors.ts";

/** What failures are counted against: a client address or a user name. */
export type ThrottleSubject = readonly [kind: "address" | "user", name: string];

/** Where failures are counted. Every method is one atomic step of its implementation. */
export interface ThrottleCounters {
  /** Milliseconds until none of `subjects` must wait any more; 0 when none is blocked. */
  waitMs(subjects: readonly ThrottleSubject[]): Promise<number>;
  /**
   * Counts a failure against `subject`; past the free failures it is blocked for the next delay
   * of the schedule. If one of `unlessWaiting` must wait, nothing is counted and the wait comes
   * back instead (0 when the failure was counted): looking and counting in one step, so attempts
   * made in parallel cannot all pass the look before any of them is counted.
   */
  charge(subject: ThrottleSubject, unlessWaiting?: readonly ThrottleSubject[]): Promise<number>;
  /** Takes one failure back (a check that never ran); within the free failures again, the block goes. */
  refund(subject: ThrottleSubject): Promise<void>;
  /** Forgets the subject's failures. */
  clear(subject: ThrottleSubject): Promise<void>;
}

/**
 * The block after each failure past the free ones: `baseDelayMs`, doubled each time, then
 * `maxDelayMs` for good. Both implementations read the delay from this list (Redis gets it as
 * script arguments), so the policy is written once.
 */
export function delaySchedule(policy: ThrottlePolicy): number[] {
  const delays: number[] = [];
  let delay = policy.baseDelayMs;
  for (; delay > 0 && delay < policy.maxDelayMs; delay *= 2) delays.push(delay);
  delays.push(Math.min(delay, policy.maxDelayMs));
  return delays;
}

/** The delay after `count` failures: none within the free ones, then the schedule's, the last one repeated. */
function blockAfter(count: number, policy: ThrottlePolicy, delays: readonly number[]): number {
  const over = count - policy.freeFailures;
  return over > 0 ? delays[Math.min(over, delays.length) - 1]! : 0;
}

interface Failures {
  count: number;
  lastAt: number;
  blockedUntil: number;
}

/** The counters of a single server, in memory: bounded by `maxEntries`, the least recently failed forgotten first. */
export class MemoryThrottleCounters implements ThrottleCounters {
  private readonly entries = new Map<string, Failures>();
  private readonly delays: number[];

  constructor(
    private readonly policy: ThrottlePolicy,
    private readonly now: () => number = Date.now,
  ) {
    this.delays = delaySchedule(policy);
  }

  async waitMs(subjects: readonly ThrottleSubject[]): Promise<number> {
    return this.longestWait(subjects, this.now());
  }

  async charge(subject: ThrottleSubject, unlessWaiting: readonly ThrottleSubject[] = []): Promise<number> {
    const now = this.now();
    const wait = this.longestWait(unlessWaiting, now);
    if (wait > 0) return wait;
    const key = entryKey(subject);
    const entry = this.fresh(key, now) ?? { count: 0, lastAt: now, blockedUntil: 0 };
    entry.count += 1;
    entry.lastAt = now;
    const block = blockAfter(entry.count, this.policy, this.delays);
    if (block > 0) entry.blockedUntil = now + block;
    // Re-insert so Map order is least-recently-failed first.
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.policy.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!);
    }
    return 0;
  }

  async refund(subject: ThrottleSubject): Promise<void> {
    const entry = this.entries.get(entryKey(subject));
    if (!entry) return;
    entry.count = Math.max(0, entry.count - 1);
    if (entry.count <= this.policy.freeFailures) entry.blockedUntil = 0;
  }

  async clear(subject: ThrottleSubject): Promise<void> {
    this.entries.delete(entryKey(subject));
  }

  private longestWait(subjects: readonly ThrottleSubject[], now: number): number {
    let wait = 0;
    for (const subject of subjects) {
      const entry = this.fresh(entryKey(subject), now);
      if (entry) wait = Math.max(wait, entry.blockedUntil - now);
    }
    return wait;
  }

  /** The entry, unless its failures are older than the window and its block is over. */
  private fresh(key: string, now: number): Failures | undefined {
    const entry = this.entries.get(key);
    if (entry && now - entry.lastAt > this.policy.windowMs && now >= entry.blockedUntil) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }
}

function entryKey([kind, name]: ThrottleSubject): string {
  return `${kind}:${name}`;
}

/** The throttle the account service asks: what counts against whom, over any ThrottleCounters. */
export class LoginThrottle {
  constructor(private readonly counters: ThrottleCounters) {}

  /**
   * Starts a password check: refuses with `throttled` if the address or the user must wait. The
   * attempt counts against the user at once, so guesses at one account made in parallel from
   * many connections are throttled as if they came one after another. Callers keep the number
   * of parallel checks per address small, so the address is charged when a check fails.
   */
  async begin(address: string, user: string): Promise<void> {
    refuseFor(await this.counters.charge(["user", user], [["address", address], ["user", user]]));
  }

  /** Refuses with `throttled` if the address or the user must wait; charges nothing. */
  async check(address: string, user: string): Promise<void> {
    refuseFor(await this.counters.waitMs([["address", address], ["user", user]]));
  }

  /**
   * Refuses with `throttled` if the address must wait. Logins by key look at the address only: a
   * key cannot be guessed, and someone guessing at a user's password must not lock out their key.
   */
  async checkAddress(address: string): Promise<void> {
    refuseFor(await this.counters.waitMs([["address", address]]));
  }

  /** A failed attempt that cost no hashing (a login by key): counted against the address. */
  async chargeAddress(address: string): Promise<void> {
    await this.counters.charge(["address", address]);
  }

  /** Ends a check `begin` started: wrong password, right password, or never checked (server busy, connection gone). */
  async finish(address: string, user: string, outcome: "wrong" | "right" | "unchecked"): Promise<void> {
    switch (outcome) {
      case "wrong":
        await this.counters.charge(["address", address]);
        return;
      case "right":
        await this.counters.clear(["user", user]);
        return;
      case "unchecked":
        await this.counters.refund(["user", user]);
        return;
    }
  }
}

function refuseFor(waitMs: number): void {
  if (waitMs > 0) throw new ChatError("throttled", `Too many failed logins; try again in ${Math.ceil(waitMs / 1000)} s`);
}
