// Failed-login throttling per address and per user: a few free failures, then a delay that
// doubles with each further failure. A throttled attempt is refused before any hashing, so
// brute force costs the server almost nothing, however many connections it uses.

import type { ThrottlePolicy } from "../core/limits.ts";
import { ChatError } from "../protocol/errors.ts";

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
   * Starts a password check: throws `throttled` if the address or the user must wait. The
   * attempt counts against the user at once, so guesses at one account made in parallel from
   * many connections are throttled as if they came one after another. Callers keep the number
   * of parallel checks per address small, so the address is charged when a check fails.
   */
  begin(address: string, user: string): void {
    this.check(address, user);
    this.charge(`user:${user}`, this.now());
  }

  /** Throws `throttled` if the address or the user must wait; charges nothing. */
  check(address: string, user: string): void {
    const now = this.now();
    refuseFor(Math.max(this.remaining(`ip:${address}`, now), this.remaining(`user:${user}`, now)));
  }

  /**
   * Throws `throttled` if the address must wait. Logins by key look at the address only: a key
   * cannot be guessed, and someone guessing at a user's password must not lock out their key.
   */
  checkAddress(address: string): void {
    refuseFor(this.remaining(`ip:${address}`, this.now()));
  }

  /** A failed attempt that cost no hashing (a login by key): counted against the address. */
  chargeAddress(address: string): void {
    this.charge(`ip:${address}`, this.now());
  }

  /** Ends a check `begin` started: wrong password, right password, or never checked (server busy, connection gone). */
  finish(address: string, user: string, outcome: "wrong" | "right" | "unchecked"): void {
    switch (outcome) {
      case "wrong":
        this.charge(`ip:${address}`, this.now());
        return;
      case "right":
        this.entries.delete(`user:${user}`);
        return;
      case "unchecked": {
        const entry = this.entries.get(`user:${user}`);
        if (!entry) return;
        entry.count = Math.max(0, entry.count - 1);
        if (entry.count <= this.policy.freeFailures) entry.blockedUntil = 0;
        return;
      }
    }
  }

  private charge(key: string, now: number): void {
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
    while (this.entries.size > this.policy.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!);
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

function refuseFor(waitMs: number): void {
  if (waitMs > 0) throw new ChatError("throttled", `Too many failed logins; try again in ${Math.ceil(waitMs / 1000)} s`);
}
