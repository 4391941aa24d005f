// Keeps a quiet connection alive and notices when it is dead: pings at an interval (so the
// server does not close it as idle) and reports silence when nothing at all arrives within a
// timeout of a ping; any frame counts as an answer. It knows no sockets: it is given `ping`.

import { systemClock, type Clock } from "./clock.ts";

/** The longest interval between pings, whatever idle timeout the server advertises. */
export const MAX_PING_INTERVAL_MS = 30_000;
/**
 * The shortest: a server advertising an idle timeout of zero (broken or hostile) must not turn
 * keepalive into a ping flood.
 */
export const MIN_PING_INTERVAL_MS = 100;
/** Pinging three times per idle timeout leaves room for a ping that is late or lost. */
const PINGS_PER_IDLE_TIMEOUT = 3;
/** No frame for this long after a ping means the server or the path is dead. */
export const PONG_TIMEOUT_MS = 15_000;

/** The ping interval for a server that closes connections silent for `idleTimeoutMs`. */
export function pingIntervalFor(idleTimeoutMs: number): number {
  const interval = Math.floor(idleTimeoutMs / PINGS_PER_IDLE_TIMEOUT);
  return Math.min(MAX_PING_INTERVAL_MS, Math.max(MIN_PING_INTERVAL_MS, interval));
}

export interface KeepaliveOptions {
  intervalMs: number;
  timeoutMs: number;
  ping(): void;
  /** Nothing arrived within `timeoutMs` of a ping. */
  onSilence(): void;
  clock?: Clock;
}

export class Keepalive {
  private readonly clock: Clock;
  private cancelTimer: (() => void) | undefined;
  private awaitingAnswer = false;

  constructor(private readonly options: KeepaliveOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** The first ping goes out one interval from now. */
  start(): void {
    this.stop();
    this.schedulePing();
  }

  /** A frame arrived, so the connection is alive; after a ping, the next is one interval away. */
  heard(): void {
    if (!this.awaitingAnswer) return;
    this.awaitingAnswer = false;
    this.cancelTimer?.();
    this.schedulePing();
  }

  stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.awaitingAnswer = false;
  }

  private schedulePing(): void {
    this.cancelTimer = this.clock.after(this.options.intervalMs, () => {
      this.awaitingAnswer = true;
      this.cancelTimer = this.clock.after(this.options.timeoutMs, () => {
        this.cancelTimer = undefined;
        this.options.onSilence();
      });
      this.options.ping();
    });
  }
}
