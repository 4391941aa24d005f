// fanout and latency: many clients in one room, some of them sending. The same code runs against
// tlschat and against the ncat broker (the peer), so the figures are comparable, and on the
// clients of a cluster's nodes (scenarios/cluster.ts), which it measures as the sum of the nodes
// and Redis; fanout's rounds also run against ngircd, in IRC lines (scenarios/ircd.ts). fanout
// runs tlschat with `--message-log memory` (as the recorded history was measured) and, as its
// durable variant, with the chat database log and an ack for every message.

import { sayLines, terminateAll, type BenchClient, type ClientEvents, type SayOptions } from "../lib/client.ts";
import type { Watched } from "../lib/proc.ts";
import { startTarget, makeClients, type BenchContext, type TargetName } from "../lib/targets.ts";
import { AckTracker, Tracker } from "../lib/tracker.ts";
import { cpuShare, log, now, percentiles, sleep, withTimeout } from "../lib/util.ts";

export type Metrics = Record<string, number>;

/** Bench messages in the server's protocol: tlschat's say lines, unless a scenario speaks another (ircd). */
export type MessageLines = (sender: number, first: number, count: number, options?: SayOptions) => Uint8Array;

export interface FanoutConfig {
  clients: number;
  senders: number;
  /** Most messages per sender. */
  messages: number;
  /**
   * Relay for at least this long: senders stop topping up their windows once it has passed (or
   * at `messages`, whichever comes first), and the round ends when what was sent has arrived.
   * 0: only `messages` bounds the round.
   */
  minSeconds: number;
  window: number;
  /** Messages per sender in the unmeasured warm-up round (0: none). */
  warmup: number;
  timeoutMs: number;
}

// 5 s of relaying: rounds of well under a second measured the same binary at 0.24–0.47 µs per
// delivery. At most 60,000 messages per sender (29.4 M deliveries), which even 5.9 M deliveries/s
// take 5 s to send.
export const FANOUT: FanoutConfig = { clients: 50, senders: 10, messages: 60_000, minSeconds: 5, window: 64, warmup: 500, timeoutMs: 60_000 };

/**
 * `memory`: tlschat keeps messages only in memory and no say carries a ref. `durable`: the chat
 * database log (serve's default) and a ref on every say, so each is acknowledged once committed.
 */
export type FanoutLog = "memory" | "durable";

/** Ref rounds of the durable fanout: refs must differ between rounds, or the server takes a retry. */
const WARMUP_ROUND = 0;
const MEASURED_ROUND = 1;

/**
 * fanout: each sender keeps up to `window` messages in flight, where a message is in flight
 * until every one of its receivers (all other clients) has it. Throughput is unique deliveries
 * over the time from the first send to the last delivery; in the durable variant also acks over
 * the time from the first send to the last ack. A short unmeasured round (`warmup` messages per
 * sender) runs first on the same server and clients, so both sides are past JIT warm-up when
 * measuring starts.
 */
export async function fanout(ctx: BenchContext, targetName: TargetName, messageLog: FanoutLog = "memory", cfg = FANOUT): Promise<Metrics> {
  const durable = messageLog === "durable";
  const target = await startTarget(ctx, targetName, durable ? "db" : "memory");
  let clients: BenchClient[] = [];
  try {
    const events: ClientEvents = {};
    clients = makeClients(cfg.clients, events);
    await target.join(clients);
    return await fanoutOn([target.server], clients, events, durable, cfg);
  } finally {
    await target.stop();
    terminateAll(clients);
  }
}

/**
 * The fanout's rounds (warm-up, then measured) on clients that are logged in, wherever they
 * are; CPU is that of the `watched` processes together. With `refs`, every say carries a ref.
 */
export async function fanoutOn(
  watched: readonly Watched[],
  clients: BenchClient[],
  events: ClientEvents,
  refs: boolean,
  cfg = FANOUT,
  lines: MessageLines = sayLines,
): Promise<Metrics> {
  await sleep(200); // online notices settle
  if (cfg.warmup > 0) await fanoutRound(watched, clients, events, { ...cfg, messages: cfg.warmup, minSeconds: 0 }, refs ? WARMUP_ROUND : undefined, lines);
  return await fanoutRound(watched, clients, events, cfg, refs ? MEASURED_ROUND : undefined, lines);
}

/**
 * CPU time of the watched processes from now on. `stop` gives their total as server CPU (per
 * delivery and as percent of one core over `seconds`) and, when there are several, each one's.
 */
