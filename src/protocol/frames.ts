// The wire protocol's frames: one JSON object per line with a string `type`. Client and server
// frames are discriminated unions; the parsers validate untrusted input field by field and turn
// anything malformed into a ChatError with the code the peer will see. A client ignores frame
// types and fields it does not know, so a newer server never breaks an older client.

import { ChatError, type ErrorCode } from "./errors.ts";
import { checkFingerprint } from "./validate.ts";

/** Operator actions on one user in a room (or, for ban/unban with scope "server", everywhere). */
export const MODERATION_ACTIONS = ["kick", "ban", "unban", "mute", "unmute", "op", "deop", "invite"] as const;
export type ModerationAction = (typeof MODERATION_ACTIONS)[number];

export interface ModerationRequest {
  type: ModerationAction;
  user: string;
  /** A room name; absent only for a server-wide ban or unban. */
  room?: string;
  scope?: "server";
  reason?: string;
  /** Duration of a ban or mute; forever when absent. */
  seconds?: number;
}

/** The last message id a client saw: anywhere, or per room name (and "@dm" for dms). */
export type Since = number | Record<string, number>;

/** The `since` key that stands for the user's dms. */
export const SINCE_DMS = "@dm";

export type ClientFrame =
  /** At least one credential: a password, the connection's client certificate (`key`), or both. */
  | { type: "register"; user: string; password?: string; key?: true }
  | { type: "login"; user: string; password: string; since?: Since }
  /** Logs in with the client certificate the connection presented in its TLS handshake. */
  | { type: "login"; user: string; key: true; since?: Since }
  | { type: "resume"; user: string; token: string; since?: Since }
  | { type: "say"; text: string; room?: string; ref?: string }
  | { type: "dm"; to: string; text: string; ref?: string }
  | { type: "history"; room?: string; with?: string; before?: number; after?: number; limit?: number }
  | { type: "delete"; id: number }
  | { type: "search"; query: string; room?: string; limit?: number }
  | { type: "join"; room: string }
  | { type: "part"; room: string }
  | { type: "rooms"; after?: string; limit?: number }
  | { type: "who"; room?: string }
  | { type: "topic"; room: string; topic: string }
  | { type: "mode"; room: string; invite_only: boolean }
  | ModerationRequest
  | { type: "ping"; id?: PingId }
  /** Without `old` only for an account with no password, from a session logged in by key. */
  | { type: "passwd"; old?: string; new: string }
  | { type: "key_add" }
  | { type: "keys" }
  | { type: "key_remove"; fingerprint: string }
  | { type: "quit" };

export type PingId = string | number;

export interface RoomMessage {
  type: "msg";
  id: number;
  room: string;
  from: string;
  text: string;
  ts: number;
}

export interface DirectMessage {
  type: "dm";
  id: number;
  from: string;
  to: string;
  text: string;
  ts: number;
}

export type LoggedMessage = RoomMessage | DirectMessage;

export interface RoomSummary {
  room: string;
  members: number;
  topic: string;
}

export interface ModerationNotice {
  type: "moderation";
  action: ModerationAction | "mode";
  by: string;
  ts: number;
  room?: string;
  scope?: "server";
  user?: string;
  reason?: string;
  seconds?: number;
  invite_only?: boolean;
}

/** A client certificate bound to an account; times in milliseconds since the epoch. */
export interface KeyInfo {
  fingerprint: string;
  added: number;
  /** The last login with it, or when it was added; kept to the day (see the account store). */
  last_used: number;
}

/** An error as the client sees it: the code may be one this client does not know yet. */
export interface ErrorFrame {
  type: "error";
  code: ErrorCode | (string & {});
  message: string;
  /** The `ref` of the frame this refuses, when it had one. */
  ref?: string;
}

