// Room changes as the Redis scripts log them, and how a node applies one to its registry in
// memory. Each change sets what it touches to the value it had in Redis right after the change
// (never "add one" or "toggle"), and one about a room that is not there changes nothing, so a
// node can apply the changes after its load point on top of a state it read a little later.
// Nothing here talks to Redis.

import { newRoomRecord, type Restriction, type RestrictionKind, type RoomState } from "../../core/rooms.ts";
import { userKey } from "../../protocol/validate.ts";

interface Logged {
  /** Position in the cluster-wide order, from 1. */
  seq: number;
  /** The node whose change it was. */
  node: string;
}

export type RoomChange = Logged &
  (
    | { type: "create"; room: string; name: string; by: string; at: number }
    | { type: "join"; room: string; name: string }
    /** A user's first login: known from now on, and a member of the lobby `room`. */
    | { type: "welcome"; room: string; name: string }
    /** `emptySince` is set when this member was the last. */
    | { type: "leave"; room: string; user: string; emptySince: number | undefined }
    /** `value` is the outcome: true only for a member. */
    | { type: "operator"; room: string; user: string; value: boolean }
    | { type: "topic"; room: string; topic: string }
    | { type: "invite-only"; room: string; value: boolean }
    | { type: "invited"; room: string; user: string; value: boolean }
    | { type: "restrict"; room: string; kind: RestrictionKind; user: string; restriction: Restriction }
    | { type: "lift"; room: string; kind: RestrictionKind; user: string }
    | { type: "server-ban"; user: string; restriction: Restriction }
    | { type: "server-unban"; user: string }
    | { type: "remove"; rooms: string[] }
  );

/** What another node changed that this node's connections are affected by (user and room are keys). */
export type RemoteRoomChange = { kind: "member"; room: string; user: string; member: boolean } | { kind: "removed"; room: string };

/** A change that cannot be read: from a newer version, or not written by our scripts. */
export class UnreadableChange extends Error {}

/** A change as published and stored in the stream (a JSON object of strings). */
export function parseChange(json: string): RoomChange {
  let wire: Record<string, unknown>;
  try {
    wire = JSON.parse(json) as Record<string, unknown>;
  } catch {
    throw new UnreadableChange("a room change is not JSON");
  }
  const text = (field: string): string => {
    const value = wire[field];
    if (typeof value !== "string") throw new UnreadableChange(`a room change lacks ${field}`);
    return value;
  };
  const flag = (field: string) => text(field) === "1";
  const kind = (): RestrictionKind => {
    const value = text("kind");
    if (value !== "ban" && value !== "mute") throw new UnreadableChange(`unknown restriction kind ${value}`);
    return value;
  };
  const restriction = () => parseRestriction(text("restriction"));
  const logged: Logged = { seq: Number(text("seq")), node: text("node") };
  const type = text("type");
  switch (type) {
    case "create":
      return { ...logged, type, room: text("room"), name: text("name"), by: text("by"), at: Number(text("at")) };
    case "join":
    case "welcome":
      return { ...logged, type, room: text("room"), name: text("name") };
    case "leave": {
      const emptySince = wire.empty_since === undefined ? undefined : Number(text("empty_since"));
      return { ...logged, type, room: text("room"), user: text("user"), emptySince };
    }
    case "operator":
    case "invited":
      return { ...logged, type, room: text("room"), user: text("user"), value: flag("value") };
    case "topic":
      return { ...logged, type, room: text("room"), topic: text("topic") };
    case "invite-only":
      return { ...logged, type, room: text("room"), value: flag("value") };
    case "restrict":
      return { ...logged, type, room: text("room"), kind: kind(), user: text("user"), restriction: restriction() };
    case "lift":
      return { ...logged, type, room: text("room"), kind: kind(), user: text("user") };
    case "server-ban":
      return { ...logged, type, user: text("user"), restriction: restriction() };
    case "server-unban":
      return { ...logged, type, user: text("user") };
    case "remove": {
      const rooms = wire.rooms;
      if (!Array.isArray(rooms) || !rooms.every((room) => typeof room === "string")) throw new UnreadableChange("a room removal lacks rooms");
      return { ...logged, type, rooms };
    }
    default:
      throw new UnreadableChange(`unknown room change ${type}`);
  }
}

