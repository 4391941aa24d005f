// Cluster scenarios: `tlschat serve --redis` nodes on one redis-server that the bench starts
// (lib/cluster.ts). cluster-fanout is the fanout scenario with its clients spread over the nodes;
// cluster-latency is the latency scenario with the senders on one node and every receiver on the
// other; cluster-failover kills a node with SIGKILL and has its clients move to the other one
// with `resume` and `since`, while a sender there keeps posting acked messages.

import { CATCH_UP_PER_ROOM } from "../../src/core/limits.ts";
import { LOBBY } from "../../src/protocol/validate.ts";
import { HEARTBEAT_INTERVAL_MS, NODE_TIMEOUT_MS } from "../../src/store/redis/directory.ts";
import { sayLines, terminateAll, type BenchClient, type ClientEvents } from "../lib/client.ts";
import { startCluster } from "../lib/cluster.ts";
import type { AppendFsync } from "../lib/redis.ts";
import { makeClients, type BenchContext } from "../lib/targets.ts";
import { AckTracker } from "../lib/tracker.ts";
import { BenchError, jitter, log, now, sleep, waitUntil, withTimeout } from "../lib/util.ts";
import { quiesce } from "./connections.ts";
import { FANOUT, fanoutOn, LATENCY, latencyOn, type Metrics } from "./messages.ts";

/** Nodes in every cluster scenario: the two, on the one redis-server. */
export const CLUSTER_NODES = 2;
const NODE_A = 0;
const NODE_B = 1;

/**
 * cluster-fanout: the fanout scenario (same clients, senders, messages, window and warm-up), its
 * clients alternating between the nodes, so each node has half the senders and half the
 * receivers. Every say carries a ref: in a cluster every message goes to the Redis log, and an
 * ack says it is there. Server CPU is both nodes' and redis-server's together.
 */
export async function clusterFanout(ctx: BenchContext, appendfsync: AppendFsync, cfg = FANOUT): Promise<Metrics> {
  const cluster = await startCluster(ctx, CLUSTER_NODES, appendfsync);
  let clients: BenchClient[] = [];
  try {
    const events: ClientEvents = {};
    clients = makeClients(cfg.clients, events);
    await cluster.join(clients, (client) => client.index % CLUSTER_NODES);
    return await fanoutOn(cluster.watched, clients, events, true, cfg);
  } finally {
    // Nodes first, as the single-node scenarios do: closing clients on a live cluster would make
    // it relay their offline notices through Redis.
    await cluster.stop();
    terminateAll(clients);
  }
}

/**
 * cluster-latency: the latency scenario's light load, with its senders on node A and every other
 * client on node B. Only deliveries on B are latency samples (cross-node); loss counts everyone.
 */
export async function clusterLatency(ctx: BenchContext, cfg = LATENCY): Promise<Metrics> {
  const cluster = await startCluster(ctx, CLUSTER_NODES, "everysec");
  let clients: BenchClient[] = [];
  try {
    const events: ClientEvents = {};
    clients = makeClients(cfg.clients, events);
    const onB = (index: number) => index >= cfg.senders;
    await cluster.join(clients, (client) => (onB(client.index) ? NODE_B : NODE_A));
    return await latencyOn(cluster.watched, clients, events, cfg, onB);
  } finally {
    await cluster.stop();
    terminateAll(clients);
  }
}

export interface ClusterFailoverConfig {
  /** Clients on node A, all in the lobby. */
  clients: number;
  /** The sender's acked lobby messages per second, from before the kill until the end. */
  sendRatePerSec: number;
  /** Sending before the kill, in ms, so that every client has a last seen id. */
  beforeKillMs: number;
  /** Sending after every client is back and caught up, in ms, so live delivery on B is checked too. */
  afterBackMs: number;
  /**
   * A client's reconnect rounds: the first at once, round n after min((n - 1) × step, max) ms,
   * each delay ± `retryJitter` of itself. A round tries node B, then node A (as a real client
   * tries the node after the one it lost first).
   */
  retryStepMs: number;
  retryMaxMs: number;
  retryJitter: number;
  /** Longest the logins and the sender's first messages may take, in ms. */
  setupTimeoutMs: number;
  /** Longest wait from the kill until every client is back and caught up, in ms. */
  failoverTimeoutMs: number;
  /** Longest wait, after the sender stops, for its last acks and their deliveries, in ms. */
  drainTimeoutMs: number;
}

