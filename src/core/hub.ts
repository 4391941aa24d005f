// The chat's operations on behalf of a logged-in user: rooms (join, part, say), dms, history,
// search, lists and moderation, with the rules of who may do what. A message is relayed and
// acknowledged only once the log has it durably. It talks only to the directory, the room
// registry, the message log and the fanout, so where state lives is not its concern, and it
// never sees sockets: a connection is a Peer.

import { ChatError } from "../protocol/errors.ts";
import {
  encodeFrameBytes,
  SINCE_DMS,
  type DirectMessage,
  type HistoryFrame,
  type LoggedMessage,
  type ModerationNotice,
  type ModerationRequest,
  type RoomSummary,
  type ServerFrame,
  type Since,
} from "../protocol/frames.ts";
import { checkRoomName, checkTopic, checkUsername, roomKey, userKey } from "../protocol/validate.ts";
import type { Directory } from "./directory.ts";
import type { Fanout } from "./fanout.ts";
import { dmFrame, encodedSizeBound, messageFrame, searchWords, type MessageLog, type Page, type StoredMessage, type StoredRef } from "./message-log.ts";
import type { Peer } from "./peer.ts";
import { inForce, type Restriction, type RoomView, type Rooms } from "./rooms.ts";

export interface HubPolicy {
  lobby: string;
  /** Keys of the server's administrators: operators everywhere, and the only ones who ban server-wide. */
  admins: ReadonlySet<string>;
  maxRoomsPerUser: number;
  maxRooms: number;
  maxRoomsCreatedPerUser: number;
  maxTopicChars: number;
  /** Presence and membership notices go to a room only while its online audience is at most this. */
  presenceMaxAudience: number;
  /** Largest list in one reply (who, rooms, members), in encoded bytes. */
  maxListBytes: number;
  roomExpiryMs: number;
  /** Messages in a room's history at login or join, without `since`. */
  recentHistory: number;
  /** Messages per room (and of dms) sent at login after a `since` mark; `more` says if there were more. */
  catchUpPerRoom: number;
  /** Messages per `history` reply when the client names no limit. */
  historyPageSize: number;
  /** Results per `search` reply when the client names no limit. */
  searchPageSize: number;
  /** A say or dm resent with the same ref within this long is the same message. */
  refWindowMs: number;
  /** Messages older than this are removed from the log. */
  retentionMs: number;
  maxMessagesPerRoom: number;
}

/** Who has an account, for dms to users who are not online. */
export interface AccountNames {
  /** The account's name as registered, or undefined if there is none. */
  nameOf(user: string): Promise<string | undefined>;
}

/** What a history, catch-up or search reply is about. */
type Subject = { room: string } | { with: string };

/** What the hub reports for the server's log and metrics: moderation is always written down. */
export interface HubEvents {
  /** A say or dm was stored (a retry answered with the first copy's ack is not another). */
  stored(message: StoredMessage): void;
  moderated(notice: ModerationNotice): void;
  /** An operator set a room's topic (a moderation action too; the log gets who and where, not the text). */
  topicSet(room: string, by: string): void;
}

export interface Entered {
  rooms: RoomView[];
  /** Online users for `welcome`, capped like any list. */
  online: string[];
  /**
   * Per room key, the newest message relayed when the connection was attached: it gets
   * everything after this live, so its login history (catchUp) stops here and repeats none of it.
   */
  historyUpTo: ReadonlyMap<string, number>;
  /** The same for the user's dms (missedDms). */
  dmsUpTo: number;
}

/** Bytes of a JSON string item beyond its characters: quotes and a comma. */
const LIST_ITEM_OVERHEAD_BYTES = 3;
/** Bytes of one rooms entry beyond its name and topic. */
const ROOM_SUMMARY_OVERHEAD_BYTES = 48;
/** Usernames and room names are ASCII; a topic may take up to 3 bytes per UTF-16 unit. */
const MAX_BYTES_PER_TOPIC_UNIT = 3;

export class Hub {
  constructor(
    private readonly directory: Directory,
    private readonly rooms: Rooms,
    private readonly log: MessageLog,
    private readonly fanout: Fanout,
    private readonly accounts: AccountNames,
    private readonly policy: HubPolicy,
    private readonly events: HubEvents,
    private readonly now: () => number,
  ) {}

