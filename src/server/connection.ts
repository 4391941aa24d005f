// A Bun TLS socket seen as a chat Peer: it splits incoming bytes into lines for the session and
// owns a byte-capped outbound queue. Queued frames are written in coalesced batches once per
// event-loop turn (Bun has no cork and drops whatever `write` did not take), the rest waits for
// `drain`, and a peer that lets its queue overflow is dropped so it never holds up the others.
// Batches are assembled in one scratch buffer shared by all connections: a write either takes
// it at once or the unwritten rest is copied out, so no buffer is allocated per write.

import type { Socket } from "bun";
import type { Peer } from "../core/peer.ts";
import type { Session } from "../core/session.ts";
import { ChatError, type ErrorCode } from "../protocol/errors.ts";
import { encodeFrameBytes } from "../protocol/frames.ts";
import { LineDecoder } from "../protocol/lines.ts";
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

/** Where batches are assembled; one for all connections, as writes happen one at a time. */
let scratch = new Uint8Array(0);

function scratchOf(size: number): Uint8Array {
  if (scratch.length < size) scratch = new Uint8Array(size);
  return scratch;
}

export class Connection implements Peer {
  readonly session: Session;
  /** Why the connection ended, for the log. */
  reason: CloseReason = "client_closed";
  private handshakeDone = false;
  private flushScheduled = false;
  private readonly decoder: LineDecoder;
  private queue: Uint8Array[] = [];
  private queueHead = 0;
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

  send(frame: Uint8Array): void {
    if (this.closing || this.closed) return;
    if (this.queuedBytes + frame.length > this.host.maxOutboundBytes) {
      // Over the cap only counts against the peer if the socket is refusing bytes; a big burst
      // queued within one turn is written out now instead.
      if (!this.waitingForDrain) this.flush();
      if (this.queuedBytes + frame.length > this.host.maxOutboundBytes) {
        this.dropAsSlowConsumer();
        return;
      }
    }
    this.enqueue(frame);
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
    if (code !== undefined) this.enqueue(encodeFrameBytes({ type: "error", code, message: message ?? "" }));
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
    while (this.queuedBytes > 0) {
      const batch = this.takeBatch();
      const written = this.socket.write(batch);
      if (written < 0) {
        this.terminate();
        return;
      }
      if (written < batch.length) {
        // The scratch buffer is the next batch's: keep a copy of what the socket did not take.
        const rest = batch.subarray(written);
        this.putBack(batch.buffer === scratch.buffer ? rest.slice() : rest);
        this.waitingForDrain = true;
        this.wakeWritableWaiters();
        return;
      }
    }
    this.wakeWritableWaiters();
    if (this.closing) this.socket.end();
  }

  private wakeWritableWaiters(): void {
    if (this.writableWaiters.length === 0 || (!this.closed && this.queuedBytes > this.host.writableBelowBytes)) return;
    for (const resolve of this.writableWaiters.splice(0)) resolve();
  }

  /** Bytes waiting to be written, for the server-wide budget. */
  get queuedLength(): number {
    return this.queuedBytes;
  }

  private enqueue(frame: Uint8Array): void {
    this.host.deliveries.inc();
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    this.host.budget.add(frame.length);
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

  private takeBatch(): Uint8Array {
    const first = this.queue[this.queueHead]!;
    let end = this.queueHead + 1;
    let size = first.length;
    while (end < this.queue.length && size + this.queue[end]!.length <= this.host.maxWriteBytes) {
      size += this.queue[end]!.length;
      end += 1;
    }
    let batch: Uint8Array;
    if (end === this.queueHead + 1) {
      batch = first;
    } else {
      batch = scratchOf(this.host.maxWriteBytes).subarray(0, size);
      let offset = 0;
      for (let i = this.queueHead; i < end; i++) {
        batch.set(this.queue[i]!, offset);
        offset += this.queue[i]!.length;
      }
    }
    this.queueHead = end;
    this.queuedBytes -= size;
    this.host.budget.remove(size);
    if (this.queueHead === this.queue.length) {
      // Reuse the array: a fresh one per turn would be grown again push by push.
      this.queue.length = 0;
      this.queueHead = 0;
    }
    return batch;
  }

  private putBack(rest: Uint8Array): void {
    if (this.queueHead > 0) this.queue[--this.queueHead] = rest;
    else this.queue.unshift(rest);
    this.queuedBytes += rest.length;
    this.host.budget.add(rest.length);
  }

  private clearQueue(): void {
    this.host.budget.remove(this.queuedBytes);
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.wakeWritableWaiters();
  }
}
