// One flush per connection per event-loop turn: frames queued while handling a batch of reads
// (a room message reaching hundreds of members) leave each connection in one write.

export interface Flushable {
  flushScheduledWrites(): void;
}

export class FlushScheduler {
  private dirty: Flushable[] = [];
  private readonly flushAll = () => {
    const batch = this.dirty;
    this.dirty = [];
    for (const connection of batch) connection.flushScheduledWrites();
    this.afterFlush();
  };

  /** `afterFlush` runs once the turn's writes are done: what is still queued then is waiting on slow readers. */
  constructor(private readonly afterFlush: () => void = () => {}) {}

  /** Asks for `flushScheduledWrites()` at the end of this turn; the caller asks once per turn. */
  schedule(connection: Flushable): void {
    if (this.dirty.length === 0) setImmediate(this.flushAll);
    this.dirty.push(connection);
  }
}
