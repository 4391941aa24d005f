// Delays between reconnect attempts: exponential growth with jitter, so clients dropped together
// by a restarting server do not all come back at the same instant.

export const DEFAULT_BACKOFF_BASE_MS = 1_000;
export const DEFAULT_BACKOFF_MAX_MS = 30_000;

export interface BackoffOptions {
  /** Ceiling of the first delay. */
  baseMs?: number;
  /** Largest ceiling; the delay stops growing here. */
  maxMs?: number;
  /** Uniform in [0, 1); tests pass a fixed function to make delays deterministic. */
  random?: () => number;
}

/**
 * "Equal jitter": attempt n waits between half and all of min(maxMs, baseMs · 2ⁿ). Full jitter
 * would spread a crowd slightly wider but can retry at once against a server that just failed;
 * keeping the lower half away still spreads the crowd over half of each window.
 */
export class Backoff {
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  private count = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? DEFAULT_BACKOFF_BASE_MS;
    this.maxMs = opts.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
    this.random = opts.random ?? Math.random;
    if (!(this.baseMs > 0) || !Number.isFinite(this.baseMs)) throw new RangeError("baseMs must be a positive number");
    if (!(this.maxMs >= this.baseMs) || !Number.isFinite(this.maxMs)) {
      throw new RangeError("maxMs must be a number no smaller than baseMs");
    }
  }

  /** The delay before the next attempt, in whole milliseconds; counts the attempt. */
  next(): number {
    // Math.min absorbs 2 ** n overflowing to Infinity after many attempts.
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.count);
    this.count++;
    const half = ceiling / 2;
    return Math.floor(half + this.random() * half);
  }

  /** Call once a connection succeeds, so the next outage starts again from `baseMs`. */
  reset(): void {
    this.count = 0;
  }

  /** Delays handed out since construction or the last reset. */
  get attempts(): number {
    return this.count;
  }
}
