// connections: many clients connect, handshake and log in by resume token; then one sender's
// messages must reach all of them. reconnect: logged-in clients ride out a server restart.

import { sayLines, terminateAll, traffic, type BenchClient } from "../lib/client.ts";
import type { ServerProcess } from "../lib/proc.ts";
import { makeClients, startTlschat, type BenchContext } from "../lib/targets.ts";
import { Tracker } from "../lib/tracker.ts";
import { cpuShare, jitter, log, now, sleep, withTimeout } from "../lib/util.ts";
import type { Metrics } from "./messages.ts";

/** Waits until no client has received a byte for `quietMs` (bounded by `maxMs`); returns the wait. */
export async function quiesce(quietMs: number, maxMs: number): Promise<number> {
  const start = now();
  let last = traffic.bytesIn;
  let lastChange = now();
  while (now() - start < maxMs) {
    await sleep(50);
    if (traffic.bytesIn !== last) {
      last = traffic.bytesIn;
      lastChange = now();
    } else if (now() - lastChange >= quietMs) {
      break;
    }
  }
  return now() - start;
}

export interface ConnectionsConfig {
  clients: number;
  /** Handshakes + logins in progress at once. */
  concurrency: number;
  messages: number;
  readyTimeoutMs: number;
}

export const CONNECTIONS: ConnectionsConfig = { clients: 10_000, concurrency: 256, messages: 100, readyTimeoutMs: 120_000 };

export async function connections(ctx: BenchContext, cfg = CONNECTIONS): Promise<Metrics> {
  const target = await startTlschat(ctx);
  const clients: BenchClient[] = [];
  const stopJoining = { stopped: false };
  try {
    await sleep(500);
    const rssBefore = target.server.rssKiB();
    const tracker = new Tracker({ senders: 1, clients: cfg.clients, perSender: cfg.messages });
    // Logged-in clients skip incoming lines (online notices, history) until the message phase.
    let ready = 0;
    let lastReadyAt = NaN;
    const welcome = (client: BenchClient) => {
      client.skip = true;
      ready += 1;
      lastReadyAt = now();
    };
    clients.push(...makeClients(cfg.clients, { msg: tracker.msg, welcome }));
    const bytes0 = traffic.bytesIn;
    const serverCpu0 = target.server.cpuMs();
    const share = cpuShare();
    const t0 = now();
    let failed = 0;
    const joining = target.join(clients, cfg.concurrency, stopJoining).then(
      () => undefined,
      (error: Error) => {
        failed = 1;
        log(`connections: ${error.message}`);
      },
    );
    try {
      await withTimeout(joining, cfg.readyTimeoutMs, `${cfg.clients} clients to log in`);
    } catch (error) {
      log(`connections: ${(error as Error).message}`);
    }
    stopJoining.stopped = true;
    const readyAtDeadline = ready;
    const readySeconds = (lastReadyAt - t0) / 1000;
    const readyServerCpuSeconds = (target.server.cpuMs() - serverCpu0) / 1000;
    const generatorCpuPct = share.stop();
    const allReady = ready === cfg.clients && failed === 0;
    // Online notices may still be on their way; RSS is read once the server has gone quiet.
    const quietWaitMs = await quiesce(500, Math.min(90_000, cfg.readyTimeoutMs / 2));
    const rssAfter = target.server.rssKiB();
    const metrics: Metrics = {
      clients: cfg.clients,
      ready: readyAtDeadline,
      readySeconds: allReady ? readySeconds : NaN,
      readyServerCpuSeconds,
      generatorCpuPct,
      quietWaitSeconds: Math.max(0, quietWaitMs - 500) / 1000,
      totalServerCpuSeconds: (target.server.cpuMs() - serverCpu0) / 1000,
      receivedPerClientKiB: (traffic.bytesIn - bytes0) / 1024 / cfg.clients,
      rssBeforeMiB: rssBefore / 1024,
      rssAfterMiB: rssAfter / 1024,
      rssPerConnectionKiB: (rssAfter - rssBefore) / Math.max(1, ready),
    };
    if (!allReady) return metrics;

    // One sender, `messages` messages in one write, to everyone else.
    for (const client of clients) client.skip = false;
    const expected = cfg.messages * tracker.receivers;
    const done = tracker.until(expected);
    const msgCpu0 = target.server.cpuMs();
    const t1 = now();
    clients[0]!.writeNow(sayLines(0, 0, cfg.messages));
    tracker.sent[0] = cfg.messages;
    try {
      await withTimeout(done, Math.min(60_000, cfg.readyTimeoutMs / 2), "broadcast to all clients");
    } catch (error) {
      log(`connections: ${(error as Error).message} (${tracker.deliveries}/${expected})`);
      tracker.lastDeliveryAt = now();
    }
    const seconds = (tracker.lastDeliveryAt - t1) / 1000;
    const msgCpu = target.server.cpuMs() - msgCpu0;
    const latency = tracker.percentiles();
    return {
      ...metrics,
      msgDeliveries: tracker.deliveries,
      msgSeconds: seconds,
      msgDeliveriesPerSec: tracker.deliveries / seconds,
      msgP50Ms: latency.p50,
      msgP99Ms: latency.p99,
      msgLost: expected - tracker.deliveries,
      msgDuplicated: tracker.duplicated,
      msgOutOfOrder: tracker.outOfOrder,
      msgServerCpuUsPerDelivery: (msgCpu * 1000) / Math.max(1, tracker.deliveries),
    };
  } finally {
    stopJoining.stopped = true;
    // Stop the server first: closing 10,000 clients against a live server would make it
    // broadcast 10,000 offline notices to everyone still there.
    await target.stop();
    terminateAll(clients);
  }
}

