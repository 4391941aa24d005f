// Failed-login throttling per address and per user: a few free failures, then a delay that
// doubles with each further failure. A throttled attempt is refused before any hashing, so
// brute force costs the server almost nothing, however many connections it uses.

import { ChatError } from "../protocol/errors.ts";

export interface ThrottlePolicy {
  freeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Failures older than this are forgotten. */
  windowMs: number;
  /** Tracked keys at most; the oldest are forgotten first, so memory stays bounded. */
  maxEntries: number;
}

interface Failures {
  count: number;
  lastAt: number;
  blockedUntil: number;
}

export class LoginThrottle {
  private readonly entries = new Map<string, Failures>();

  constructor(
    private readonly policy: ThrottlePolicy,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Starts a password attempt: throws `throttled` if the address or the user must wait, else
   * counts the attempt as a failure right away. Counting before the slow hash means parallel
   * guesses on many connections are throttled as if they came one after another.
   */
  begin(address: string, user: string): void {
    const now = this.now();
    const waitMs = Math.max(this.remaining(`ip:${address}`, now), this.remaining(`user:${user}`, now));
    if (waitMs > 0) {
      throw new ChatError("throttled", `Too many failed logins; try again in ${Math.ceil(waitMs / 1000)} s`);
    }
    for (const key of [`ip:${address}`, `user:${user}`]) {
      const entry = this.fresh(key, now) ?? { count: 0, lastAt: now, blockedUntil: 0 };
      entry.count += 1;
      entry.lastAt = now;
      const over = entry.count - this.policy.freeFailures;
      if (over > 0) {
        entry.blockedUntil = now + Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** Math.min(over - 1, 30));
      }
      // Re-insert so Map order is least-recently-failed first.
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    while (this.entries.size > this.policy.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!);
    }
  }

  /**
   * Takes back the failure `begin` counted: the password was right (the user's record is then
   * cleared), or the attempt never got to be checked (server busy, connection gone).
   */
  settle(address: string, user: string, passwordWasRight: boolean): void {
    if (passwordWasRight) this.entries.delete(`user:${user}`);
    for (const key of passwordWasRight ? [`ip:${address}`] : [`ip:${address}`, `user:${user}`]) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      entry.count = Math.max(0, entry.count - 1);
      if (entry.count <= this.policy.freeFailures) entry.blockedUntil = 0;
    }
  }

  private remaining(key: string, now: number): number {
    const entry = this.fresh(key, now);
    return entry ? Math.max(0, entry.blockedUntil - now) : 0;
  }

  private fresh(key: string, now: number): Failures | undefined {
    const entry = this.entries.get(key);
    if (entry && now - entry.lastAt > this.policy.windowMs && now >= entry.blockedUntil) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }
}