  /** Creates the lobby on a new server. */
  async open(): Promise<void> {
    if (!this.rooms.get(this.policy.lobby)) await this.rooms.create(this.policy.lobby, "", this.now());
  }

  isAdmin(user: string): boolean {
    return this.policy.admins.has(userKey(user));
  }

  // Connections

  /** A logged-in connection enters: it joins all of the user's rooms. `banned` if banned server-wide. */
  async enter(user: string, peer: Peer): Promise<Entered> {
    const ban = this.rooms.serverBan(user);
    if (inForce(ban, this.now())) throw new ChatError("banned", banMessage("this server", ban));
    if (!this.rooms.knows(user)) await this.rooms.welcomeUser(user, this.policy.lobby, this.now());
    const first = this.directory.add(user, peer);
    const rooms = this.rooms.roomsOf(user);
    for (const room of rooms) this.fanout.attach(room.key, peer);
    if (first) this.announce(this.audible(rooms), { type: "online", user, ts: this.now() }, user);
    const online = this.cappedList(this.directory.onlineNames()).items;
    const [dmsUpTo, ...roomsUpTo] = await Promise.all([
      this.fanout.deliveredUpTo({ user: userKey(user) }),
      ...rooms.map((room) => this.fanout.deliveredUpTo({ room: room.key })),
    ]);
    const historyUpTo = new Map(rooms.map((room, index) => [room.key, roomsUpTo[index]!]));
    return { rooms, online, historyUpTo, dmsUpTo: dmsUpTo! };
  }

  leave(user: string, peer: Peer): void {
    const rooms = this.rooms.roomsOf(user);
    const audible = this.audible(rooms);
    for (const room of rooms) this.fanout.detach(room.key, peer);
    if (this.directory.remove(user, peer)) this.announce(audible, { type: "offline", user, ts: this.now() }, user);
  }

  /** A user whose last connections went with a node that died: their rooms hear that they went. */
  departed(user: string): void {
    this.announce(this.audible(this.rooms.roomsOf(user)), { type: "offline", user, ts: this.now() }, user);
  }

  /**
   * A room's history at login, up to `upTo` (see Entered): what came after the client's `since`
   * mark for it, or without a mark the recent messages.
   */
  async catchUp(room: RoomView, since: Since | undefined, upTo: number): Promise<HistoryFrame> {
    const mark = markFor(since, room.name, this.log.lastId());
    if (mark === undefined) return this.recent(room, upTo);
    const page = await this.log.page({ room: room.key }, { after: mark, before: upTo + 1, limit: this.policy.catchUpPerRoom });
    return this.historyFrame({ room: room.name }, page, false);
  }

  /**
   * The dms a login should get, up to `upTo` (see Entered), a page at a time, oldest first:
   * every one stored while the user was offline, however many, then with a `since` mark for dms
   * the others after it (one catch-up page). An offline dm counts as delivered once the caller
   * asks for the page after the one that held it, so a connection that goes meanwhile leaves
   * it for the next login.
   */
  async *missedDms(user: string, since: Since | undefined, upTo: number): AsyncGenerator<DirectMessage[]> {
    const before = upTo + 1;
    const handedOver = new Set<number>();
    for (let after = 0, more = true; more; ) {
      const page = await this.log.undelivered(user, { after, before, limit: this.policy.catchUpPerRoom });
      if (page.messages.length === 0) break;
      yield page.messages.map(dmFrame);
      after = page.messages.at(-1)!.id;
      await this.log.markDelivered(user, after);
      for (const message of page.messages) handedOver.add(message.id);
      more = page.more;
    }
    const mark = markFor(since, SINCE_DMS, this.log.lastId());
    if (mark === undefined) return;
    // Every dm after the mark, a page at a time: a client cannot page its dms back by itself.
    for (let after = mark, more = true; more; ) {
      const page = await this.log.dms(user, { after, before, limit: this.policy.catchUpPerRoom });
      if (page.messages.length === 0) break;
      const rest = page.messages.filter((message) => !handedOver.has(message.id));
      if (rest.length > 0) yield rest.map(dmFrame);
      after = page.messages.at(-1)!.id;
      more = page.more;
    }
  }

  private async recent(room: RoomView, upTo: number): Promise<HistoryFrame> {
    const page = await this.log.page({ room: room.key }, { before: upTo + 1, limit: this.policy.recentHistory });
    return this.historyFrame({ room: room.name }, page, true);
  }

