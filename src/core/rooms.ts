// The room registry: rooms, their members, operators, bans, mutes, invites and topics, plus the
// server-wide bans. It holds state, not policy (who may do what is the hub's business). Reads are
// synchronous from memory because the relay asks on every message; changes are asynchronous
// and resolve once stored, so an implementation may persist them (the chat database, Redis).

import { roomKey, userKey } from "../protocol/validate.ts";

/** A ban or mute: until when (forever when absent), by whom, why. */
export interface Restriction {
  until?: number;
  by: string;
  reason?: string;
}

export interface RoomView {
  readonly key: string;
  /** The name as created ("#Rust"). */
  readonly name: string;
  readonly topic: string;
  readonly inviteOnly: boolean;
  /** Key of the user who created it. */
  readonly createdBy: string;
  readonly createdAt: number;
  /** Member keys to names as registered, in the order they joined. */
  readonly members: ReadonlyMap<string, string>;
  readonly ops: ReadonlySet<string>;
  readonly bans: ReadonlyMap<string, Restriction>;
  readonly mutes: ReadonlyMap<string, Restriction>;
  readonly invites: ReadonlySet<string>;
  /** When the last member left; undefined while it has members. */
  readonly emptySince: number | undefined;
}

export type RestrictionKind = "ban" | "mute";

export interface Rooms {
  get(room: string): RoomView | undefined;
  /** Rooms the user is a member of, in the order they were joined. */
  roomsOf(user: string): RoomView[];
  /** Rooms in key order, starting after `afterKey`. */
  list(afterKey: string | undefined): IterableIterator<RoomView>;
  readonly count: number;
  /** Existing rooms the user created. */
  createdBy(user: string): number;
  /** Whether the user has been seen before (and so given the lobby once). */
  knows(user: string): boolean;
  serverBan(user: string): Restriction | undefined;

  /** Records a user's first login, making them a member of `lobby`. */
  welcomeUser(user: string, lobby: string, now: number): Promise<void>;
  create(room: string, creator: string, now: number): Promise<RoomView>;
  addMember(room: string, user: string): Promise<void>;
  /** Also drops the user's operator status. */
  removeMember(room: string, user: string, now: number): Promise<void>;
  /** Only members are operators: for anyone else this changes nothing. */
  setOp(room: string, user: string, op: boolean): Promise<void>;
  setTopic(room: string, topic: string): Promise<void>;
  setInviteOnly(room: string, inviteOnly: boolean): Promise<void>;
  setInvited(room: string, user: string, invited: boolean): Promise<void>;
  restrict(kind: RestrictionKind, room: string, user: string, restriction: Restriction): Promise<void>;
  lift(kind: RestrictionKind, room: string, user: string): Promise<void>;
  banServerWide(user: string, restriction: Restriction): Promise<void>;
  unbanServerWide(user: string): Promise<void>;
  /** Removes rooms empty since before `emptyBefore` (never `keep`); returns their keys. */
  removeEmpty(emptyBefore: number, keep: string): Promise<string[]>;
  close(): Promise<void>;
}

/** A restriction still in force at `now`. */
export function inForce(restriction: Restriction | undefined, now: number): restriction is Restriction {
  return restriction !== undefined && (restriction.until === undefined || restriction.until > now);
}

export interface RoomRecord {
  key: string;
  name: string;
  topic: string;
  inviteOnly: boolean;
  createdBy: string;
  createdAt: number;
  members: Map<string, string>;
  ops: Set<string>;
  bans: Map<string, Restriction>;
  mutes: Map<string, Restriction>;
  invites: Set<string>;
  emptySince: number | undefined;
}

export function newRoomRecord(name: string, creator: string, now: number): RoomRecord {
  return {
    key: roomKey(name),
    name,
    topic: "",
    inviteOnly: false,
    createdBy: userKey(creator),
    createdAt: now,
    members: new Map(),
    ops: new Set(),
    bans: new Map(),
    mutes: new Map(),
    invites: new Set(),
    emptySince: now,
  };
}

