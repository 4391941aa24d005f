// A Bun TLS socket seen as a chat Peer: it splits incoming bytes into lines for the session and
// owns a byte-capped outbound queue. Queued frames are written in coalesced batches once per
// event-loop turn (Bun has no cork and drops whatever `write` did not take), the rest waits for
// `drain`, and a peer that lets its queue overflow is dropped so it never holds up the others.
//
// The queue holds ranges of the senders' buffers, not copies: frames of a room are encoded once
// into a shared arena (protocol/frame-arena.ts), and a frame that continues the last range
// queued just extends it, so a reader that gets every frame of a room writes a turn's worth as
// one range in place. Only several separate ranges are gathered into one scratch buffer shared
// by all connections. When the socket refuses bytes, what it did not take and everything queued
// after it is copied into the connection's own backlog, so a slow reader keeps no shared chunk
// alive and a partial write is resumed from the backlog without copying again.

import type { Socket } from "bun";
import type { Peer } from "../core/peer.ts";
import type { Session } from "../core/session.ts";
import { ChatError, type ErrorCode } from "../protocol/errors.ts";
import { encodeFrameBytes } from "../protocol/frames.ts";
import { LineDecoder } from "../protocol/lines.ts";
import { ByteQueue } from "./byte-queue.ts";
import type { OutboundBudget } from "./outbound-budget.ts";

export interface ConnectionHost {
  maxLineBytes: number;
  maxOutboundBytes: number;
  /** `writable()` resolves once the queue is at most this long. */
  writableBelowBytes: number;
  maxWriteBytes: number;
  closeGraceMs: number;
  /** Counts every connection's queued bytes against the server-wide allowance. */
  budget: OutboundBudget;
  /** Counts every frame queued: one integer increment, as this runs once per delivery. */
  deliveries: { inc(): void };
  /** Asks for `flush()` to be called at the end of this event-loop turn. */
  scheduleFlush(connection: Connection): void;
  slowConsumer(connection: Connection): void;
}

export type CloseReason = ErrorCode | "client_closed" | "quit" | "tls_failed";

/** `bytes[start, end)`, queued; `start` advances as the range is written. */
interface Range {
  readonly bytes: Uint8Array;
  start: number;
  end: number;
}

/** Where batches of several ranges are gathered; one for all connections, as writes happen one at a time. */
let scratch = new Uint8Array(0);

export class Connection implements Peer {
  readonly session: Session;
  /** Why the connection ended, for the log. */
  reason: CloseReason = "client_closed";
  private handshakeDone = false;
  private flushScheduled = false;
  private readonly decoder: LineDecoder;
  /** Ranges queued since the last flush, while the socket takes what it is given. */
  private ranges: Range[] = [];
  private rangesHead = 0;
  /** The last range queued, which a frame right after it in the same buffer extends. */
  private lastRange: Range | undefined;
  /** What the socket refused, and everything queued after it: copies, written in place. */
  private readonly backlog = new ByteQueue();
  /** Bytes in `ranges` and `backlog` together. */
  private queuedBytes = 0;
  private waitingForDrain = false;
  private closing = false;
  private closed = false;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private writableWaiters: Array<() => void> = [];

  constructor(
    readonly id: number,
    readonly address: string,
    private readonly socket: Socket<Connection>,
    private readonly host: ConnectionHost,
    createSession: (peer: Peer) => Session,
  ) {
    this.decoder = new LineDecoder(host.maxLineBytes);
    this.session = createSession(this);
  }

  get isOpen(): boolean {
    return !this.closing && !this.closed;
  }

  get authenticated(): boolean {
    return this.session.authenticated;
  }

  get openedAt(): number {
    return this.session.openedAt;
  }

  get lastFrameAt(): number {
    return this.session.lastFrameAt;
  }

  send(bytes: Uint8Array, start = 0, end = bytes.length): void {
    if (this.closing || this.closed) return;
    if (this.queuedBytes + end - start > this.host.maxOutboundBytes) {
      // Over the cap only counts against the peer if the socket is refusing bytes; a big burst
      // queued within one turn is written out now instead.
      if (!this.waitingForDrain) this.flush();
      if (this.queuedBytes + end - start > this.host.maxOutboundBytes) {
        this.dropAsSlowConsumer();
        return;
      }
    }
    this.enqueue(bytes, start, end);
  }

  writable(): Promise<void> {
    if (this.closed || this.queuedBytes <= this.host.writableBelowBytes) return Promise.resolve();
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }

  /** The TLS handshake failed; a connection already being closed keeps its reason. */
  handshakeFailed(): void {
    if (this.isOpen) this.reason = "tls_failed";
    this.terminate();
  }

  close(code?: ErrorCode, message?: string): void {
    if (this.closing || this.closed) return;
    this.reason = code ?? "quit";
    // The farewell frame may exceed the cap by its own size: it is the last thing queued.
    if (code !== undefined) {
      const farewell = encodeFrameBytes({ type: "error", code, message: message ?? "" });
      this.enqueue(farewell, 0, farewell.length);
    }
    this.closing = true;
    this.graceTimer = setTimeout(() => this.terminate(), this.host.closeGraceMs);
    if (!this.handshakeDone) return; // `handshake` flushes and ends once TLS is up.
    this.flush();
  }

  /** Drops a peer that does not read fast enough, so it never holds up the others. */
  dropAsSlowConsumer(): void {
    if (this.closed) return;
    this.reason = "slow_consumer";
    this.host.slowConsumer(this);
    this.terminate();
  }

  /** Closes at once, dropping anything queued. */
  terminate(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearQueue();
    this.socket.terminate();
  }

