// Presence across a cluster: this node's own connections (as in the embedded server) plus which
// users are online on the other nodes, kept in memory so lookups stay synchronous. Each node
// records its users in Redis and announces arrivals and departures on the everyone channel; a
// heartbeat per node lets the others notice one that died, and the node that claims a dead one
// (one script, so exactly one does) reports its users as gone.

import { LocalDirectory, type Directory, type OnlineUser } from "../../core/directory.ts";
import type { Peer } from "../../core/peer.ts";
import { userKey } from "../../protocol/validate.ts";
import { RedisScript, type RedisConnection } from "./connection.ts";
import { channels, keys, type Broadcast } from "./keys.ts";

/** How often a node tells Redis it is alive. */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** A node silent this long is dead: its users go offline everywhere. */
export const NODE_TIMEOUT_MS = 3_000;

/** Redis's clock for every heartbeat and every judgement on them, so the nodes' clocks do not matter. */
const REDIS_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)";

/** Answers {1 if this node had been claimed as dead (it is back now), the nodes silent too long}. */
const HEARTBEAT = new RedisScript(`${REDIS_NOW_MS}
local claimed = redis.call('ZADD', KEYS[1], now, ARGV[1])
return {claimed, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))}`);

/** Claims a dead node: only the caller whose ZREM removed it gets its users and tells everyone. */
const CLAIM_NODE = new RedisScript(`if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
local users = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', KEYS[3], ARGV[2])
return users`);

/** A node's users as they are now: written again after a reconnect, when Redis may have lost them. */
const REGISTER_NODE = new RedisScript(`${REDIS_NOW_MS}
redis.call('DEL', KEYS[2])
if #ARGV > 1 then redis.call('SADD', KEYS[2], unpack(ARGV, 2)) end
redis.call('ZADD', KEYS[1], now, ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)`);

const NO_PEERS: ReadonlySet<Peer> = new Set();

interface Remote {
  name: string;
  nodes: Set<string>;
}

export interface ClusterDirectoryEvents {
  /** A user online only on a node that died is gone: announce it (only the claiming node hears this). */
  departed(user: string): void;
  /** This node has the user's first connection / has no connection of theirs left. */
  localUser(user: string, present: boolean): void;
  /** A presence write to Redis failed (presence heals at the next reconnect). */
  failed(error: Error): void;
}

export class ClusterDirectory implements Directory {
  private readonly local = new LocalDirectory();
  private readonly remote = new Map<string, Remote>();
  private readonly peers = new Map<number, Peer>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  /**
   * No node is claimed as dead before this (performance.now() ms): when the link comes back
   * every other node's heartbeat may be old, and they need a timeout's length to beat again.
   */
  private claimsFrom = performance.now() + NODE_TIMEOUT_MS;

  constructor(
    private readonly connection: RedisConnection,
    readonly nodeId: string,
    private readonly events: ClusterDirectoryEvents,
  ) {}

