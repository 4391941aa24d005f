// catch-up: clients that were away while the lobby got messages come back after a server restart
// and must get exactly those messages from the log, through `resume` with `since` = the last id
// each of them saw: none missing, none twice, in order, nothing else.

import { CATCH_UP_PER_ROOM } from "../../src/core/limits.ts";
import { LOBBY } from "../../src/protocol/validate.ts";
import { inPool, sayLines, terminateAll, traffic, type BenchClient } from "../lib/client.ts";
import type { ServerProcess } from "../lib/proc.ts";
import { makeClients, startTlschat, tokenFor, type BenchContext } from "../lib/targets.ts";
import { AckTracker } from "../lib/tracker.ts";
import { BenchError, cpuShare, log, now, waitUntil, withTimeout } from "../lib/util.ts";
import type { Metrics } from "./messages.ts";

export interface CatchUpConfig {
  clients: number;
  /** Lobby messages posted while the clients are away; at most what one login catch-up holds. */
  missed: number;
  /** Connects + resumes in progress at once, after the restart (as in the reconnect scenario). */
  concurrency: number;
  /** Longest the first logins, the marker's delivery and the acks of the missed messages may take, in ms. */
  setupTimeoutMs: number;
  /** Longest wait, from the restart's listening line, for every client to have caught up, in ms. */
  catchUpTimeoutMs: number;
}

export const CATCH_UP: CatchUpConfig = {
  clients: 1000,
  missed: CATCH_UP_PER_ROOM,
  concurrency: 128,
  setupTimeoutMs: 60_000,
  catchUpTimeoutMs: 30_000,
};

/** Ref rounds of the writer's says: the marker everyone sees, then the messages they miss. */
const MARKER_ROUND = 0;
const MISSED_ROUND = 1;

/**
 * Clients u1..uN log in; a writer (the next user) posts a marker that all of them receive live,
 * so each one's last seen id is the marker's. The clients drop, the writer posts `missed`
 * messages and waits for their acks (so they are committed), the server is stopped (SIGTERM) and
 * started again on the same chat database. From its listening line on, every client connects and
 * resumes with `since` = its last seen id; a history reply with `more` is followed by
 * `history after`. The figure is the time from the listening line until the last client has the
 * last of its missed messages.
 */
