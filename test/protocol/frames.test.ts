import { describe, expect, test } from "bun:test";
import { ChatError } from "../../src/protocol/errors.ts";
import { decodeLine, encodeFrame, parseClientFrame, parseServerFrame, type ServerFrame } from "../../src/protocol/frames.ts";
import { checkPassword, checkRoomName, checkText, checkUsername, roomKey } from "../../src/protocol/validate.ts";

const FINGERPRINT = "C7:6A:49:64:45:72:92:1B:BC:3B:76:19:16:F1:D4:A4:16:6F:44:C4:AD:1F:AB:1B:C7:9C:53:4F:5A:BE:AD:BE";

function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (error instanceof ChatError) return error.code;
    throw error;
  }
  throw new Error("expected a ChatError");
}

describe("parseClientFrame", () => {
  test("accepts every client frame type", () => {
    expect(parseClientFrame('{"type":"login","user":"a","password":"p"}')).toEqual({ type: "login", user: "a", password: "p" });
    expect(parseClientFrame('{"type":"register","user":"a","password":"p"}').type).toBe("register");
    expect(parseClientFrame('{"type":"resume","user":"a","token":"t"}')).toEqual({ type: "resume", user: "a", token: "t" });
    expect(parseClientFrame('{"type":"say","text":"hi","extra":1}')).toEqual({ type: "say", text: "hi" });
    expect(parseClientFrame('{"type":"dm","to":"b","text":"hi"}')).toEqual({ type: "dm", to: "b", text: "hi" });
    expect(parseClientFrame('{"type":"who"}')).toEqual({ type: "who" });
    expect(parseClientFrame('{"type":"ping","id":7}')).toEqual({ type: "ping", id: 7 });
    expect(parseClientFrame('{"type":"ping"}')).toEqual({ type: "ping" });
    expect(parseClientFrame('{"type":"passwd","old":"a","new":"b"}')).toEqual({ type: "passwd", old: "a", new: "b" });
    expect(parseClientFrame('{"type":"quit"}')).toEqual({ type: "quit" });
    expect(parseClientFrame('{"type":"say","room":"#r","text":"hi"}')).toEqual({ type: "say", room: "#r", text: "hi" });
    expect(parseClientFrame('{"type":"join","room":"#r"}')).toEqual({ type: "join", room: "#r" });
    expect(parseClientFrame('{"type":"part","room":"#r"}')).toEqual({ type: "part", room: "#r" });
    expect(parseClientFrame('{"type":"rooms"}')).toEqual({ type: "rooms" });
    expect(parseClientFrame('{"type":"rooms","after":"#m","limit":5}')).toEqual({ type: "rooms", after: "#m", limit: 5 });
    expect(parseClientFrame('{"type":"who","room":"#r"}')).toEqual({ type: "who", room: "#r" });
    expect(parseClientFrame('{"type":"topic","room":"#r","topic":""}')).toEqual({ type: "topic", room: "#r", topic: "" });
    expect(parseClientFrame('{"type":"mode","room":"#r","invite_only":true}')).toEqual({ type: "mode", room: "#r", invite_only: true });
    expect(parseClientFrame('{"type":"ban","room":"#r","user":"b","seconds":60,"reason":"spam"}')).toEqual({ type: "ban", room: "#r", user: "b", seconds: 60, reason: "spam" });
    expect(parseClientFrame('{"type":"ban","scope":"server","user":"b"}')).toEqual({ type: "ban", scope: "server", user: "b" });
    for (const action of ["kick", "unban", "mute", "unmute", "op", "deop", "invite"]) {
      expect(parseClientFrame(`{"type":"${action}","room":"#r","user":"b"}`)).toEqual({ type: action, room: "#r", user: "b" } as never);
    }
  });

  test("moderation frames name a room or the server scope, and only ban/mute take seconds", () => {
    for (const line of [
      '{"type":"ban","user":"b"}',
      '{"type":"ban","room":"#r","scope":"server","user":"b"}',
      '{"type":"kick","scope":"server","user":"b"}',
      '{"type":"ban","scope":"planet","user":"b"}',
      '{"type":"kick","room":"#r","user":"b","seconds":5}',
      '{"type":"ban","room":"#r","user":"b","seconds":0}',
      '{"type":"ban","room":"#r","user":"b","seconds":1.5}',
      `{"type":"ban","room":"#r","user":"b","reason":"${"x".repeat(301)}"}`,
      '{"type":"mode","room":"#r","invite_only":"yes"}',
      '{"type":"rooms","limit":0}',
      '{"type":"rooms","limit":1001}',
    ]) {
      expect(codeOf(() => parseClientFrame(line))).toBe("bad_frame");
    }
  });

  test("rejects malformed frames with bad_frame", () => {
    for (const line of [
      "not json",
      "[]",
      "null",
      '"say"',
      "{}",
      '{"type":5}',
      '{"type":"nope"}',
      '{"type":"say"}',
      '{"type":"say","text":5}',
      '{"type":"dm","text":"x"}',
      '{"type":"ping","id":{}}',
      `{"type":"ping","id":"${"x".repeat(65)}"}`,
      '{"type":"say","__proto__":{"text":"inherited"}}',
      '{"type":"toString"}',
    ]) {
      expect(codeOf(() => parseClientFrame(line))).toBe("bad_frame");
    }
  });

  test("key frames: register and login with the connection's certificate, key_add, keys, key_remove", () => {
    expect(parseClientFrame('{"type":"register","user":"a","key":true}')).toEqual({ type: "register", user: "a", key: true });
    expect(parseClientFrame('{"type":"register","user":"a","password":"p","key":true}')).toEqual({ type: "register", user: "a", password: "p", key: true });
    expect(parseClientFrame('{"type":"register","user":"a","password":"p","key":false}')).toEqual({ type: "register", user: "a", password: "p" });
    expect(parseClientFrame('{"type":"login","user":"a","key":true}')).toEqual({ type: "login", user: "a", key: true });
    expect(parseClientFrame('{"type":"login","user":"a","password":"p","key":false}')).toEqual({ type: "login", user: "a", password: "p" });
    expect(parseClientFrame('{"type":"passwd","new":"b"}')).toEqual({ type: "passwd", new: "b" });
    expect(parseClientFrame('{"type":"key_add"}')).toEqual({ type: "key_add" });
    expect(parseClientFrame('{"type":"keys"}')).toEqual({ type: "keys" });
    expect(parseClientFrame(`{"type":"key_remove","fingerprint":"${FINGERPRINT}"}`)).toEqual({ type: "key_remove", fingerprint: FINGERPRINT });
  });

  test("a fingerprint is compared in upper case whatever case it was sent in", () => {
    expect(parseClientFrame(`{"type":"key_remove","fingerprint":"${FINGERPRINT.toLowerCase()}"}`)).toEqual({ type: "key_remove", fingerprint: FINGERPRINT });
  });

  test("malformed key frames are bad_frame: no credential, both credentials, a bad fingerprint", () => {
    for (const line of [
      '{"type":"register","user":"a"}',
      '{"type":"register","user":"a","key":false}',
      '{"type":"register","user":"a","key":"yes"}',
      '{"type":"login","user":"a"}',
      '{"type":"login","user":"a","key":1}',
      '{"type":"login","user":"a","password":"p","key":true}',
      '{"type":"passwd","old":"a"}',
      '{"type":"key_remove"}',
      `{"type":"key_remove","fingerprint":"${FINGERPRINT.replaceAll(":", "")}"}`,
      `{"type":"key_remove","fingerprint":"${FINGERPRINT.slice(3)}"}`,
      `{"type":"key_remove","fingerprint":"${FINGERPRINT}:00"}`,
      `{"type":"key_remove","fingerprint":"SHA256:${FINGERPRINT}"}`,
      `{"type":"key_remove","fingerprint":"${FINGERPRINT.replace(/^../, "GG")}"}`,
    ]) {
      expect(codeOf(() => parseClientFrame(line))).toBe("bad_frame");
    }
  });

  test("invalid UTF-8 is bad_frame", () => {
    expect(codeOf(() => decodeLine(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])))).toBe("bad_frame");
  });
});

