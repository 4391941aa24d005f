// Who may stay connected: the total and per-address connection caps, and one sweep that closes
// connections that did not log in in time or went silent (one timer for all, not one each).

import type { ErrorCode } from "../protocol/errors.ts";

export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Connections past the cap that still get a polite refusal; beyond, they are cut at once. */
  refusalHeadroom: number;
  authTimeoutMs: number;
  idleTimeoutMs: number;
}

/** What admission needs of a connection. */
export interface Admitted {
  readonly address: string;
  readonly isOpen: boolean;
  readonly authenticated: boolean;
  readonly openedAt: number;
  readonly lastFrameAt: number;
  close(code: ErrorCode, message: string): void;
}

export type Verdict = "admit" | "refuse" | "cut";

/** Longest and shortest pause between timeout sweeps. */
const MAX_SWEEP_INTERVAL_MS = 1_000;
const MIN_SWEEP_INTERVAL_MS = 20;

export class Admission<C extends Admitted> {
  readonly connections = new Set<C>();
  private readonly perAddress = new Map<string, number>();
  private readonly sweep: ReturnType<typeof setInterval>;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly now: () => number,
  ) {
    const shortest = Math.min(limits.authTimeoutMs, limits.idleTimeoutMs);
    const interval = Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(MIN_SWEEP_INTERVAL_MS, Math.floor(shortest / 4)));
    this.sweep = setInterval(() => this.closeTimedOut(), interval);
  }

  /** Counts a new connection in and says whether it may stay. */
  admit(connection: C): Verdict {
    const fromAddress = (this.perAddress.get(connection.address) ?? 0) + 1;
    this.perAddress.set(connection.address, fromAddress);
    this.connections.add(connection);
    // Past the headroom even a polite refusal (a TLS handshake) costs too much.
    if (this.connections.size > this.limits.maxConnections + this.limits.refusalHeadroom) return "cut";
    if (this.connections.size > this.limits.maxConnections || fromAddress > this.limits.maxConnectionsPerIp) return "refuse";
    return "admit";
  }

  /** Counts a closed connection out; false if it was not counted in (or already out). */
  release(connection: C): boolean {
    if (!this.connections.delete(connection)) return false;
    const left = (this.perAddress.get(connection.address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(connection.address, left);
    else this.perAddress.delete(connection.address);
    return true;
  }

  stop(): void {
    clearInterval(this.sweep);
  }

  private closeTimedOut(): void {
    const time = this.now();
    for (const connection of this.connections) {
      if (!connection.isOpen) continue;
      if (!connection.authenticated && time - connection.openedAt > this.limits.authTimeoutMs) {
        connection.close("timeout", "Log in within the time limit");
      } else if (time - connection.lastFrameAt > this.limits.idleTimeoutMs) {
        connection.close("timeout", "Idle for too long");
      }
    }
  }
}
