// The room registry shared by the nodes of a cluster through Redis. Every node keeps the whole
// registry in memory (reads stay synchronous: the relay asks on every message) and applies every
// change in one cluster-wide order. A change is one Lua script (room-scripts.ts) that updates the
// state in Redis, appends the change with the next sequence number to a stream and publishes it;
// each node applies what it hears in sequence order, reads any gap from the stream (pub/sub drops
// messages across reconnects), and reloads the whole state when it fell further behind than the
// stream keeps. It knows nothing of sessions, sockets or policy.

import { MemoryRooms, RoomState, type Restriction, type RestrictionKind, type RoomView } from "../../core/rooms.ts";
import { ChatError } from "../../protocol/errors.ts";
import { roomKey, userKey } from "../../protocol/validate.ts";
import { unavailable, type RedisConnection, type RedisScript } from "./connection.ts";
import { channels, keys } from "./keys.ts";
import { applyChange, differences, parseChange, UnreadableChange, type RemoteRoomChange, type RoomChange } from "./room-changes.ts";
import { changeArgs, changeKeys, scripts } from "./room-scripts.ts";
import { readSnapshot } from "./room-snapshot.ts";

export type { RemoteRoomChange } from "./room-changes.ts";

/** How long a change made here waits to hear its own publication before reading the stream for it. */
export const PUBLISHED_CHANGE_WAIT_MS = 100;
/** Changes read per XRANGE when catching up. */
const GAP_READ_BATCH = 500;
/** Candidate rooms per removal script: the script holds Redis for all of them at once. */
const REMOVE_BATCH_ROOMS = 100;

type RemoteListener = (change: RemoteRoomChange) => void;

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (error: Error) => void;
  /** For a change made here: reads the stream when its publication is late. */
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * Rooms in Redis, applied in memory on every node in the same order.
 *
 * A change made here resolves once it, and every change before it in the cluster's order, is
 * applied here, so the caller sees it right after `await`; it rejects with `store_unavailable`
 * when Redis is away, and nothing is applied here that Redis did not store. (When the answer is
 * lost after Redis stored the change, it rejects all the same and the change arrives later.) A
 * change about a room another node removed meanwhile rejects with `no_such_room`.
 *
 * `onRemoteChange` tells what changes made by OTHER nodes did to memberships (a user joined or
 * left a room, room and user as keys) and which rooms they removed, as they are applied here, so
 * that the fanout can attach or detach this node's connections. Changes made by this node are not
 * reported: the caller handles those after its `await`. After a reload (this node fell further
 * behind than the stream keeps) the differences from the state before are reported the same way;
 * they may include a change of this node that was still on its way, so listeners must treat a
 * repeated report as a no-op. Listeners are called synchronously and must not throw.
 */
export class RedisRooms extends MemoryRooms {
  /** The sequence of the last change applied here. */
  private applied = 0;
  /** Tells this node's changes from the others' in the stream. */
  private readonly node = crypto.randomUUID();
  /** Set until the state is loaded, and again when it must be reloaded; the next gap read loads it. */
  private loadPending = true;
  private closed = false;
  private gapRead: Promise<void> | undefined;
  private queuedGapRead: Promise<void> | undefined;
  private readonly waiters = new Set<Waiter>();
  private readonly listeners = new Set<RemoteListener>();

  private constructor(private readonly connection: RedisConnection) {
    super();
  }

  /**
   * Loads the registry through an open connection and follows the changes from then on. The
   * connection carries one listener per channel: one registry per connection.
   */
  static async open(connection: RedisConnection): Promise<RedisRooms> {
    const rooms = new RedisRooms(connection);
    // Subscribed before the load, so that nothing published after its sequence goes unheard.
    await connection.subscribe(channels.roomChanges, (message) => rooms.receive(message));
    // A new subscriber connection missed what was published meanwhile, and a catch-up that failed
    // while Redis was away must run again once it is back.
    connection.onReconnected(() => rooms.catchUpLater());
    try {
      await rooms.catchUp();
    } catch (error) {
      await rooms.close();
      throw error;
    }
    return rooms;
  }

  /** The sequence of the last change applied here. */
  get appliedSequence(): number {
    return this.applied;
  }