function serverCpu(watched: readonly Watched[]): { stop(seconds: number, deliveries?: number): Metrics } {
  const start = watched.map((proc) => proc.cpuMs());
  return {
    stop(seconds, deliveries) {
      const spent = watched.map((proc, i) => proc.cpuMs() - start[i]!);
      const metrics: Metrics = {};
      const add = (prefix: string, cpuMs: number) => {
        metrics[`${prefix}CpuPct`] = (cpuMs / (seconds * 1000)) * 100;
        if (deliveries !== undefined) metrics[`${prefix}CpuUsPerDelivery`] = (cpuMs * 1000) / deliveries;
      };
      add("server", spent.reduce((total, cpuMs) => total + cpuMs, 0));
      if (watched.length > 1) watched.forEach((proc, i) => add(proc.name, spent[i]!));
      return metrics;
    },
  };
}

const rssMiB = (watched: readonly Watched[]): number => watched.reduce((total, proc) => total + proc.rssKiB(), 0) / 1024;
const names = (watched: readonly Watched[]): string => watched.map((proc) => proc.name).join("+");

/** One round of fanout; with `refRound`, every say carries a ref and the round also waits for every ack. */
async function fanoutRound(
  watched: readonly Watched[],
  clients: BenchClient[],
  events: ClientEvents,
  cfg: FanoutConfig,
  refRound?: number,
  lines: MessageLines = sayLines,
): Promise<Metrics> {
  let pumpScheduled = false;
  const schedulePump = () => {
    if (pumpScheduled) return;
    pumpScheduled = true;
    setImmediate(pump);
  };
  const tracker = new Tracker({ senders: cfg.senders, clients: cfg.clients, perSender: cfg.messages, onAdvance: schedulePump });
  events.msg = tracker.msg;
  const acks = refRound === undefined ? undefined : new AckTracker({ senders: cfg.senders, perSender: cfg.messages, round: refRound });
  events.ack = acks?.ack;
  let refusals = 0;
  events.error = () => (refusals += 1);
  let stopSending!: () => void;
  const sendingStopped = new Promise<void>((resolve) => (stopSending = resolve));
  let sending = true;
  // One buffer per sender per turn: every message the window allows right now.
  const pump = () => {
    pumpScheduled = false;
    if (!sending) return;
    for (let s = 0; s < cfg.senders; s++) {
      const client = clients[s]!;
      if (client.backlogged) continue;
      const inFlight = tracker.sent[s]! - tracker.completed[s]!;
      const count = Math.min(cfg.window - inFlight, cfg.messages - tracker.sent[s]!);
      if (count <= 0) continue;
      client.writeNow(lines(s, tracker.sent[s]!, count, { refRound }));
      acks?.sent(s, tracker.sent[s]!, count, now());
      tracker.sent[s]! += count;
    }
    // Checked after topping up, so the last messages are in flight when sending stops.
    const timeUp = cfg.minSeconds > 0 && now() - t0 >= cfg.minSeconds * 1000;
    if (timeUp || tracker.sent.every((sent) => sent >= cfg.messages)) {
      sending = false;
      stopSending();
    }
  };
  const sentMessages = () => tracker.sent.reduce((total, sent) => total + sent, 0);
  const done = sendingStopped.then(() => Promise.all([tracker.until(sentMessages() * tracker.receivers), acks?.until(sentMessages())]));
  const cpu = serverCpu(watched);
  const share = cpuShare();
  const t0 = now();
  pump();
  let timedOut = 0;
  try {
    await withTimeout(done, cfg.timeoutMs, `${names(watched)} fanout deliveries`);
  } catch (error) {
    sending = false;
    log(`fanout: ${(error as Error).message} (${tracker.deliveries}/${sentMessages() * tracker.receivers} deliveries, ${acks?.acks ?? "no"} acks)`);
    timedOut = 1;
    if (!(tracker.deliveries >= sentMessages() * tracker.receivers)) tracker.lastDeliveryAt = now();
    if (acks && !(acks.acks >= sentMessages())) acks.lastAckAt = now();
  }
  const messages = sentMessages();
  const expected = messages * tracker.receivers;
  const seconds = (tracker.lastDeliveryAt - t0) / 1000;
  const cpuMetrics = cpu.stop(seconds, tracker.deliveries);
  const generatorCpu = share.stop();
  await sleep(100); // late duplicates would show up here
  const latency = tracker.percentiles();
  const ackMetrics: Metrics = {};
  if (acks) {
    const ackLatency = percentiles(acks.latency.sorted());
    Object.assign(ackMetrics, {
      acked: acks.acks,
      ackedPerSec: acks.acks / ((acks.lastAckAt - t0) / 1000),
      ackP50Ms: ackLatency.p50,
      ackP99Ms: ackLatency.p99,
      ackLost: messages - acks.acks,
      ackDuplicated: acks.duplicated,
      ackOutOfOrder: acks.outOfOrder,
      ackUnexpected: acks.unexpected,
    });
  }
  return {
    deliveries: tracker.deliveries,
    seconds,
    deliveriesPerSec: tracker.deliveries / seconds,
    p50Ms: latency.p50,
    p99Ms: latency.p99,
    maxMs: latency.max,
    lost: expected - tracker.deliveries,
    duplicated: tracker.duplicated,
    outOfOrder: tracker.outOfOrder,
    unexpected: tracker.unexpected,
    timedOut,
    ...cpuMetrics,
    generatorCpuPct: generatorCpu,
    serverRssMiB: rssMiB(watched),
    refusals,
    ...ackMetrics,
  };
}

