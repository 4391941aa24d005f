// How received frames look on screen: "[HH:MM] name: text" with a stable colour per name, own
// name highlighted, other rooms' lines marked with the room, notices dimmed, search results with
// their date and id; the prompt with the current room and unread counts; and the plain
// "name: text" lines of scriptable mode. Every string from the network goes through the
// sanitiser here, the one door to the terminal.

import type { ErrorFrame, HistoryFrame, LoggedMessage, ModerationNotice, ServerFrame } from "../protocol/frames.ts";
import { roomKey } from "../protocol/validate.ts";
import { renderAction } from "./commands.ts";
import { formatDuration } from "./duration.ts";
import { keyLines } from "./key-format.ts";
import type { MessageFrame } from "./pending-acks.ts";
import type { Unread } from "./room-focus.ts";
import { sanitize, sanitizeName, sanitizeRoomName } from "./sanitize.ts";

export interface Style {
  color: boolean;
  /** Our own name, to highlight mentions. */
  self: string;
  /** The current room: messages from any other room are shown with the room's name. */
  room?: string;
  /** Formats a timestamp; injectable so tests do not depend on the time zone. */
  clock?: (ts: number) => string;
  /** Formats a timestamp's day, for search results that may be old; injectable like `clock`. */
  day?: (ts: number) => string;
}

export interface ScreenLine {
  text: string;
  /** The line mentions us: worth a bell when the user asked for one. */
  mention: boolean;
}

const RESET = "\x1b[0m";
const DIM = "\x1b[2m";
const BOLD = "\x1b[1m";
const INVERSE = "\x1b[7m";
const RED = "\x1b[31m";
// Readable on dark and light backgrounds; red is kept for errors.
const NAME_COLORS = [32, 33, 34, 35, 36, 92, 93, 94, 95, 96];

export function hhmm(ts: number): string {
  const date = new Date(ts);
  return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
}

/** The local day as YYYY-MM-DD. */
export function isoDay(ts: number): string {
  const date = new Date(ts);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
}

