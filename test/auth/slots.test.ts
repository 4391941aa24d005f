// Slots: at most `limit` pieces of work run at once, the rest wait in arrival order, a full
// queue refuses with server_busy, and work whose requester has gone is dropped, not run.

import { describe, expect, test } from "bun:test";
import { Slots } from "../../src/auth/slots.ts";
import type { ChatError } from "../../src/protocol/errors.ts";
import { withTimeout } from "../helpers/client.ts";

/** How long a test waits for what takes a few microtasks, so a broken queue fails fast. */
const WAIT_MS = 1_000;

/** Work that notes when it starts and finishes when the test says so. */
function heldWork(name: string, startedOrder: string[]) {
  let finish!: () => void;
  let fail!: (error: Error) => void;
  let markStarted!: () => void;
  const startedSignal = new Promise<void>((resolve) => (markStarted = resolve));
  const started = () => withTimeout(startedSignal, WAIT_MS, `${name} to start`);
  const outcome = new Promise<string>((resolve, reject) => {
    finish = () => resolve(name);
    fail = reject;
  });
  const work = () => {
    startedOrder.push(name);
    markStarted();
    return outcome;
  };
  return { work, started, finish, fail };
}

/** The error code a run is refused with, or "ran" if it was not refused. */
function refusalOf(run: Promise<unknown>): Promise<string> {
  return withTimeout(
    run.then(
      () => "ran",
      (error: ChatError) => error.code,
    ),
    WAIT_MS,
    "the run to settle",
  );
}

describe("Slots", () => {
  test("runs at most `limit` pieces of work at once; the others start in arrival order as slots free up", async () => {
    const startedOrder: string[] = [];
    const slots = new Slots(2);
    const a = heldWork("a", startedOrder);
    const b = heldWork("b", startedOrder);
    const c = heldWork("c", startedOrder);
    const d = heldWork("d", startedOrder);
    const runs = [a, b, c, d].map((held) => slots.run(held.work));
    await Promise.all([a.started(), b.started()]);
    expect(startedOrder).toEqual(["a", "b"]);

    b.finish();
    await c.started();
    expect(startedOrder).toEqual(["a", "b", "c"]);
    a.finish();
    await d.started();
    c.finish();
    d.finish();
    expect(await Promise.all(runs)).toEqual(["a", "b", "c", "d"]);
  });

  test("work that fails frees its slot for the next in line", async () => {
    const startedOrder: string[] = [];
    const slots = new Slots(1);
    const failing = heldWork("failing", startedOrder);
    const next = heldWork("next", startedOrder);
    const failed = slots.run(failing.work);
    const waiting = slots.run(next.work);
    failing.fail(new Error("hash crashed"));
    await expect(failed).rejects.toThrow("hash crashed");
    await next.started();
    next.finish();
    expect(await waiting).toBe("next");
  });

  test("past `maxWaiting` waiters, run refuses with server_busy without running the work", async () => {
    const startedOrder: string[] = [];
    const slots = new Slots(1, 1);
    const running = heldWork("running", startedOrder);
    const waiting = heldWork("waiting", startedOrder);
    const refused = heldWork("refused", startedOrder);
    const runs = [slots.run(running.work), slots.run(waiting.work)];
    expect(await refusalOf(slots.run(refused.work))).toBe("server_busy");

    running.finish();
    await waiting.started();
    waiting.finish();
    await Promise.all(runs);
    expect(startedOrder).toEqual(["running", "waiting"]);
  });

  test("work whose signal aborted while it waited is dropped with timeout when its turn comes, and the slot passes on", async () => {
    const startedOrder: string[] = [];
    const slots = new Slots(1);
    const running = heldWork("running", startedOrder);
    const abandoned = heldWork("abandoned", startedOrder);
    const after = heldWork("after", startedOrder);
    const gone = new AbortController();
    const first = slots.run(running.work);
    const dropped = slots.run(abandoned.work, gone.signal);
    const last = slots.run(after.work);
    gone.abort();

    running.finish();
    expect(await refusalOf(dropped)).toBe("timeout");
    await after.started();
    after.finish();
    await Promise.all([first, last]);
    expect(startedOrder).toEqual(["running", "after"]);
  });

  test("is idle only while nothing runs and nobody waits", async () => {
    const slots = new Slots(1);
    expect(slots.idle).toBe(true);
    const running = heldWork("running", []);
    const waiting = heldWork("waiting", []);
    const first = slots.run(running.work);
    const second = slots.run(waiting.work);
    expect(slots.idle).toBe(false);
    running.finish();
    await first;
    expect(slots.idle).toBe(false);
    waiting.finish();
    await second;
    expect(slots.idle).toBe(true);
  });
});
