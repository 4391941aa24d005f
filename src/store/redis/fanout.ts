// Delivery in a cluster: what any node accepts reaches this node's connections through Redis
// pub/sub, and the local fanout turns it into bytes. The node subscribes only to what its
// connections need: the rooms they are in, the users they are, and the everyone channel. A
// message is stored and published in one step by the log's append script (the messages of one
// batch for the same channel as one payload), so every node sees messages in id order; pub/sub
// may still drop some (a reconnect, an output-buffer limit), so each stream remembers the last
// id it delivered and, after every (re)subscribe, reads the gap from the log before it delivers
// anything newer.

import { LocalFanout, type DeliveryStream, type Fanout } from "../../core/fanout.ts";
import { messageFrame, type MessageLog, type Page, type StoredMessage } from "../../core/message-log.ts";
import type { Peer } from "../../core/peer.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import type { LoggedMessage, ServerFrame } from "../../protocol/frames.ts";
import { userKey } from "../../protocol/validate.ts";
import type { RedisConnection } from "./connection.ts";
import type { ClusterDirectory } from "./directory.ts";
import { channels, keys, type Broadcast, type Published } from "./keys.ts";

/** What is delivered on its own: a batch is its messages, one after the other. */
type Single = Exclude<Published, { kind: "batch" }>;

/** Messages read from the log per step while filling a gap. */
const GAP_PAGE_MESSAGES = 500;
/** What one stream keeps waiting while its gap is read (messages beyond it are read from the log). */
const MAX_HELD = 10_000;
/** Sent messages remembered with their connection, so a gap read does not echo them to it. */
const REMEMBERED_SENDS = 10_000;

type Target = { kind: "room"; key: string } | { kind: "user"; key: string };

interface Stream {
  target: Target;
  /** The newest message delivered on it; undefined until the id counter has been read. */
  delivered: number | undefined;
  /** Resolves with where delivery started (the id counter when it was followed). */
  started: Promise<number>;
  /** While a gap is read: what arrived live meanwhile, delivered after the gap. */
  held: Single[] | undefined;
  /** Read the gap again once the current read ends (a reconnect came during it). */
  again: boolean;
}

export interface ClusterFanoutEvents {
  /** Filling a gap failed; it is tried again at the next reconnect. */
  failed(error: Error): void;
  /** An id the cluster has given (a message delivered here, or the counter read): the newest known. */
  seen(id: number): void;
}

export class ClusterFanout implements Fanout {
  private readonly local: LocalFanout;
  private readonly streams = new Map<string, Stream>();
  /** Message ids this node stored, with the connection that sent them. */
  private readonly sentBy = new Map<number, number>();
  /** Streams whose gap is being read. */
  private readonly reading = new Set<Stream>();
  /** Streams being started: their counter read, subscription and first gap read. */
  private readonly starting = new Set<Promise<void>>();

  constructor(
    private readonly connection: RedisConnection,
    private readonly directory: ClusterDirectory,
    private readonly log: Pick<MessageLog, "page" | "dms">,
    private readonly events: ClusterFanoutEvents,
  ) {
    // Its own idea of what was relayed is not used: each stream has its own.
    this.local = new LocalFanout(directory, 0);
    connection.onReconnected(() => {
      for (const stream of this.streams.values()) void this.fillGap(stream);
    });
  }

  /** Subscribes to the everyone channel (presence and notices for several rooms). */
  async open(): Promise<void> {
    await this.connection.subscribe(channels.everyone, (text) => this.onBroadcast(text));
  }

  deliveredUpTo(target: DeliveryStream): Promise<number> {
    const stream = this.streams.get("room" in target ? channels.room(target.room) : channels.user(target.user));
    // Nobody here follows it: everything up to the counter is history.
    if (!stream) return this.readCounter();
    return stream.delivered === undefined ? stream.started : Promise.resolve(stream.delivered);
  }

  /** The log's append script published the message; this only keeps its sender from a gap read's copy. */
  relay(message: StoredMessage, _frame: LoggedMessage, from: Peer): void {
    this.sentBy.set(message.id, from.id);
    if (this.sentBy.size > REMEMBERED_SENDS) this.sentBy.delete(this.sentBy.keys().next().value!);
  }

