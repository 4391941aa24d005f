// How received frames look on screen: "[HH:MM] name: text" with a stable colour per name, own
// name highlighted, notices dimmed; and the plain "name: text" lines of scriptable mode. Every
// string from the network goes through the sanitiser here, the one door to the terminal.

import type { ClientFrame, ServerFrame } from "../protocol/frames.ts";
import { renderAction } from "./commands.ts";
import { keyLines } from "./key-format.ts";
import { sanitize, sanitizeName } from "./sanitize.ts";

export interface Style {
  color: boolean;
  /** Our own name, to highlight mentions. */
  self: string;
  /** Formats a timestamp; injectable so tests do not depend on the time zone. */
  clock?: (ts: number) => string;
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
      return [roomLine(frame.from, frame.text, frame.ts, style)];
    case "history":
      return frame.messages.map((message) => roomLine(message.from, message.text, message.ts, style));
    case "dm":
      return [dmLine(frame.from, frame.to, frame.text, frame.ts, style)];
    case "join":
      return notice(`* ${sanitizeName(frame.user)} joined ${sanitizeName(frame.room)}`);
    case "leave":
      return notice(`* ${sanitizeName(frame.user)} left ${sanitizeName(frame.room)}`);
    case "online":
      return notice(`* ${sanitizeName(frame.user)} is online`);
    case "offline":
      return notice(`* ${sanitizeName(frame.user)} went offline`);
    case "joined":
      return notice(`* You are in ${sanitizeName(frame.room)}${frame.topic ? `: ${sanitize(frame.topic)}` : ""}`);
    case "parted":
      return notice(`* You left ${sanitizeName(frame.room)}`);
    case "topic":
      return notice(`* ${sanitizeName(frame.by)} set the topic of ${sanitizeName(frame.room)}: ${sanitize(frame.topic)}`);
    case "moderation":
      return notice(`* ${sanitizeName(frame.by)}: ${frame.action} ${sanitizeName(frame.user ?? "")} ${sanitizeName(frame.room ?? "server-wide")}${frame.reason ? ` (${sanitize(frame.reason)})` : ""}`);
    case "rooms":
      return [{ text: `Rooms: ${frame.rooms.map((room) => `${sanitizeName(room.room)} (${room.members})`).join(", ")}`, mention: false }];
    case "who":
      return [{ text: `Online (${frame.users.length}): ${frame.users.map((user) => name(style, user)).join(", ")}`, mention: false }];
    case "error":
      return [{ text: paint(style, RED, `! ${frame.code}: ${sanitize(frame.message)}`), mention: false }];
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
 * The screen line for a room message or dm we just sent, drawn from the frame we sent because
 * the server does not echo our own messages back; undefined for frames that are not messages.
 */
export function ownMessageLine(frame: ClientFrame, style: Style, ts = Date.now()): string | undefined {
  if (frame.type === "say") return roomLine(style.self, frame.text, ts, style).text;
  if (frame.type === "dm") return dmLine(style.self, frame.to, frame.text, ts, style).text;
  return undefined;
}

function roomLine(from: string, text: string, ts: number, style: Style): ScreenLine {
  const time = `[${(style.clock ?? hhmm)(ts)}]`;
  const action = renderAction(from, text);
  const mention = from !== style.self && mentions(text, style.self);
  const body = action ?? `${name(style, from)}: ${sanitize(text)}`;
  return { text: `${time} ${mention ? paint(style, INVERSE, body) : body}`, mention };
}

function dmLine(from: string, to: string, text: string, ts: number, style: Style): ScreenLine {
  const time = `[${(style.clock ?? hhmm)(ts)}]`;
  const direction = from === style.self ? `→ ${name(style, to)}` : `${name(style, from)} → you`;
  return { text: `${time} ${paint(style, BOLD, "[dm]")} ${direction}: ${sanitize(text)}`, mention: from !== style.self };
}

/** Scriptable mode's stdout: one "name: text" line per message, nothing else. */
export function plainLines(frame: ServerFrame): string[] {
  switch (frame.type) {
    case "msg":
      return [plainMessage(frame.from, frame.text)];
    case "history":
      return frame.messages.map((message) => plainMessage(message.from, message.text));
    case "dm":
      return [`[dm] ${sanitizeName(frame.from)} -> ${sanitizeName(frame.to)}: ${sanitize(frame.text)}`];
    default:
      return [];
  }
}

function plainMessage(from: string, text: string): string {
  return renderAction(from, text) ?? `${sanitizeName(from)}: ${sanitize(text)}`;
}
