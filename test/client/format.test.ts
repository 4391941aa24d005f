import { describe, expect, test } from "bun:test";
import { localLine, mentions, nameColor, ownMessageLine, plainLines, screenLines } from "../../src/client/format.ts";
import type { ServerFrame } from "../../src/protocol/frames.ts";

const plain = { color: false, self: "alice", clock: () => "12:34" };
const colored = { ...plain, color: true };
const msg = (from: string, text: string): ServerFrame => ({ type: "msg", id: 1, room: "#lobby", from, text, ts: 0 });

describe("screenLines", () => {
  test("room messages are [HH:MM] name: text", () => {
    expect(screenLines(msg("bob", "hello"), plain)).toEqual([{ text: "[12:34] bob: hello", mention: false }]);
  });

  test("a mention of our own name is flagged and shown in reverse video", () => {
    const [line] = screenLines(msg("bob", "hey @Alice, lunch?"), colored);
    expect(line!.mention).toBe(true);
    expect(line!.text).toContain("\x1b[7m");
    expect(screenLines(msg("bob", "malice aforethought"), plain)[0]!.mention).toBe(false);
  });

  test("names get a stable colour; notices are dimmed; no colour codes without colour", () => {
    expect(nameColor("bob")).toBe(nameColor("BOB"));
    expect(screenLines(msg("bob", "x"), colored)[0]!.text).toContain(`\x1b[${nameColor("bob")}mbob`);
    expect(screenLines({ type: "join", room: "#lobby", user: "bob", ts: 0 }, colored)[0]!.text).toStartWith("\x1b[2m");
    for (const frame of [msg("bob", "x"), { type: "join", room: "#lobby", user: "bob", ts: 0 } as ServerFrame]) {
      expect(screenLines(frame, plain)[0]!.text).not.toContain("\x1b");
    }
  });

  test("everything from the server is sanitised before it is shown", () => {
    const hostile: ServerFrame[] = [
      msg("bob", "\x1b[2Jgotcha"),
      msg("b\x1b[31mob", "x"),
      { type: "dm", from: "bob", to: "alice", text: "\u202etxt.exe", ts: 0 },
      { type: "error", code: "bad_frame", message: "\x07\x1b]0;title\x07" },
      { type: "who", users: ["\x1b[H"], more: false },
    ];
    for (const frame of hostile) {
      for (const line of screenLines(frame, plain)) expect(line.text).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    }
  });

  test("/me actions, dms in both directions, and frames with nothing to show", () => {
    expect(screenLines(msg("bob", "/me waves"), plain)[0]!.text).toBe("[12:34] * bob waves");
    expect(screenLines({ type: "dm", from: "bob", to: "alice", text: "psst", ts: 0 }, plain)[0]).toEqual({ text: "[12:34] [dm] bob → you: psst", mention: true });
    expect(screenLines({ type: "dm", from: "alice", to: "bob", text: "hi", ts: 0 }, plain)[0]!.text).toBe("[12:34] [dm] → bob: hi");
    expect(screenLines({ type: "pong" }, plain)).toEqual([]);
  });
});

describe("ownMessageLine", () => {
  test("what we send looks like the line the server's copy would give", () => {
    expect(ownMessageLine({ type: "say", text: "hello" }, plain, 0)).toBe(screenLines(msg("alice", "hello"), plain)[0]!.text);
    expect(ownMessageLine({ type: "say", text: "/me waves" }, plain, 0)).toBe("[12:34] * alice waves");
    expect(ownMessageLine({ type: "dm", to: "bob", text: "hi" }, plain, 0)).toBe("[12:34] [dm] → bob: hi");
  });

  test("our own name in our own message is not a mention", () => {
    expect(ownMessageLine({ type: "say", text: "alice here" }, colored, 0)).not.toContain("\x1b[7m");
  });

  test("frames that are not messages show nothing", () => {
    expect(ownMessageLine({ type: "who" }, plain)).toBeUndefined();
    expect(ownMessageLine({ type: "passwd", old: "a", new: "b" }, plain)).toBeUndefined();
  });
});

describe("plainLines (scriptable mode)", () => {
  test("one name: text line per message, dms marked, nothing else", () => {
    expect(plainLines(msg("bob", "hi"))).toEqual(["bob: hi"]);
    expect(plainLines({ type: "history", room: "#lobby", more: false, messages: [msg("a", "1") as never, msg("b", "/me waves") as never] })).toEqual(["a: 1", "* b waves"]);
    expect(plainLines({ type: "dm", from: "bob", to: "alice", text: "psst", ts: 0 })).toEqual(["[dm] bob -> alice: psst"]);
    expect(plainLines({ type: "join", room: "#lobby", user: "bob", ts: 0 })).toEqual([]);
    expect(plainLines(msg("bob", "a\nb"))).toEqual(["bob: a^Jb"]);
  });
});

test("mentions match whole names only", () => {
  expect(mentions("ping alice.", "alice")).toBe(true);
  expect(mentions("alice-bob", "alice")).toBe(false);
  expect(mentions("Alice", "alice")).toBe(true);
  expect(mentions("palice", "alice")).toBe(false);
});

test("local lines: status dimmed, errors red, plain without colour", () => {
  expect(localLine("-- connected", "status", true)).toBe("\x1b[2m-- connected\x1b[0m");
  expect(localLine("Unknown command", "error", true)).toBe("\x1b[31mUnknown command\x1b[0m");
  expect(localLine("-- connected", "status", false)).toBe("-- connected");
});