  // Talking

  /**
   * Stores a room message, then relays it to the room's other connections (the sender's own
   * included) and acknowledges it to the sender. A ref already used within the window is
   * acknowledged with the first copy's id and not stored again.
   */
  say(user: string, peer: Peer, roomName: string | undefined, text: string, ref: string | undefined): Promise<void> {
    const room = this.roomFor(roomName ?? this.policy.lobby);
    // A retry of a message already accepted is answered as it was, whatever happened since.
    const retried = this.retried(user, peer, ref);
    if (retried) return retried;
    const key = userKey(user);
    const now = this.now();
    try {
      if (inForce(room.bans.get(key), now)) throw new ChatError("room_banned", banMessage(room.name, room.bans.get(key)!));
      if (!room.members.has(key)) throw notInRoom(room.name);
      const mute = room.mutes.get(key);
      if (inForce(mute, now)) throw new ChatError("muted", `You are muted in ${room.name}${untilText(mute)}`);
    } catch (refusal) {
      if (ref === undefined) throw refusal;
      return this.unlessStored(user, peer, ref, refusal);
    }
    return this.log.append({ room: { key: room.key, name: room.name }, from: user, text, ts: now, ref, connection: peer.id }).then((message) => {
      this.events.stored(message);
      this.fanout.relay(message, messageFrame(message), peer);
      this.acknowledge(peer, ref, message);
    });
  }

  /**
   * Stores a dm, then delivers it to every connection of the target and to the sender's other
   * connections. A dm to a registered user who is offline waits for their next login.
   */
  async dm(user: string, peer: Peer, to: string, text: string, ref: string | undefined): Promise<void> {
    // Checked before any lookup: lowercasing would otherwise turn look-alikes ("\u212Aelvin") into a real name.
    checkUsername(to);
    const name = this.directory.find(to)?.name ?? (await this.accounts.nameOf(to));
    if (name === undefined) throw new ChatError("no_such_user", `There is no account ${to}`);
    const retried = this.retried(user, peer, ref);
    if (retried) return retried;
    const offline = this.directory.find(name) === undefined;
    return this.log.append({ from: user, to: name, text, ts: this.now(), ref, undelivered: offline, connection: peer.id }).then(async (message) => {
      const recipientOnline = this.directory.find(name) !== undefined;
      this.events.stored(message);
      this.fanout.relay(message, messageFrame(message), peer);
      this.acknowledge(peer, ref, message);
      // They came online while it was being stored: it reached them now, not at a later login.
      if (offline && recipientOnline) await this.log.markDelivered(name, message.id);
    });
  }

  /**
   * A retried ref: answered with the first copy's ack once that copy is durable (or with its
   * failure); undefined if the ref is new.
   */
  private retried(user: string, peer: Peer, ref: string | undefined): Promise<void> | undefined {
    if (ref === undefined) return undefined;
    return this.log.findByRef(user, ref, this.now() - this.policy.refWindowMs)?.then((original) => this.acknowledge(peer, ref, original));
  }

  /**
   * A refused frame with a ref the log may hold after all (stored through another node of a
   * cluster before the ban or mute): answered as that first copy was, else refused.
   */
  private async unlessStored(user: string, peer: Peer, ref: string, refusal: unknown): Promise<void> {
    const original = await this.log.findStoredRef(user, ref, this.now() - this.policy.refWindowMs);
    if (!original) throw refusal;
    this.acknowledge(peer, ref, original);
  }

  private acknowledge(peer: Peer, ref: string | undefined, message: StoredRef): void {
    if (ref !== undefined) peer.send(encodeFrameBytes({ type: "ack", ref, id: message.id, ts: message.ts }));
  }

  // History, deleting and search

  /** A page of a room's messages or of the dms with one user, oldest first. */
  async history(user: string, query: { room?: string; with?: string; before?: number; after?: number; limit?: number }): Promise<HistoryFrame> {
    const bounds = { before: query.before, after: query.after, limit: query.limit ?? this.policy.historyPageSize };
    const keepNewest = query.after === undefined;
    if (query.room !== undefined) {
      const room = this.roomFor(query.room);
      if (!room.members.has(userKey(user))) throw notInRoom(room.name);
      return this.historyFrame({ room: room.name }, await this.log.page({ room: room.key }, bounds), keepNewest);
    }
    const peer = this.directory.find(checkUsername(query.with!))?.name ?? (await this.accounts.nameOf(query.with!));
    if (peer === undefined) throw new ChatError("no_such_user", `There is no account ${query.with}`);
    return this.historyFrame({ with: peer }, await this.log.page({ between: [user, peer] }, bounds), keepNewest);
  }

