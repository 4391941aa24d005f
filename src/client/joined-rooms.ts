// The rooms this user is in, as the server has told this session: names in the order they were
// joined (the numbering for switching), and each room's topic, members and operators once a
// `joined` frame has described them. It learns only from frames and knows nothing of screens.

import type { ServerFrame } from "../protocol/frames.ts";
import { ROOM_NAME_PATTERN, roomKey, userKey } from "../protocol/validate.ts";

export interface RoomInfo {
  /** As the server shows it (case as created). */
  readonly name: string;
  /** Unknown until a `joined` or `topic` frame for the room arrives. */
  readonly topic: string | undefined;
  readonly inviteOnly: boolean | undefined;
  /** Members (key → name as shown) and operators' keys; empty until a `joined` frame lists them. */
  readonly members: ReadonlyMap<string, string>;
  readonly ops: ReadonlySet<string>;
}

interface Room {
  name: string;
  topic: string | undefined;
  inviteOnly: boolean | undefined;
  members: Map<string, string>;
  ops: Set<string>;
}

/** What the rest of the client may read; only the session feeds frames in. */
export interface RoomsView {
  has(room: string): boolean;
  get(room: string): RoomInfo | undefined;
  /** Room names in the order they were joined. */
  names(): string[];
}

export class JoinedRooms implements RoomsView {
  private readonly rooms = new Map<string, Room>();

  has(room: string): boolean {
    return this.rooms.has(roomKey(room));
  }

  get(room: string): RoomInfo | undefined {
    return this.entry(room);
  }

  names(): string[] {
    return Array.from(this.rooms.values(), (room) => room.name);
  }

  /**
   * A (re)login: the server's list is the truth. Rooms still joined keep what was known of them,
   * in their old order; names that are not room names are not taken in.
   */
  reset(names: readonly string[]): void {
    const wanted = new Map(names.filter((name) => ROOM_NAME_PATTERN.test(name)).map((name) => [roomKey(name), name]));
    for (const key of this.rooms.keys()) if (!wanted.has(key)) this.rooms.delete(key);
    for (const name of wanted.values()) this.add(name);
  }

  /** Updates the rooms from a frame the server sent to `self`. */
  apply(frame: ServerFrame, self: string): void {
    switch (frame.type) {
      case "joined": {
        const room = this.add(frame.room);
        if (room === undefined) return;
        room.topic = frame.topic;
        room.inviteOnly = frame.invite_only;
        room.members = new Map(frame.members.map((user) => [userKey(user), user]));
        room.ops = new Set(frame.ops.map(userKey));
        return;
      }
      case "parted":
        this.rooms.delete(roomKey(frame.room));
        return;
      case "join":
        this.entry(frame.room)?.members.set(userKey(frame.user), frame.user);
        return;
      case "leave":
        this.entry(frame.room)?.members.delete(userKey(frame.user));
        return;
      case "topic": {
        const room = this.entry(frame.room);
        if (room) room.topic = frame.topic;
        return;
      }
      case "moderation":
        this.applyModeration(frame, self);
        return;
      default:
        return;
    }
  }

  private applyModeration(notice: Extract<ServerFrame, { type: "moderation" }>, self: string): void {
    const room = notice.room === undefined ? undefined : this.entry(notice.room);
    if (room === undefined) return;
    const user = notice.user === undefined ? undefined : userKey(notice.user);
    switch (notice.action) {
      case "op":
        if (user !== undefined) room.ops.add(user);
        return;
      case "deop":
        if (user !== undefined) room.ops.delete(user);
        return;
      case "kick":
      case "ban":
        // Our own removal arrives as `parted`; this is someone else leaving the member list.
        if (user !== undefined && user !== userKey(self)) room.members.delete(user);
        return;
      case "mode":
        if (notice.invite_only !== undefined) room.inviteOnly = notice.invite_only;
        return;
      default:
        return;
    }
  }

  private entry(room: string): Room | undefined {
    return this.rooms.get(roomKey(room));
  }

  private add(name: string): Room | undefined {
    if (!ROOM_NAME_PATTERN.test(name)) return undefined;
    const key = roomKey(name);
    let room = this.rooms.get(key);
    if (room === undefined) {
      room = { name, topic: undefined, inviteOnly: undefined, members: new Map(), ops: new Set() };
      this.rooms.set(key, room);
    }
    return room;
  }
}
