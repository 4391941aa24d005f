// A chat session's outgoing frames: queued across reconnects and handed to the connection no
// faster than the server's advertised message rate, so nothing is refused as a flood. It knows
// no sockets: frames go to whatever `send` the session opens it with.

import type { ClientFrame, ServerLimitsInfo } from "../protocol/frames.ts";
import { TokenBucket } from "../protocol/rate.ts";
import { systemClock, type Clock } from "./clock.ts";

/** Pace at this share of the server's advertised rate, leaving room for pings and clock drift. */
export const RATE_SAFETY = 0.9;

export type MessageRate = Pick<ServerLimitsInfo, "messageRatePerSec" | "messageBurst">;

export class PacedOutbox {
  private readonly queue: ClientFrame[] = [];
  private emptiedWaiters: Array<() => void> = [];
  private open: { send(frame: ClientFrame): void; bucket: TokenBucket } | undefined;
  private cancelWait: (() => void) | undefined;

  constructor(private readonly clock: Clock = systemClock) {}

  /** Queues a frame; room messages and dms wait their turn under the rate, in order with the rest. */
  push(frame: ClientFrame): void {
    this.queue.push(frame);
    this.release();
  }

  /**
   * Starts handing frames to `send`, a fresh connection. The server gives each connection a full
   * bucket, so pacing starts from a full (slightly smaller) one too.
   */
  start(send: (frame: ClientFrame) => void, rate: MessageRate): void {
    this.pause();
    const burst = Math.max(1, Math.floor(rate.messageBurst * RATE_SAFETY));
    this.open = { send, bucket: new TokenBucket(rate.messageRatePerSec * RATE_SAFETY, burst, this.clock.now()) };
    this.release();
  }

  /** Frames a lost connection took without answering: they go out again first, in their order. */
  putBack(frames: readonly ClientFrame[]): void {
    this.queue.unshift(...frames);
    this.release();
  }

  /** Holds frames until the next `start`: the connection is gone. */
  pause(): void {
    this.cancelWait?.();
    this.cancelWait = undefined;
    this.open = undefined;
  }

  /** Resolves once every queued frame has been handed over (or the outbox was closed). */
  emptied(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptiedWaiters.push(resolve));
  }

  /** For good: drops what is queued and releases whoever waits for `emptied`. */
  close(): void {
    this.pause();
    this.queue.length = 0;
    this.notifyEmptied();
  }

  private release(): void {
    const open = this.open;
    if (open === undefined || this.cancelWait !== undefined) return;
    while (this.queue.length > 0) {
      const frame = this.queue[0]!;
      if (frame.type === "say" || frame.type === "dm") {
        const now = this.clock.now();
        if (!open.bucket.take(now)) {
          this.cancelWait = this.clock.after(open.bucket.msUntilToken(now), () => {
            this.cancelWait = undefined;
            this.release();
          });
          return;
        }
      }
      this.queue.shift();
      open.send(frame);
    }
    this.notifyEmptied();
  }

  private notifyEmptied(): void {
    for (const resolve of this.emptiedWaiters.splice(0)) resolve();
  }
}
