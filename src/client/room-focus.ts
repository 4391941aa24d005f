// Which room the interactive user talks in, and how many messages arrived in each other room
// since they last looked at it. The choice survives reconnects while the room is still joined;
// a /join switches once the server confirms it. It reads the session's rooms and frames only.

import type { ServerFrame } from "../protocol/frames.ts";
import { LOBBY, roomKey } from "../protocol/validate.ts";
import type { RoomsView } from "./joined-rooms.ts";

export interface Unread {
  room: string;
  count: number;
}

export class RoomFocus {
  /** Key of the room the user chose; the current room only while it is joined. */
  private chosen: string | undefined;
  /** Key of a room asked for with /join: chosen once its `joined` arrives. */
  private awaitingJoin: string | undefined;
  private readonly unreadCounts = new Map<string, number>();

  constructor(private readonly rooms: RoomsView) {}

  /** Where typed lines go: the chosen room, else the lobby, else the first joined; undefined in none. */
  get current(): string | undefined {
    const chosen = this.chosen === undefined ? undefined : this.rooms.get(this.chosen);
    if (chosen) return chosen.name;
    const names = this.rooms.names();
    return names.find((name) => roomKey(name) === roomKey(LOBBY)) ?? names[0];
  }

  /** Makes a joined room current and clears its unread count; false if it is not joined. */
  switchTo(room: string): boolean {
    const joined = this.rooms.get(room);
    if (!joined) return false;
    this.chosen = roomKey(joined.name);
    this.awaitingJoin = undefined;
    this.unreadCounts.delete(this.chosen);
    return true;
  }

  /** Switches to `room` now if joined, else as soon as the server says it is. */
  switchWhenJoined(room: string): void {
    if (!this.switchTo(room)) this.awaitingJoin = roomKey(room);
  }

  /** Switches to the `position`-th joined room (from 1, in the order joined); false if there is none. */
  switchToPosition(position: number): boolean {
    const name = this.rooms.names()[position - 1];
    return name !== undefined && this.switchTo(name);
  }

  /** Moves `step` rooms along the joined order, wrapping around; false when in no room. */
  cycle(step: 1 | -1): boolean {
    const names = this.rooms.names();
    if (names.length === 0) return false;
    const current = this.current;
    const index = names.findIndex((name) => current !== undefined && roomKey(name) === roomKey(current));
    return this.switchTo(names[(index + step + names.length) % names.length]!);
  }

  /** Rooms with messages not seen since the user last switched to them, in the order joined. */
  unread(): Unread[] {
    return this.rooms.names().flatMap((room) => {
      const count = this.unreadCounts.get(roomKey(room)) ?? 0;
      return count > 0 ? [{ room, count }] : [];
    });
  }

  /** Call for every frame, after the rooms have taken it in. */
  observe(frame: ServerFrame): void {
    switch (frame.type) {
      case "msg": {
        const current = this.current;
        const key = roomKey(frame.room);
        if (current === undefined || key !== roomKey(current)) this.unreadCounts.set(key, (this.unreadCounts.get(key) ?? 0) + 1);
        break;
      }
      case "joined":
        if (this.awaitingJoin === roomKey(frame.room)) this.switchTo(frame.room);
        break;
      default:
        break;
    }
    // A room left (parted, kicked, or gone after a reconnect) is no longer chosen or counted.
    if (this.chosen !== undefined && !this.rooms.has(this.chosen)) this.chosen = undefined;
    for (const key of this.unreadCounts.keys()) if (!this.rooms.has(key)) this.unreadCounts.delete(key);
  }
}
