// Delivery: turns an accepted event into bytes for this node's connections. A frame for many
// peers is encoded once and the same bytes are queued on each; each room keeps a flat set of its
// online connections so a room message walks one set. Room traffic is encoded into a shared
// arena, so consecutive room frames lie next to each other and a member's queue writes them as
// one range; frames for one user's connections get buffers of their own, so that they leave no
// gap between the room frames everyone else receives.

import type { ErrorCode } from "../protocol/errors.ts";
import { FrameArena } from "../protocol/frame-arena.ts";
import { encodeFrameBytes, type LoggedMessage, type ServerFrame } from "../protocol/frames.ts";
import { userKey } from "../protocol/validate.ts";
import type { Directory } from "./directory.ts";
import type { Hub } from "./hub.ts";
import type { StoredMessage } from "./message-log.ts";
import type { Peer } from "./peer.ts";

/** A room (its key), or a user's dms. */
export type DeliveryStream = { room: string } | { user: string };

export interface Fanout {
  /**
   * The newest message delivered to this node's connections in a room, or in a user's dms;
   * messages are delivered in id order, so a connection attached now gets everything after it
   * live and the rest from history. Asked right after attaching; the answer is as of then.
   */
  deliveredUpTo(stream: DeliveryStream): Promise<number>;
  /**
   * Delivers a message the log has just stored to its room, or to both sides of a dm, but the
   * sending connection `from`.
   */
  relay(message: StoredMessage, frame: LoggedMessage, from: Peer): void;
  /** Closes every connection of the user, after an error frame with the code. */
  disconnect(user: string, code: ErrorCode, message: string): void;
  /** The connection now receives what is sent to the room. */
  attach(room: string, peer: Peer): void;
  detach(room: string, peer: Peer): void;
  /** Connections receiving the room's traffic. */
  audience(room: string): number;
  toRoom(room: string, frame: ServerFrame, except?: Peer): void;
  /** One delivery per connection, however many of the rooms it is in. */
  toRooms(rooms: Iterable<string>, frame: ServerFrame, exceptUser?: string): void;
  /** Every connection of the user (but `except`). */
  toUser(user: string, frame: ServerFrame, except?: Peer): void;
}

/** Presence and delivery shared with other nodes (a cluster), as a server is given them. */
export interface Delivery {
  directory: Directory;
  fanout: Fanout;
  /** The hub that delivery events (a dead node's users going offline) are reported to. */
  attach(hub: Hub): void;
  close(): Promise<void>;
}

export class LocalFanout implements Fanout {
  private readonly rooms = new Map<string, Set<Peer>>();
  private readonly arena = new FrameArena();

  /**
   * The newest message relayed, in any room or dm: one stream in relay order. It starts at the
   * log's newest id: nothing before it will be relayed.
   */
  constructor(
    private readonly directory: Directory,
    private relayedUpTo: number,
  ) {}

  deliveredUpTo(_stream: DeliveryStream): Promise<number> {
    return Promise.resolve(this.relayedUpTo);
  }

  relay(message: StoredMessage, frame: LoggedMessage, from: Peer): void {
    this.relayedUpTo = Math.max(this.relayedUpTo, message.id);
    if (message.room) {
      this.toRoom(message.room.key, frame, from);
      return;
    }
    this.toUser(message.to!, frame, from);
    if (userKey(message.to!) !== userKey(message.from)) this.toUser(message.from, frame, from);
  }

  disconnect(user: string, code: ErrorCode, message: string): void {
    for (const peer of [...(this.directory.find(user)?.peers ?? [])]) peer.close(code, message);
  }

  attach(room: string, peer: Peer): void {
    let peers = this.rooms.get(room);
    if (!peers) this.rooms.set(room, (peers = new Set()));
    peers.add(peer);
  }

  detach(room: string, peer: Peer): void {
    const peers = this.rooms.get(room);
    if (!peers?.delete(peer)) return;
    if (peers.size === 0) this.rooms.delete(room);
  }

  audience(room: string): number {
    return this.rooms.get(room)?.size ?? 0;
  }

  toRoom(room: string, frame: ServerFrame, except?: Peer): void {
    const peers = this.rooms.get(room);
    if (!peers) return;
    const { bytes, start, end } = this.arena.encode(frame);
    for (const peer of peers) if (peer !== except) peer.send(bytes, start, end);
  }

  toRooms(rooms: Iterable<string>, frame: ServerFrame, exceptUser?: string): void {
    const skip = exceptUser === undefined ? undefined : this.directory.find(exceptUser)?.peers;
    const recipients = new Set<Peer>();
    for (const room of rooms) {
      for (const peer of this.rooms.get(room) ?? []) if (!skip?.has(peer)) recipients.add(peer);
    }
    if (recipients.size === 0) return;
    const { bytes, start, end } = this.arena.encode(frame);
    for (const peer of recipients) peer.send(bytes, start, end);
  }

  toUser(user: string, frame: ServerFrame, except?: Peer): void {
    const online = this.directory.find(userKey(user));
    if (!online) return;
    const bytes = encodeFrameBytes(frame);
    for (const peer of online.peers) if (peer !== except) peer.send(bytes);
  }
}
