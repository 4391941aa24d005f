// A fixed number of slots with a FIFO queue: limits how much of some work runs at once. Shared
// by the password hasher (global) and the per-address login limit.

import { ChatError } from "../protocol/errors.ts";

export class Slots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly limit: number,
    /** Waiters allowed beyond the running ones; past it `run` refuses with `server_busy`. */
    private readonly maxWaiting = Number.POSITIVE_INFINITY,
  ) {}

  /** Nothing running and nobody waiting. */
  get idle(): boolean {
    return this.running === 0 && this.waiting.length === 0;
  }

  /**
   * Runs `work` in a slot, waiting for one if all are taken. Work whose requester has gone
   * (`signal` aborted) by the time its turn comes is dropped with `timeout`, not run.
   */
  async run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.running >= this.limit) {
      if (this.waiting.length >= this.maxWaiting) {
        throw new ChatError("server_busy", "Too many logins in progress; try again shortly");
      }
      // The slot is handed over by the releasing run, already counted.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running += 1;
    }
    try {
      if (signal?.aborted) throw new ChatError("timeout", "The connection closed before its turn came");
      return await work();
    } finally {
      // Hand the slot straight to the next waiter so a newcomer cannot jump the queue.
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}
