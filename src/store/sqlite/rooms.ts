// The room registry kept in the chat database: the whole state is loaded into memory at start
// (reads never touch the disk), and every change is written in one transaction before it is
// applied in memory, so what a client was told has happened survives a restart.

import type { Database } from "bun:sqlite";
import { RoomState, MemoryRooms, newRoomRecord, type Restriction, type RestrictionKind, type RoomView } from "../../core/rooms.ts";
import { ChatError } from "../../protocol/errors.ts";
import { unreadableDatabase } from "./database.ts";
import { roomKey, userKey } from "../../protocol/validate.ts";

interface RoomRow {
  key: string;
  name: string;
  topic: string;
  invite_only: number;
  created_by: string;
  created_at: number;
  empty_since: number | null;
}

interface RestrictionRow {
  room: string;
  user: string;
  kind: RestrictionKind;
  until: number | null;
  by: string;
  reason: string | null;
}

export class SqliteRooms extends MemoryRooms {
  private constructor(private readonly db: Database) {
    super();
  }

  /** Loads the registry from an open, migrated chat database. */
  static load(db: Database): SqliteRooms {
    const rooms = new SqliteRooms(db);
    try {
      loadState(db, rooms.state);
    } catch (error) {
      throw unreadableDatabase(db.filename, error);
    }
    return rooms;
  }

  /** Runs one change in a transaction, then in memory; a failed write changes neither. */
  private write(sql: () => void, apply: () => void): Promise<void> {
    try {
      this.db.transaction(sql)();
    } catch (error) {
      return Promise.reject(new ChatError("store_unavailable", `The chat database could not be written (${(error as Error).message})`));
    }
    apply();
    return Promise.resolve();
  }

  override welcomeUser(user: string, lobby: string, now: number): Promise<void> {
    return this.write(
      () => {
        this.db.run("INSERT OR IGNORE INTO known_users (user, first_seen) VALUES (?, ?)", [userKey(user), now]);
        this.insertMember(lobby, user);
      },
      () => this.state.welcomeUser(user, lobby),
    );
  }

  override async create(room: string, creator: string, now: number): Promise<RoomView> {
    const record = newRoomRecord(room, creator, now);
    await this.write(
      () =>
        this.db.run("INSERT INTO rooms (key, name, topic, invite_only, created_by, created_at, empty_since) VALUES (?, ?, '', 0, ?, ?, ?)", [
          record.key,
          record.name,
          record.createdBy,
          now,
          now,
        ]),
      () => this.state.addRoom(record),
    );
    return record;
  }

  override addMember(room: string, user: string): Promise<void> {
    return this.write(
      () => this.insertMember(room, user),
      () => this.state.addMember(room, user),
    );
  }

  private insertMember(room: string, user: string): void {
    this.db.run("INSERT OR IGNORE INTO members (room, user, name) VALUES (?, ?, ?)", [roomKey(room), userKey(user), user]);
    this.db.run("UPDATE rooms SET empty_since = NULL WHERE key = ?", [roomKey(room)]);
  }

  override removeMember(room: string, user: string, now: number): Promise<void> {
    return this.write(
      () => {
        const { changes } = this.db.run("DELETE FROM members WHERE room = ? AND user = ?", [roomKey(room), userKey(user)]);
        // Like the state in memory: only the last member leaving starts the room's empty time.
        if (changes === 0) return;
        this.db.run("UPDATE rooms SET empty_since = ? WHERE key = ? AND NOT EXISTS (SELECT 1 FROM members WHERE room = ?)", [now, roomKey(room), roomKey(room)]);
      },
      () => this.state.removeMember(room, user, now),
    );
  }

  override setOp(room: string, user: string, op: boolean): Promise<void> {
    return this.write(
      () => this.db.run("UPDATE members SET op = ? WHERE room = ? AND user = ?", [op ? 1 : 0, roomKey(room), userKey(user)]),
      () => this.state.setOp(room, user, op),
    );
  }

  override setTopic(room: string, topic: string): Promise<void> {
    return this.write(
      () => this.db.run("UPDATE rooms SET topic = ? WHERE key = ?", [topic, roomKey(room)]),
      () => this.state.setTopic(room, topic),
    );
  }

  override setInviteOnly(room: string, inviteOnly: boolean): Promise<void> {
    return this.write(
      () => this.db.run("UPDATE rooms SET invite_only = ? WHERE key = ?", [inviteOnly ? 1 : 0, roomKey(room)]),
      () => this.state.setInviteOnly(room, inviteOnly),
    );
  }