export type ServerFrame =
  | { type: "registered"; user: string }
  | { type: "welcome"; user: string; online: string[]; rooms: string[]; token: string; limits: ServerLimitsInfo }
  | HistoryFrame
  | RoomMessage
  | DirectMessage
  | { type: "ack"; ref: string; id: number; ts: number }
  | { type: "deleted"; id: number; by: string; room?: string; with?: string }
  | { type: "search"; query: string; messages: LoggedMessage[]; more: boolean }
  | { type: "joined"; room: string; topic: string; invite_only: boolean; members: string[]; ops: string[] }
  | { type: "parted"; room: string }
  | { type: "join"; room: string; user: string; ts: number }
  | { type: "leave"; room: string; user: string; ts: number }
  | { type: "online"; user: string; ts: number }
  | { type: "offline"; user: string; ts: number }
  | { type: "rooms"; rooms: RoomSummary[]; more: boolean }
  | { type: "who"; room?: string; users: string[]; more: boolean }
  | { type: "topic"; room: string; topic: string; by: string; ts: number }
  | ModerationNotice
  | { type: "pong"; id?: PingId }
  | { type: "password_changed"; token: string }
  | { type: "key_added"; fingerprint: string }
  | { type: "keys"; keys: KeyInfo[] }
  /** Removing a key revokes the account's resume tokens; `token` replaces this connection's. */
  | { type: "key_removed"; fingerprint: string; token: string }
  | { type: "bye" }
  | ErrorFrame;

/** A page of a room's messages, or (with `with`) of the dms with one user; oldest first. */
export interface HistoryFrame {
  type: "history";
  room?: string;
  with?: string;
  messages: LoggedMessage[];
  more: boolean;
}

/** The limits a server enforces per connection, so clients can pace themselves instead of being refused. */
export interface ServerLimitsInfo {
  messageRatePerSec: number;
  messageBurst: number;
  maxTextChars: number;
  /** A connection silent this long is closed; clients ping well inside it. */
  idleTimeoutMs: number;
}

export type ClientFrameType = ClientFrame["type"];

const utf8 = new TextDecoder("utf-8", { fatal: true });
const MAX_PING_ID_CHARS = 64;
/** Longest moderation reason, in UTF-16 code units; it is shown to the whole room. */
export const MAX_REASON_CHARS = 300;
/** Longest ban or mute: ten years, in seconds (longer is "forever": leave `seconds` out). */
export const MAX_MODERATION_SECONDS = 10 * 365 * 24 * 3600;
/** Most rooms one `rooms` request may ask for. */
export const MAX_ROOMS_PAGE = 1000;
/** Longest client-chosen `ref` of a say or dm. */
export const MAX_REF_CHARS = 64;
/** Most messages one `history` request may ask for. */
export const MAX_HISTORY_PAGE = 500;
/** Most results one `search` may ask for. */
export const MAX_SEARCH_RESULTS = 100;
/** Longest search query, in UTF-16 code units. */
export const MAX_SEARCH_QUERY_CHARS = 256;
/** Most entries in a `since` map: every room a user may be in, and their dms, fit. */
export const MAX_SINCE_ENTRIES = 1_024;

/** Decodes one line's bytes as UTF-8; invalid sequences are a `bad_frame`. */
export function decodeLine(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ChatError("bad_frame", "Frame is not valid UTF-8");
  }
}

export function encodeFrame(frame: ClientFrame | ServerFrame): string {
  return JSON.stringify(frame) + "\n";
}

const utf8Encoder = new TextEncoder();

/** The frame as the bytes that go on the wire. */
export function encodeFrameBytes(frame: ClientFrame | ServerFrame): Uint8Array {
  return utf8Encoder.encode(encodeFrame(frame));
}

type Fields = Record<string, unknown>;

function isPlainObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseObject(line: string): Fields {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ChatError("bad_frame", "Frame is not valid JSON");
  }
  if (!isPlainObject(value)) throw new ChatError("bad_frame", "Frame must be a JSON object");
  return value;
}

