// Delivery bookkeeping for the message scenarios. Senders are clients 0..senders-1 and number
// their messages 0,1,2,...; the tracked clients form groups (rooms) of consecutive indices, one
// group of all of them unless told otherwise, and every other member of the sender's group must
// receive each message exactly once and, per (sender, receiver) pair, in order. A message
// reaching a client outside the sender's group is `unexpected`. A message counts as complete
// when all of its receivers have it; `completed[s]` is the length of sender s's fully delivered
// prefix, which is what the fanout window is measured against. The durable fanout also checks
// that every say it sent with a ref was acknowledged once.

import type { BenchClient } from "./client.ts";
import { now, percentiles, Samples, type Percentiles } from "./util.ts";

export interface TrackerOptions {
  senders: number;
  /** Tracked clients (indices 0..clients-1). */
  clients: number;
  /**
   * Clients per group: group g is clients g*groupSize..(g+1)*groupSize-1, and the receivers of
   * sender s are the other members of its group. Default: one group of all clients.
   */
  groupSize?: number;
  /** Most messages any sender will send. */
  perSender: number;
  /** Called when a sender's completed prefix grows. */
  onAdvance?: (sender: number) => void;
  /**
   * The receivers whose deliveries are latency samples (default all): the cross-node latency
   * leaves out receivers on the sender's own node. Loss is checked for every receiver.
   */
  sampled?: (receiver: number) => boolean;
}

export class Tracker {
  /** Messages sent per sender: the scenario keeps this up to date. */
  readonly sent: Int32Array;
  readonly completed: Int32Array;
  readonly receivers: number;
  /** Unique deliveries. */
  deliveries = 0;
  duplicated = 0;
  outOfOrder = 0;
  /** Bench messages that no tracked sender sent, a sender's own echoed back, or one outside its group. */
  unexpected = 0;
  /** Latency (ms) of each unique delivery, and when its message was sent (ms). */
  readonly latency: Samples;
  readonly sentAt: Samples;
  lastDeliveryAt = NaN;
  private readonly seen: Uint8Array;
  private readonly acks: Uint16Array;
  private readonly maxSeq: Int32Array;
  private readonly groupSize: number;
  private target = Infinity;
  private reached: (() => void) | undefined;

  constructor(private readonly options: TrackerOptions) {
    const { senders, clients, perSender } = options;
    this.groupSize = options.groupSize ?? clients;
    this.receivers = this.groupSize - 1;
    this.sent = new Int32Array(senders);
    this.completed = new Int32Array(senders);
    this.acks = new Uint16Array(senders * perSender);
    // Per (sender, receiver's place in the group): each message seen, and the highest seq so far.
    this.seen = new Uint8Array(senders * this.groupSize * perSender);
    this.maxSeq = new Int32Array(senders * this.groupSize).fill(-1);
    const expected = Math.min(senders * perSender * this.receivers, 20_000_000);
    this.latency = new Samples(expected);
    this.sentAt = new Samples(expected);
  }

  /** The `msg` event handler for tracked clients. */
  readonly msg = (client: BenchClient, sender: number, seq: number, sentMs: number, nowMs: number): void => {
    const { senders, clients, perSender } = this.options;
    const { groupSize } = this;
    const receiver = client.index;
    const sameGroup = Math.floor(receiver / groupSize) === Math.floor(sender / groupSize);
    if (sender >= senders || seq >= perSender || receiver === sender || receiver >= clients || !sameGroup) {
      this.unexpected += 1;
      return;
    }
    const pair = sender * groupSize + (receiver % groupSize);
    const slot = pair * perSender + seq;
    if (this.seen[slot] !== 0) {
      this.duplicated += 1;
      return;
    }
    this.seen[slot] = 1;
    this.deliveries += 1;
    if (this.options.sampled === undefined || this.options.sampled(receiver)) {
      this.latency.push(nowMs - sentMs);
      this.sentAt.push(sentMs);
    }
    if (seq < this.maxSeq[pair]!) this.outOfOrder += 1;
    else this.maxSeq[pair] = seq;
    const base = sender * perSender;
    if (++this.acks[base + seq]! === this.receivers && seq === this.completed[sender]) {
      let next = seq + 1;
      while (next < perSender && this.acks[base + next] === this.receivers) next += 1;
      this.completed[sender] = next;
      this.options.onAdvance?.(sender);
    }
    if (this.deliveries >= this.target) {
      this.lastDeliveryAt = now();
      this.target = Infinity;
      this.reached?.();
    }
  };