/** The same name always gets the same colour (FNV-1a over its lower-case form). */
export function nameColor(name: string): number {
  let hash = 0x811c9dc5;
  for (const char of name.toLowerCase()) {
    hash ^= char.codePointAt(0)!;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return NAME_COLORS[hash % NAME_COLORS.length]!;
}

export function mentions(text: string, self: string): boolean {
  const escaped = self.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  return new RegExp(`(^|[^A-Za-z0-9_.-])@?${escaped}($|[^A-Za-z0-9_-])`, "i").test(text);
}

function paint(style: Style, code: string, text: string): string {
  return style.color ? `${code}${text}${RESET}` : text;
}

function name(style: Style, user: string): string {
  const safe = sanitizeName(user);
  return style.color ? `\x1b[${nameColor(user)}m${safe}${RESET}` : safe;
}

/** Rooms with unread messages named in the prompt; the rest are counted as "+N". */
export const MAX_UNREAD_ROOMS_IN_PROMPT = 3;

/** The input prompt: "alice #rust> ", with unread counts of other rooms: "alice #rust [#lobby 3]> ". */
export function promptText(user: string, room: string | undefined, unread: readonly Unread[]): string {
  const counts = unread.slice(0, MAX_UNREAD_ROOMS_IN_PROMPT).map((entry) => `${sanitizeRoomName(entry.room)} ${entry.count}`);
  if (unread.length > MAX_UNREAD_ROOMS_IN_PROMPT) counts.push(`+${unread.length - MAX_UNREAD_ROOMS_IN_PROMPT}`);
  const where = room === undefined ? "" : ` ${sanitizeRoomName(room)}`;
  return `${sanitizeName(user)}${where}${counts.length > 0 ? ` [${counts.join(", ")}]` : ""}> `;
}

/** A line the client itself shows (status news dimmed, local errors red); never network text. */
export function localLine(text: string, kind: "status" | "error", color: boolean): string {
  return paint({ color, self: "" }, kind === "error" ? RED : DIM, text);
}

/** Screen lines for a frame in interactive mode; frames with nothing to show give none. */
export function screenLines(frame: ServerFrame, style: Style): ScreenLine[] {
  const time = `[${(style.clock ?? hhmm)(("ts" in frame ? frame.ts : undefined) ?? Date.now())}]`;
  const notice = (text: string): ScreenLine[] => [{ text: paint(style, DIM, `${time} ${text}`), mention: false }];
  switch (frame.type) {
    case "msg":
      return [roomLine(frame.room, frame.from, frame.text, frame.ts, style)];
    case "history":
      return frame.messages.map((message) => messageLine(message, style));
    case "search":
      return searchLines(frame, style);
    case "dm":
      return [dmLine(frame.from, frame.to, frame.text, frame.ts, style)];
    case "deleted":
      return notice(`* ${sanitizeName(frame.by)} deleted message ${frame.id}`);
    case "ack":
      return [];
    case "join":
      return notice(`* ${sanitizeName(frame.user)} joined ${sanitizeRoomName(frame.room)}`);
    case "leave":
      return notice(`* ${sanitizeName(frame.user)} left ${sanitizeRoomName(frame.room)}`);
    case "online":
      return notice(`* ${sanitizeName(frame.user)} is online`);
    case "offline":
      return notice(`* ${sanitizeName(frame.user)} went offline`);
    case "joined":
      return notice(`* You are in ${sanitizeRoomName(frame.room)}${frame.topic ? `: ${sanitize(frame.topic)}` : ""}`);
    case "parted":
      return notice(`* You left ${sanitizeRoomName(frame.room)}`);
    case "topic":
      return frame.topic === ""
        ? notice(`* ${sanitizeName(frame.by)} cleared the topic of ${sanitizeRoomName(frame.room)}`)
        : notice(`* ${sanitizeName(frame.by)} set the topic of ${sanitizeRoomName(frame.room)}: ${sanitize(frame.topic)}`);
    case "moderation":
      return notice(`* ${moderationText(frame)}`);
    case "rooms":
      return roomListLines(frame);
    case "who": {
      const where = frame.room === undefined ? "Online" : `Online in ${sanitizeRoomName(frame.room)}`;
      const more = frame.more ? ", and more" : "";
      return [{ text: `${where} (${frame.users.length}${more}): ${frame.users.map((user) => name(style, user)).join(", ")}`, mention: false }];
    }
    case "error":
      // A newer server may send a code this client does not know: shown all the same.
      return [{ text: paint(style, RED, `! ${sanitize(frame.code)}: ${sanitize(frame.message)}`), mention: false }];
    case "key_added":
    case "keys":
    case "key_removed":
      return keyLines(frame).map((text) => ({ text, mention: false }));
    case "welcome":
    case "registered":
    case "pong":
    case "password_changed":
    case "bye":
      return [];
  }
}

/**
 * A message of ours the server refused, in place of the line it would have had: the error and
 * the text that was not sent.
 */
export function refusalLine(error: ErrorFrame, message: MessageFrame, style: Style): string {
  const where = message.type === "dm" ? ` to ${sanitizeName(message.to)}` : "";
  return paint(style, RED, `! ${sanitize(error.code)}: ${sanitize(error.message)} (not sent${where}: ${sanitize(message.text)})`);
}

/** The dimmed line above a page of older messages, or in place of an empty one. */
export function olderHeading(frame: HistoryFrame, color: boolean): string {
  const where = frame.room === undefined ? `with ${sanitizeName(frame.with ?? "")}` : `in ${sanitizeRoomName(frame.room)}`;
  const text = frame.messages.length === 0 ? `-- No older messages ${where}` : `-- Older messages ${where}:`;
  return localLine(text, "status", color);
}

function messageLine(message: LoggedMessage, style: Style): ScreenLine {
  return message.type === "msg" ? roomLine(message.room, message.from, message.text, message.ts, style) : dmLine(message.from, message.to, message.text, message.ts, style);
}

/** Results may come from any time and room: each line shows its day, its room, and the id /delete takes. */
function searchLines(frame: Extract<ServerFrame, { type: "search" }>, style: Style): ScreenLine[] {
  const count = frame.messages.length;
  const found = count === 0 ? "nothing found" : `${count} message${count === 1 ? "" : "s"}${frame.more ? " and more" : ""}, newest first`;
  const heading: ScreenLine = { text: paint(style, DIM, `-- Search "${sanitize(frame.query)}": ${found}`), mention: false };
  const anyRoom: Style = { ...style, room: undefined };
  const lines = frame.messages.map((message) => {
    const line = message.type === "msg" ? roomLine(message.room, message.from, message.text, message.ts, anyRoom, true) : messageLine(message, anyRoom);
    return { text: `id ${message.id} ${(style.day ?? isoDay)(message.ts)} ${line.text}`, mention: false };
  });
  return [heading, ...lines];
}

function roomLine(room: string | undefined, from: string, text: string, ts: number, style: Style, withRoom = false): ScreenLine {
  const time = `[${(style.clock ?? hhmm)(ts)}]`;
  const elsewhere = room !== undefined && (withRoom || (style.room !== undefined && roomKey(room) !== roomKey(style.room)));
  const action = renderAction(from, text);
  const mention = from !== style.self && mentions(text, style.self);
  const body = action ?? `${name(style, from)}: ${sanitize(text)}`;
  return { text: `${time} ${elsewhere ? `${sanitizeRoomName(room)} ` : ""}${mention ? paint(style, INVERSE, body) : body}`, mention };
}

const MODERATION_VERBS: Record<ModerationNotice["action"], string> = {
  kick: "kicked USER from ROOM",
  ban: "banned USER from ROOM",
  unban: "lifted the ban on USER in ROOM",
  mute: "muted USER in ROOM",
  unmute: "unmuted USER in ROOM",
  op: "made USER an operator of ROOM",
  deop: "removed USER as an operator of ROOM",
  invite: "invited USER to ROOM",
  mode: "made ROOM MODE",
};

/** "bob banned eve from #rust for 10m (spam)"; a server-wide ban names "the server". */
function moderationText(notice: ModerationNotice): string {
  const verb = MODERATION_VERBS[notice.action]
    .replace("USER", sanitizeName(notice.user ?? ""))
    .replace("ROOM", notice.room === undefined ? "the server" : sanitizeRoomName(notice.room))
    .replace("MODE", notice.invite_only ? "invite-only" : "open to everyone");
  const duration = notice.seconds === undefined ? "" : ` for ${formatDuration(notice.seconds)}`;
  const reason = notice.reason ? ` (${sanitize(notice.reason)})` : "";
  return `${sanitizeName(notice.by)} ${verb}${duration}${reason}`;
}

function roomListLines(frame: Extract<ServerFrame, { type: "rooms" }>): ScreenLine[] {
  const lines = frame.rooms.map((room) => `  ${sanitizeRoomName(room.room)} (${room.members})${room.topic ? ` ${sanitize(room.topic)}` : ""}`);
  const last = frame.rooms.at(-1);
  if (frame.more && last) lines.push(`  … more with /rooms ${sanitizeRoomName(last.room)}`);
  return [`Rooms (${frame.rooms.length}):`, ...lines].map((text) => ({ text, mention: false }));
}

function dmLine(from: string, to: string, text: string, ts: number, style: Style): ScreenLine {
  const time = `[${(style.clock ?? hhmm)(ts)}]`;
  const direction = from === style.self ? `→ ${name(style, to)}` : `${name(style, from)} → you`;
  return { text: `${time} ${paint(style, BOLD, "[dm]")} ${direction}: ${sanitize(text)}`, mention: from !== style.self };
}

function plainDm(frame: { from: string; to: string; text: string }): string {
  return `[dm] ${sanitizeName(frame.from)} -> ${sanitizeName(frame.to)}: ${sanitize(frame.text)}`;
}

/**
 * Scriptable mode's stdout: one "name: text" line per message, nothing else; "#room name: text"
 * when `withRoom` (more than one room is printed).
 */
export function plainLines(frame: ServerFrame, withRoom: boolean): string[] {
  switch (frame.type) {
    case "msg":
      return [plainMessage(frame.room, frame.from, frame.text, withRoom)];
    case "history":
    case "search":
      return frame.messages.map((message) => (message.type === "msg" ? plainMessage(message.room, message.from, message.text, withRoom) : plainDm(message)));
    case "dm":
      return [plainDm(frame)];
    default:
      return [];
  }
}

function plainMessage(room: string, from: string, text: string, withRoom: boolean): string {
  const line = renderAction(from, text) ?? `${sanitizeName(from)}: ${sanitize(text)}`;
  return withRoom ? `${sanitizeRoomName(room)} ${line}` : line;
}