  override setInvited(room: string, user: string, invited: boolean): Promise<void> {
    const sql = invited ? "INSERT OR IGNORE INTO invites (room, user) VALUES (?, ?)" : "DELETE FROM invites WHERE room = ? AND user = ?";
    return this.write(
      () => this.db.run(sql, [roomKey(room), userKey(user)]),
      () => this.state.setInvited(room, user, invited),
    );
  }

  override restrict(kind: RestrictionKind, room: string, user: string, restriction: Restriction): Promise<void> {
    return this.write(
      () =>
        this.db.run("INSERT OR REPLACE INTO restrictions (room, user, kind, until, by, reason) VALUES (?, ?, ?, ?, ?, ?)", [
          roomKey(room),
          userKey(user),
          kind,
          restriction.until ?? null,
          restriction.by,
          restriction.reason ?? null,
        ]),
      () => this.state.restrict(kind, room, user, restriction),
    );
  }

  override lift(kind: RestrictionKind, room: string, user: string): Promise<void> {
    return this.write(
      () => this.db.run("DELETE FROM restrictions WHERE room = ? AND user = ? AND kind = ?", [roomKey(room), userKey(user), kind]),
      () => this.state.lift(kind, room, user),
    );
  }

  override banServerWide(user: string, restriction: Restriction): Promise<void> {
    return this.write(
      () =>
        this.db.run("INSERT OR REPLACE INTO server_bans (user, until, by, reason) VALUES (?, ?, ?, ?)", [
          userKey(user),
          restriction.until ?? null,
          restriction.by,
          restriction.reason ?? null,
        ]),
      () => this.state.banServerWide(user, restriction),
    );
  }

  override unbanServerWide(user: string): Promise<void> {
    return this.write(
      () => this.db.run("DELETE FROM server_bans WHERE user = ?", [userKey(user)]),
      () => this.state.unbanServerWide(user),
    );
  }

  override async removeEmpty(emptyBefore: number, keep: string): Promise<string[]> {
    const keys = this.state.expired(emptyBefore, roomKey(keep));
    if (keys.length === 0) return keys;
    await this.write(
      () => {
        for (const key of keys) this.db.run("DELETE FROM rooms WHERE key = ?", [key]);
      },
      () => keys.forEach((key) => this.state.deleteRoom(key)),
    );
    return keys;
  }

  override async close(): Promise<void> {
    this.db.close();
  }
}

function loadState(db: Database, state: RoomState): void {
  for (const row of db.query<RoomRow, []>("SELECT * FROM rooms").all()) {
    const record = newRoomRecord(row.name, row.created_by, row.created_at);
    record.topic = row.topic;
    record.inviteOnly = row.invite_only === 1;
    record.createdBy = row.created_by;
    record.emptySince = row.empty_since ?? undefined;
    state.addRoom(record);
  }
  // Row order is insertion order: members come back in the order they joined.
  for (const row of db.query<{ room: string; name: string; op: number }, []>("SELECT room, name, op FROM members ORDER BY rowid").all()) {
    state.addMember(row.room, row.name);
    if (row.op === 1) state.setOp(row.room, row.name, true);
  }
  // addMember marks rooms as in use; restore the stored empty_since for rooms without members.
  for (const row of db.query<RoomRow, []>("SELECT * FROM rooms WHERE empty_since IS NOT NULL").all()) {
    state.rooms.get(row.key)!.emptySince = row.empty_since!;
  }
  for (const row of db.query<RestrictionRow, []>("SELECT * FROM restrictions").all()) {
    state.restrict(row.kind, row.room, row.user, toRestriction(row));
  }
  for (const row of db.query<{ room: string; user: string }, []>("SELECT room, user FROM invites").all()) {
    state.setInvited(row.room, row.user, true);
  }
  for (const row of db.query<{ user: string }, []>("SELECT user FROM known_users").all()) state.knownUsers.add(row.user);
  for (const row of db.query<Omit<RestrictionRow, "room" | "kind">, []>("SELECT * FROM server_bans").all()) {
    state.serverBans.set(row.user, toRestriction(row));
  }
}

function toRestriction(row: { until: number | null; by: string; reason: string | null }): Restriction {
  const restriction: Restriction = { by: row.by };
  if (row.until !== null) restriction.until = row.until;
  if (row.reason !== null) restriction.reason = row.reason;
  return restriction;
}
