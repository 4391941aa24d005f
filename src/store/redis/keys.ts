// Where cluster state lives in Redis: every key and channel name, and the shape of what is
// published, in one place so the stores, the fanout and the import agree. Nothing here talks to
// Redis.

import type { ServerFrame } from "../../protocol/frames.ts";
import type { StoredMessage } from "../../core/message-log.ts";

const PREFIX = "tlschat:";

export const keys = {
  // Accounts (auth/): one hash per account, which account holds each key (a hash from
  // fingerprint to user key), the resume-token secret, login throttle counters.
  account: (userKey: string) => `${PREFIX}account:${userKey}`,
  keyOwners: `${PREFIX}key-owners`,
  tokenSecret: `${PREFIX}token-secret`,
  throttle: (kind: string, subject: string) => `${PREFIX}throttle:${kind}:${subject}`,

  // Message log: one id counter for the cluster, one stream per conversation (room key, or the
  // dm conversation key), whose entry ids are `<message id>-0`. The log's scripts build the
  // per-conversation and per-user names from these functions' prefixes (called with ""), so
  // each of those must stay a prefix followed by its argument.
  messageId: `${PREFIX}message-id`,
  conversation: (conversationKey: string) => `${PREFIX}log:${conversationKey}`,
  messageWhere: `${PREFIX}message-conversation`,
  ref: (senderKey: string, ref: string) => `${PREFIX}ref:${senderKey}:${ref}`,
  undelivered: (userKey: string) => `${PREFIX}undelivered:${userKey}`,
  /** Ids of every dm a user sent or received (a sorted set scored by id). */
  userDms: (userKey: string) => `${PREFIX}dms:${userKey}`,
  /** Every conversation with messages, scored by its oldest message's timestamp (retention by age). */
  conversationsByAge: `${PREFIX}log-conversations`,
  /** Every room with messages, scored by how many (retention by count). */
  roomLengths: `${PREFIX}log-room-lengths`,

  // Rooms: state plus a change stream every node applies in order. The stream's entry ids are
  // `<change sequence>-0`, the sequence coming from one counter.
  roomChanges: `${PREFIX}room-changes`,
  roomSequence: `${PREFIX}room-change-seq`,
  /** Every room's key starts with this; the part comes first, so no room key can mimic another part. */
  roomPrefix: `${PREFIX}room:`,
  room: (roomKey: string, part: RoomPart) => `${PREFIX}room:${part}:${roomKey}`,
  /** The set of room keys. */
  roomIndex: `${PREFIX}rooms`,
  knownUsers: `${PREFIX}known-users`,
  /** User key to a JSON Restriction. */
  serverBans: `${PREFIX}server-bans`,

  // Presence: which users each node has, and each node's last heartbeat.
  nodes: `${PREFIX}nodes`,
  nodeUsers: (nodeId: string) => `${PREFIX}node-users:${nodeId}`,
} as const;

/**
 * The keys of one room: `meta` a hash (name, topic, invite_only, created_by, created_at, seq of
 * the creating change, empty_since while it has no members); `members` user key to name;
 * `joined` a sorted set of user keys scored by the sequence of the change that made them members
 * (join order, across rooms too); `ops` and `invites` sets of user keys; `bans` and `mutes` user
 * key to a JSON Restriction.
 */
export const ROOM_PARTS = ["meta", "members", "joined", "ops", "bans", "mutes", "invites"] as const;
export type RoomPart = (typeof ROOM_PARTS)[number];

// The log's append script builds room and user channel names from these prefixes (called with
// ""), as it does keys: each must stay a prefix followed by its argument.
export const channels = {
  /** A room's messages and notices. */
  room: (roomKey: string) => `${PREFIX}to-room:${roomKey}`,
  /** A user's dms and the notices for all their connections. */
  user: (userKey: string) => `${PREFIX}to-user:${userKey}`,
  /** What every node hears: notices for several rooms at once, presence, node deaths. */
  everyone: `${PREFIX}to-everyone`,
  /** Each room change as its script stored it: the same JSON as the change stream's entry. */
  roomChanges: `${PREFIX}room-changes`,
} as const;

/** A message the log's append script stored and published in the same step. */
export type PublishedMessage = { kind: "message"; message: StoredMessage; node?: string; connection?: number };

/**
 * What travels on the room and user channels. `node` and `connection` name the sending
 * connection, which its own node skips (it has its ack, or it is the actor).
 */
export type Published =
  | PublishedMessage
  /** Messages one append batch stored one after another for the same channel, in id order. */
  | { kind: "batch"; messages: PublishedMessage[] }
  /** A notice (moderation, topic, join, ...) for the channel's audience. */
  | { kind: "frame"; frame: ServerFrame; node?: string; connection?: number }
  /** Close every connection of the user (a server-wide ban). */
  | { kind: "disconnect"; user: string; code: string; message: string };

/** On the everyone channel. */
export type Broadcast =
  /** One delivery per connection in any of the rooms, but the user's own. */
  | { kind: "rooms"; rooms: string[]; frame: ServerFrame; exceptUser?: string }
  | { kind: "online"; node: string; user: string }
  | { kind: "offline"; node: string; user: string }
  /** A node stopped or stopped beating: its users are gone with it. */
  | { kind: "node-gone"; node: string };
