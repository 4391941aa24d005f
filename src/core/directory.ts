// The server-wide directory: who is online and on which connections. Presence is server-wide, not
// per room; rooms and delivery ask the directory, never the other way round.

import { userKey } from "../protocol/validate.ts";
import type { Peer } from "./peer.ts";

export interface OnlineUser {
  /** The account's name as registered. */
  readonly name: string;
  readonly peers: ReadonlySet<Peer>;
}

export interface Directory {
  /** Adds a logged-in connection; true when it is the user's first. */
  add(user: string, peer: Peer): boolean;
  /** Removes a connection; true when it was the user's last. */
  remove(user: string, peer: Peer): boolean;
  find(user: string): OnlineUser | undefined;
  /** Online users, each once, in the order they came online. */
  users(): IterableIterator<OnlineUser>;
  /** Their names in that order, a copy: what every welcome lists. */
  onlineNames(): string[];
  readonly size: number;
}

interface Entry {
  name: string;
  peers: Set<Peer>;
}

export class LocalDirectory implements Directory {
  private readonly online = new Map<string, Entry>();
  /**
   * `onlineNames` kept between changes: a login storm asks for it once a login, and walking the
   * map each time made 10,000 logins cost a third of their CPU in that walk.
   */
  private names: string[] | undefined;

  add(user: string, peer: Peer): boolean {
    const key = userKey(user);
    const entry = this.online.get(key);
    if (entry) {
      entry.peers.add(peer);
      return false;
    }
    this.online.set(key, { name: user, peers: new Set([peer]) });
    this.names?.push(user);
    return true;
  }

  remove(user: string, peer: Peer): boolean {
    const key = userKey(user);
    const entry = this.online.get(key);
    if (!entry || !entry.peers.delete(peer) || entry.peers.size > 0) return false;
    this.online.delete(key);
    this.names = undefined;
    return true;
  }

  find(user: string): OnlineUser | undefined {
    return this.online.get(userKey(user));
  }

  users(): IterableIterator<OnlineUser> {
    return this.online.values();
  }

  onlineNames(): string[] {
    this.names ??= Array.from(this.online.values(), (entry) => entry.name);
    return this.names.slice();
  }

  get size(): number {
    return this.online.size;
  }
}
