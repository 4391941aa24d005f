// The server-wide allowance for bytes queued to clients that are not reading. Each connection
// is capped on its own, but 20,000 connections at 1 MiB each is more memory than most machines
// have: past this budget the largest queues are dropped first, as slow consumers.

import { readFileSync } from "node:fs";
import { totalmem } from "node:os";

/** The default budget: this share of the machine's memory ... */
const DEFAULT_SHARE_OF_MEMORY = 0.25;
/** ... but never more than this. */
export const MAX_DEFAULT_OUTBOUND_BUDGET_BYTES = 2 * 1024 ** 3;

/** Where a cgroup (v2, then v1) states the memory this process may use. */
const CGROUP_MEMORY_LIMIT_FILES = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"];

export class OutboundBudget {
  private queued = 0;

  constructor(readonly limitBytes: number) {}

  /** Bytes queued on all connections together. */
  get queuedBytes(): number {
    return this.queued;
  }

  get exceeded(): boolean {
    return this.queued > this.limitBytes;
  }

  add(bytes: number): void {
    this.queued += bytes;
  }

  remove(bytes: number): void {
    this.queued -= bytes;
  }

  /**
   * Drops queues, largest first (the readers furthest behind), until the total is within the
   * budget again; returns how many were dropped.
   */
  enforce(connections: Iterable<QueueHolder>): number {
    if (!this.exceeded) return 0;
    const queued = [...connections].filter((connection) => connection.queuedLength > 0);
    queued.sort((a, b) => b.queuedLength - a.queuedLength);
    let dropped = 0;
    for (const connection of queued) {
      if (!this.exceeded) break;
      connection.dropAsSlowConsumer();
      dropped += 1;
    }
    return dropped;
  }
}

/** What the budget needs of a connection. */
export interface QueueHolder {
  readonly queuedLength: number;
  /** Must release the connection's queued bytes from the budget. */
  dropAsSlowConsumer(): void;
}

/** The smaller of physical memory and the cgroup's limit, if one is set. */
export function machineMemoryBytes(readLimit: (path: string) => string | undefined = readIfPresent): number {
  let memory = totalmem();
  for (const path of CGROUP_MEMORY_LIMIT_FILES) {
    const limit = Number(readLimit(path)?.trim());
    // "max" (v2) or a huge sentinel (v1) mean no limit; both fail or exceed the test below.
    if (Number.isSafeInteger(limit) && limit > 0 && limit < memory) memory = limit;
  }
  return memory;
}

export function defaultOutboundBudgetBytes(memoryBytes = machineMemoryBytes()): number {
  return Math.min(MAX_DEFAULT_OUTBOUND_BUDGET_BYTES, Math.floor(memoryBytes * DEFAULT_SHARE_OF_MEMORY));
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
