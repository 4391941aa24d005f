// rooms: many small rooms under a steady load, every member also in the lobby. Each client logs
// in (resume token), joins its one room and then takes its turn sending into it; every message
// must reach the room's other members exactly once and in order, and no one else. The server
// keeps its default per-connection message rate and burst, so a sender pacing itself as a real
// client would never sees `rate_limited`; only the connection caps are raised, because every
// client comes from 127.0.0.1.

import { MESSAGE_BURST, MESSAGE_RATE_PER_SEC } from "../../src/core/limits.ts";
import { inPool, MAX_SENDERS, sayLines, terminateAll, type BenchClient } from "../lib/client.ts";
import { GENEROUS_LIMITS } from "../lib/proc.ts";
import { makeClients, startTlschat, tokenFor, type BenchContext } from "../lib/targets.ts";
import { Tracker } from "../lib/tracker.ts";
import { BenchError, cpuShare, log, now, sleep, withTimeout } from "../lib/util.ts";
import { quiesce } from "./connections.ts";
import type { Metrics } from "./messages.ts";

export interface RoomsConfig {
  rooms: number;
  membersPerRoom: number;
  /** Messages per second into each room; its members take turns, so each sends this / membersPerRoom. */
  roomMessagesPerSec: number;
  /** Load before the measured window, not measured: both sides get past JIT warm-up. */
  warmupSeconds: number;
  measuredSeconds: number;
  /** Period of the send timer, in ms; each tick sends the messages that have come due. */
  tickMs: number;
  /** Logins and joins in progress at once. */
  concurrency: number;
  /** Longest the logins and joins may take, in ms. */
  setupTimeoutMs: number;
  /** After the last send, how long the last deliveries may take, in ms. */
  drainTimeoutMs: number;
  /** Silence (no byte to any client) that means the setup's notices are over, in ms. */
  settleQuietMs: number;
  /** Longest wait for that silence, in ms. */
  settleMaxMs: number;
}

export const ROOMS: RoomsConfig = {
  rooms: 200,
  membersPerRoom: 10,
  roomMessagesPerSec: 20,
  warmupSeconds: 2,
  measuredSeconds: 10,
  tickMs: 5,
  concurrency: 64,
  setupTimeoutMs: 120_000,
  drainTimeoutMs: 10_000,
  settleQuietMs: 300,
  settleMaxMs: 10_000,
};

const roomName = (room: number): string => `#bench-${room}`;

/**
 * Clients 0..membersPerRoom-1 are room 0, the next membersPerRoom room 1, and so on. Message k
 * of the whole run goes to room k mod rooms, sent by that room's members in turn, so every room
 * gets its rate and every member the same share. Deliveries/s, latency and server CPU per
 * delivery cover the messages sent within the measured window; loss counts the whole run.
 */