/**
 * The registry's state in memory, changed synchronously. `MemoryRooms` exposes it as it is; a
 * persistent registry loads it at start and applies each change after storing it.
 */
export class RoomState {
  readonly rooms = new Map<string, RoomRecord>();
  /** User key to the keys of their rooms, in join order. */
  readonly memberships = new Map<string, Set<string>>();
  readonly knownUsers = new Set<string>();
  readonly serverBans = new Map<string, Restriction>();
  private readonly creations = new Map<string, number>();
  private sortedKeys: string[] | undefined;

  room(room: string): RoomRecord | undefined {
    return this.rooms.get(roomKey(room));
  }

  /** The room, which the caller has checked exists. */
  private existing(room: string): RoomRecord {
    const record = this.room(room);
    if (!record) throw new Error(`room ${room} does not exist`);
    return record;
  }

  roomsOf(user: string): RoomRecord[] {
    const keys = this.memberships.get(userKey(user));
    return keys ? Array.from(keys, (key) => this.rooms.get(key)!) : [];
  }

  *list(afterKey: string | undefined): IterableIterator<RoomRecord> {
    this.sortedKeys ??= [...this.rooms.keys()].sort();
    const keys = this.sortedKeys;
    let low = 0;
    let high = keys.length;
    if (afterKey !== undefined) {
      while (low < high) {
        const middle = (low + high) >>> 1;
        if (keys[middle]! <= afterKey) low = middle + 1;
        else high = middle;
      }
    }
    for (let i = low; i < keys.length; i++) {
      const record = this.rooms.get(keys[i]!);
      if (record) yield record;
    }
  }

  createdBy(user: string): number {
    return this.creations.get(userKey(user)) ?? 0;
  }

  addRoom(record: RoomRecord): void {
    this.rooms.set(record.key, record);
    this.creations.set(record.createdBy, this.createdBy(record.createdBy) + 1);
    this.sortedKeys = undefined;
  }

  deleteRoom(key: string): void {
    const record = this.rooms.get(key);
    if (!record) return;
    for (const user of record.members.keys()) this.memberships.get(user)?.delete(key);
    this.rooms.delete(key);
    const created = this.createdBy(record.createdBy) - 1;
    if (created > 0) this.creations.set(record.createdBy, created);
    else this.creations.delete(record.createdBy);
    this.sortedKeys = undefined;
  }

  welcomeUser(user: string, lobby: string): void {
    this.knownUsers.add(userKey(user));
    this.addMember(lobby, user);
  }

  banServerWide(user: string, restriction: Restriction): void {
    this.serverBans.set(userKey(user), restriction);
  }

  unbanServerWide(user: string): void {
    this.serverBans.delete(userKey(user));
  }

  addMember(room: string, user: string): void {
    const record = this.existing(room);
    const key = userKey(user);
    record.members.set(key, user);
    record.emptySince = undefined;
    let rooms = this.memberships.get(key);
    if (!rooms) this.memberships.set(key, (rooms = new Set()));
    rooms.add(record.key);
  }

  removeMember(room: string, user: string, now: number): void {
    const record = this.existing(room);
    const key = userKey(user);
    if (!record.members.delete(key)) return;
    record.ops.delete(key);
    if (record.members.size === 0) record.emptySince = now;
    const rooms = this.memberships.get(key);
    rooms?.delete(record.key);
    if (rooms?.size === 0) this.memberships.delete(key);
  }

  setOp(room: string, user: string, op: boolean): void {
    const record = this.existing(room);
    const key = userKey(user);
    // Operator status is stored with the membership, so a non-member has none to gain.
    if (op && record.members.has(key)) record.ops.add(key);
    else record.ops.delete(key);
  }

  setTopic(room: string, topic: string): void {
    this.existing(room).topic = topic;
  }

