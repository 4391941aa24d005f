// server/connection.ts on a fake socket: lines reach the session, queued frames leave in
// coalesced writes (adjacent frames of one buffer as one range of it, in place), what a write did
// not take is resumed on drain without loss or repetition and without keeping shared bytes, a
// queue past its cap drops the peer, the server-wide budget drops the largest queues first, and
// `writable()` waits for the queue to shrink.

import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import type { Session } from "../../src/core/session.ts";
import { Counter } from "../../src/metrics/registry.ts";
import { Connection, type ConnectionHost } from "../../src/server/connection.ts";
import { FrameArena, type SharedFrame } from "../../src/protocol/frame-arena.ts";
import type { RoomMessage } from "../../src/protocol/frames.ts";
import { OutboundBudget } from "../../src/server/outbound-budget.ts";

/** A socket that takes at most `accept` bytes per write (all of them when undefined). */
class FakeSocket {
  written: Uint8Array[] = [];
  /** Every write as called: which buffer, and the range of it. */
  calls: Array<{ data: Uint8Array; offset: number; length: number }> = [];
  accept: number | undefined;
  ended = false;
  terminated = false;

  /** As Bun's: `data[offset, offset + length)`, the whole array by default. */
  write(data: Uint8Array, offset = 0, length = data.length - offset): number {
    const taken = this.accept === undefined ? length : Math.min(this.accept, length);
    this.calls.push({ data, offset, length });
    this.written.push(data.slice(offset, offset + taken));
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
const message = (id: number): RoomMessage => ({ type: "msg", id, room: "#lobby", from: "ann", text: `text ${id}`, ts: id });
const textOf = (frames: SharedFrame[]) => frames.map(({ bytes, start, end }) => new TextDecoder().decode(bytes.subarray(start, end))).join("");
const sendShared = (h: Harness, frame: SharedFrame) => h.connection.send(frame.bytes, frame.start, frame.end);

/** Lets the socket take `bytes` per write until the queue is written; returns the writes it took. */
function drainInSteps(h: Harness, bytes: number): number {
  h.socket.accept = bytes;
  const before = h.socket.calls.length;
  for (let i = 0; i < 100_000 && h.connection.queuedLength > 0; i++) h.connection.onDrain();
  h.socket.accept = undefined;
  h.connection.onDrain();
  return h.socket.calls.length - before;
}

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

describe("the outbound queue: shared frames written in place", () => {
  test("adjacent frames of one arena leave as one range of its chunk, in place", () => {
    const arena = new FrameArena();
    const frames = [1, 2, 3].map((id) => arena.encode(message(id)));
    const h = harness({ maxOutboundBytes: 10_000 });
    for (const frame of frames) sendShared(h, frame);
    h.endTurn();
    expect(h.socket.calls).toHaveLength(1);
    expect(h.socket.calls[0]!.data).toBe(frames[0]!.bytes);
    expect(h.socket.calls[0]!.offset).toBe(frames[0]!.start);
    expect(h.socket.calls[0]!.length).toBe(frames[2]!.end - frames[0]!.start);
    expect(h.socket.text()).toBe(textOf(frames));
  });

  test("a frame a connection did not get splits its ranges; they are gathered into one write", () => {
    const arena = new FrameArena();
    const frames = [1, 2, 3, 4].map((id) => arena.encode(message(id)));
    const everyone = harness({ maxOutboundBytes: 10_000 });
    const sender = harness({ maxOutboundBytes: 10_000 }, 2);
    for (const [i, frame] of frames.entries()) {
      sendShared(everyone, frame);
      if (i !== 2) sendShared(sender, frame);
    }
    // An ack of its own buffer between the room frames, as a sender gets.
    sender.connection.send(bytes('{"type":"ack"}\n'));
    everyone.endTurn();
    sender.endTurn();
    expect(everyone.socket.calls).toHaveLength(1);
    expect(sender.socket.calls).toHaveLength(1);
    expect(sender.socket.calls[0]!.data).not.toBe(frames[0]!.bytes);
    expect(sender.socket.text()).toBe(textOf([frames[0]!, frames[1]!, frames[3]!]) + '{"type":"ack"}\n');
  });

  test("ranges of two buffers are never merged, even where one starts at the offset the other ended", () => {
    const h = harness();
    h.connection.send(bytes("aaaa\n"));
    h.connection.send(bytes("-----bbbb\n"), 5, 10);
    h.endTurn();
    expect(h.socket.text()).toBe("aaaa\nbbbb\n");
  });

  test("a long run is written in place in slices of maxWriteBytes", () => {
    const arena = new FrameArena();
    const frames = Array.from({ length: 10 }, (_, id) => arena.encode(message(id)));
    const h = harness({ maxOutboundBytes: 10_000, maxWriteBytes: 64 });
    for (const frame of frames) sendShared(h, frame);
    h.endTurn();
    const total = frames.at(-1)!.end - frames[0]!.start;
    expect(h.socket.calls).toHaveLength(Math.ceil(total / 64));
    for (const [i, call] of h.socket.calls.entries()) {
      expect(call.data).toBe(frames[0]!.bytes);
      expect(call.offset).toBe(frames[0]!.start + i * 64);
    }
    expect(h.socket.text()).toBe(textOf(frames));
  });

  test("partial writes at every offset, of a range in place and of gathered ranges, then at every offset again: nothing lost, nothing repeated", () => {
    const arena = new FrameArena();
    const frames = [1, 2, 3, 4, 5].map((id) => arena.encode(message(id)));
    const own = bytes('{"type":"ack","ref":"r"}\n');
    const cases: Array<{ name: string; queue(h: Harness): void; expected: string }> = [
      { name: "in place", queue: (h) => frames.forEach((frame) => sendShared(h, frame)), expected: textOf(frames) },
      {
        name: "gathered",
        queue: (h) => {
          for (const frame of [frames[0]!, frames[1]!, frames[3]!]) sendShared(h, frame);
          h.connection.send(own);
          sendShared(h, frames[4]!);
        },
        expected: textOf([frames[0]!, frames[1]!, frames[3]!]) + new TextDecoder().decode(own) + textOf([frames[4]!]),
      },
    ];
    for (const { name, queue, expected } of cases) {
      const total = new TextEncoder().encode(expected).length;
      for (const maxWriteBytes of [1024, 50]) {
        for (let offset = 0; offset < total; offset++) {
          const budget = new OutboundBudget(Number.POSITIVE_INFINITY);
          const h = harness({ maxOutboundBytes: 10_000, maxWriteBytes, budget });
          h.socket.accept = offset;
          queue(h);
          h.endTurn();
          expect(budget.queuedBytes).toBe(h.connection.queuedLength);
          // The rest leaves from the backlog a few bytes at a time: every offset of it too.
          drainInSteps(h, 7);
          expect({ name, maxWriteBytes, offset, text: h.socket.text() }).toEqual({ name, maxWriteBytes, offset, text: expected });
          expect(budget.queuedBytes).toBe(0);
        }
      }
    }
  });

  test("a write that takes nothing keeps everything, and what is queued meanwhile goes after it", () => {
    const arena = new FrameArena();
    const frames = [1, 2, 3, 4].map((id) => arena.encode(message(id)));
    const h = harness({ maxOutboundBytes: 10_000 });
    h.socket.accept = 0;
    sendShared(h, frames[0]!);
    sendShared(h, frames[1]!);
    h.endTurn();
    sendShared(h, frames[2]!);
    sendShared(h, frames[3]!);
    h.endTurn();
    expect(h.socket.text()).toBe("");
    expect(h.connection.queuedLength).toBe(frames[3]!.end - frames[0]!.start);
    h.socket.accept = undefined;
    h.connection.onDrain();
    expect(h.socket.text()).toBe(textOf(frames));
  });

  test("once the socket refuses bytes the connection holds copies, not the shared bytes", () => {
    // Shared bytes must never change; changing them here shows which ones the queue still refers to.
    const shared = bytes("aaaa\nbbbb\ncccc\ndddd\n");
    const h = harness({ maxOutboundBytes: 10_000, maxWriteBytes: 8 });
    h.socket.accept = 3;
    h.connection.send(shared, 0, 5);
    h.connection.send(bytes("X\n"));
    h.connection.send(shared, 10, 15);
    h.endTurn(); // "aaaa\nX\n" gathered, 3 bytes taken; the rest of it and "cccc\n" copied out
    h.connection.send(shared, 15, 20); // queued while waiting for drain: copied in
    shared.fill("z".charCodeAt(0));
    h.socket.accept = undefined;
    h.connection.onDrain();
    expect(h.socket.text()).toBe("aaaa\nX\ncccc\ndddd\n");
  });

  test("arena chunks wrap around while a slow reader holds old frames: it gets them intact, in order", () => {
    // Small chunks, so the frames pass through dozens while the slow reader holds the first.
    const arena = new FrameArena(600, 600);
    const slow = harness({ maxOutboundBytes: 100_000 });
    const fast = harness({ maxOutboundBytes: 100_000 }, 2);
    slow.socket.accept = 0;
    const frames: SharedFrame[] = [];
    for (let turn = 0; turn < 40; turn++) {
      for (let i = 0; i < 5; i++) {
        const frame = arena.encode(message(turn * 5 + i));
        frames.push(frame);
        sendShared(slow, frame);
        sendShared(fast, frame);
      }
      slow.endTurn();
      fast.endTurn();
    }
    expect(new Set(frames.map((frame) => frame.bytes)).size).toBeGreaterThan(20);
    expect(fast.socket.text()).toBe(textOf(frames));
    expect(slow.socket.text()).toBe("");
    slow.socket.accept = undefined;
    slow.connection.onDrain();
    expect(slow.socket.text()).toBe(textOf(frames));
  });

  test("a queue of shared frames that passes its cap while the socket refuses bytes is dropped as a slow consumer", () => {
    const arena = new FrameArena();
    const budget = new OutboundBudget(Number.POSITIVE_INFINITY);
    const h = harness({ maxOutboundBytes: 1_000, budget });
    h.socket.accept = 0;
    let sent = 0;
    while (h.slowConsumers === 0) {
      const frame = arena.encode(message(sent++));
      sendShared(h, frame);
      h.endTurn();
      expect(h.connection.queuedLength).toBeLessThanOrEqual(1_000);
    }
    expect(sent).toBeGreaterThan(5);
    expect(h.connection.reason).toBe("slow_consumer");
    expect(h.socket.terminated).toBe(true);
    expect(budget.queuedBytes).toBe(0);
  });

  test("past the server-wide budget the connection with the largest queue is dropped first, only as many as needed", () => {
    const arena = new FrameArena();
    const budget = new OutboundBudget(1_500);
    const connections = [1, 2, 3].map((id) => harness({ maxOutboundBytes: 100_000, budget }, id));
    const counts = [4, 12, 8];
    let id = 0;
    for (const [i, h] of connections.entries()) {
      h.socket.accept = 0;
      for (let n = 0; n < counts[i]!; n++) sendShared(h, arena.encode(message(id++)));
      h.endTurn();
    }
    const queued = connections.map((h) => h.connection.queuedLength);
    expect(budget.queuedBytes).toBe(queued[0]! + queued[1]! + queued[2]!);
    expect(budget.queuedBytes).toBeGreaterThan(1_500);
    expect(budget.queuedBytes - queued[1]!).toBeLessThanOrEqual(1_500);
    expect(budget.enforce(connections.map((h) => h.connection))).toBe(1);
    expect(connections.map((h) => h.slowConsumers)).toEqual([0, 1, 0]);
    expect(connections[1]!.connection.reason).toBe("slow_consumer");
    expect(budget.queuedBytes).toBe(queued[0]! + queued[2]!);
    // The others keep their queues and get them once their sockets drain.
    connections[0]!.socket.accept = undefined;
    connections[0]!.connection.onDrain();
    expect(connections[0]!.socket.text().split("\n")).toHaveLength(counts[0]! + 1);
    expect(budget.queuedBytes).toBe(queued[2]!);
  });
});