function field(fields: Fields, name: string): unknown {
  return Object.hasOwn(fields, name) ? fields[name] : undefined;
}

function stringField(fields: Fields, name: string): string {
  const value = field(fields, name);
  if (typeof value !== "string") throw new ChatError("bad_frame", `Field "${name}" must be a string`);
  return value;
}

function optionalString(fields: Fields, name: string, maxChars = Number.POSITIVE_INFINITY): string | undefined {
  if (field(fields, name) === undefined) return undefined;
  const value = stringField(fields, name);
  if (value.length > maxChars) throw new ChatError("bad_frame", `Field "${name}" is longer than ${maxChars} characters`);
  return value;
}

function numberField(fields: Fields, name: string): number {
  const value = field(fields, name);
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ChatError("bad_frame", `Field "${name}" must be a number`);
  }
  return value;
}

function optionalCount(fields: Fields, name: string, max: number): number | undefined {
  const value = field(fields, name);
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new ChatError("bad_frame", `Field "${name}" must be a whole number from 1 to ${max}`);
  }
  return value;
}

/** A message id: a whole number of at least 1 (or 0 for "nothing seen yet" where `zero` allows it). */
function messageId(value: unknown, name: string, zero = false): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < (zero ? 0 : 1)) {
    throw new ChatError("bad_frame", `Field "${name}" must be a whole number of at least ${zero ? 0 : 1}`);
  }
  return value;
}

function optionalId(fields: Fields, name: string): number | undefined {
  const value = field(fields, name);
  return value === undefined ? undefined : messageId(value, name);
}

function sinceField(fields: Fields): Since | undefined {
  const value = field(fields, "since");
  if (value === undefined) return undefined;
  if (typeof value === "number") return messageId(value, "since", true);
  if (!isPlainObject(value)) throw new ChatError("bad_frame", 'Field "since" must be a message id or a map from room to message id');
  const entries = Object.entries(value);
  if (entries.length > MAX_SINCE_ENTRIES) throw new ChatError("bad_frame", `Field "since" has more than ${MAX_SINCE_ENTRIES} entries`);
  const since: Record<string, number> = {};
  for (const [key, id] of entries) since[key] = messageId(id, `since.${key.slice(0, 40)}`, true);
  return since;
}

function booleanField(fields: Fields, name: string): boolean {
  const value = field(fields, name);
  if (typeof value !== "boolean") throw new ChatError("bad_frame", `Field "${name}" must be true or false`);
  return value;
}

/** Copies the optional fields that are present, so a parsed frame has exactly the fields it was sent with. */
function withOptional<T extends object>(frame: T, optional: Record<string, unknown>): T {
  // for-in, not Object.entries: this runs for every say, and needs no array of pairs.
  for (const name in optional) {
    const value = optional[name];
    if (value !== undefined) (frame as Record<string, unknown>)[name] = value;
  }
  return frame;
}

function limitsField(fields: Fields): ServerLimitsInfo {
  const limits = field(fields, "limits");
  if (!isPlainObject(limits)) throw new ChatError("bad_frame", 'Field "limits" must be an object');
  return {
    messageRatePerSec: numberField(limits, "messageRatePerSec"),
    messageBurst: numberField(limits, "messageBurst"),
    maxTextChars: numberField(limits, "maxTextChars"),
    idleTimeoutMs: numberField(limits, "idleTimeoutMs"),
  };
}

function pingId(fields: Fields): PingId | undefined {
  if (!Object.hasOwn(fields, "id")) return undefined;
  const id = fields.id;
  if (typeof id === "number" && Number.isFinite(id)) return id;
  if (typeof id === "string" && id.length <= MAX_PING_ID_CHARS) return id;
  throw new ChatError("bad_frame", `Field "id" must be a number or a string of at most ${MAX_PING_ID_CHARS} characters`);
}