export const CLUSTER_FAILOVER: ClusterFailoverConfig = {
  clients: 100,
  sendRatePerSec: 100,
  beforeKillMs: 1_000,
  // Past the moment node B declares node A dead and reports its users gone, so the clients that
  // moved must also ride out that cleanup.
  afterBackMs: NODE_TIMEOUT_MS + 2 * HEARTBEAT_INTERVAL_MS,
  retryStepMs: 100,
  retryMaxMs: 1_000,
  retryJitter: 0.5,
  setupTimeoutMs: 30_000,
  failoverTimeoutMs: 30_000,
  drainTimeoutMs: 10_000,
};

/** The ref round of the sender's says. */
const FAILOVER_ROUND = 0;
/** How often the end of the run checks whether every client has every acked message, in ms. */
const COMPLETE_POLL_MS = 50;
/** Silence (no byte to any client) after the logins before the sender starts, and its bound, in ms. */
const SETTLE_QUIET_MS = 300;
const SETTLE_MAX_MS = 10_000;

/**
 * cluster-failover: `clients` users log in on node A and a sender on node B; the sender posts
 * acked lobby messages at a steady rate. Once every client has seen some live, node A gets
 * SIGKILL. Each client reconnects with a short bounded backoff, resumes with the token from its
 * welcome and `since` = the newest id it saw, and reads its catch-up (`history after` while a
 * reply says `more`). The sender goes on until the clients are back, and a little longer. Every
 * client must then hold every acked message exactly once, live or from the catch-up.
 */
