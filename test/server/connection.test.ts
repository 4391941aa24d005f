// server/connection.ts on a fake socket: lines reach the session, queued frames leave in
// coalesced writes, what a write did not take is resumed on drain without loss or repetition,
// a queue past its cap drops the peer, and `writable()` waits for the queue to shrink.

import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import type { Session } from "../../src/core/session.ts";
import { Counter } from "../../src/metrics/registry.ts";
import { Connection, type ConnectionHost } from "../../src/server/connection.ts";
import { OutboundBudget } from "../../src/server/outbound-budget.ts";

/** A socket that takes at most `accept` bytes per write (all of them when undefined). */
class FakeSocket {
  written: Uint8Array[] = [];
  accept: number | undefined;
  ended = false;
  terminated = false;

  write(data: Uint8Array): number {
    const taken = this.accept === undefined ? data.length : Math.min(this.accept, data.length);
    this.written.push(data.slice(0, taken));
    return taken;
  }

  end(): void {
    this.ended = true;
  }

  terminate(): void {
    this.terminated = true;
  }

  text(): string {
    return this.written.map((chunk) => new TextDecoder().decode(chunk)).join("");
  }
}

interface Harness {
  connection: Connection;
  socket: FakeSocket;
  lines: string[];
  closedSessions: number;
  slowConsumers: number;
  /** Runs the flush that the connection asked for at the end of the turn. */
  endTurn(): void;
}

function harness(overrides: Partial<ConnectionHost> = {}, id = 1): Harness {
  const socket = new FakeSocket();
  const scheduled: Connection[] = [];
  const state = { lines: [] as string[], closedSessions: 0, slowConsumers: 0 };
  const host: ConnectionHost = {
    maxLineBytes: 64,
    maxOutboundBytes: 100,
    writableBelowBytes: 25,
    maxWriteBytes: 1024,
    closeGraceMs: 60_000,
    budget: new OutboundBudget(Number.POSITIVE_INFINITY),
    deliveries: new Counter(),
    scheduleFlush: (connection) => scheduled.push(connection),
    slowConsumer: () => state.slowConsumers++,
    ...overrides,
  };
  const session = {
    receive: (line: Uint8Array) => state.lines.push(new TextDecoder().decode(line)),
    connectionClosed: () => state.closedSessions++,
  } as unknown as Session;
  const connection = new Connection(id, "127.0.0.1", socket as unknown as Socket<Connection>, host, () => session);
  connection.onHandshake(undefined);
  return {
    connection,
    socket,
    get lines() {
      return state.lines;
    },
    get closedSessions() {
      return state.closedSessions;
    },
    get slowConsumers() {
      return state.slowConsumers;
    },
    endTurn: () => scheduled.splice(0).forEach((c) => c.flushScheduledWrites()),
  };
}

const bytes = (text: string) => new TextEncoder().encode(text);