function frameType(fields: Fields): string {
  const type = field(fields, "type");
  if (typeof type !== "string") throw new ChatError("bad_frame", 'Frame needs a string "type"');
  return type;
}

function isModerationAction(type: string): type is ModerationAction {
  return (MODERATION_ACTIONS as readonly string[]).includes(type);
}

function moderationRequest(type: ModerationAction, fields: Fields): ModerationRequest {
  const room = optionalString(fields, "room");
  const scope = field(fields, "scope");
  if (scope !== undefined && scope !== "server") throw new ChatError("bad_frame", 'Field "scope" can only be "server"');
  if ((room === undefined) === (scope === undefined)) {
    throw new ChatError("bad_frame", 'A moderation frame names either a "room" or "scope":"server"');
  }
  if (scope !== undefined && type !== "ban" && type !== "unban") {
    throw new ChatError("bad_frame", 'Only ban and unban take "scope":"server"');
  }
  const seconds = optionalCount(fields, "seconds", MAX_MODERATION_SECONDS);
  if (seconds !== undefined && type !== "ban" && type !== "mute") {
    throw new ChatError("bad_frame", 'Only ban and mute take "seconds"');
  }
  return withOptional<ModerationRequest>(
    { type, user: stringField(fields, "user") },
    { room, scope, reason: optionalString(fields, "reason", MAX_REASON_CHARS), seconds },
  );
}

function stringArrayField(fields: Fields, name: string): string[] {
  const value = field(fields, name);
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    throw new ChatError("bad_frame", `Field "${name}" must be an array of strings`);
  }
  return value;
}

function objectArrayField<T>(fields: Fields, name: string, parse: (entry: Fields) => T): T[] {
  const value = field(fields, name);
  if (!Array.isArray(value)) throw new ChatError("bad_frame", `Field "${name}" must be an array`);
  return value.map((entry) => {
    if (!isPlainObject(entry)) throw new ChatError("bad_frame", `Entries of "${name}" must be objects`);
    return parse(entry);
  });
}

/** `"key":true` asks for the connection's client certificate; absent and false both mean no. */
function wantsKey(fields: Fields): boolean {
  return field(fields, "key") !== undefined && booleanField(fields, "key");
}

function registerFrame(fields: Fields): Extract<ClientFrame, { type: "register" }> {
  const password = optionalString(fields, "password");
  const key = wantsKey(fields);
  if (password === undefined && !key) throw new ChatError("bad_frame", 'A registration needs a "password", "key":true, or both');
  return withOptional<Extract<ClientFrame, { type: "register" }>>(
    { type: "register", user: stringField(fields, "user") },
    { password, key: key ? true : undefined },
  );
}

function loginFrame(fields: Fields): Extract<ClientFrame, { type: "login" }> {
  const user = stringField(fields, "user");
  const since = sinceField(fields);
  if (!wantsKey(fields)) return withOptional({ type: "login", user, password: stringField(fields, "password") }, { since });
  if (field(fields, "password") !== undefined) throw new ChatError("bad_frame", 'A login sends either a "password" or "key":true, not both');
  return withOptional({ type: "login", user, key: true }, { since });
}