  /** Removes a message: its author may, a room's operators in their room, administrators anywhere. */
  async deleteMessage(user: string, id: number): Promise<void> {
    const message = await this.log.get(id);
    if (!message) throw new ChatError("no_such_message", `There is no message ${id}`);
    const key = userKey(user);
    const room = message.room && this.rooms.get(message.room.key);
    const allowed = userKey(message.from) === key || this.isAdmin(user) || (room !== undefined && room.ops.has(key));
    if (!allowed) throw new ChatError("not_allowed", "Only its author, the room's operators or an administrator may delete a message");
    await this.log.remove(id);
    if (message.room) {
      const notice: ServerFrame = { type: "deleted", room: message.room.name, id, by: user };
      if (room) this.toRoomAndActor(room, user, notice);
      else this.fanout.toUser(user, notice);
      return;
    }
    const to = message.to!;
    this.fanout.toUser(message.from, { type: "deleted", with: to, id, by: user });
    if (userKey(to) !== userKey(message.from)) this.fanout.toUser(to, { type: "deleted", with: message.from, id, by: user });
    if (userKey(user) !== userKey(message.from) && userKey(user) !== userKey(to)) this.fanout.toUser(user, { type: "deleted", with: to, id, by: user });
  }

  /** Messages with all the query's words, newest first, in the user's rooms (or one of them) and dms. */
  async search(user: string, query: string, roomName: string | undefined, limit: number | undefined): Promise<ServerFrame> {
    const words = searchWords(query);
    const wanted = limit ?? this.policy.searchPageSize;
    let scope: { rooms: string[]; dmsOf?: string };
    if (roomName !== undefined) {
      const room = this.roomFor(roomName);
      if (!room.members.has(userKey(user))) throw notInRoom(room.name);
      scope = { rooms: [room.key] };
    } else {
      scope = { rooms: this.rooms.roomsOf(user).map((room) => room.key), dmsOf: user };
    }
    const found = await this.log.search(words, scope, wanted + 1);
    const { messages, more } = this.capMessages(found.slice(0, wanted), false);
    return { type: "search", query, messages, more: more || found.length > wanted };
  }

  /** One retention step: removes what is past the age or the per-room count; returns how many. */
  trimHistory(): Promise<number> {
    return this.log.trim(this.now() - this.policy.retentionMs, this.policy.maxMessagesPerRoom);
  }

  // Rooms

  async join(user: string, peer: Peer, roomName: string): Promise<void> {
    checkRoomName(roomName);
    const key = userKey(user);
    const admin = this.isAdmin(user);
    let room = this.rooms.get(roomName);
    if (room?.members.has(key)) {
      // Already a member: answer this connection again, change nothing.
      await this.sendJoined(room, await this.fanout.deliveredUpTo({ room: room.key }), (frame) => peer.send(encodeFrameBytes(frame)));
      return;
    }
    if (room && !admin) {
      const ban = room.bans.get(key);
      if (inForce(ban, this.now())) throw new ChatError("room_banned", banMessage(room.name, ban));
      if (room.inviteOnly && !room.invites.has(key)) throw new ChatError("not_allowed", `${room.name} is invite-only`);
    }
    if (this.rooms.roomsOf(user).length >= this.policy.maxRoomsPerUser) {
      throw new ChatError("too_many_rooms", `You are in ${this.policy.maxRoomsPerUser} rooms already; part one first`);
    }
    const creating = room === undefined;
    if (creating) {
      if (this.rooms.count >= this.policy.maxRooms) throw new ChatError("too_many_rooms", "This server has as many rooms as it allows");
      if (!admin && this.rooms.createdBy(user) >= this.policy.maxRoomsCreatedPerUser) {
        throw new ChatError("too_many_rooms", `You have created ${this.policy.maxRoomsCreatedPerUser} rooms already`);
      }
      room = await this.rooms.create(roomName, user, this.now());
    }
    const joined = room!;
    await this.rooms.addMember(joined.key, user);
    // Its creator is its first operator; of two nodes creating it at once, only one made it.
    if (creating && joined.createdBy === key) await this.rooms.setOp(joined.key, user, true);
    if (joined.invites.has(key)) await this.rooms.setInvited(joined.key, user, false);
    this.attachUser(user, joined.key);
    const historyUpTo = await this.fanout.deliveredUpTo({ room: joined.key });
    await this.sendJoined(joined, historyUpTo, (frame) => this.fanout.toUser(user, frame));
    this.announce(this.audible([joined]), { type: "join", room: joined.name, user, ts: this.now() }, user);
  }