  setInviteOnly(room: string, inviteOnly: boolean): void {
    this.existing(room).inviteOnly = inviteOnly;
  }

  setInvited(room: string, user: string, invited: boolean): void {
    const invites = this.existing(room).invites;
    if (invited) invites.add(userKey(user));
    else invites.delete(userKey(user));
  }

  restrict(kind: RestrictionKind, room: string, user: string, restriction: Restriction): void {
    this.restrictions(kind, room).set(userKey(user), restriction);
  }

  lift(kind: RestrictionKind, room: string, user: string): void {
    this.restrictions(kind, room).delete(userKey(user));
  }

  private restrictions(kind: RestrictionKind, room: string): Map<string, Restriction> {
    const record = this.existing(room);
    return kind === "ban" ? record.bans : record.mutes;
  }

  /** Keys of rooms that have been empty since before `emptyBefore`, but `keep`. */
  expired(emptyBefore: number, keep: string): string[] {
    const keys: string[] = [];
    for (const record of this.rooms.values()) {
      if (record.key !== keep && record.emptySince !== undefined && record.emptySince < emptyBefore) keys.push(record.key);
    }
    return keys;
  }
}

/** The registry in memory only: for servers that keep no state on disk, and for tests. */
export class MemoryRooms implements Rooms {
  /** Replaced whole by a registry that reloads (Redis, after a node fell too far behind). */
  protected state = new RoomState();

  get(room: string): RoomView | undefined {
    return this.state.room(room);
  }

  roomsOf(user: string): RoomView[] {
    return this.state.roomsOf(user);
  }

  list(afterKey: string | undefined): IterableIterator<RoomView> {
    return this.state.list(afterKey);
  }

  get count(): number {
    return this.state.rooms.size;
  }

  createdBy(user: string): number {
    return this.state.createdBy(user);
  }

  knows(user: string): boolean {
    return this.state.knownUsers.has(userKey(user));
  }

  serverBan(user: string): Restriction | undefined {
    return this.state.serverBans.get(userKey(user));
  }

  async welcomeUser(user: string, lobby: string, _now: number): Promise<void> {
    this.state.welcomeUser(user, lobby);
  }

  async create(room: string, creator: string, now: number): Promise<RoomView> {
    const record = newRoomRecord(room, creator, now);
    this.state.addRoom(record);
    return record;
  }

  async addMember(room: string, user: string): Promise<void> {
    this.state.addMember(room, user);
  }

  async removeMember(room: string, user: string, now: number): Promise<void> {
    this.state.removeMember(room, user, now);
  }

  async setOp(room: string, user: string, op: boolean): Promise<void> {
    this.state.setOp(room, user, op);
  }

  async setTopic(room: string, topic: string): Promise<void> {
    this.state.setTopic(room, topic);
  }

  async setInviteOnly(room: string, inviteOnly: boolean): Promise<void> {
    this.state.setInviteOnly(room, inviteOnly);
  }

  async setInvited(room: string, user: string, invited: boolean): Promise<void> {
    this.state.setInvited(room, user, invited);
  }

  async restrict(kind: RestrictionKind, room: string, user: string, restriction: Restriction): Promise<void> {
    this.state.restrict(kind, room, user, restriction);
  }

  async lift(kind: RestrictionKind, room: string, user: string): Promise<void> {
    this.state.lift(kind, room, user);
  }

  async banServerWide(user: string, restriction: Restriction): Promise<void> {
    this.state.banServerWide(user, restriction);
  }

  async unbanServerWide(user: string): Promise<void> {
    this.state.unbanServerWide(user);
  }

  async removeEmpty(emptyBefore: number, keep: string): Promise<string[]> {
    const keys = this.state.expired(emptyBefore, roomKey(keep));
    for (const key of keys) this.state.deleteRoom(key);
    return keys;
  }

  async close(): Promise<void> {}
}
