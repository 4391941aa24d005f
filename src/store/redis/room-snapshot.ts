// Reads the whole room registry from Redis into a fresh state in memory, with the change
// sequence it starts from. The reads are not one atomic step: the sequence is read first, and
// anything created after it (rooms, memberships: both carry the sequence of the change that made
// them) is left out, because those changes are applied on top afterwards and must land in their
// order (join order is part of the state). The rest may be a little newer than the sequence; the
// changes applied on top set it again to the same values (see room-changes.ts).

import { newRoomRecord, RoomState } from "../../core/rooms.ts";
import type { RedisConnection } from "./connection.ts";
import { keys } from "./keys.ts";
import { parseRestriction } from "./room-changes.ts";
import { roomPartKeys, scripts } from "./room-scripts.ts";

/** Rooms read per script call: one call must stay short, as Redis serves nothing else meanwhile. */
const READ_BATCH_ROOMS = 100;

export interface Snapshot {
  /** The last change the state includes; every later one is to be applied on top. */
  sequence: number;
  state: RoomState;
}

/** One room as the read script replies: flat field/value lists and sets. */
type RoomReply = [meta: string[], members: string[], joined: string[], ops: string[], bans: string[], mutes: string[], invites: string[]];

interface Join {
  room: string;
  name: string;
  seq: number;
}

export async function readSnapshot(connection: RedisConnection): Promise<Snapshot> {
  const sequence = Number((await connection.send("GET", [keys.roomSequence])) ?? 0);
  const [roomKeys, knownUsers, serverBans] = (await Promise.all([
    connection.send("SMEMBERS", [keys.roomIndex]),
    connection.send("SMEMBERS", [keys.knownUsers]),
    connection.send("HGETALL", [keys.serverBans]),
  ])) as [string[], string[], Record<string, string>];

  const batches: string[][] = [];
  for (let i = 0; i < roomKeys.length; i += READ_BATCH_ROOMS) batches.push(roomKeys.slice(i, i + READ_BATCH_ROOMS));
  const replies = await Promise.all(batches.map((batch) => connection.run(scripts.readRooms, batch.flatMap(roomPartKeys), []) as Promise<RoomReply[]>));

  const state = new RoomState();
  const joins: Join[] = [];
  const ops: Array<[room: string, user: string]> = [];
  const emptiness = new Map<string, number | undefined>();
  batches.forEach((batch, b) =>
    batch.forEach((key, r) => {
      const [metaList, memberList, joinedList, opList, banList, muteList, inviteList] = replies[b]![r]!;
      const meta = fields(metaList);
      const name = meta.get("name");
      // Removed since the index was read, or created after the sequence (applied on top).
      if (name === undefined || Number(meta.get("seq")) > sequence) return;
      const record = newRoomRecord(name, meta.get("created_by") ?? "", Number(meta.get("created_at")));
      record.topic = meta.get("topic") ?? "";
      record.inviteOnly = meta.get("invite_only") === "1";
      state.addRoom(record);
      const emptySince = meta.get("empty_since");
      emptiness.set(key, emptySince === undefined ? undefined : Number(emptySince));
      const names = fields(memberList);
      for (const [user, seq] of fields(joinedList)) {
        if (Number(seq) <= sequence) joins.push({ room: key, name: names.get(user) ?? user, seq: Number(seq) });
      }
      for (const user of opList) ops.push([key, user]);
      for (const [user, json] of fields(banList)) record.bans.set(user, parseRestriction(json));
      for (const [user, json] of fields(muteList)) record.mutes.set(user, parseRestriction(json));
      for (const user of inviteList) record.invites.add(user);
    }),
  );
  // Joining in the order of the joining changes gives each room's and each user's order.
  joins.sort((a, b) => a.seq - b.seq);
  for (const join of joins) state.addMember(join.room, join.name);
  // addMember marks rooms as in use; the stored emptiness goes back on after.
  for (const [key, emptySince] of emptiness) state.rooms.get(key)!.emptySince = emptySince;
  // setOp passes over members left out above: their join, applied on top, comes first.
  for (const [room, user] of ops) state.setOp(room, user, true);
  for (const user of knownUsers) state.knownUsers.add(user);
  for (const [user, json] of Object.entries(serverBans)) state.serverBans.set(user, parseRestriction(json));
  return { sequence, state };
}

/** A flat field, value, field, value... list as a map (user names such as `__proto__` are fine as keys). */
function fields(list: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < list.length; i += 2) map.set(list[i]!, list[i + 1]!);
  return map;
}