export async function clusterFailover(ctx: BenchContext, cfg = CLUSTER_FAILOVER): Promise<Metrics> {
  const cluster = await startCluster(ctx, CLUSTER_NODES, "everysec");
  const maxMessages = Math.ceil((cfg.sendRatePerSec * (cfg.setupTimeoutMs + cfg.beforeKillMs + cfg.failoverTimeoutMs + cfg.afterBackMs)) / 1000);
  let phase: "setup" | "failover" | "done" = "setup";
  const received = Array.from({ length: cfg.clients }, () => new Set<number>());
  const lastSeen = new Float64Array(cfg.clients).fill(NaN);
  let duplicated = 0;
  const take = (client: BenchClient, id: number) => {
    const ids = received[client.index]!;
    if (ids.has(id)) duplicated += 1;
    else ids.add(id);
    if (!(id <= lastSeen[client.index]!)) lastSeen[client.index] = id;
  };
  // Per client, during the failover: reconnect attempts, logged in on B, caught up.
  const attempts = new Uint32Array(cfg.clients);
  const back = new Uint8Array(cfg.clients);
  const caughtUp = new Uint8Array(cfg.clients);
  let backCount = 0;
  let caughtUpCount = 0;
  let lastBackAt = NaN;
  let lastCaughtUpAt = NaN;
  let catchUpMessages = 0;
  let pagesAsked = 0;
  let loginRefusals = 0;
  // Node B first: a real client tries the node after the one it lost, then the rest in turn.
  const order = [NODE_B, NODE_A];
  const retryDelay = (round: number) => {
    if (round <= 1) return 0;
    const base = Math.min((round - 1) * cfg.retryStepMs, cfg.retryMaxMs);
    return base * jitter(1 - cfg.retryJitter, 1 + cfg.retryJitter);
  };
  const reconnect = (client: BenchClient) => {
    if (phase !== "failover") return;
    const attempt = attempts[client.index]!++;
    const round = Math.floor(attempt / order.length) + 1;
    // The next node of a round at once; a new round after its backoff.
    const delay = attempt % order.length === 0 ? retryDelay(round) : 0;
    setTimeout(() => {
      if (phase !== "failover") return;
      const endpoint = cluster.endpoints[order[attempt % order.length]!]!;
      client.connect(endpoint).then(
        () => {
          const welcomed = client.welcome();
          client.resume(client.token!, Number.isFinite(lastSeen[client.index]!) ? lastSeen[client.index] : undefined);
          // Refused (an error frame) on an open connection: drop it, and `closed` retries.
          welcomed.catch(() => client.terminate());
        },
        () => undefined, // `closed` follows a failed connect and schedules the next attempt
      );
    }, delay);
  };
  const events: ClientEvents = {
    msg: (client, _sender, _seq, _sentMs, _at, id) => {
      if (phase !== "done") take(client, id);
    },
    welcome: (client) => {
      if (phase !== "failover" || back[client.index] === 1) return;
      back[client.index] = 1;
      if (++backCount === cfg.clients) lastBackAt = now();
    },
    history: (client, room, entries, more, at) => {
      // The history at the first login (an empty lobby) is not part of the failover.
      if (phase !== "failover" || room !== LOBBY) return;
      catchUpMessages += entries.length;
      for (const entry of entries) take(client, entry.id);
      if (more && entries.length > 0) {
        pagesAsked += 1;
        client.queryHistory(LOBBY, { after: entries.at(-1)!.id, limit: CATCH_UP_PER_ROOM });
      } else if (caughtUp[client.index] === 0) {
        caughtUp[client.index] = 1;
        if (++caughtUpCount === cfg.clients) lastCaughtUpAt = at;
      }
    },
    error: () => {
      if (phase === "failover") loginRefusals += 1;
    },
    closed: (client) => {
      if (phase !== "failover") return;
      if (back[client.index] === 1) {
        // Dropped again after coming back: it counts as not back until its next welcome.
        back[client.index] = 0;
        backCount -= 1;
      }
      reconnect(client);
    },
  };
  const clients = makeClients(cfg.clients, events);
  const acks = new AckTracker({ senders: 1, perSender: maxMessages, round: FAILOVER_ROUND });
  const acked = new Set<number>();
  let senderRefusals = 0;
  const [sender] = makeClients(
    1,
    {
      ack: (client, round, seq, id, at) => {
        acks.ack(client, round, seq, id, at);
        if (round === FAILOVER_ROUND) acked.add(id);
      },
      error: () => (senderRefusals += 1),
    },
    cfg.clients,
  );
  let sent = 0;
  let sending: ReturnType<typeof setInterval> | undefined;
  const stopSending = () => clearInterval(sending);
  try {
    await withTimeout(
      Promise.all([cluster.join(clients, () => NODE_A), cluster.join([sender!], () => NODE_B)]),
      cfg.setupTimeoutMs,
      `${cfg.clients + 1} clients to log in`,
    );
    for (const client of clients) if (!client.token) throw new BenchError(`${client.user} got no resume token in its welcome`);
    await quiesce(SETTLE_QUIET_MS, SETTLE_MAX_MS);

    sending = setInterval(() => {
      if (sent >= maxMessages) return stopSending();
      acks.sent(0, sent, 1, now());
      sender!.writeNow(sayLines(0, sent, 1, { refRound: FAILOVER_ROUND }));
      sent += 1;
    }, 1000 / cfg.sendRatePerSec);
    await sleep(cfg.beforeKillMs);
    await waitUntil(() => lastSeen.every(Number.isFinite), cfg.setupTimeoutMs, "every client to see a message live");

    phase = "failover";
    const killedAt = now();
    await cluster.nodes[NODE_A]!.kill();
    let timedOut = 0;
    try {
      await waitUntil(() => backCount === cfg.clients && caughtUpCount === cfg.clients, cfg.failoverTimeoutMs, "every client to be back on node B and caught up");
    } catch (error) {
      log(`cluster-failover: ${(error as Error).message} (${backCount} back, ${caughtUpCount} caught up of ${cfg.clients})`);
      timedOut = 1;
    }
    await sleep(cfg.afterBackMs);
    stopSending();
    const complete = () => {
      if (acked.size !== sent) return false;
      const ids = [...acked];
      return received.every((got) => ids.every((id) => got.has(id)));
    };
    try {
      await withTimeout(acks.until(sent), cfg.drainTimeoutMs, `acks of the ${sent} messages sent`);
      await waitUntil(complete, cfg.drainTimeoutMs, "every client to have every acked message", COMPLETE_POLL_MS);
    } catch (error) {
      log(`cluster-failover: ${(error as Error).message}`);
      timedOut = 1;
    }
    await sleep(100); // late duplicates would show up here
    phase = "done";

    let lost = 0;
    let unexpected = 0;
    for (const ids of received) {
      for (const id of acked) if (!ids.has(id)) lost += 1;
      for (const id of ids) if (!acked.has(id)) unexpected += 1;
    }
    let totalAttempts = 0;
    for (const count of attempts) totalAttempts += count;
    return {
      clients: cfg.clients,
      backSeconds: backCount === cfg.clients ? (lastBackAt - killedAt) / 1000 : NaN,
      caughtUpSeconds: caughtUpCount === cfg.clients ? (lastCaughtUpAt - killedAt) / 1000 : NaN,
      back: backCount,
      attemptsPerClient: totalAttempts / cfg.clients,
      loginRefusals,
      sent,
      acked: acked.size,
      catchUpMessagesPerClient: catchUpMessages / cfg.clients,
      pagesAsked,
      lost,
      duplicated,
      unexpected,
      ackLost: sent - acks.acks,
      ackDuplicated: acks.duplicated,
      ackOutOfOrder: acks.outOfOrder,
      ackUnexpected: acks.unexpected,
      senderRefusals,
      timedOut,
    };
  } finally {
    phase = "done";
    stopSending();
    await cluster.stop();
    terminateAll([...clients, sender!]);
  }
}