  /** TLS is up; `clientKey` is the fingerprint of the certificate the client proved it holds. */
  onHandshake(clientKey: string | undefined): void {
    this.session.clientKey = clientKey;
    this.handshakeDone = true;
    if (this.queuedBytes > 0 || this.closing) this.flush();
  }

  onData(chunk: Uint8Array): void {
    if (this.closing || this.closed) return;
    try {
      this.decoder.push(chunk, (line) => {
        this.session.receive(line);
        return this.isOpen;
      });
    } catch (error) {
      if (!(error instanceof ChatError)) throw error;
      this.close(error.code, error.message);
    }
  }

  onDrain(): void {
    this.waitingForDrain = false;
    this.flush();
  }

  onClosed(): void {
    this.closed = true;
    this.clearQueue();
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.session.connectionClosed();
  }

  /** Writes as much of the queue as the socket takes, in batches of up to `maxWriteBytes`. */
  flush(): void {
    if (this.closed || this.waitingForDrain || !this.handshakeDone) return;
    if (!this.writeBacklog() || !this.writeRanges()) return;
    this.wakeWritableWaiters();
    if (this.closing) this.socket.end();
  }

  /** Writes the backlog in place; false if the socket did not take all of it. */
  private writeBacklog(): boolean {
    while (this.backlog.length > 0) {
      const size = Math.min(this.backlog.length, this.host.maxWriteBytes);
      const written = this.write(this.backlog.bytes, this.backlog.start, size);
      if (written < 0) return false;
      this.backlog.consume(written);
      if (written < size) return false;
    }
    return true;
  }

  /**
   * Writes the queued ranges: one range in place, several gathered into the scratch buffer. On a
   * partial write the rest of the batch and every range after it go to the backlog.
   */
  private writeRanges(): boolean {
    const maxWrite = this.host.maxWriteBytes;
    while (this.rangesHead < this.ranges.length) {
      const range = this.ranges[this.rangesHead]!;
      let bytes: Uint8Array;
      let start: number;
      let size: number;
      if (this.rangesHead + 1 === this.ranges.length || range.end - range.start >= maxWrite) {
        bytes = range.bytes;
        start = range.start;
        size = Math.min(range.end - start, maxWrite);
        range.start += size;
        if (range.start === range.end) this.rangesHead += 1;
      } else {
        bytes = scratch.length >= maxWrite ? scratch : (scratch = new Uint8Array(maxWrite));
        start = 0;
        size = this.gather(maxWrite);
      }
      const written = this.write(bytes, start, size);
      if (written < 0) return false;
      if (written < size) {
        this.backlog.append(bytes, start + written, start + size);
        for (let i = this.rangesHead; i < this.ranges.length; i++) {
          const rest = this.ranges[i]!;
          this.backlog.append(rest.bytes, rest.start, rest.end);
        }
        this.resetRanges();
        return false;
      }
    }
    this.resetRanges();
    return true;
  }

  /** Copies ranges from the front into the scratch buffer, up to `limit` bytes; returns how many. */
  private gather(limit: number): number {
    let size = 0;
    while (this.rangesHead < this.ranges.length && size < limit) {
      const range = this.ranges[this.rangesHead]!;
      const take = Math.min(range.end - range.start, limit - size);
      scratch.set(range.bytes.subarray(range.start, range.start + take), size);
      size += take;
      range.start += take;
      if (range.start === range.end) this.rangesHead += 1;
    }
    return size;
  }

  /**
   * One write; what it took leaves the queue and the budget. Past a partial write the socket
   * waits for `drain`; past an error (-1, closed) the connection is gone.
   */
  private write(bytes: Uint8Array, start: number, size: number): number {
    const written = this.socket.write(bytes, start, size);
    if (written < 0) {
      this.terminate();
      return written;
    }
    this.queuedBytes -= written;
    this.host.budget.remove(written);
    if (written < size) {
      this.waitingForDrain = true;
      this.wakeWritableWaiters();
    }
    return written;
  }

  private resetRanges(): void {
    // Reuse the array: a fresh one per turn would be grown again push by push.
    this.ranges.length = 0;
    this.rangesHead = 0;
    this.lastRange = undefined;
  }

  private wakeWritableWaiters(): void {
    if (this.writableWaiters.length === 0 || (!this.closed && this.queuedBytes > this.host.writableBelowBytes)) return;
    for (const resolve of this.writableWaiters.splice(0)) resolve();
  }

  /** Bytes waiting to be written, for the server-wide budget. */
  get queuedLength(): number {
    return this.queuedBytes;
  }

  private enqueue(bytes: Uint8Array, start: number, end: number): void {
    this.host.deliveries.inc();
    this.queuedBytes += end - start;
    this.host.budget.add(end - start);
    const last = this.lastRange;
    if (this.backlog.length > 0 || !this.handshakeDone) {
      // Behind bytes the socket refused (a backlog is what waiting for drain leaves), or before
      // TLS is up: nothing is written this turn, so a copy, and no shared chunk stays referenced.
      this.backlog.append(bytes, start, end);
    } else if (last !== undefined && last.end === start && last.bytes === bytes) {
      last.end = end;
    } else {
      this.ranges.push((this.lastRange = { bytes, start, end }));
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.host.scheduleFlush(this);
    }
  }

  /** Called by the host at the end of the turn in which this connection asked for a flush. */
  flushScheduledWrites(): void {
    this.flushScheduled = false;
    this.flush();
  }

  private clearQueue(): void {
    this.host.budget.remove(this.queuedBytes);
    this.ranges = [];
    this.rangesHead = 0;
    this.lastRange = undefined;
    this.backlog.clear();
    this.queuedBytes = 0;
    this.wakeWritableWaiters();
  }
}