  async part(user: string, roomName: string): Promise<void> {
    const room = this.roomFor(roomName);
    if (!room.members.has(userKey(user))) throw notInRoom(room.name);
    const audible = this.audible([room]);
    await this.removeFromRoom(room, user);
    this.announce(audible, { type: "leave", room: room.name, user, ts: this.now() }, user);
  }

  who(user: string, roomName: string | undefined): ServerFrame {
    if (roomName === undefined) {
      const { items, more } = this.cappedList(this.directory.onlineNames());
      return { type: "who", users: items, more };
    }
    const room = this.visibleRoom(user, roomName);
    const online: string[] = [];
    if (this.directory.size < room.members.size) {
      for (const entry of this.directory.users()) if (room.members.has(userKey(entry.name))) online.push(entry.name);
    } else {
      for (const name of room.members.values()) if (this.directory.find(name)) online.push(name);
    }
    const { items, more } = this.cappedList(online);
    return { type: "who", room: room.name, users: items, more };
  }

  /** A page of rooms: public ones and the user's own, in name order. */
  roomList(user: string, after: string | undefined, limit: number): ServerFrame {
    const key = userKey(user);
    const admin = this.isAdmin(user);
    const rooms: RoomSummary[] = [];
    let bytes = 0;
    let more = false;
    for (const room of this.rooms.list(after === undefined ? undefined : roomKey(after))) {
      if (room.inviteOnly && !admin && !room.members.has(key)) continue;
      const size = ROOM_SUMMARY_OVERHEAD_BYTES + room.name.length + room.topic.length * MAX_BYTES_PER_TOPIC_UNIT;
      if (rooms.length === limit || bytes + size > this.policy.maxListBytes) {
        more = true;
        break;
      }
      bytes += size;
      rooms.push({ room: room.name, members: room.members.size, topic: room.topic });
    }
    return { type: "rooms", rooms, more };
  }

  async setTopic(user: string, roomName: string, topic: string): Promise<void> {
    const room = this.operatedRoom(user, roomName);
    checkTopic(topic, this.policy.maxTopicChars);
    await this.rooms.setTopic(room.key, topic);
    const frame: ServerFrame = { type: "topic", room: room.name, topic, by: user, ts: this.now() };
    this.toRoomAndActor(room, user, frame);
    this.events.topicSet(room.name, user);
  }

  async setInviteOnly(user: string, roomName: string, inviteOnly: boolean): Promise<void> {
    const room = this.operatedRoom(user, roomName);
    await this.rooms.setInviteOnly(room.key, inviteOnly);
    this.announceModeration(room, { type: "moderation", action: "mode", room: room.name, invite_only: inviteOnly, by: user, ts: this.now() });
  }

  // Moderation