export async function rooms(ctx: BenchContext, cfg = ROOMS): Promise<Metrics> {
  const clientCount = cfg.rooms * cfg.membersPerRoom;
  if (clientCount > MAX_SENDERS || clientCount > ctx.store.users) {
    throw new BenchError(`${clientCount} clients: more than the bench message format (${MAX_SENDERS}) or the store (${ctx.store.users}) allows`);
  }
  const messagesPerSec = cfg.rooms * cfg.roomMessagesPerSec;
  const totalMessages = Math.round(messagesPerSec * (cfg.warmupSeconds + cfg.measuredSeconds));
  const tracker = new Tracker({
    senders: clientCount,
    clients: clientCount,
    groupSize: cfg.membersPerRoom,
    perSender: Math.ceil(totalMessages / clientCount),
  });
  let rateLimited = 0;
  let otherErrors = 0;
  const error = (_client: BenchClient, code: string) => {
    if (code === "rate_limited") rateLimited += 1;
    else otherErrors += 1;
  };
  const target = await startTlschat(ctx, { limits: { ...GENEROUS_LIMITS, msgRate: MESSAGE_RATE_PER_SEC, msgBurst: MESSAGE_BURST } });
  const clients = makeClients(clientCount, { msg: tracker.msg, error });
  const stopSetup = { stopped: false };
  let sendTimer: ReturnType<typeof setInterval> | undefined;
  try {
    const roomOf = (client: BenchClient) => Math.floor(client.index / cfg.membersPerRoom);
    const enter = async (client: BenchClient) => {
      await client.connect(target.endpoint);
      const welcomed = client.welcome();
      client.resume(tokenFor(ctx, client.user));
      await welcomed;
      await client.joinRoom(roomName(roomOf(client)));
    };
    // A room's first member creates it (and is its operator) before the others join it.
    const creators = clients.filter((client) => client.index % cfg.membersPerRoom === 0);
    const joiners = clients.filter((client) => client.index % cfg.membersPerRoom !== 0);
    const setupCpu0 = target.server.cpuMs();
    const setupStart = now();
    const setup = (async () => {
      await inPool(creators, cfg.concurrency, enter, stopSetup);
      await inPool(joiners, cfg.concurrency, enter, stopSetup);
    })();
    await withTimeout(setup, cfg.setupTimeoutMs, `${clientCount} clients to log in and join their rooms`);
    const setupSeconds = (now() - setupStart) / 1000;
    const setupServerCpuSeconds = (target.server.cpuMs() - setupCpu0) / 1000;
    await quiesce(cfg.settleQuietMs, cfg.settleMaxMs);

    let sentTotal = 0;
    const sendStart = now();
    const sendDue = () => {
      const due = Math.min(totalMessages, Math.floor(((now() - sendStart) / 1000) * messagesPerSec));
      for (; sentTotal < due; sentTotal++) {
        const room = sentTotal % cfg.rooms;
        const turn = Math.floor(sentTotal / cfg.rooms) % cfg.membersPerRoom;
        const from = room * cfg.membersPerRoom + turn;
        clients[from]!.writeNow(sayLines(from, tracker.sent[from]!, 1, { room: roomName(room) }));
        tracker.sent[from]! += 1;
      }
      if (sentTotal === totalMessages) clearInterval(sendTimer);
    };
    sendTimer = setInterval(sendDue, cfg.tickMs);
    const expected = totalMessages * tracker.receivers;
    const done = tracker.until(expected);

    await sleep(cfg.warmupSeconds * 1000);
    const windowStart = now();
    const serverCpu0 = target.server.cpuMs();
    const share = cpuShare();
    await sleep(cfg.measuredSeconds * 1000);
    const windowEnd = now();
    const serverCpuMs = target.server.cpuMs() - serverCpu0;
    const generatorCpuPct = share.stop();

    let timedOut = 0;
    try {
      await withTimeout(done, cfg.drainTimeoutMs, "the last room deliveries");
    } catch (failure) {
      log(`rooms: ${(failure as Error).message} (${tracker.deliveries}/${expected})`);
      timedOut = 1;
    }
    await sleep(100); // late duplicates would show up here
    const measured = tracker.percentiles(windowStart, windowEnd);
    const seconds = (windowEnd - windowStart) / 1000;
    return {
      clients: clientCount,
      setupSeconds,
      setupServerCpuSeconds,
      deliveries: measured.count,
      deliveriesPerSec: measured.count / seconds,
      p50Ms: measured.p50,
      p99Ms: measured.p99,
      maxMs: measured.max,
      lost: tracker.lost,
      duplicated: tracker.duplicated,
      outOfOrder: tracker.outOfOrder,
      unexpected: tracker.unexpected,
      rateLimited,
      otherErrors,
      timedOut,
      serverCpuUsPerDelivery: (serverCpuMs * 1000) / measured.count,
      serverCpuPct: (serverCpuMs / (seconds * 1000)) * 100,
      generatorCpuPct,
      serverRssMiB: target.server.rssKiB() / 1024,
    };
  } finally {
    stopSetup.stopped = true;
    clearInterval(sendTimer);
    // Server first: 2,000 clients closing against a live server would each announce `offline`.
    await target.stop();
    terminateAll(clients);
  }
}