  disconnect(user: string, code: ErrorCode, message: string): void {
    this.publish(channels.user(userKey(user)), { kind: "disconnect", user, code, message });
  }

  /** Closes the user's connections on this node only. */
  disconnectHere(user: string, code: ErrorCode, message: string): void {
    this.local.disconnect(user, code, message);
  }

  attach(room: string, peer: Peer): void {
    if (this.local.audience(room) === 0) this.follow(channels.room(room), { kind: "room", key: room });
    this.local.attach(room, peer);
  }

  detach(room: string, peer: Peer): void {
    this.local.detach(room, peer);
    if (this.local.audience(room) === 0) this.unfollow(channels.room(room));
  }

  audience(room: string): number {
    return this.local.audience(room);
  }

  toRoom(room: string, frame: ServerFrame, except?: Peer): void {
    this.publish(channels.room(room), this.notice(frame, except));
  }

  toRooms(rooms: Iterable<string>, frame: ServerFrame, exceptUser?: string): void {
    const broadcast: Broadcast = { kind: "rooms", rooms: [...rooms], frame };
    if (exceptUser !== undefined) broadcast.exceptUser = exceptUser;
    this.publish(channels.everyone, broadcast);
  }

  toUser(user: string, frame: ServerFrame, except?: Peer): void {
    this.publish(channels.user(userKey(user)), this.notice(frame, except));
  }

  /** The directory says the user's first connection arrived here, or their last left. */
  localUser(user: string, present: boolean): void {
    const key = userKey(user);
    if (present) this.follow(channels.user(key), { kind: "user", key });
    else this.unfollow(channels.user(key));
  }

  /** Another node changed a membership: this node's connections of the user follow it. */
  membershipChanged(room: string, user: string, member: boolean): void {
    for (const peer of this.directory.find(user)?.peers ?? []) {
      if (member) this.attach(room, peer);
      else this.detach(room, peer);
    }
  }

  private notice(frame: ServerFrame, except: Peer | undefined): Published {
    return except === undefined ? { kind: "frame", frame } : { kind: "frame", frame, node: this.directory.nodeId, connection: except.id };
  }

  private publish(channel: string, payload: Published | Broadcast): void {
    this.connection.send("PUBLISH", [channel, JSON.stringify(payload)]).catch((error: Error) => this.events.failed(error));
  }

  /**
   * Starts delivering a stream: everything after the id counter's value now comes from it (what
   * came before is the connections' history), read from the log first in case it was published
   * before the subscription took.
   */
  private follow(channel: string, target: Target): void {
    if (this.streams.has(channel)) return;
    const counter = Promise.withResolvers<number>();
    const stream: Stream = { target, delivered: undefined, started: counter.promise, held: [], again: false };
    this.streams.set(channel, stream);
    counter.promise.catch(() => undefined);
    const starting = (async () => {
      try {
        stream.delivered = await this.readCounter();
        counter.resolve(stream.delivered);
        await this.connection.subscribe(channel, (text) => this.onPublished(stream, text));
        // Unfollowed while starting (a connection that came and went at once), and not followed
        // again since: the subscription made after the unsubscribe must not stay.
        if (!this.streams.has(channel)) {
          await this.connection.unsubscribe(channel);
          return;
        }
      } catch (error) {
        counter.reject(error as Error);
        // A stream that never started is dropped, so the next connection to need it starts it again.
        if (stream.delivered === undefined) this.streams.delete(channel);
        this.events.failed(error as Error);
        return;
      }
      await this.fillGap(stream);
    })();
    this.starting.add(starting);
    void starting.finally(() => this.starting.delete(starting));
  }

  /**
   * Resolves once every stream followed so far is subscribed and has read its gap: from then on
   * what is published to them reaches this node's connections (a notice published before may not).
   */
  async following(): Promise<void> {
    while (this.starting.size > 0) await Promise.all(this.starting);
  }

  /** The cluster's newest id now; the log learns it too, so a client's mark up to it is a mark. */
  private async readCounter(): Promise<number> {
    const id = Number((await this.connection.send("GET", [keys.messageId])) ?? 0);
    this.events.seen(id);
    return id;
  }

