// server/byte-queue.ts: bytes come out in the order they went in across growth and compaction,
// the buffer stays within about twice what is queued, and an emptied queue lets its buffer go.

import { describe, expect, test } from "bun:test";
import { ByteQueue } from "../../src/server/byte-queue.ts";

/** Takes up to `size` bytes from the front, as a write of that many would. */
function take(queue: ByteQueue, size: number): number[] {
  const taken = Array.from(queue.bytes.subarray(queue.start, queue.start + Math.min(size, queue.length)));
  queue.consume(taken.length);
  return taken;
}

describe("ByteQueue", () => {
  test("appends and consumes in order through growth and compaction, never holding much more than is queued", () => {
    const queue = new ByteQueue();
    const source = Uint8Array.from({ length: 256 }, (_, i) => i);
    const expected: number[] = [];
    const received: number[] = [];
    let next = 0;
    for (let round = 0; round < 2_000; round++) {
      // Appends of 1–97 bytes, takes of 1–131: the queue grows, shrinks and wraps its buffer.
      const size = 1 + ((round * 37) % 97);
      const slice = Array.from({ length: size }, (_, i) => (next + i) % 256);
      next += size;
      const start = slice[0]!;
      if (start + size <= 256) queue.append(source, start, start + size);
      else for (const byte of slice) queue.append(source, byte, byte + 1);
      expected.push(...slice);
      received.push(...take(queue, 1 + ((round * 53) % 131)));
      expect(queue.bytes.length).toBeLessThanOrEqual(Math.max(4 * 1024, 2 * (queue.length + 97)));
    }
    received.push(...take(queue, Number.POSITIVE_INFINITY));
    expect(received).toEqual(expected);
  });

  test("an emptied queue lets its buffer go", () => {
    const queue = new ByteQueue();
    queue.append(new Uint8Array(10_000), 0, 10_000);
    expect(queue.bytes.length).toBeGreaterThanOrEqual(10_000);
    queue.consume(4_000);
    expect(queue.length).toBe(6_000);
    queue.consume(6_000);
    expect(queue.length).toBe(0);
    expect(queue.bytes.length).toBe(0);
  });
});