export async function catchUp(ctx: BenchContext, cfg = CATCH_UP): Promise<Metrics> {
  if (cfg.missed > CATCH_UP_PER_ROOM) throw new BenchError(`${cfg.missed} missed messages: more than one login catch-up holds (${CATCH_UP_PER_ROOM})`);
  let target = await startTlschat(ctx);
  let restarted: ServerProcess | undefined;
  let phase: "setup" | "catch-up" | "done" = "setup";
  const lastSeen = new Float64Array(cfg.clients).fill(NaN);
  // Filled once the writer's missed messages are acked: their ids, in the order they were posted.
  const position = new Map<number, number>();
  const received = new Uint8Array(cfg.clients * cfg.missed);
  const caughtUp = new Uint16Array(cfg.clients);
  const highest = new Int32Array(cfg.clients).fill(-1);
  let complete = 0;
  let lastCompleteAt = NaN;
  let duplicated = 0;
  let outOfOrder = 0;
  let unexpected = 0;
  let historyReplies = 0;
  let pagesAsked = 0;
  let welcomed = 0;
  let lastWelcomeAt = NaN;
  const take = (client: BenchClient, id: number, at: number) => {
    const index = position.get(id);
    if (index === undefined) {
      unexpected += 1;
      return;
    }
    const slot = client.index * cfg.missed + index;
    if (received[slot] !== 0) {
      duplicated += 1;
      return;
    }
    received[slot] = 1;
    if (index < highest[client.index]!) outOfOrder += 1;
    else highest[client.index] = index;
    if (++caughtUp[client.index]! === cfg.missed) {
      complete += 1;
      lastCompleteAt = at;
    }
  };
  const clients = makeClients(cfg.clients, {
    msg: (client, _sender, _seq, _sentMs, at, id) => {
      if (phase === "setup") lastSeen[client.index] = id;
      else take(client, id, at);
    },
    history: (client, room, entries, more, at) => {
      if (phase !== "catch-up") return;
      historyReplies += 1;
      if (room !== LOBBY) return void (unexpected += entries.length);
      for (const entry of entries) take(client, entry.id, at);
      if (more && caughtUp[client.index]! < cfg.missed && entries.length > 0) {
        pagesAsked += 1;
        client.queryHistory(LOBBY, { after: entries.at(-1)!.id, limit: cfg.missed });
      }
    },
    welcome: () => {
      if (phase !== "catch-up") return;
      welcomed += 1;
      lastWelcomeAt = now();
    },
  });
  const acks = new AckTracker({ senders: 1, perSender: cfg.missed, round: MISSED_ROUND });
  let markerId = NaN;
  const [writer] = makeClients(1, {
    ack: (client, round, seq, id, at) => {
      if (round === MARKER_ROUND) {
        markerId = id;
        return;
      }
      acks.ack(client, round, seq, id, at);
      position.set(id, seq);
    },
  }, cfg.clients);
  try {
    await withTimeout(target.join([...clients, writer!], cfg.concurrency), cfg.setupTimeoutMs, `${cfg.clients + 1} clients to log in`);
    writer!.writeNow(sayLines(0, 0, 1, { refRound: MARKER_ROUND }));
    await waitUntil(() => Number.isFinite(markerId) && lastSeen.every((id) => id === markerId), cfg.setupTimeoutMs, "every client to see the marker");

    terminateAll(clients);
    await waitUntil(() => clients.every((client) => client.state === "closed"), cfg.setupTimeoutMs, "the clients to drop");
    acks.sent(0, 0, cfg.missed, now());
    writer!.writeNow(sayLines(0, 0, cfg.missed, { refRound: MISSED_ROUND }));
    await withTimeout(acks.until(cfg.missed), cfg.setupTimeoutMs, `acks of the ${cfg.missed} missed messages`);
    if (acks.duplicated + acks.outOfOrder + acks.unexpected > 0) throw new BenchError("the writer's acks were duplicated, out of order or unexpected");
    writer!.terminate();

    const stopAt = now();
    await target.stop();
    restarted = await target.server.startAgain();
    target = { ...target, server: restarted, stop: () => restarted!.stop() };
    const listeningAt = restarted.listeningAt;
    phase = "catch-up";
    const bytes0 = traffic.bytesIn;
    const serverCpu0 = restarted.cpuMs();
    const share = cpuShare();
    const back = inPool(clients, cfg.concurrency, async (client) => {
      await client.connect(target.endpoint);
      const entered = client.welcome();
      client.resume(tokenFor(ctx, client.user), lastSeen[client.index]);
      await entered;
    });
    let timedOut = 0;
    try {
      await withTimeout(back, cfg.catchUpTimeoutMs, `${cfg.clients} clients to resume`);
      await waitUntil(() => complete === cfg.clients, Math.max(0, listeningAt + cfg.catchUpTimeoutMs - now()), "every client to catch up");
    } catch (error) {
      log(`catch-up: ${(error as Error).message} (${complete} of ${cfg.clients} caught up)`);
      timedOut = 1;
    }
    const serverCpuSeconds = (restarted.cpuMs() - serverCpu0) / 1000;
    const generatorCpuPct = share.stop();
    phase = "done";
    let missing = 0;
    for (const count of caughtUp) missing += cfg.missed - count;
    return {
      clients: cfg.clients,
      missedPerClient: cfg.missed,
      caughtUp: complete,
      catchUpSeconds: complete === cfg.clients ? (lastCompleteAt - listeningAt) / 1000 : NaN,
      resumedSeconds: welcomed === cfg.clients ? (lastWelcomeAt - listeningAt) / 1000 : NaN,
      restartSeconds: (listeningAt - stopAt) / 1000,
      missing,
      duplicated,
      outOfOrder,
      unexpected,
      timedOut,
      historyRepliesPerClient: historyReplies / cfg.clients,
      pagesAsked,
      receivedPerClientKiB: (traffic.bytesIn - bytes0) / 1024 / cfg.clients,
      serverCpuSeconds,
      generatorCpuPct,
    };
  } finally {
    phase = "done";
    await target.stop();
    terminateAll([...clients, writer!]);
  }
}
