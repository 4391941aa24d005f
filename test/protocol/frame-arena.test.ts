// protocol/frame-arena.ts: frames encoded one after another lie next to each other in a chunk,
// a frame that would not fit starts a fresh chunk (never one straddling two), chunks are never
// written again once left, and large frames get buffers of their own.

import { describe, expect, test } from "bun:test";
import { ARENA_CHUNK_BYTES, FrameArena, MAX_SHARED_FRAME_BYTES, type SharedFrame } from "../../src/protocol/frame-arena.ts";
import { encodeFrame, type RoomMessage } from "../../src/protocol/frames.ts";

const message = (id: number, text = `message ${id}`): RoomMessage => ({ type: "msg", id, room: "#lobby", from: "ann", text, ts: 1_700_000_000_000 + id });
const textOf = ({ bytes, start, end }: SharedFrame) => new TextDecoder().decode(bytes.subarray(start, end));

describe("FrameArena", () => {
  test("consecutive frames are adjacent in one chunk, each exactly its encoding", () => {
    const arena = new FrameArena();
    const frames = [1, 2, 3].map((id) => arena.encode(message(id)));
    expect(frames[1]!.bytes).toBe(frames[0]!.bytes);
    expect(frames[2]!.bytes).toBe(frames[0]!.bytes);
    expect(frames[1]!.start).toBe(frames[0]!.end);
    expect(frames[2]!.start).toBe(frames[1]!.end);
    expect(frames.map(textOf)).toEqual([1, 2, 3].map((id) => encodeFrame(message(id))));
    expect(frames[0]!.bytes.length).toBe(ARENA_CHUNK_BYTES);
  });

  test("multi-byte text is encoded whole: the worst case is reserved before encoding", () => {
    const arena = new FrameArena(600, 600);
    // 100 UTF-16 units of emoji: 200 bytes of UTF-8, reserved as 300 plus the envelope.
    const frames = [1, 2, 3, 4].map((id) => arena.encode(message(id, "😀".repeat(50) + "é".repeat(10))));
    for (const [i, frame] of frames.entries()) expect(JSON.parse(textOf(frame))).toEqual(message(i + 1, "😀".repeat(50) + "é".repeat(10)));
  });

  test("past the end of a chunk a fresh one starts: old frames stay intact, no frame straddles two chunks", () => {
    const chunkBytes = 1_000;
    const arena = new FrameArena(chunkBytes, chunkBytes);
    const frames = Array.from({ length: 200 }, (_, id) => arena.encode(message(id)));
    const chunks = new Set(frames.map((frame) => frame.bytes));
    expect(chunks.size).toBeGreaterThan(20);
    for (const [id, frame] of frames.entries()) {
      expect(frame.bytes.length).toBe(chunkBytes);
      expect(frame.end).toBeLessThanOrEqual(chunkBytes);
      // Encoded long before most of the others, and still exactly what was encoded.
      expect(textOf(frame)).toBe(encodeFrame(message(id)));
    }
  });

  test("a frame that might exceed the shared size gets a buffer of its own, and the chunk carries on", () => {
    const arena = new FrameArena();
    const before = arena.encode(message(1));
    const large = arena.encode(message(2, "x".repeat(MAX_SHARED_FRAME_BYTES / 3)));
    const after = arena.encode(message(3));
    expect(large.bytes).not.toBe(before.bytes);
    expect(large.start).toBe(0);
    expect(large.end).toBe(large.bytes.length);
    expect(textOf(large)).toBe(encodeFrame(message(2, "x".repeat(MAX_SHARED_FRAME_BYTES / 3))));
    expect(after.bytes).toBe(before.bytes);
    expect(after.start).toBe(before.end);
  });
});
