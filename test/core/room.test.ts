import { describe, expect, test } from "bun:test";
import type { Peer } from "../../src/core/peer.ts";
import { Room } from "../../src/core/room.ts";
import type { ErrorCode } from "../../src/protocol/errors.ts";

class FakePeer implements Peer {
  static next = 1;
  readonly id = FakePeer.next++;
  frames: Array<Record<string, unknown>> = [];
  closed: ErrorCode | "none" | undefined;
  send(frame: Uint8Array): void {
    for (const line of new TextDecoder().decode(frame).split("\n")) if (line) this.frames.push(JSON.parse(line));
  }
  close(code?: ErrorCode): void {
    this.closed = code ?? "none";
  }
  types(): unknown[] {
    return this.frames.map((frame) => frame.type);
  }
}

describe("Room", () => {
  test("broadcast skips the sending connection but reaches the sender's other connections", () => {
    const room = new Room({ historySize: 10, now: () => 42 });
    const [alice1, alice2, bob] = [new FakePeer(), new FakePeer(), new FakePeer()];
    room.join("alice", alice1);
    room.join("alice", alice2);
    room.join("bob", bob);
    room.say("alice", alice1, "hi");
    expect(alice1.frames.filter((f) => f.type === "msg")).toEqual([]);
    expect(alice2.frames.filter((f) => f.type === "msg")).toEqual([{ type: "msg", id: 1, from: "alice", text: "hi", ts: 42 }]);
    expect(bob.frames.filter((f) => f.type === "msg")).toHaveLength(1);
  });

  test("join is announced for the first connection only, leave for the last", () => {
    const room = new Room({ historySize: 10 });
    const watcher = new FakePeer();
    room.join("watcher", watcher);
    const [a1, a2] = [new FakePeer(), new FakePeer()];
    room.join("Alice", a1);
    room.join("alice", a2);
    expect(watcher.types()).toEqual(["join"]);
    expect(room.users()).toEqual(["watcher", "Alice"]);
    room.leave("alice", a1);
    expect(watcher.types()).toEqual(["join"]);
    room.leave("Alice", a2);
    expect(watcher.frames.at(-1)).toMatchObject({ type: "leave", user: "Alice" });
    expect(room.users()).toEqual(["watcher"]);
    expect(room.onlineConnections).toBe(1);
  });

  test("dm reaches every connection of the target and the sender's other connections", () => {
    const room = new Room({ historySize: 10 });
    const [a1, a2, b1, b2, c] = [new FakePeer(), new FakePeer(), new FakePeer(), new FakePeer(), new FakePeer()];
    room.join("alice", a1);
    room.join("alice", a2);
    room.join("bob", b1);
    room.join("bob", b2);
    room.join("carol", c);
    for (const peer of [a1, a2, b1, b2, c]) peer.frames = [];
    room.dm("alice", a1, "BOB", "psst");
    expect(b1.frames).toEqual([expect.objectContaining({ type: "dm", from: "alice", to: "bob", text: "psst" })]);
    expect(b2.frames).toHaveLength(1);
    expect(a2.frames).toHaveLength(1);
    expect(a1.frames).toHaveLength(0);
    expect(c.frames).toHaveLength(0);
  });

  test("dm to someone offline is no_such_user", () => {
    const room = new Room({ historySize: 10 });
    const alice = new FakePeer();
    room.join("alice", alice);
    expect(() => room.dm("alice", alice, "ghost", "hi")).toThrow("ghost is not online");
  });

  test("history keeps the last N messages with increasing ids", () => {
    const room = new Room({ historySize: 3 });
    const alice = new FakePeer();
    room.join("alice", alice);
    for (let i = 1; i <= 5; i++) room.say("alice", alice, `m${i}`);
    expect(room.recentMessages().map((m) => [m.id, m.text])).toEqual([
      [3, "m3"],
      [4, "m4"],
      [5, "m5"],
    ]);
  });

  test("a broadcast is encoded once: every recipient gets the same bytes", () => {
    const room = new Room({ historySize: 3 });
    const received: Uint8Array[] = [];
    const sink = (id: number): Peer => ({ id, send: (frame) => void received.push(frame), close() {} });
    const sender = sink(100);
    room.join("s", sender);
    room.join("a", sink(101));
    room.join("b", sink(102));
    received.length = 0;
    room.say("s", sender, "x");
    expect(received).toHaveLength(2);
    expect(received[0]).toBe(received[1]!);
  });
});

describe("Room history by size", () => {
  test("drops the oldest messages once the encoded history exceeds its byte budget", () => {
    const room = new Room({ historySize: 100, historyMaxBytes: 1_000 });
    const alice: Peer = { id: 1, send() {}, close() {} };
    room.join("alice", alice);
    for (let i = 0; i < 20; i++) room.say("alice", alice, `message ${i} ${"x".repeat(100)}`);
    const kept = room.recentMessages();
    const size = kept.reduce((total, message) => total + JSON.stringify(message).length + 1, 0);
    expect(size).toBeLessThanOrEqual(1_000);
    expect(kept.length).toBeGreaterThan(3);
    expect(kept.at(-1)!.text).toStartWith("message 19 ");
  });
});

describe("Room presence in a crowd", () => {
  test("above presenceMaxUsers, joins and leaves are not broadcast but who still lists everyone", () => {
    const room = new Room({ historySize: 1, presenceMaxUsers: 3 });
    const watcher = new FakePeer();
    room.join("watcher", watcher);
    const others = ["a", "b", "c", "d"].map((name) => [name, new FakePeer()] as const);
    for (const [name, peer] of others) room.join(name, peer);
    expect(watcher.frames.filter((f) => f.type === "join").map((f) => f.user)).toEqual(["a", "b"]);
    expect(room.users()).toEqual(["watcher", "a", "b", "c", "d"]);
    // Symmetric with joins: a leave is announced when the room had at most 3 users before it.
    for (const index of [3, 2, 1]) room.leave(others[index]![0], others[index]![1]);
    expect(watcher.frames.filter((f) => f.type === "leave").map((f) => f.user)).toEqual(["b"]);
  });
});