  private unfollow(channel: string): void {
    if (!this.streams.delete(channel)) return;
    void this.connection.unsubscribe(channel);
  }

  private onPublished(stream: Stream, text: string): void {
    if (this.streams.get(this.channelOf(stream.target)) !== stream) return;
    const published = JSON.parse(text) as Published;
    if (published.kind !== "batch") this.receive(stream, published);
    else for (const message of published.messages) this.receive(stream, message);
  }

  private receive(stream: Stream, published: Single): void {
    if (!stream.held) this.deliver(stream, published);
    else if (stream.held.length < MAX_HELD) stream.held.push(published);
    // Past the allowance a message is left in the log, and the gap is read once more to find it;
    // a notice is lost, as one published while the subscription was down would be.
    else if (published.kind === "message") stream.again = true;
  }

  private onBroadcast(text: string): void {
    const broadcast = JSON.parse(text) as Broadcast;
    if (broadcast.kind === "rooms") this.local.toRooms(broadcast.rooms, broadcast.frame, broadcast.exceptUser);
    else this.directory.apply(broadcast);
  }

  private deliver(stream: Stream, published: Single): void {
    switch (published.kind) {
      case "message":
        this.deliverMessage(stream, published.message, this.senderHere(published.node, published.connection) ?? this.sentBy.get(published.message.id));
        return;
      case "frame": {
        const except = this.senderHere(published.node, published.connection);
        const skip = except === undefined ? undefined : this.directory.peer(except);
        if (stream.target.kind === "room") this.local.toRoom(stream.target.key, published.frame, skip);
        else this.local.toUser(stream.target.key, published.frame, skip);
        return;
      }
      case "disconnect":
        this.disconnectHere(published.user, published.code as ErrorCode, published.message);
        return;
      default: {
        const unreachable: never = published;
        throw new Error(`unhandled publish ${String(unreachable)}`);
      }
    }
  }

  private deliverMessage(stream: Stream, message: StoredMessage, exceptConnection: number | undefined): void {
    if (stream.delivered === undefined || message.id <= stream.delivered) return;
    stream.delivered = message.id;
    const frame = messageFrame(message);
    const from = exceptConnection === undefined ? undefined : this.directory.peer(exceptConnection);
    if (stream.target.kind === "room") this.local.toRoom(stream.target.key, frame, from);
    else this.local.toUser(stream.target.key, frame, from);
    this.sentBy.delete(message.id);
    this.events.seen(message.id);
  }

  private senderHere(node: string | undefined, connection: number | undefined): number | undefined {
    return node === this.directory.nodeId ? connection : undefined;
  }

  /** Reads what the stream missed from the log, then delivers what was held meanwhile. */
  private async fillGap(stream: Stream): Promise<void> {
    // Still starting: its own start reads the gap once subscribed.
    if (stream.delivered === undefined) return;
    if (this.reading.has(stream)) {
      // A reconnect during the read: what it may have missed is read once this read ends.
      stream.again = true;
      return;
    }
    stream.held ??= [];
    this.reading.add(stream);
    try {
      do {
        stream.again = false;
        for (let more = true; more; ) {
          const page = await this.missed(stream);
          for (const message of page.messages) this.deliverMessage(stream, message, this.sentBy.get(message.id));
          more = page.more && page.messages.length > 0;
        }
      } while (stream.again);
      const held = stream.held;
      stream.held = undefined;
      for (const published of held) this.deliver(stream, published);
    } catch (error) {
      // Still holding: the next reconnect reads the gap again, then delivers what waits.
      this.events.failed(error as Error);
    } finally {
      this.reading.delete(stream);
    }
  }

  private missed(stream: Stream): Promise<Page> {
    const query = { after: stream.delivered!, limit: GAP_PAGE_MESSAGES };
    return stream.target.kind === "room" ? this.log.page({ room: stream.target.key }, query) : this.log.dms(stream.target.key, query);
  }

  private channelOf(target: Target): string {
    return target.kind === "room" ? channels.room(target.key) : channels.user(target.key);
  }
}
