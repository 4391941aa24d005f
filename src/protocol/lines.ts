// Incremental splitter for newline-delimited frames. It accepts any chunking of the byte stream
// and enforces the line limit before anything is buffered, so a peer that never sends a newline
// costs at most `maxLineBytes` of memory.

import { ChatError } from "./errors.ts";

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

export class LineDecoder {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** Bytes held for an unfinished line. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /**
   * Feeds a chunk and calls `onLine` for each complete line (newline and a trailing CR removed).
   * Stops early when `onLine` returns false. Throws `too_long` as soon as a line is known to be
   * over the limit, before copying it.
   */
  push(chunk: Uint8Array, onLine: (line: Uint8Array) => boolean | void): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline === -1) {
        this.hold(chunk, start);
        return;
      }
      const lineBytes = this.pendingBytes + (newline - start);
      if (lineBytes > this.maxLineBytes) throw tooLong(this.maxLineBytes);
      let line = chunk.subarray(start, newline);
      if (this.pendingBytes > 0) line = this.takePending(line);
      start = newline + 1;
      if (line.length > 0 && line[line.length - 1] === CARRIAGE_RETURN) line = line.subarray(0, line.length - 1);
      if (onLine(line) === false) return;
    }
  }

  private hold(chunk: Uint8Array, start: number): void {
    const rest = chunk.length - start;
    if (this.pendingBytes + rest > this.maxLineBytes) throw tooLong(this.maxLineBytes);
    // Copy: the caller's buffer may be reused by the runtime after the callback returns.
    this.pending.push(chunk.slice(start));
    this.pendingBytes += rest;
  }

  private takePending(tail: Uint8Array): Uint8Array {
    const line = new Uint8Array(this.pendingBytes + tail.length);
    let offset = 0;
    for (const part of this.pending) {
      line.set(part, offset);
      offset += part.length;
    }
    line.set(tail, offset);
    this.pending = [];
    this.pendingBytes = 0;
    return line;
  }
}

function tooLong(limit: number): ChatError {
  return new ChatError("too_long", `Line exceeds ${limit} bytes`);
}