describe("parseServerFrame", () => {
  test("round-trips what the server encodes", () => {
    const frames: ServerFrame[] = [
      { type: "welcome", user: "a", online: ["a"], rooms: ["#lobby"], token: "t", limits: { messageRatePerSec: 1, messageBurst: 2, maxTextChars: 3, idleTimeoutMs: 4 } },
      { type: "history", room: "#r", messages: [{ type: "msg", id: 1, room: "#r", from: "a", text: "x", ts: 5 }], more: false },
      { type: "joined", room: "#r", topic: "t", invite_only: true, members: ["a", "b"], ops: ["a"] },
      { type: "parted", room: "#r" },
      { type: "join", room: "#r", user: "b", ts: 1 },
      { type: "leave", room: "#r", user: "b", ts: 1 },
      { type: "online", user: "b", ts: 1 },
      { type: "offline", user: "b", ts: 1 },
      { type: "rooms", rooms: [{ room: "#r", members: 2, topic: "" }], more: true },
      { type: "who", room: "#r", users: ["a"], more: false },
      { type: "who", users: ["a"], more: false },
      { type: "topic", room: "#r", topic: "hello", by: "a", ts: 2 },
      { type: "moderation", action: "ban", room: "#r", user: "b", by: "a", ts: 3, reason: "spam", seconds: 60 },
      { type: "moderation", action: "ban", scope: "server", user: "b", by: "a", ts: 3 },
      { type: "moderation", action: "mode", room: "#r", invite_only: true, by: "a", ts: 3 },
      { type: "error", code: "auth_failed", message: "no" },
      { type: "pong", id: "x" },
      { type: "key_added", fingerprint: FINGERPRINT },
      { type: "keys", keys: [{ fingerprint: FINGERPRINT, added: 1, last_used: 2 }] },
      { type: "key_removed", fingerprint: FINGERPRINT, token: "t" },
    ];
    for (const frame of frames) expect(parseServerFrame(encodeFrame(frame).trim())).toEqual(frame);
  });

  test("a newer server's frame types and fields are ignored, its error codes kept", () => {
    expect(parseServerFrame('{"type":"hologram","data":1}')).toBeUndefined();
    expect(parseServerFrame('{"type":"moderation","action":"shadowban","room":"#r","user":"b","by":"a","ts":1}')).toBeUndefined();
    expect(parseServerFrame('{"type":"parted","room":"#r","colour":"red"}')).toEqual({ type: "parted", room: "#r" });
    expect(parseServerFrame('{"type":"error","code":"quantum_flux","message":"new"}')).toEqual({ type: "error", code: "quantum_flux", message: "new" });
  });

  test("refuses malformed frames of known types", () => {
    expect(codeOf(() => parseServerFrame('{"type":"error","code":5,"message":""}'))).toBe("bad_frame");
    expect(codeOf(() => parseServerFrame('{"type":"history","room":"#r","more":false,"messages":[{"type":"dm"}]}'))).toBe("bad_frame");
    expect(codeOf(() => parseServerFrame('{"type":"joined","room":"#r"}'))).toBe("bad_frame");
  });
});

