// The wire protocol's frames: one JSON object per line with a string `type`. Client and server
// frames are discriminated unions; the parsers validate untrusted input field by field and turn
// anything malformed into a ChatError with the code the peer will see.

import { ChatError, isErrorCode, type ErrorCode } from "./errors.ts";

export type ClientFrame =
  | { type: "register"; user: string; password: string }
  | { type: "login"; user: string; password: string }
  | { type: "resume"; user: string; token: string }
  | { type: "say"; text: string }
  | { type: "dm"; to: string; text: string }
  | { type: "who" }
  | { type: "ping"; id?: PingId }
  | { type: "passwd"; old: string; new: string }
  | { type: "quit" };

export type PingId = string | number;

export interface RoomMessage {
  type: "msg";
  id: number;
  from: string;
  text: string;
  ts: number;
}

export type ServerFrame =
  | { type: "registered"; user: string }
  | { type: "welcome"; user: string; online: string[]; token: string; limits: ServerLimitsInfo }
  | { type: "history"; messages: RoomMessage[] }
  | RoomMessage
  | { type: "dm"; from: string; to: string; text: string; ts: number }
  | { type: "join"; user: string; ts: number }
  | { type: "leave"; user: string; ts: number }
  | { type: "who"; users: string[] }
  | { type: "pong"; id?: PingId }
  | { type: "password_changed"; token: string }
  | { type: "bye" }
  | { type: "error"; code: ErrorCode; message: string };

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

function parseObject(line: string): Fields {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ChatError("bad_frame", "Frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ChatError("bad_frame", "Frame must be a JSON object");
  }
  return value as Fields;
}

function stringField(fields: Fields, name: string): string {
  const value = Object.hasOwn(fields, name) ? fields[name] : undefined;
  if (typeof value !== "string") throw new ChatError("bad_frame", `Field "${name}" must be a string`);
  return value;
}

function numberField(fields: Fields, name: string): number {
  const value = Object.hasOwn(fields, name) ? fields[name] : undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new ChatError("bad_frame", `Field "${name}" must be a number`);
  }
  return value;
}

function stringArrayField(fields: Fields, name: string): string[] {
  const value = Object.hasOwn(fields, name) ? fields[name] : undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    throw new ChatError("bad_frame", `Field "${name}" must be an array of strings`);
  }
  return value;
}

function limitsField(fields: Fields): ServerLimitsInfo {
  const value = Object.hasOwn(fields, "limits") ? fields.limits : undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ChatError("bad_frame", 'Field "limits" must be an object');
  }
  const limits = value as Fields;
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
  const type = Object.hasOwn(fields, "type") ? fields.type : undefined;
  if (typeof type !== "string") throw new ChatError("bad_frame", 'Frame needs a string "type"');
  return type;
}

/** Parses and shape-checks a frame sent by a client. Content rules (text, names) come later. */
export function parseClientFrame(line: string): ClientFrame {
  const fields = parseObject(line);
  const type = frameType(fields);
  switch (type) {
    case "register":
    case "login":
      return { type, user: stringField(fields, "user"), password: stringField(fields, "password") };
    case "resume":
      return { type, user: stringField(fields, "user"), token: stringField(fields, "token") };
    case "say":
      return { type, text: stringField(fields, "text") };
    case "dm":
      return { type, to: stringField(fields, "to"), text: stringField(fields, "text") };
    case "who":
    case "quit":
      return { type };
    case "ping": {
      const id = pingId(fields);
      return id === undefined ? { type } : { type, id };
    }
    case "passwd":
      return { type, old: stringField(fields, "old"), new: stringField(fields, "new") };
    default:
      throw new ChatError("bad_frame", `Unknown frame type "${type.slice(0, 32)}"`);
  }
}

function roomMessage(fields: Fields): RoomMessage {
  if (frameType(fields) !== "msg") throw new ChatError("bad_frame", "History entries must be msg frames");
  return {
    type: "msg",
    id: numberField(fields, "id"),
    from: stringField(fields, "from"),
    text: stringField(fields, "text"),
    ts: numberField(fields, "ts"),
  };
}

/** Parses a frame sent by a server; the client trusts the server's shapes no more than its text. */
export function parseServerFrame(line: string): ServerFrame {
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
        token: stringField(fields, "token"),
        limits: limitsField(fields),
      };
    case "history": {
      const messages = Object.hasOwn(fields, "messages") ? fields.messages : undefined;
      if (!Array.isArray(messages)) throw new ChatError("bad_frame", 'Field "messages" must be an array');
      return {
        type,
        messages: messages.map((entry) => {
          if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
            throw new ChatError("bad_frame", "History entries must be objects");
          }
          return roomMessage(entry as Fields);
        }),
      };
    }
    case "msg":
      return roomMessage(fields);
    case "dm":
      return {
        type,
        from: stringField(fields, "from"),
        to: stringField(fields, "to"),
        text: stringField(fields, "text"),
        ts: numberField(fields, "ts"),
      };
    case "join":
    case "leave":
      return { type, user: stringField(fields, "user"), ts: numberField(fields, "ts") };
    case "who":
      return { type, users: stringArrayField(fields, "users") };
    case "pong": {
      const id = pingId(fields);
      return id === undefined ? { type } : { type, id };
    }
    case "password_changed":
      return { type, token: stringField(fields, "token") };
    case "bye":
      return { type };
    case "error": {
      const code = Object.hasOwn(fields, "code") ? fields.code : undefined;
      if (!isErrorCode(code)) throw new ChatError("bad_frame", "Error frame has an unknown code");
      return { type, code, message: stringField(fields, "message") };
    }
    default:
      throw new ChatError("bad_frame", `Unknown frame type "${type.slice(0, 32)}"`);
  }
}
