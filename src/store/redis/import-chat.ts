// Moves an embedded server's chat database (rooms, memberships, moderation, the message log)
// into a cluster's Redis, once: rooms the cluster already has are left alone and reported, and
// messages keep their ids, so clients' `since` marks stay right. History can only be copied into
// a cluster that has no messages yet: stream ids only grow, and new ids must follow old ones.

import type { Database } from "bun:sqlite";
import type { StoredMessage } from "../../core/message-log.ts";
import { LOBBY, roomKey } from "../../protocol/validate.ts";
import type { MessageRow } from "../sqlite/message-log.ts";
import { SqliteRooms } from "../sqlite/rooms.ts";
import type { RedisMessageLog } from "./message-log.ts";
import type { RedisRooms } from "./rooms.ts";

/** Messages read from the database and sent to Redis at a time (the client pipelines them). */
const IMPORT_BATCH_MESSAGES = 1_000;

export interface ChatImport {
  rooms: number;
  /** Rooms the cluster had already, not changed. */
  skippedRooms: string[];
  messages: number;
}

/** Why an import was refused before it changed anything. */
export class ChatImportError extends Error {}

interface ImportedRow extends MessageRow {
  delivered: number;
}

export async function importChat(db: Database, rooms: RedisRooms, log: RedisMessageLog, now: number): Promise<ChatImport> {
  const newestHere = db.query<{ id: number | null }, []>("SELECT MAX(id) AS id FROM messages").get()?.id ?? 0;
  if (newestHere > 0 && log.lastId() > 0) {
    throw new ChatImportError(`The cluster has messages already (ids up to ${log.lastId()}); history can only be imported into a cluster without any`);
  }
  const embedded = SqliteRooms.load(db);
  const result: ChatImport = { rooms: 0, skippedRooms: [], messages: 0 };
  for (const room of embedded.list(undefined)) {
    if (rooms.get(room.key) && room.key !== roomKey(LOBBY)) {
      result.skippedRooms.push(room.name);
      continue;
    }
    const created = rooms.get(room.key) ?? (await rooms.create(room.name, room.createdBy, room.createdAt));
    for (const name of room.members.values()) await rooms.addMember(created.key, name);
    for (const user of room.ops) await rooms.setOp(created.key, user, true);
    if (room.topic !== "") await rooms.setTopic(created.key, room.topic);
    if (room.inviteOnly) await rooms.setInviteOnly(created.key, true);
    for (const user of room.invites) await rooms.setInvited(created.key, user, true);
    for (const [user, ban] of room.bans) await rooms.restrict("ban", created.key, user, ban);
    for (const [user, mute] of room.mutes) await rooms.restrict("mute", created.key, user, mute);
    result.rooms++;
  }
  // Users seen before were given the lobby once; one who left it must not get it again.
  for (const { user } of db.query<{ user: string }, []>("SELECT user FROM known_users").all()) {
    if (rooms.knows(user)) continue;
    const inLobby = embedded.get(LOBBY)?.members.has(user) ?? false;
    await rooms.welcomeUser(user, LOBBY, now);
    if (!inLobby) await rooms.removeMember(LOBBY, user, now);
  }
  for (const ban of db.query<{ user: string; until: number | null; by: string; reason: string | null }, []>("SELECT user, until, by, reason FROM server_bans").all()) {
    await rooms.banServerWide(ban.user, { by: ban.by, ...(ban.until === null ? {} : { until: ban.until }), ...(ban.reason === null ? {} : { reason: ban.reason }) });
  }
  const page = db.query<ImportedRow, [number, number]>(
    "SELECT id, conv, room_name, sender_name, recipient_name, text, ts, delivered FROM messages WHERE id > ? ORDER BY id LIMIT ?",
  );
  for (let after = 0; ; ) {
    const rows = page.all(after, IMPORT_BATCH_MESSAGES);
    if (rows.length === 0) break;
    // Sent in id order down one pipelined connection, each batch after the one before: a
    // stream takes ids only upwards.
    await Promise.all(rows.map((row) => log.restore(toMessage(row), row.delivered === 0)));
    result.messages += rows.length;
    after = rows.at(-1)!.id;
  }
  return result;
}

function toMessage(row: ImportedRow): StoredMessage {
  const message: StoredMessage = { id: row.id, from: row.sender_name, text: row.text, ts: row.ts };
  if (row.room_name !== null) message.room = { key: row.conv, name: row.room_name };
  else message.to = row.recipient_name!;
  return message;
}