describe("content rules", () => {
  test("room names: # and 1-32 of letters, digits, _ -, one room whatever the case", () => {
    for (const good of ["#a", "#Rust", "#a_b-c", `#${"x".repeat(32)}`]) expect(checkRoomName(good)).toBe(good);
    for (const bad of ["", "#", "rust", "##x", `#${"x".repeat(33)}`, "#a b", "#a.b", "#é"]) expect(codeOf(() => checkRoomName(bad))).toBe("invalid_room");
    expect(roomKey("#Rust")).toBe(roomKey("#rUST"));
  });

  test("usernames: 1-32 of letters, digits, _ . -", () => {
    for (const good of ["a", "Alice_1.x-y", "x".repeat(32)]) expect(checkUsername(good)).toBe(good);
    for (const bad of ["", "x".repeat(33), "a b", "аlice", "al\u0000ice", "é"]) expect(codeOf(() => checkUsername(bad))).toBe("invalid_user");
  });

  test("passwords: 8 to 1024 UTF-8 bytes", () => {
    expect(checkPassword("12345678")).toBe("12345678");
    expect(codeOf(() => checkPassword("1234567"))).toBe("weak_password");
    expect(codeOf(() => checkPassword("é".repeat(513)))).toBe("weak_password");
  });

  test("text: non-empty, at most the limit in code points, no C0/C1/DEL", () => {
    expect(checkText("😀".repeat(10), 10)).toBe("😀".repeat(10));
    expect(codeOf(() => checkText("x".repeat(11), 10))).toBe("invalid_text");
    expect(codeOf(() => checkText("", 10))).toBe("invalid_text");
    for (const control of ["\u0007", "\u001b", "\t", "\u007f", "\u0085", "\u009b"]) {
      expect(codeOf(() => checkText(`a${control}b`, 10))).toBe("invalid_text");
    }
  });
});
