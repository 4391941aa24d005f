// A first-in first-out queue of bytes in one growable buffer: what a connection holds while its
// socket refuses bytes. Bytes are copied in once and written out in place, so resuming a partial
// write copies nothing; the buffer is let go as soon as the queue is empty, so a reader that
// caught up holds no memory for it.

/** The smallest buffer allocated: most backlogs are a few frames. */
const MIN_CAPACITY_BYTES = 4 * 1024;

const EMPTY = new Uint8Array(0);

export class ByteQueue {
  private buffer = EMPTY;
  private head = 0;
  private tail = 0;

  get length(): number {
    return this.tail - this.head;
  }

  /** The buffer the queued bytes are in, from `start` on: for writing them in place. */
  get bytes(): Uint8Array {
    return this.buffer;
  }

  get start(): number {
    return this.head;
  }

  /** Copies `source[start, end)` in at the back. */
  append(source: Uint8Array, start: number, end: number): void {
    const size = end - start;
    if (this.tail + size > this.buffer.length) this.makeRoom(size);
    this.buffer.set(source.subarray(start, end), this.tail);
    this.tail += size;
  }

  /** Drops `size` bytes from the front (they were written). */
  consume(size: number): void {
    this.head += size;
    if (this.head === this.tail) this.clear();
  }

  clear(): void {
    this.buffer = EMPTY;
    this.head = 0;
    this.tail = 0;
  }

  /**
   * Moves the queued bytes to the front, or into a buffer twice as large. Moving only once at
   * least half the buffer has been consumed keeps each byte's share of the moves constant, and
   * the buffer stays within about twice what is queued.
   */
  private makeRoom(size: number): void {
    const length = this.length;
    const needed = length + size;
    if (needed <= this.buffer.length && this.head >= this.buffer.length / 2) {
      this.buffer.copyWithin(0, this.head, this.tail);
    } else {
      const grown = new Uint8Array(Math.max(needed, 2 * this.buffer.length, MIN_CAPACITY_BYTES));
      grown.set(this.buffer.subarray(this.head, this.tail));
      this.buffer = grown;
    }
    this.head = 0;
    this.tail = length;
  }
}