/** A restriction as stored (JSON of a Restriction). */
export function parseRestriction(json: string): Restriction {
  let value: { by?: unknown; until?: unknown; reason?: unknown };
  try {
    value = JSON.parse(json) as typeof value;
  } catch {
    throw new UnreadableChange("a stored restriction is not JSON");
  }
  if (typeof value?.by !== "string") throw new UnreadableChange("a stored restriction lacks by");
  const restriction: Restriction = { by: value.by };
  if (typeof value.until === "number") restriction.until = value.until;
  if (typeof value.reason === "string") restriction.reason = value.reason;
  return restriction;
}

/** Applies one change; returns what it did to memberships and rooms, for the remote listeners. */
export function applyChange(state: RoomState, change: RoomChange): RemoteRoomChange[] {
  switch (change.type) {
    case "create":
      if (!state.rooms.has(change.room)) state.addRoom(newRoomRecord(change.name, change.by, change.at));
      return [];
    case "welcome":
      state.knownUsers.add(userKey(change.name));
      return join(state, change.room, change.name);
    case "join":
      return join(state, change.room, change.name);
    case "leave": {
      const record = state.room(change.room);
      if (!record) return [];
      const wasMember = record.members.has(change.user);
      state.removeMember(change.room, change.user, change.emptySince ?? 0);
      // The script saw every member; memory catching up after a load may not have them all yet.
      record.emptySince = change.emptySince;
      return wasMember ? [{ kind: "member", room: record.key, user: change.user, member: false }] : [];
    }
    case "operator":
      if (state.room(change.room)) state.setOp(change.room, change.user, change.value);
      return [];
    case "topic":
      if (state.room(change.room)) state.setTopic(change.room, change.topic);
      return [];
    case "invite-only":
      if (state.room(change.room)) state.setInviteOnly(change.room, change.value);
      return [];
    case "invited":
      if (state.room(change.room)) state.setInvited(change.room, change.user, change.value);
      return [];
    case "restrict":
      if (state.room(change.room)) state.restrict(change.kind, change.room, change.user, change.restriction);
      return [];
    case "lift":
      if (state.room(change.room)) state.lift(change.kind, change.room, change.user);
      return [];
    case "server-ban":
      state.banServerWide(change.user, change.restriction);
      return [];
    case "server-unban":
      state.unbanServerWide(change.user);
      return [];
    case "remove": {
      const removed = change.rooms.filter((room) => state.rooms.has(room));
      for (const room of removed) state.deleteRoom(room);
      return removed.map((room) => ({ kind: "removed", room }));
    }
    default: {
      const unknown: never = change;
      throw new Error(`unhandled room change ${(unknown as RoomChange).type}`);
    }
  }
}

function join(state: RoomState, room: string, name: string): RemoteRoomChange[] {
  const record = state.room(room);
  if (!record) return [];
  const user = userKey(name);
  const wasMember = record.members.has(user);
  state.addMember(room, name);
  return wasMember ? [] : [{ kind: "member", room: record.key, user, member: true }];
}

/** What changed between two states, as remote changes: what a reload tells the listeners. */
export function differences(before: RoomState, after: RoomState): RemoteRoomChange[] {
  const changes: RemoteRoomChange[] = [];
  for (const [key, old] of before.rooms) {
    const record = after.rooms.get(key);
    if (!record) {
      changes.push({ kind: "removed", room: key });
      continue;
    }
    for (const user of old.members.keys()) {
      if (!record.members.has(user)) changes.push({ kind: "member", room: key, user, member: false });
    }
  }
  for (const [key, record] of after.rooms) {
    const old = before.rooms.get(key);
    for (const user of record.members.keys()) {
      if (!old?.members.has(user)) changes.push({ kind: "member", room: key, user, member: true });
    }
  }
  return changes;
}