  async moderate(actor: string, request: ModerationRequest): Promise<void> {
    const target = checkUsername(request.user);
    if (request.scope === "server") return this.moderateServer(actor, request, target);
    const room = this.operatedRoom(actor, request.room!);
    const targetKey = userKey(target);
    const isMember = room.members.has(targetKey);
    const name = room.members.get(targetKey) ?? target;
    const now = this.now();
    if (this.isAdmin(target) && !this.isAdmin(actor) && request.type !== "invite" && request.type !== "op") {
      throw new ChatError("not_allowed", `${name} is a server administrator`);
    }
    const needsMember = request.type === "kick" || request.type === "op" || request.type === "deop";
    if (needsMember && !isMember) throw new ChatError("not_in_room", `${name} is not in ${room.name}`);
    const notice = noticeFor(request, actor, room.name, name, now);
    switch (request.type) {
      case "kick":
        await this.log.settled();
        this.announceModeration(room, notice);
        await this.removeFromRoom(room, name);
        return;
      case "ban":
        // Refuse the user's next messages first, then let those already accepted reach the room
        // before the notice does.
        await this.rooms.restrict("ban", room.key, name, restrictionOf(request, actor, now));
        await this.log.settled();
        this.announceModeration(room, notice);
        if (isMember) await this.removeFromRoom(room, name);
        return;
      case "mute":
        await this.rooms.restrict("mute", room.key, name, restrictionOf(request, actor, now));
        await this.log.settled();
        break;
      case "unban":
        await this.rooms.lift("ban", room.key, name);
        break;
      case "unmute":
        await this.rooms.lift("mute", room.key, name);
        break;
      case "op":
      case "deop":
        await this.rooms.setOp(room.key, name, request.type === "op");
        break;
      case "invite":
        await this.rooms.setInvited(room.key, name, true);
        // The invitee hears of it even though they are not in the room yet.
        if (!isMember) this.fanout.toUser(name, notice);
        break;
      default: {
        const unreachable: never = request.type;
        throw new Error(`unhandled moderation ${String(unreachable)}`);
      }
    }
    this.announceModeration(room, notice);
  }

  private async moderateServer(actor: string, request: ModerationRequest, target: string): Promise<void> {
    if (!this.isAdmin(actor)) throw new ChatError("not_allowed", "Only server administrators ban server-wide");
    if (request.type === "unban") {
      await this.rooms.unbanServerWide(target);
      this.reportModeration(actor, noticeFor(request, actor, undefined, target, this.now()));
      return;
    }
    if (this.isAdmin(target)) throw new ChatError("not_allowed", `${target} is a server administrator`);
    const restriction = restrictionOf(request, actor, this.now());
    await this.rooms.banServerWide(target, restriction);
    const notice = noticeFor(request, actor, undefined, target, this.now());
    const rooms = this.rooms.roomsOf(target);
    this.fanout.toRooms(rooms.map((room) => room.key), notice, target);
    // An actor who shares one of those rooms has heard it there; only one outside them is told directly.
    if (rooms.some((room) => room.members.has(userKey(actor)))) this.events.moderated(notice);
    else this.reportModeration(actor, notice);
    this.fanout.disconnect(target, "banned", banMessage("this server", restriction));
  }

  /** Removes rooms that have had no members for the expiry time; returns their keys. */
  async removeExpiredRooms(): Promise<string[]> {
    const removed = await this.rooms.removeEmpty(this.now() - this.policy.roomExpiryMs, this.policy.lobby);
    for (const key of removed) await this.log.dropRoom(key);
    return removed;
  }

  // Helpers

  private roomFor(roomName: string): RoomView {
    checkRoomName(roomName);
    const room = this.rooms.get(roomName);
    if (!room) throw new ChatError("no_such_room", `There is no room ${roomName}`);
    return room;
  }

  /** A room the user may look into: public, or one they are in. */
  private visibleRoom(user: string, roomName: string): RoomView {
    const room = this.roomFor(roomName);
    if (room.inviteOnly && !room.members.has(userKey(user)) && !this.isAdmin(user)) throw notInRoom(room.name);
    return room;
  }

  private operatedRoom(user: string, roomName: string): RoomView {
    const room = this.roomFor(roomName);
    if (!room.ops.has(userKey(user)) && !this.isAdmin(user)) throw new ChatError("not_allowed", `You are not an operator of ${room.name}`);
    return room;
  }

  private attachUser(user: string, room: string): void {
    for (const peer of this.directory.find(user)?.peers ?? []) this.fanout.attach(room, peer);
  }

  private async removeFromRoom(room: RoomView, user: string): Promise<void> {
    await this.rooms.removeMember(room.key, user, this.now());
    for (const peer of this.directory.find(user)?.peers ?? []) this.fanout.detach(room.key, peer);
    this.fanout.toUser(user, { type: "parted", room: room.name });
  }

  /** `joined` and the room's recent history up to `historyUpTo`, when the connections were attached. */
  private async sendJoined(room: RoomView, historyUpTo: number, send: (frame: ServerFrame) => void): Promise<void> {
    const members = this.cappedList([...room.members.values()]).items;
    const ops = this.cappedList([...room.ops].map((key) => room.members.get(key) ?? key)).items;
    const history = await this.recent(room, historyUpTo);
    send({ type: "joined", room: room.name, topic: room.topic, invite_only: room.inviteOnly, members, ops });
    send(history);
  }