/** Parses and shape-checks a frame sent by a client. Content rules (text, names) come later. */
export function parseClientFrame(line: string): ClientFrame {
  const fields = parseObject(line);
  const type = frameType(fields);
  switch (type) {
    case "register":
      return registerFrame(fields);
    case "login":
      return loginFrame(fields);
    case "resume":
      return withOptional({ type, user: stringField(fields, "user"), token: stringField(fields, "token") }, { since: sinceField(fields) });
    case "say":
      return withOptional(
        { type, text: stringField(fields, "text") },
        { room: optionalString(fields, "room"), ref: optionalString(fields, "ref", MAX_REF_CHARS) },
      );
    case "dm":
      return withOptional({ type, to: stringField(fields, "to"), text: stringField(fields, "text") }, { ref: optionalString(fields, "ref", MAX_REF_CHARS) });
    case "history": {
      const room = optionalString(fields, "room");
      const peer = optionalString(fields, "with");
      if ((room === undefined) === (peer === undefined)) throw new ChatError("bad_frame", 'A history query names either a "room" or "with"');
      return withOptional(
        { type },
        { room, with: peer, before: optionalId(fields, "before"), after: optionalId(fields, "after"), limit: optionalCount(fields, "limit", MAX_HISTORY_PAGE) },
      );
    }
    case "delete":
      return { type, id: messageId(field(fields, "id"), "id") };
    case "search": {
      const query = stringField(fields, "query");
      if (query.trim().length === 0 || query.length > MAX_SEARCH_QUERY_CHARS) {
        throw new ChatError("bad_frame", `A search query is 1 to ${MAX_SEARCH_QUERY_CHARS} characters with at least one word`);
      }
      return withOptional({ type, query }, { room: optionalString(fields, "room"), limit: optionalCount(fields, "limit", MAX_SEARCH_RESULTS) });
    }
    case "join":
    case "part":
      return { type, room: stringField(fields, "room") };
    case "rooms":
      return withOptional({ type }, { after: optionalString(fields, "after"), limit: optionalCount(fields, "limit", MAX_ROOMS_PAGE) });
    case "who":
      return withOptional({ type }, { room: optionalString(fields, "room") });
    case "topic":
      return { type, room: stringField(fields, "room"), topic: stringField(fields, "topic") };
    case "mode":
      return { type, room: stringField(fields, "room"), invite_only: booleanField(fields, "invite_only") };
    case "quit":
      return { type };
    case "ping": {
      const id = pingId(fields);
      return id === undefined ? { type } : { type, id };
    }
    case "passwd":
      return withOptional<Extract<ClientFrame, { type: "passwd" }>>({ type, new: stringField(fields, "new") }, { old: optionalString(fields, "old") });
    case "key_add":
    case "keys":
      return { type };
    case "key_remove":
      return { type, fingerprint: checkFingerprint(stringField(fields, "fingerprint")) };
    default:
      if (isModerationAction(type)) return moderationRequest(type, fields);
      throw new ChatError("bad_frame", `Unknown frame type "${type.slice(0, 32)}"`);
  }
}

function directMessage(fields: Fields): DirectMessage {
  return {
    type: "dm",
    id: numberField(fields, "id"),
    from: stringField(fields, "from"),
    to: stringField(fields, "to"),
    text: stringField(fields, "text"),
    ts: numberField(fields, "ts"),
  };
}

function loggedMessage(fields: Fields): LoggedMessage {
  const type = frameType(fields);
  if (type === "dm") return directMessage(fields);
  if (type !== "msg") throw new ChatError("bad_frame", "History entries must be msg or dm frames");
  return roomMessage(fields);
}

function roomMessage(fields: Fields): RoomMessage {
  return {
    type: "msg",
    id: numberField(fields, "id"),
    room: stringField(fields, "room"),
    from: stringField(fields, "from"),
    text: stringField(fields, "text"),
    ts: numberField(fields, "ts"),
  };
}

/** A notice of an action this client does not know (a newer server's) is `undefined`: ignored. */
function moderationNotice(fields: Fields): ModerationNotice | undefined {
  const action = stringField(fields, "action");
  if (action !== "mode" && !isModerationAction(action)) return undefined;
  const scope = field(fields, "scope");
  const inviteOnly = field(fields, "invite_only");
  return withOptional<ModerationNotice>(
    { type: "moderation", action, by: stringField(fields, "by"), ts: numberField(fields, "ts") },
    {
      room: optionalString(fields, "room"),
      scope: scope === "server" ? scope : undefined,
      user: optionalString(fields, "user"),
      reason: optionalString(fields, "reason"),
      seconds: field(fields, "seconds") === undefined ? undefined : numberField(fields, "seconds"),
      invite_only: inviteOnly === undefined ? undefined : booleanField(fields, "invite_only"),
    },
  );
}