describe("Connection", () => {
  test("incoming bytes reach the session as lines, whatever the chunking", () => {
    const h = harness();
    h.connection.onData(bytes('{"a":'));
    h.connection.onData(bytes('1}\n{"b":2}\r\n{"c"'));
    expect(h.lines).toEqual(['{"a":1}', '{"b":2}']);
  });

  test("a line over the limit closes with too_long", () => {
    const h = harness();
    h.connection.onData(bytes("x".repeat(65)));
    expect(h.connection.reason).toBe("too_long");
    expect(h.socket.text()).toContain('"code":"too_long"');
    expect(h.socket.ended).toBe(true);
  });

  test("frames queued in one turn leave in one write", () => {
    const h = harness();
    h.connection.send(bytes("one\n"));
    h.connection.send(bytes("two\n"));
    expect(h.socket.written).toEqual([]);
    h.endTurn();
    expect(h.socket.written.length).toBe(1);
    expect(h.socket.text()).toBe("one\ntwo\n");
  });

  test("a partial write at every offset is resumed on drain: nothing lost, nothing repeated", () => {
    const frames = ["alpha\n", "beta\n", "gamma\n"];
    const total = frames.join("");
    for (let offset = 0; offset < total.length; offset++) {
      const h = harness();
      h.socket.accept = offset;
      for (const frame of frames) h.connection.send(bytes(frame));
      h.endTurn();
      h.socket.accept = undefined;
      h.connection.onDrain();
      expect(h.socket.text()).toBe(total);
    }
  });

  test("a write that takes nothing waits for drain instead of spinning", () => {
    const h = harness();
    h.socket.accept = 0;
    h.connection.send(bytes("held\n"));
    h.endTurn();
    const writes = h.socket.written.length;
    h.connection.send(bytes("more\n"));
    h.endTurn();
    expect(h.socket.written.length).toBe(writes);
    h.socket.accept = undefined;
    h.connection.onDrain();
    expect(h.socket.text()).toBe("held\nmore\n");
  });

  test("a queue that would pass its cap while the socket refuses bytes drops the peer as a slow consumer", () => {
    const h = harness();
    h.socket.accept = 0;
    h.connection.send(bytes("x".repeat(60)));
    h.endTurn();
    h.connection.send(bytes("y".repeat(60)));
    expect(h.slowConsumers).toBe(1);
    expect(h.connection.reason).toBe("slow_consumer");
    expect(h.socket.terminated).toBe(true);
  });

  test("a burst over the cap within one turn is written out, not treated as slow", () => {
    const h = harness();
    for (let i = 0; i < 5; i++) h.connection.send(bytes("z".repeat(40)));
    expect(h.slowConsumers).toBe(0);
    h.endTurn();
    expect(h.socket.text()).toBe("z".repeat(200));
  });

  test("writable() waits while the queue is long and resolves once a flush shrinks it", async () => {
    const h = harness();
    h.socket.accept = 0;
    h.connection.send(bytes("w".repeat(50)));
    h.endTurn();
    let resolved = false;
    const waiting = h.connection.writable().then(() => (resolved = true));
    await Promise.resolve();
    expect(resolved).toBe(false);
    h.socket.accept = undefined;
    h.connection.onDrain();
    await waiting;
    expect(resolved).toBe(true);
  });

  test("writable() resolves when the connection closes, so nobody waits forever", async () => {
    const h = harness();
    h.socket.accept = 0;
    h.connection.send(bytes("w".repeat(50)));
    h.endTurn();
    const waiting = h.connection.writable();
    h.connection.onClosed();
    await waiting;
    expect(h.closedSessions).toBe(1);
  });

  test("the unwritten rest of a batch survives another connection's batch (the assembly buffer is shared)", () => {
    const a = harness();
    const b = harness({}, 2);
    a.socket.accept = 3;
    a.connection.send(bytes("first\n"));
    a.connection.send(bytes("second\n"));
    a.endTurn();
    b.connection.send(bytes("XXXXXXXXXXXX\n"));
    b.connection.send(bytes("YYYYYYYYYYYY\n"));
    b.endTurn();
    a.socket.accept = undefined;
    a.connection.onDrain();
    expect(a.socket.text()).toBe("first\nsecond\n");
    expect(b.socket.text()).toBe("XXXXXXXXXXXX\nYYYYYYYYYYYY\n");
  });

  test("queued bytes count against the server-wide budget until written or dropped", () => {
    const budget = new OutboundBudget(Number.POSITIVE_INFINITY);
    const h = harness({ budget });
    h.socket.accept = 4;
    h.connection.send(bytes("0123456789\n"));
    expect(budget.queuedBytes).toBe(11);
    h.endTurn();
    expect(budget.queuedBytes).toBe(7);
    h.socket.accept = undefined;
    h.connection.onDrain();
    expect(budget.queuedBytes).toBe(0);
    h.socket.accept = 0;
    h.connection.send(bytes("stuck\n"));
    h.endTurn();
    h.connection.dropAsSlowConsumer();
    expect(budget.queuedBytes).toBe(0);
    expect(h.slowConsumers).toBe(1);
  });

  test("close with a code queues the error frame, flushes, then ends the socket", () => {
    const h = harness();
    h.connection.send(bytes("last words\n"));
    h.connection.close("shutting_down", "bye");
    expect(h.socket.text()).toBe('last words\n{"type":"error","code":"shutting_down","message":"bye"}\n');
    expect(h.socket.ended).toBe(true);
    h.connection.send(bytes("after\n"));
    h.endTurn();
    expect(h.socket.text()).not.toContain("after");
  });
  test("every frame queued counts as a delivery, the farewell included; frames refused or sent after close do not", () => {
    const deliveries = new Counter();
    const h = harness({ deliveries });
    h.connection.send(bytes("one\n"));
    h.connection.send(bytes("two\n"));
    h.endTurn();
    expect(deliveries.value).toBe(2);
    h.socket.accept = 0;
    h.connection.send(bytes("x".repeat(60)));
    h.endTurn();
    h.connection.send(bytes("y".repeat(60)));
    expect(h.slowConsumers).toBe(1);
    expect(deliveries.value).toBe(3);

    const closing = harness({ deliveries });
    closing.connection.close("shutting_down", "bye");
    closing.connection.send(bytes("after\n"));
    expect(deliveries.value).toBe(4);
  });
});