  /** Resolves when `count` unique deliveries have arrived. */
  until(count: number): Promise<void> {
    if (this.deliveries >= count) return Promise.resolve();
    this.target = count;
    return new Promise<void>((resolve) => (this.reached = resolve));
  }

  /** Deliveries owed for what was sent but not received. */
  get lost(): number {
    let expected = 0;
    for (const count of this.sent) expected += count * this.receivers;
    return expected - this.deliveries;
  }

  /** Latency percentiles, optionally only of messages sent within [from, to). */
  percentiles(from = -Infinity, to = Infinity): Percentiles {
    if (from === -Infinity && to === Infinity) return percentiles(this.latency.sorted());
    const latency = this.latency.view();
    const sentAt = this.sentAt.view();
    const selected = new Samples(latency.length);
    for (let i = 0; i < latency.length; i++) {
      const at = sentAt[i]!;
      if (at >= from && at < to) selected.push(latency[i]!);
    }
    return percentiles(selected.sorted());
  }
}

export interface AckTrackerOptions {
  senders: number;
  perSender: number;
  /** The ref round of the says being tracked; acks of another round are `unexpected`. */
  round: number;
}

/**
 * Acks of says sent with refs (the durable fanout): each (sender, seq) must be acked once, on
 * the sender's own connection, and a sender's acks must carry increasing ids, since the server
 * commits and acknowledges one connection's messages in the order they came.
 */
export class AckTracker {
  acks = 0;
  duplicated = 0;
  /** An ack whose id is not above the previous ack of the same sender. */
  outOfOrder = 0;
  /** Another round's ref, a seq past the end, or an ack on another sender's connection. */
  unexpected = 0;
  lastAckAt = NaN;
  /** Send to ack (ms), per ack. */
  readonly latency: Samples;
  private readonly seen: Uint8Array;
  private readonly sentAt: Float64Array;
  private readonly lastId: Float64Array;
  private target = Infinity;
  private reached: (() => void) | undefined;

  constructor(private readonly options: AckTrackerOptions) {
    const { senders, perSender } = options;
    this.seen = new Uint8Array(senders * perSender);
    this.sentAt = new Float64Array(senders * perSender);
    this.lastId = new Float64Array(senders).fill(-1);
    this.latency = new Samples(senders * perSender);
  }

  /** Records when messages first.. of a sender were written. */
  sent(sender: number, first: number, count: number, atMs: number): void {
    const base = sender * this.options.perSender;
    this.sentAt.fill(atMs, base + first, base + first + count);
  }

  /** The `ack` event handler for the senders. */
  readonly ack = (client: BenchClient, round: number, seq: number, id: number, nowMs: number): void => {
    const { senders, perSender } = this.options;
    const sender = client.index;
    if (round !== this.options.round || !(seq < perSender) || sender >= senders) {
      this.unexpected += 1;
      return;
    }
    const slot = sender * perSender + seq;
    if (this.seen[slot] !== 0) {
      this.duplicated += 1;
      return;
    }
    this.seen[slot] = 1;
    this.acks += 1;
    this.latency.push(nowMs - this.sentAt[slot]!);
    if (!(id > this.lastId[sender]!)) this.outOfOrder += 1;
    this.lastId[sender] = id;
    if (this.acks >= this.target) {
      this.lastAckAt = now();
      this.target = Infinity;
      this.reached?.();
    }
  };

  /** Resolves when `count` distinct acks have arrived. */
  until(count: number): Promise<void> {
    if (this.acks >= count) return Promise.resolve();
    this.target = count;
    return new Promise<void>((resolve) => (this.reached = resolve));
  }
}
