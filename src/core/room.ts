// The room: who is online (a user may have several connections), join/leave notices, relaying
// room messages to everyone but the sending connection, direct messages, and recent history.
// Frames that go to many peers are encoded once and the same bytes are queued everywhere.

import { ChatError } from "../protocol/errors.ts";
import { encodeFrameBytes, type RoomMessage, type ServerFrame } from "../protocol/frames.ts";
import { userKey } from "../protocol/validate.ts";
import type { Peer } from "./peer.ts";

interface OnlineUser {
  name: string;
  peers: Set<Peer>;
}

export interface RoomOptions {
  /** Room messages kept for newcomers. */
  historySize: number;
  /**
   * History is also bounded by encoded size: it goes out as one frame at login and must fit a
   * connection's outbound allowance with room to spare.
   */
  historyMaxBytes?: number;
  /**
   * Above this many online users, join and leave notices are no longer broadcast (`who` still
   * answers): each notice goes to everyone, so a crowd logging in would cost N² deliveries.
   */
  presenceMaxUsers?: number;
  now?: () => number;
}

export class Room {
  private readonly online = new Map<string, OnlineUser>();
  private readonly history: Array<{ message: RoomMessage; bytes: number }> = [];
  private historyBytes = 0;
  private nextMessageId = 1;

  private readonly historySize: number;
  private readonly historyMaxBytes: number;
  private readonly presenceMaxUsers: number;
  private readonly now: () => number;

  constructor(options: RoomOptions) {
    this.historySize = options.historySize;
    this.historyMaxBytes = options.historyMaxBytes ?? Number.POSITIVE_INFINITY;
    this.presenceMaxUsers = options.presenceMaxUsers ?? Number.POSITIVE_INFINITY;
    this.now = options.now ?? Date.now;
  }

  /** Adds a logged-in connection. Others hear `join` only for a user's first connection. */
  join(name: string, peer: Peer): void {
    const key = userKey(name);
    const existing = this.online.get(key);
    if (existing) {
      existing.peers.add(peer);
      return;
    }
    this.online.set(key, { name, peers: new Set([peer]) });
    if (this.online.size <= this.presenceMaxUsers) this.broadcast({ type: "join", user: name, ts: this.now() }, peer);
  }

  /** Removes a connection; others hear `leave` when the user's last connection goes. */
  leave(name: string, peer: Peer): void {
    const key = userKey(name);
    const user = this.online.get(key);
    if (!user || !user.peers.delete(peer)) return;
    if (user.peers.size > 0) return;
    const announce = this.online.size <= this.presenceMaxUsers;
    this.online.delete(key);
    if (announce) this.broadcast({ type: "leave", user: user.name, ts: this.now() }, peer);
  }

  /** Relays a room message to every logged-in connection except the sending one. */
  say(from: string, sender: Peer, text: string): RoomMessage {
    const message: RoomMessage = { type: "msg", id: this.nextMessageId++, from, text, ts: this.now() };
    const bytes = this.broadcast(message, sender);
    this.history.push({ message, bytes });
    this.historyBytes += bytes;
    while (this.history.length > this.historySize || this.historyBytes > this.historyMaxBytes) {
      this.historyBytes -= this.history.shift()!.bytes;
    }
    return message;
  }

  /** Delivers a dm to every connection of the target and to the sender's other connections. */
  dm(from: string, sender: Peer, to: string, text: string): void {
    const target = this.online.get(userKey(to));
    if (!target) throw new ChatError("no_such_user", `${to} is not online`);
    const bytes = encodeFrameBytes({ type: "dm", from, to: target.name, text, ts: this.now() });
    const recipients = new Set(target.peers);
    for (const peer of this.online.get(userKey(from))?.peers ?? []) recipients.add(peer);
    recipients.delete(sender);
    for (const peer of recipients) peer.send(bytes);
  }

  /** Online users, each once, in the order they came online. */
  users(): string[] {
    return Array.from(this.online.values(), (user) => user.name);
  }

  recentMessages(): RoomMessage[] {
    return this.history.map((entry) => entry.message);
  }

  get onlineConnections(): number {
    let count = 0;
    for (const user of this.online.values()) count += user.peers.size;
    return count;
  }

  /** Sends one frame to every logged-in connection but `except`; returns its encoded size. */
  broadcast(frame: ServerFrame, except?: Peer): number {
    const bytes = encodeFrameBytes(frame);
    for (const user of this.online.values()) {
      for (const peer of user.peers) if (peer !== except) peer.send(bytes);
    }
    return bytes.length;
  }
}
