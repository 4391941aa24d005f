// server/outbound-budget.ts: the server-wide allowance for queued bytes, the largest queues
// dropped first past it, and the default read from the machine's (or the cgroup's) memory.

import { describe, expect, test } from "bun:test";
import { totalmem } from "node:os";
import {
  defaultOutboundBudgetBytes,
  machineMemoryBytes,
  MAX_DEFAULT_OUTBOUND_BUDGET_BYTES,
  OutboundBudget,
  type QueueHolder,
} from "../../src/server/outbound-budget.ts";

/** A queue of `bytes` that gives its bytes back to the budget when dropped. */
function holder(budget: OutboundBudget, name: string, bytes: number, dropped: string[]): QueueHolder {
  budget.add(bytes);
  let queued = bytes;
  return {
    get queuedLength() {
      return queued;
    },
    dropAsSlowConsumer() {
      budget.remove(queued);
      queued = 0;
      dropped.push(name);
    },
  };
}

describe("OutboundBudget", () => {
  test("within the budget nothing is dropped", () => {
    const budget = new OutboundBudget(100);
    const dropped: string[] = [];
    const queues = [holder(budget, "a", 60, dropped), holder(budget, "b", 40, dropped)];
    expect(budget.exceeded).toBe(false);
    expect(budget.enforce(queues)).toBe(0);
    expect(dropped).toEqual([]);
  });

  test("past the budget the largest queues go first, only as many as needed", () => {
    const budget = new OutboundBudget(100);
    const dropped: string[] = [];
    const queues = [holder(budget, "small", 30, dropped), holder(budget, "largest", 70, dropped), holder(budget, "middle", 50, dropped), holder(budget, "empty", 0, dropped)];
    expect(budget.queuedBytes).toBe(150);
    expect(budget.enforce(queues)).toBe(1);
    expect(dropped).toEqual(["largest"]);
    expect(budget.queuedBytes).toBe(80);
  });

  test("several are dropped when one is not enough", () => {
    const budget = new OutboundBudget(10);
    const dropped: string[] = [];
    const queues = [holder(budget, "a", 20, dropped), holder(budget, "b", 30, dropped), holder(budget, "c", 5, dropped)];
    expect(budget.enforce(queues)).toBe(2);
    expect(dropped).toEqual(["b", "a"]);
  });
});

describe("the default budget", () => {
  test("is a quarter of the machine's memory, capped at 2 GiB", () => {
    expect(defaultOutboundBudgetBytes(4 * 1024 ** 3)).toBe(1024 ** 3);
    expect(defaultOutboundBudgetBytes(24 * 1024 ** 3)).toBe(MAX_DEFAULT_OUTBOUND_BUDGET_BYTES);
  });

  test("the machine's memory is the cgroup's limit when that is lower, physical memory otherwise", () => {
    const limits: Record<string, string> = { "/sys/fs/cgroup/memory.max": "536870912\n" };
    expect(machineMemoryBytes((path) => limits[path])).toBe(536_870_912);
    expect(machineMemoryBytes((path) => (path.endsWith("memory.max") ? "max\n" : undefined))).toBe(totalmem());
    // cgroup v1 writes a huge number for "no limit".
    expect(machineMemoryBytes((path) => (path.endsWith("limit_in_bytes") ? "9223372036854771712\n" : undefined))).toBe(totalmem());
    expect(machineMemoryBytes(() => undefined)).toBe(totalmem());
  });
});