  /** Registers the node, loads who is online elsewhere and starts the heartbeat. */
  async open(): Promise<void> {
    this.connection.onStateChange((change) => {
      if (change.state === "up") this.claimsFrom = performance.now() + NODE_TIMEOUT_MS;
    });
    await this.sync();
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_INTERVAL_MS);
    this.heartbeat.unref();
  }

  /**
   * Writes this node's users to Redis again and reloads everyone else's: at start and after
   * every reconnect, since presence notices published meanwhile are lost.
   */
  async sync(): Promise<void> {
    const names = Array.from(this.local.users(), (entry) => entry.name);
    const nodes = (await this.connection.run(REGISTER_NODE, [keys.nodes, keys.nodeUsers(this.nodeId)], [this.nodeId, ...names])) as string[];
    const others = nodes.filter((node) => node !== this.nodeId);
    const members = await Promise.all(others.map((node) => this.connection.send("SMEMBERS", [keys.nodeUsers(node)]) as Promise<string[]>));
    this.remote.clear();
    others.forEach((node, index) => {
      for (const name of members[index]!) this.addRemote(node, name);
    });
    for (const name of names) void this.announce({ kind: "online", node: this.nodeId, user: name });
  }

  add(user: string, peer: Peer): boolean {
    this.peers.set(peer.id, peer);
    const firstHere = this.local.add(user, peer);
    if (!firstHere) return false;
    this.events.localUser(user, true);
    this.write("SADD", [keys.nodeUsers(this.nodeId), user]);
    void this.announce({ kind: "online", node: this.nodeId, user });
    return !this.remote.has(userKey(user));
  }

  remove(user: string, peer: Peer): boolean {
    this.peers.delete(peer.id);
    const lastHere = this.local.remove(user, peer);
    if (!lastHere) return false;
    this.events.localUser(user, false);
    this.write("SREM", [keys.nodeUsers(this.nodeId), user]);
    void this.announce({ kind: "offline", node: this.nodeId, user });
    return !this.remote.has(userKey(user));
  }

  find(user: string): OnlineUser | undefined {
    return this.local.find(user) ?? this.remoteEntry(userKey(user));
  }

  *users(): IterableIterator<OnlineUser> {
    yield* this.local.users();
    for (const [key, remote] of this.remote) if (!this.local.find(key)) yield { name: remote.name, peers: NO_PEERS };
  }

  onlineNames(): string[] {
    return Array.from(this.users(), (entry) => entry.name);
  }

  get size(): number {
    let size = this.local.size;
    for (const key of this.remote.keys()) if (!this.local.find(key)) size++;
    return size;
  }

  /** The users with connections on this node. */
  localUsers(): IterableIterator<OnlineUser> {
    return this.local.users();
  }

  /** One of this node's connections by id. */
  peer(id: number): Peer | undefined {
    return this.peers.get(id);
  }

  /** Presence news from the everyone channel. */
  apply(broadcast: Broadcast): void {
    switch (broadcast.kind) {
      case "online":
        if (broadcast.node !== this.nodeId) this.addRemote(broadcast.node, broadcast.user);
        return;
      case "offline":
        this.removeRemote(broadcast.node, userKey(broadcast.user));
        return;
      case "node-gone":
        for (const key of [...this.remote.keys()]) this.removeRemote(broadcast.node, key);
        return;
      case "rooms":
        return;
      default: {
        const unreachable: never = broadcast;
        throw new Error(`unhandled broadcast ${String(unreachable)}`);
      }
    }
  }

  /** Leaves the cluster: removes the node and its users from Redis. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.claim(this.nodeId).catch(() => undefined);
  }

  private async beat(): Promise<void> {
    // Half connected (commands up, subscriptions not yet): wait for the whole link and its resync.
    if (this.connection.state !== "up") return;
    try {
      const [claimed, dead] = (await this.connection.run(HEARTBEAT, [keys.nodes], [this.nodeId, NODE_TIMEOUT_MS])) as [number, string[]];
      // Taken for dead (a pause longer than the timeout): its users were reported gone, so say again who is here.
      if (claimed === 1) await this.sync();
      if (performance.now() < this.claimsFrom) return;
      for (const node of dead) if (node !== this.nodeId) await this.claimDead(node);
    } catch (error) {
      this.events.failed(error as Error);
    }
  }

  private async claimDead(node: string): Promise<void> {
    const users = await this.claim(node);
    if (!users) return;
    this.apply({ kind: "node-gone", node });
    for (const name of users) if (!this.find(name)) this.events.departed(name);
  }

  private claim(node: string): Promise<string[] | null> {
    const gone: Broadcast = { kind: "node-gone", node };
    return this.connection.run(CLAIM_NODE, [keys.nodes, keys.nodeUsers(node), channels.everyone], [node, JSON.stringify(gone)]) as Promise<string[] | null>;
  }

  private addRemote(node: string, name: string): void {
    const key = userKey(name);
    let remote = this.remote.get(key);
    if (!remote) this.remote.set(key, (remote = { name, nodes: new Set() }));
    remote.nodes.add(node);
  }

  private removeRemote(node: string, key: string): void {
    const remote = this.remote.get(key);
    if (!remote?.nodes.delete(node)) return;
    if (remote.nodes.size === 0) this.remote.delete(key);
  }

  private remoteEntry(key: string): OnlineUser | undefined {
    const remote = this.remote.get(key);
    return remote && { name: remote.name, peers: NO_PEERS };
  }

  private announce(broadcast: Broadcast): Promise<void> {
    return this.connection.send("PUBLISH", [channels.everyone, JSON.stringify(broadcast)]).then(
      () => undefined,
      (error: Error) => this.events.failed(error),
    );
  }

  private write(command: string, args: string[]): void {
    this.connection.send(command, args).catch((error: Error) => this.events.failed(error));
  }
}
