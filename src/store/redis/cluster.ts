// Puts a node in a cluster: on an open Redis link, opens the Redis implementations of the account
// store, rooms, message log, presence and delivery, and reports Redis's state changes and what
// an acknowledgement guarantees under its persistence settings.

import type { Hub } from "../../core/hub.ts";
import type { Delivery } from "../../core/fanout.ts";
import { inForce } from "../../core/rooms.ts";
import { RedisUserStore } from "./accounts.ts";
import type { LinkState, RedisConnection } from "./connection.ts";
import { ClusterDirectory } from "./directory.ts";
import { ClusterFanout } from "./fanout.ts";
import { RedisMessageLog } from "./message-log.ts";
import { RedisRooms } from "./rooms.ts";

/** Where a node's cluster events are written (the server's log, structurally). */
export interface ClusterLog {
  info(event: string, fields?: Record<string, string | undefined>): void;
  warn(event: string, fields?: Record<string, string | undefined>): void;
  error(event: string, fields?: Record<string, string | undefined>): void;
}

export interface ClusterOptions {
  /** Opened by the caller; closed by the cluster's `close`, or at once if the cluster cannot open. */
  connection: RedisConnection;
  /** Redis's URL for the log, without credentials. */
  displayName: string;
  log: ClusterLog;
  /** A say or dm resent with the same ref within this long is the same message. */
  refWindowMs: number;
}

/** What an ack means, from Redis's append-only file settings. */
export type Durability =
  | { kind: "always" }
  | { kind: "everysec" }
  | { kind: "no-fsync" }
  | { kind: "no-aof" }
  /** CONFIG is not allowed for this Redis user (an ACL or a renamed command). */
  | { kind: "unknown"; reason: string };

export interface Cluster {
  readonly nodeId: string;
  readonly store: RedisUserStore;
  readonly rooms: RedisRooms;
  readonly messageLog: RedisMessageLog;
  readonly delivery: Delivery;
  readonly durability: Durability;
  readonly state: LinkState;
  /** Closes the link; the stores and delivery are closed by the server that uses them. */
  close(): void;
}

export async function openCluster(options: ClusterOptions): Promise<Cluster> {
  const { connection, log } = options;
  const nodeId = crypto.randomUUID();
  // While Redis is down every write fails; that is logged once, as redis_down, not per write.
  const whileUp = (report: () => void) => connection.state === "up" && report();
  try {
    const durability = await durabilityOf(connection);
    const store = new RedisUserStore(connection);
    const rooms = await RedisRooms.open(connection);
    const messageLog = await RedisMessageLog.open(connection, nodeId, { refWindowMs: options.refWindowMs });
    let hub: Hub | undefined;
    let fanout: ClusterFanout | undefined;
    const directory = new ClusterDirectory(connection, nodeId, {
      departed: (user) => hub?.departed(user),
      localUser: (user, present) => fanout?.localUser(user, present),
      failed: (error) => whileUp(() => log.warn("redis_presence_failed", { message: error.message })),
    });
    fanout = new ClusterFanout(connection, directory, messageLog, {
      failed: (error) => whileUp(() => log.warn("redis_delivery_failed", { message: error.message })),
      seen: (id) => messageLog.noteId(id),
    });
    rooms.onRemoteChange((change) => {
      if (change.kind === "member") fanout!.membershipChanged(change.room, change.user, change.member);
    });
    connection.onStateChange((change) => {
      if (change.state === "down") log.error("redis_down", { reason: change.reason });
      else log.info("redis_up", {});
    });
    connection.onReconnected(() => {
      directory.sync().catch((error: Error) => log.warn("redis_presence_failed", { message: error.message }));
      // A server-wide ban's disconnect travels by pub/sub and may have been lost meanwhile; the
      // ban itself is in the rooms, so once they have caught up, this node enforces it.
      rooms
        .synced()
        .then(() => {
          for (const online of directory.localUsers()) {
            const ban = rooms.serverBan(online.name);
            if (inForce(ban, Date.now())) fanout!.disconnectHere(online.name, "banned", "You are banned from this server");
          }
        })
        .catch((error: Error) => log.warn("redis_rooms_failed", { message: error.message }));
    });
    await fanout.open();
    await directory.open();
    log.info("cluster_joined", { node: nodeId, redis: options.displayName });
    return {
      nodeId,
      store,
      rooms,
      messageLog,
      durability,
      delivery: {
        directory,
        fanout,
        attach: (attached) => (hub = attached),
        close: () => directory.close(),
      },
      get state() {
        return connection.state;
      },
      close: () => connection.close(),
    };
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** Reads the append-only file settings, which decide whether an acked message survives a Redis crash. */
async function durabilityOf(connection: RedisConnection): Promise<Durability> {
  try {
    // Bun speaks RESP3, where CONFIG GET answers a map.
    const settings = (await connection.send("CONFIG", ["GET", "append*"])) as Record<string, string>;
    if (settings.appendonly !== "yes") return { kind: "no-aof" };
    if (settings.appendfsync === "always") return { kind: "always" };
    if (settings.appendfsync === "everysec") return { kind: "everysec" };
    return { kind: "no-fsync" };
  } catch (error) {
    return { kind: "unknown", reason: (error as Error).message };
  }
}