/**
 * Parses a frame sent by a server; the client trusts the server's shapes no more than its text.
 * A frame type this client does not know is `undefined`: ignored, not fatal.
 */
export function parseServerFrame(line: string): ServerFrame | undefined {
  const fields = parseObject(line);
  const type = frameType(fields);
  switch (type) {
    case "registered":
      return { type, user: stringField(fields, "user") };
    case "welcome":
      return {
        type,
        user: stringField(fields, "user"),
        online: stringArrayField(fields, "online"),
        rooms: stringArrayField(fields, "rooms"),
        token: stringField(fields, "token"),
        limits: limitsField(fields),
      };
    case "history":
      return withOptional(
        { type, messages: objectArrayField(fields, "messages", loggedMessage), more: booleanField(fields, "more") },
        { room: optionalString(fields, "room"), with: optionalString(fields, "with") },
      );
    case "msg":
      return roomMessage(fields);
    case "dm":
      return directMessage(fields);
    case "ack":
      return { type, ref: stringField(fields, "ref"), id: numberField(fields, "id"), ts: numberField(fields, "ts") };
    case "deleted":
      return withOptional(
        { type, id: numberField(fields, "id"), by: stringField(fields, "by") },
        { room: optionalString(fields, "room"), with: optionalString(fields, "with") },
      );
    case "search":
      return {
        type,
        query: stringField(fields, "query"),
        messages: objectArrayField(fields, "messages", loggedMessage),
        more: booleanField(fields, "more"),
      };
    case "joined":
      return {
        type,
        room: stringField(fields, "room"),
        topic: stringField(fields, "topic"),
        invite_only: booleanField(fields, "invite_only"),
        members: stringArrayField(fields, "members"),
        ops: stringArrayField(fields, "ops"),
      };
    case "parted":
      return { type, room: stringField(fields, "room") };
    case "join":
    case "leave":
      return { type, room: stringField(fields, "room"), user: stringField(fields, "user"), ts: numberField(fields, "ts") };
    case "online":
    case "offline":
      return { type, user: stringField(fields, "user"), ts: numberField(fields, "ts") };
    case "rooms":
      return {
        type,
        rooms: objectArrayField(fields, "rooms", (entry) => ({
          room: stringField(entry, "room"),
          members: numberField(entry, "members"),
          topic: stringField(entry, "topic"),
        })),
        more: booleanField(fields, "more"),
      };
    case "who":
      return withOptional(
        { type, users: stringArrayField(fields, "users"), more: booleanField(fields, "more") },
        { room: optionalString(fields, "room") },
      );
    case "topic":
      return {
        type,
        room: stringField(fields, "room"),
        topic: stringField(fields, "topic"),
        by: stringField(fields, "by"),
        ts: numberField(fields, "ts"),
      };
    case "moderation":
      return moderationNotice(fields);
    case "pong": {
      const id = pingId(fields);
      return id === undefined ? { type } : { type, id };
    }
    case "password_changed":
      return { type, token: stringField(fields, "token") };
    case "key_added":
      return { type, fingerprint: stringField(fields, "fingerprint") };
    case "keys":
      return {
        type,
        keys: objectArrayField(fields, "keys", (entry) => ({
          fingerprint: stringField(entry, "fingerprint"),
          added: numberField(entry, "added"),
          last_used: numberField(entry, "last_used"),
        })),
      };
    case "key_removed":
      return { type, fingerprint: stringField(fields, "fingerprint"), token: stringField(fields, "token") };
    case "bye":
      return { type };
    case "error":
      return withOptional({ type, code: stringField(fields, "code"), message: stringField(fields, "message") }, { ref: optionalString(fields, "ref") });
    default:
      return undefined;
  }
}