export interface LatencyConfig {
  clients: number;
  senders: number;
  ratePerSec: number;
  seconds: number;
}

export const LATENCY: LatencyConfig = { clients: 50, senders: 5, ratePerSec: 20, seconds: 10 };

/**
 * latency: a light, steady load; each message is written as soon as its timer fires. A short
 * unmeasured fanout round (200 messages per sender) warms both sides up first.
 */
export async function latency(ctx: BenchContext, targetName: TargetName, cfg = LATENCY): Promise<Metrics> {
  const target = await startTarget(ctx, targetName);
  let clients: BenchClient[] = [];
  try {
    const events: ClientEvents = {};
    clients = makeClients(cfg.clients, events);
    await target.join(clients);
    return await latencyOn([target.server], clients, events, cfg);
  } finally {
    await target.stop();
    terminateAll(clients);
  }
}

/** Messages per sender in latency's warm-up round. */
const LATENCY_WARMUP_MESSAGES = 200;

/**
 * The latency load (warm-up round, then the timed senders) on clients that are logged in,
 * wherever they are. With `sampled`, only deliveries to those receivers are latency samples.
 */
export async function latencyOn(
  watched: readonly Watched[],
  clients: BenchClient[],
  events: ClientEvents,
  cfg = LATENCY,
  sampled?: (receiver: number) => boolean,
): Promise<Metrics> {
  const timers: ReturnType<typeof setInterval>[] = [];
  try {
    const perSender = Math.round(cfg.ratePerSec * cfg.seconds);
    const tracker = new Tracker({ senders: cfg.senders, clients: cfg.clients, perSender, sampled });
    await sleep(200);
    await fanoutRound(watched, clients, events, { ...FANOUT, clients: cfg.clients, senders: cfg.senders, messages: LATENCY_WARMUP_MESSAGES, minSeconds: 0 });
    events.msg = tracker.msg;
    const intervalMs = 1000 / cfg.ratePerSec;
    const expected = cfg.senders * perSender * tracker.receivers;
    const done = tracker.until(expected);
    const cpu = serverCpu(watched);
    const share = cpuShare();
    const t0 = now();
    for (let s = 0; s < cfg.senders; s++) {
      // Stagger the senders across the interval.
      const start = setTimeout(() => {
        const send = () => {
          if (tracker.sent[s]! >= perSender) return;
          clients[s]!.writeNow(sayLines(s, tracker.sent[s]!, 1));
          tracker.sent[s]! += 1;
        };
        send();
        timers.push(setInterval(send, intervalMs));
      }, (s * intervalMs) / cfg.senders);
      timers.push(start);
    }
    let timedOut = 0;
    try {
      await withTimeout(done, cfg.seconds * 1000 + 10_000, `${names(watched)} latency deliveries`);
    } catch (error) {
      log(`latency: ${(error as Error).message} (${tracker.deliveries}/${expected})`);
      timedOut = 1;
    }
    const cpuMetrics = cpu.stop((now() - t0) / 1000);
    const generatorCpu = share.stop();
    await sleep(100);
    const result = tracker.percentiles();
    return {
      deliveries: tracker.deliveries,
      samples: result.count,
      p50Ms: result.p50,
      p99Ms: result.p99,
      maxMs: result.max,
      lost: expected - tracker.deliveries,
      duplicated: tracker.duplicated,
      outOfOrder: tracker.outOfOrder,
      unexpected: tracker.unexpected,
      timedOut,
      ...cpuMetrics,
      generatorCpuPct: generatorCpu,
    };
  } finally {
    for (const timer of timers) clearInterval(timer);
  }
}