  /**
   * Resolves once this node has applied every change Redis holds now. It adds no read of its own
   * (the channel and the gap reads after a reconnect must get there), so tests can prove those.
   */
  async synced(): Promise<void> {
    const seq = Number((await this.connection.send("GET", [keys.roomSequence])) ?? 0);
    if (this.applied >= seq) return;
    await new Promise<void>((resolve, reject) => this.waiters.add({ seq, resolve, reject }));
  }

  /** Calls `listener` for what other nodes' changes did here (see the class); returns how to stop. */
  onRemoteChange(listener: RemoteListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  override async welcomeUser(user: string, lobby: string, _now: number): Promise<void> {
    await this.change(scripts.welcome, lobby, [roomKey(lobby), userKey(user), user]);
  }

  override async create(room: string, creator: string, now: number): Promise<RoomView> {
    await this.change(scripts.create, room, [roomKey(room), room, userKey(creator), now]);
    // Made by this call, or by another node just before it: either way the room as stored.
    const record = this.state.room(room);
    if (!record) throw noSuchRoom(room);
    return record;
  }

  override async addMember(room: string, user: string): Promise<void> {
    await this.change(scripts.join, room, [roomKey(room), userKey(user), user]);
  }

  override async removeMember(room: string, user: string, now: number): Promise<void> {
    await this.change(scripts.leave, room, [roomKey(room), userKey(user), now]);
  }

  override async setOp(room: string, user: string, op: boolean): Promise<void> {
    await this.change(scripts.operator, room, [roomKey(room), userKey(user), flag(op)]);
  }

  override async setTopic(room: string, topic: string): Promise<void> {
    await this.change(scripts.topic, room, [roomKey(room), topic]);
  }

  override async setInviteOnly(room: string, inviteOnly: boolean): Promise<void> {
    await this.change(scripts.inviteOnly, room, [roomKey(room), flag(inviteOnly)]);
  }

  override async setInvited(room: string, user: string, invited: boolean): Promise<void> {
    await this.change(scripts.invited, room, [roomKey(room), userKey(user), flag(invited)]);
  }

  override async restrict(kind: RestrictionKind, room: string, user: string, restriction: Restriction): Promise<void> {
    await this.change(scripts.restrict, room, [roomKey(room), kind, userKey(user), JSON.stringify(restriction)]);
  }

  override async lift(kind: RestrictionKind, room: string, user: string): Promise<void> {
    await this.change(scripts.lift, room, [roomKey(room), kind, userKey(user)]);
  }

  override async banServerWide(user: string, restriction: Restriction): Promise<void> {
    await this.change(scripts.serverBan, undefined, [userKey(user), JSON.stringify(restriction)]);
  }

  override async unbanServerWide(user: string): Promise<void> {
    await this.change(scripts.serverUnban, undefined, [userKey(user)]);
  }

  /**
   * The candidates come from memory; the script checks each again in Redis, so when two nodes
   * sweep at once each room is removed, and returned, by one of them only. If a later batch fails,
   * the rooms of the earlier ones are removed all the same (the sweep finds none of them again).
   */
  override async removeEmpty(emptyBefore: number, keep: string): Promise<string[]> {
    const candidates = this.state.expired(emptyBefore, roomKey(keep));
    const removed: string[] = [];
    for (let i = 0; i < candidates.length; i += REMOVE_BATCH_ROOMS) {
      const batch = candidates.slice(i, i + REMOVE_BATCH_ROOMS);
      const args = changeArgs(this.node, [emptyBefore, ...batch]);
      const [seq, ...gone] = (await this.connection.run(scripts.removeEmpty, changeKeys(batch), args)) as [number, ...string[]];
      await this.whenApplied(seq);
      removed.push(...gone);
    }
    return removed;
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new ChatError("shutting_down", "The room registry is closed"));
    }
    this.waiters.clear();
    await this.connection.unsubscribe(channels.roomChanges);
  }

  /** Runs one change script and waits until the change (or the state it found) is applied here. */
  private async change(script: RedisScript, room: string | undefined, args: Array<string | number>): Promise<void> {
    const rooms = room === undefined ? [] : [roomKey(room)];
    const [seq, status] = (await this.connection.run(script, changeKeys(rooms), changeArgs(this.node, args))) as [number, string];
    await this.whenApplied(seq);
    if (status === "no_such_room") throw noSuchRoom(room!);
  }

  private whenApplied(seq: number): Promise<void> {
    if (this.applied >= seq) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { seq, resolve, reject };
      waiter.timer = setTimeout(() => {
        this.catchUp().then(
          () => this.applied < seq && this.fail(waiter, unavailable("A room change was stored but could not be read back")),
          (error: Error) => this.fail(waiter, error),
        );
      }, PUBLISHED_CHANGE_WAIT_MS);
      this.waiters.add(waiter);
    });
  }

  private fail(waiter: Waiter, error: Error): void {
    if (!this.waiters.delete(waiter)) return;
    clearTimeout(waiter.timer);
    waiter.reject(error);
  }

  private settle(): void {
    for (const waiter of this.waiters) {
      if (waiter.seq > this.applied) continue;
      this.waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
  }

  /** A change from the channel: applied when it is the next one, else the gap is read first. */
  private receive(message: string): void {
    // While (re)loading, the gap read after the load covers what is published now.
    if (this.closed || this.loadPending) return;
    let change: RoomChange;
    try {
      change = parseChange(message);
    } catch {
      // The gap read meets it again in the stream and reloads.
      this.catchUpLater();
      return;
    }
    if (change.seq === this.applied + 1) this.apply(change);
    else if (change.seq > this.applied + 1) this.catchUpLater();
  }

  private apply(change: RoomChange): void {
    const effects = applyChange(this.state, change);
    this.applied = change.seq;
    if (change.node !== this.node) this.report(effects);
    this.settle();
  }

  private report(changes: RemoteRoomChange[]): void {
    for (const change of changes) for (const listener of this.listeners) listener(change);
  }

  /** For callers that cannot wait: a failure means Redis is away, and its return runs it again. */
  private catchUpLater(): void {
    if (!this.closed) this.catchUp().catch(() => undefined);
  }

  /** A gap read that starts now or later: one runs at a time, and a request meanwhile queues one more. */
  private catchUp(): Promise<void> {
    if (!this.gapRead) {
      this.gapRead = this.readGap().finally(() => (this.gapRead = undefined));
      return this.gapRead;
    }
    this.queuedGapRead ??= this.gapRead
      .catch(() => undefined)
      .then(() => {
        this.queuedGapRead = undefined;
        return this.catchUp();
      });
    return this.queuedGapRead;
  }

  /** Applies what the stream holds after the last applied change, loading the state first when due. */
  private async readGap(): Promise<void> {
    while (!this.closed) {
      if (this.loadPending) await this.load();
      const entries = (await this.connection.send("XRANGE", [keys.roomChanges, `${this.applied + 1}-0`, "+", "COUNT", GAP_READ_BATCH])) as Array<
        [id: string, fields: string[]]
      >;
      for (const [id, fields] of entries) {
        const seq = Number(id.slice(0, id.indexOf("-")));
        // The channel was faster.
        if (seq <= this.applied) continue;
        // Trimmed away before this node read it: only the state itself can tell what happened.
        if (seq > this.applied + 1) {
          this.loadPending = true;
          break;
        }
        try {
          this.apply(parseChange(entryChange(fields)));
        } catch (error) {
          if (!(error instanceof UnreadableChange)) throw error;
          this.loadPending = true;
          break;
        }
      }
      if (!this.loadPending && entries.length < GAP_READ_BATCH) return;
    }
  }

  private async load(): Promise<void> {
    const { sequence, state } = await readSnapshot(this.connection);
    if (this.closed) return;
    const before: RoomState = this.state;
    this.state = state;
    this.applied = sequence;
    this.loadPending = false;
    if (this.listeners.size > 0) this.report(differences(before, state));
    this.settle();
  }
}

/** The `change` field of a stream entry ("" when it has none, which does not parse). */
function entryChange(fields: string[]): string {
  const at = fields.indexOf("change");
  return at < 0 ? "" : (fields[at + 1] ?? "");
}

function flag(value: boolean): string {
  return value ? "1" : "0";
}

function noSuchRoom(room: string): ChatError {
  return new ChatError("no_such_room", `There is no room ${room}`);
}
