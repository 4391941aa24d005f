// Keepalive: a ping every interval while answers come, silence reported when nothing arrives
// within the timeout of a ping, and an interval that follows the server's advertised idle timeout.

import { describe, expect, test } from "bun:test";
import {
  Keepalive,
  MAX_PING_INTERVAL_MS,
  MIN_PING_INTERVAL_MS,
  pingIntervalFor,
} from "../../src/client/keepalive.ts";
import { FakeClock } from "./fake-clock.ts";

const INTERVAL_MS = 1_000;
const TIMEOUT_MS = 300;

function setup() {
  const clock = new FakeClock();
  const events: string[] = [];
  const keepalive = new Keepalive({
    intervalMs: INTERVAL_MS,
    timeoutMs: TIMEOUT_MS,
    ping: () => events.push(`ping at ${clock.now() - start}`),
    onSilence: () => events.push(`silence at ${clock.now() - start}`),
    clock,
  });
  const start = clock.now();
  return { clock, events, keepalive };
}

describe("Keepalive", () => {
  test("the first ping goes out one interval after start", () => {
    const { clock, events, keepalive } = setup();
    keepalive.start();
    clock.advance(INTERVAL_MS - 1);
    expect(events).toEqual([]);
    clock.advance(1);
    expect(events).toEqual([`ping at ${INTERVAL_MS}`]);
  });

  test("any frame answers a ping, and the next ping is one interval after it", () => {
    const { clock, events, keepalive } = setup();
    keepalive.start();
    clock.advance(INTERVAL_MS + 50);
    keepalive.heard();
    clock.advance(INTERVAL_MS);
    expect(events).toEqual([`ping at ${INTERVAL_MS}`, `ping at ${2 * INTERVAL_MS + 50}`]);
  });

  test("no frame within the timeout of a ping is silence", () => {
    const { clock, events, keepalive } = setup();
    keepalive.start();
    clock.advance(INTERVAL_MS + TIMEOUT_MS - 1);
    expect(events).toEqual([`ping at ${INTERVAL_MS}`]);
    clock.advance(1);
    expect(events).toEqual([`ping at ${INTERVAL_MS}`, `silence at ${INTERVAL_MS + TIMEOUT_MS}`]);
    // Silence is reported once; what happens next is the session's decision.
    clock.advance(10 * INTERVAL_MS);
    expect(events).toHaveLength(2);
  });

  test("frames between pings do not postpone the next ping", () => {
    const { clock, events, keepalive } = setup();
    keepalive.start();
    clock.advance(INTERVAL_MS / 2);
    keepalive.heard();
    clock.advance(INTERVAL_MS / 2);
    expect(events).toEqual([`ping at ${INTERVAL_MS}`]);
  });

  test("stop cancels the next ping and any pending silence", () => {
    const { clock, events, keepalive } = setup();
    keepalive.start();
    clock.advance(INTERVAL_MS);
    keepalive.stop();
    expect(clock.pending).toBe(0);
    clock.advance(10 * INTERVAL_MS);
    expect(events).toEqual([`ping at ${INTERVAL_MS}`]);
  });
});

describe("pingIntervalFor", () => {
  test("pings three times per advertised idle timeout", () => {
    expect(pingIntervalFor(9_000)).toBe(3_000);
    expect(pingIntervalFor(400)).toBe(133);
  });

  test("never less often than every 30 s, however long the idle timeout", () => {
    expect(pingIntervalFor(90_000)).toBe(30_000);
    expect(pingIntervalFor(24 * 60 * 60_000)).toBe(MAX_PING_INTERVAL_MS);
  });

  test("a zero or negative idle timeout cannot make it flood the server", () => {
    expect(pingIntervalFor(0)).toBe(MIN_PING_INTERVAL_MS);
    expect(pingIntervalFor(-5)).toBe(MIN_PING_INTERVAL_MS);
  });
});
