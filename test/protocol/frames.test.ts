import { describe, expect, test } from "bun:test";
import { ChatError } from "../../src/protocol/errors.ts";
import { decodeLine, encodeFrame, parseClientFrame, parseServerFrame, type ServerFrame } from "../../src/protocol/frames.ts";
import { checkPassword, checkText, checkUsername } from "../../src/protocol/validate.ts";

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

  test("invalid UTF-8 is bad_frame", () => {
    expect(codeOf(() => decodeLine(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])))).toBe("bad_frame");
  });
});

describe("parseServerFrame", () => {
  test("round-trips what the server encodes", () => {
    const frames: ServerFrame[] = [
      { type: "welcome", user: "a", online: ["a"], token: "t", limits: { messageRatePerSec: 1, messageBurst: 2, maxTextChars: 3, idleTimeoutMs: 4 } },
      { type: "history", messages: [{ type: "msg", id: 1, from: "a", text: "x", ts: 5 }] },
      { type: "error", code: "auth_failed", message: "no" },
      { type: "pong", id: "x" },
    ];
    for (const frame of frames) expect(parseServerFrame(encodeFrame(frame).trim())).toEqual(frame);
  });

  test("refuses unknown error codes and malformed history", () => {
    expect(codeOf(() => parseServerFrame('{"type":"error","code":"pwned","message":""}'))).toBe("bad_frame");
    expect(codeOf(() => parseServerFrame('{"type":"history","messages":[{"type":"dm"}]}'))).toBe("bad_frame");
  });
});

describe("content rules", () => {
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