  private historyFrame(subject: Subject, page: Page, keepNewest: boolean): HistoryFrame {
    const { messages, more } = this.capMessages(page.messages, keepNewest);
    return { type: "history", ...subject, messages, more: more || page.more };
  }

  /** Keeps as many messages as fit the list allowance, from the newest or from the oldest end. */
  private capMessages(messages: StoredMessage[], keepNewest: boolean): { messages: LoggedMessage[]; more: boolean } {
    let bytes = 0;
    const order = keepNewest ? [...messages].reverse() : messages;
    const kept: LoggedMessage[] = [];
    for (const message of order) {
      bytes += encodedSizeBound(message);
      if (bytes > this.policy.maxListBytes) break;
      kept.push(messageFrame(message));
    }
    if (keepNewest) kept.reverse();
    return { messages: kept, more: kept.length < messages.length };
  }

  /**
   * The rooms quiet enough for presence and membership notices. Judged while the subject's
   * connections are in the audience, on arrival and on departure alike, so a room too crowded to
   * hear that someone came does not hear that they went either.
   */
  private audible(rooms: RoomView[]): string[] {
    return rooms.filter((room) => this.fanout.audience(room.key) <= this.policy.presenceMaxAudience).map((room) => room.key);
  }

  private announce(rooms: string[], frame: ServerFrame, user: string): void {
    if (rooms.length > 0) this.fanout.toRooms(rooms, frame, user);
  }

  private announceModeration(room: RoomView, notice: ModerationNotice): void {
    this.toRoomAndActor(room, notice.by, notice);
    this.events.moderated(notice);
  }

  private reportModeration(actor: string, notice: ModerationNotice): void {
    this.fanout.toUser(actor, notice);
    this.events.moderated(notice);
  }

  /** To the room, and to the actor's connections if they act from outside it (an admin). */
  private toRoomAndActor(room: RoomView, actor: string, frame: ServerFrame): void {
    this.fanout.toRoom(room.key, frame);
    if (!room.members.has(userKey(actor))) this.fanout.toUser(actor, frame);
  }

  private cappedList(names: string[]): { items: string[]; more: boolean } {
    let bytes = 0;
    for (let i = 0; i < names.length; i++) {
      bytes += names[i]!.length + LIST_ITEM_OVERHEAD_BYTES;
      if (bytes > this.policy.maxListBytes) return { items: names.slice(0, i), more: true };
    }
    return { items: names, more: false };
  }
}

/** The client's last-seen id for a room (or the dms): one number for all, or a map by name. */
function markFor(since: Since | undefined, name: string, newest: number): number | undefined {
  const mark = typeof since === "object" ? markIn(since, name) : since;
  // Past the newest id the log ever gave: a mark from before a restart of a log that forgot its
  // ids (`--message-log memory`). It says nothing about this log, so it counts as no mark.
  return mark !== undefined && mark > newest ? undefined : mark;
}

function markIn(since: Record<string, number>, name: string): number | undefined {
  const wanted = name.toLowerCase();
  for (const [key, id] of Object.entries(since)) if (key.toLowerCase() === wanted) return id;
  return undefined;
}

function notInRoom(room: string): ChatError {
  return new ChatError("not_in_room", `You are not in ${room}`);
}

function untilText(restriction: Restriction): string {
  return restriction.until === undefined ? "" : ` until ${new Date(restriction.until).toISOString()}`;
}

function banMessage(where: string, ban: Restriction): string {
  return `You are banned from ${where}${untilText(ban)}${ban.reason ? ` (${ban.reason})` : ""}`;
}

function restrictionOf(request: ModerationRequest, actor: string, now: number): Restriction {
  const restriction: Restriction = { by: actor };
  if (request.seconds !== undefined) restriction.until = now + request.seconds * 1000;
  if (request.reason !== undefined) restriction.reason = request.reason;
  return restriction;
}

function noticeFor(request: ModerationRequest, actor: string, room: string | undefined, user: string, now: number): ModerationNotice {
  const notice: ModerationNotice = { type: "moderation", action: request.type, user, by: actor, ts: now };
  if (room !== undefined) notice.room = room;
  else notice.scope = "server";
  if (request.reason !== undefined) notice.reason = request.reason;
  if (request.seconds !== undefined) notice.seconds = request.seconds;
  return notice;
}