export interface ReconnectConfig {
  clients: number;
  concurrency: number;
  /** First reconnect attempt after the drop: uniform in [0, firstMs). */
  firstMs: number;
  /** Later attempts (server still down): uniform in [retryMinMs, retryMaxMs). */
  retryMinMs: number;
  retryMaxMs: number;
  timeoutMs: number;
}

export const RECONNECT: ReconnectConfig = {
  clients: 1000,
  concurrency: 128,
  firstMs: 100,
  retryMinMs: 50,
  retryMaxMs: 150,
  timeoutMs: 30_000,
};

/**
 * reconnect: 1000 logged-in clients; the server is stopped (SIGTERM) and started again on the
 * same port and store. Each client reconnects after a small random delay, retries while the port
 * refuses, and logs in with the resume token from its last welcome.
 */
export async function reconnect(ctx: BenchContext, cfg = RECONNECT): Promise<Metrics> {
  let target = await startTlschat(ctx);
  const clients: BenchClient[] = [];
  let phase: "setup" | "storm" | "done" = "setup";
  let back = 0;
  let attempts = 0;
  let lastReadyAt = NaN;
  let second: ServerProcess | undefined;
  try {
    const attempt = (client: BenchClient) => {
      if (phase !== "storm") return;
      attempts += 1;
      client
        .connect(target.endpoint)
        .then(() => {
          const welcomed = client.welcome();
          client.resume(client.token!);
          return welcomed;
        })
        .then(
          () => {
            back += 1;
            if (back === clients.length) lastReadyAt = now();
          },
          () => undefined, // `closed` schedules the retry
        );
    };
    const events = {
      welcome: (client: BenchClient) => (client.skip = true),
      closed: (client: BenchClient) => {
        if (phase !== "storm") return;
        const delay = client.connects <= 1 ? jitter(0, cfg.firstMs) : jitter(cfg.retryMinMs, cfg.retryMaxMs);
        setTimeout(() => attempt(client), delay);
      },
    };
    clients.push(...makeClients(cfg.clients, events));
    await target.join(clients, cfg.concurrency);
    for (const client of clients) {
      if (!client.token) throw new Error(`${client.user} got no resume token in its welcome`);
      client.connects = 1; // so the first reconnect uses the short initial jitter
    }
    await quiesce(300, 30_000);

    phase = "storm";
    const share = cpuShare();
    const stopAt = now();
    await target.stop();
    const stoppedAt = now();
    // Same port, store and chat database: the clients come back to the rooms they were in.
    second = await target.server.startAgain();
    target = { ...target, server: second, stop: () => second!.stop() };
    const listeningAt = second.listeningAt;
    const serverCpu0 = second.cpuMs();
    const readyBy = now() + cfg.timeoutMs;
    while (back < clients.length && now() < readyBy) await sleep(5);
    const generatorCpuPct = share.stop();
    const serverCpuSeconds = (second.cpuMs() - serverCpu0) / 1000;
    phase = "done";
    const allBack = back === clients.length;
    return {
      clients: cfg.clients,
      reconnected: back,
      reconnectSeconds: allBack ? (lastReadyAt - listeningAt) / 1000 : NaN,
      stopSeconds: (stoppedAt - stopAt) / 1000,
      restartSeconds: (listeningAt - stoppedAt) / 1000,
      outageSeconds: allBack ? (lastReadyAt - stopAt) / 1000 : NaN,
      attemptsPerClient: attempts / cfg.clients,
      serverCpuSecondsAfterStart: serverCpuSeconds,
      generatorCpuPct,
    };
  } finally {
    phase = "done";
    await target.stop();
    terminateAll(clients);
  }
}
