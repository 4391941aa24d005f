// How frames look on the interactive screen and in a script's output, and how the prompt shows
// the current room and the unread counts of the others.

import { describe, expect, test } from "bun:test";
import { localLine, MAX_UNREAD_ROOMS_IN_PROMPT, mentions, nameColor, olderHeading, plainLines, promptText, refusalLine, screenLines } from "../../src/client/format.ts";
import type { ServerFrame } from "../../src/protocol/frames.ts";

const plain = { color: false, self: "alice", clock: () => "12:34" };
const colored = { ...plain, color: true };
const msg = (from: string, text: string, room = "#lobby"): Extract<ServerFrame, { type: "msg" }> => ({ type: "msg", id: 1, room, from, text, ts: 0 });

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
      { type: "dm", id: 1, from: "bob", to: "alice", text: "\u202etxt.exe", ts: 0 },
      { type: "error", code: "bad_frame", message: "\x07\x1b]0;title\x07" },
      { type: "who", users: ["\x1b[H"], more: false },
    ];
    for (const frame of hostile) {
      for (const line of screenLines(frame, plain)) expect(line.text).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    }
  });

  test("/me actions, dms in both directions, and frames with nothing to show", () => {
    expect(screenLines(msg("bob", "/me waves"), plain)[0]!.text).toBe("[12:34] * bob waves");
    expect(screenLines({ type: "dm", id: 1, from: "bob", to: "alice", text: "psst", ts: 0 }, plain)[0]).toEqual({ text: "[12:34] [dm] bob → you: psst", mention: true });
    expect(screenLines({ type: "dm", id: 1, from: "alice", to: "bob", text: "hi", ts: 0 }, plain)[0]!.text).toBe("[12:34] [dm] → bob: hi");
    expect(screenLines({ type: "pong" }, plain)).toEqual([]);
  });

  test("messages from rooms other than the current one are shown with the room's name", () => {
    const inLobby = { ...plain, room: "#lobby" };
    expect(screenLines(msg("bob", "here"), inLobby)[0]!.text).toBe("[12:34] bob: here");
    expect(screenLines(msg("bob", "HERE too", "#LOBBY"), inLobby)[0]!.text).toBe("[12:34] bob: HERE too");
    expect(screenLines(msg("bob", "there", "#rust"), inLobby)[0]!.text).toBe("[12:34] #rust bob: there");
    expect(screenLines(msg("bob", "/me waves", "#rust"), inLobby)[0]!.text).toBe("[12:34] #rust * bob waves");
    const history: ServerFrame = { type: "history", room: "#rust", more: false, messages: [msg("bob", "old", "#rust")] };
    expect(screenLines(history, inLobby).map((line) => line.text)).toEqual(["[12:34] #rust bob: old"]);
  });

  test("membership, presence and topic notices name the room", () => {
    const lines = (frame: ServerFrame) => screenLines(frame, plain).map((line) => line.text);
    expect(lines({ type: "join", room: "#rust", user: "bob", ts: 0 })).toEqual(["[12:34] * bob joined #rust"]);
    expect(lines({ type: "leave", room: "#rust", user: "bob", ts: 0 })).toEqual(["[12:34] * bob left #rust"]);
    expect(lines({ type: "online", user: "bob", ts: 0 })).toEqual(["[12:34] * bob is online"]);
    expect(lines({ type: "offline", user: "bob", ts: 0 })).toEqual(["[12:34] * bob went offline"]);
    expect(lines({ type: "joined", room: "#rust", topic: "Q&A", invite_only: false, members: [], ops: [] })).toEqual(["[12:34] * You are in #rust: Q&A"]);
    expect(lines({ type: "parted", room: "#rust" })).toEqual(["[12:34] * You left #rust"]);
    expect(lines({ type: "topic", room: "#rust", topic: "new", by: "bob", ts: 0 })).toEqual(["[12:34] * bob set the topic of #rust: new"]);
    expect(lines({ type: "topic", room: "#rust", topic: "", by: "bob", ts: 0 })).toEqual(["[12:34] * bob cleared the topic of #rust"]);
  });

  test("moderation notices say who did what to whom, where, for how long and why", () => {
    const line = (notice: Partial<Extract<ServerFrame, { type: "moderation" }>>) =>
      screenLines({ type: "moderation", action: "kick", by: "op", ts: 0, room: "#rust", user: "eve", ...notice }, plain)[0]!.text;
    expect(line({ reason: "shouting" })).toBe("[12:34] * op kicked eve from #rust (shouting)");
    expect(line({ action: "ban", seconds: 600 })).toBe("[12:34] * op banned eve from #rust for 10m");
    expect(line({ action: "ban", room: undefined, scope: "server" })).toBe("[12:34] * op banned eve from the server");
    expect(line({ action: "unban" })).toBe("[12:34] * op lifted the ban on eve in #rust");
    expect(line({ action: "mute", seconds: 90 })).toBe("[12:34] * op muted eve in #rust for 90s");
    expect(line({ action: "unmute" })).toBe("[12:34] * op unmuted eve in #rust");
    expect(line({ action: "op" })).toBe("[12:34] * op made eve an operator of #rust");
    expect(line({ action: "deop" })).toBe("[12:34] * op removed eve as an operator of #rust");
    expect(line({ action: "invite" })).toBe("[12:34] * op invited eve to #rust");
    expect(line({ action: "mode", user: undefined, invite_only: true })).toBe("[12:34] * op made #rust invite-only");
    expect(line({ action: "mode", user: undefined, invite_only: false })).toBe("[12:34] * op made #rust open to everyone");
  });

  test("room lists show members and topics, and how to get the next page", () => {
    const frame: ServerFrame = {
      type: "rooms",
      rooms: [{ room: "#lobby", members: 12, topic: "" }, { room: "#rust", members: 3, topic: "Q&A" }],
      more: true,
    };
    expect(screenLines(frame, plain).map((line) => line.text)).toEqual(["Rooms (2):", "  #lobby (12)", "  #rust (3) Q&A", "  … more with /rooms #rust"]);
  });

  test("who lists say where, and when the list was cut short", () => {
    expect(screenLines({ type: "who", room: "#rust", users: ["bob"], more: false }, plain)[0]!.text).toBe("Online in #rust (1): bob");
    expect(screenLines({ type: "who", users: ["bob", "eve"], more: true }, plain)[0]!.text).toBe("Online (2, and more): bob, eve");
  });

  test("errors show their code and message, codes this client does not know included", () => {
    expect(screenLines({ type: "error", code: "not_allowed", message: "You are not an operator of #rust" }, plain)[0]!.text).toBe(
      "! not_allowed: You are not an operator of #rust",
    );
    expect(screenLines({ type: "error", code: "from_the_future", message: "Try later" }, plain)[0]!.text).toBe("! from_the_future: Try later");
    expect(screenLines({ type: "error", code: "x\x1b[2J", message: "m" }, plain)[0]!.text).toBe("! x^[[2J: m");
  });

  test("room names the server should never have sent are marked, not shown as real rooms", () => {
    const hostile = screenLines({ type: "join", room: "#r\u202eoom", user: "bob", ts: 0 }, plain)[0]!.text;
    expect(hostile).toBe("[12:34] * bob joined #r<U+202E>oom");
    expect(screenLines(msg("bob", "x", "lobby"), { ...plain, room: "#lobby" })[0]!.text).toBe("[12:34] lobby bob: x");
  });
});

describe("promptText", () => {
  test("shows the user and the current room", () => {
    expect(promptText("alice", "#rust", [])).toBe("alice #rust> ");
    expect(promptText("alice", undefined, [])).toBe("alice> ");
  });

  test("adds the unread counts of other rooms, naming at most a few", () => {
    expect(promptText("alice", "#rust", [{ room: "#lobby", count: 3 }])).toBe("alice #rust [#lobby 3]> ");
    const many = ["#a", "#b", "#c", "#d", "#e"].map((room, i) => ({ room, count: i + 1 }));
    expect(MAX_UNREAD_ROOMS_IN_PROMPT).toBe(3);
    expect(promptText("alice", "#rust", many)).toBe("alice #rust [#a 1, #b 2, #c 3, +2]> ");
  });
});

describe("our own messages, refusals, older pages and search results", () => {
  test("our own message, as the ack makes it, is not a mention of ourselves", () => {
    const [line] = screenLines(msg("alice", "alice here"), colored);
    expect(line!.mention).toBe(false);
    expect(line!.text).not.toContain("\x1b[7m");
  });

  test("a refused message shows the error and the text that was not sent", () => {
    const error = { type: "error" as const, code: "muted", message: "You are muted in #rust", ref: "r.1" };
    expect(refusalLine(error, { type: "say", text: "hello", room: "#rust" }, plain)).toBe("! muted: You are muted in #rust (not sent: hello)");
    expect(refusalLine({ ...error, code: "no_such_user", message: "There is no account carol" }, { type: "dm", to: "carol", text: "hi" }, plain)).toBe(
      "! no_such_user: There is no account carol (not sent to carol: hi)",
    );
    expect(refusalLine(error, { type: "say", text: "x" }, colored)).toStartWith("\x1b[31m");
  });

  test("a page of older messages has a heading, and an empty one says there is nothing older", () => {
    const older = { type: "history" as const, room: "#rust", more: true, messages: [msg("bob", "old", "#rust")] };
    expect(olderHeading(older, false)).toBe("-- Older messages in #rust:");
    expect(olderHeading({ ...older, messages: [] }, false)).toBe("-- No older messages in #rust");
  });

  test("search results, newest first as sent, carry their id, day and room, even the current room", () => {
    const lines = (frame: Extract<ServerFrame, { type: "search" }>) => screenLines(frame, { ...plain, room: "#lobby", day: () => "2025-01-02" }).map((line) => line.text);
    const found: Extract<ServerFrame, { type: "search" }> = {
      type: "search",
      query: "borrow",
      more: false,
      messages: [
        { ...msg("bob", "borrow it, alice", "#rust"), id: 9 },
        { ...msg("carol", "borrow", "#lobby"), id: 4 },
        { type: "dm", id: 2, from: "bob", to: "alice", text: "borrow?", ts: 0 },
      ],
    };
    expect(lines(found)).toEqual([
      '-- Search "borrow": 3 messages, newest first',
      "id 9 2025-01-02 [12:34] #rust bob: borrow it, alice",
      "id 4 2025-01-02 [12:34] #lobby carol: borrow",
      "id 2 2025-01-02 [12:34] [dm] bob → you: borrow?",
    ]);
    expect(lines({ ...found, more: true })[0]).toBe('-- Search "borrow": 3 messages and more, newest first');
    expect(lines({ ...found, query: "\x1b[2J", messages: [] })).toEqual(['-- Search "^[[2J": nothing found']);
    // A result never rings the bell: it is not news.
    expect(screenLines(found, plain).some((line) => line.mention)).toBe(false);
  });
});

describe("plainLines (scriptable mode)", () => {
  test("one name: text line per message, dms marked, nothing else", () => {
    expect(plainLines(msg("bob", "hi"), false)).toEqual(["bob: hi"]);
    expect(plainLines({ type: "history", room: "#lobby", more: false, messages: [msg("a", "1"), msg("b", "/me waves")] }, false)).toEqual(["a: 1", "* b waves"]);
    expect(plainLines({ type: "dm", id: 1, from: "bob", to: "alice", text: "psst", ts: 0 }, false)).toEqual(["[dm] bob -> alice: psst"]);
    expect(plainLines({ type: "join", room: "#lobby", user: "bob", ts: 0 }, false)).toEqual([]);
    expect(plainLines(msg("bob", "a\nb"), false)).toEqual(["bob: a^Jb"]);
  });

  test("with more than one room printed, messages start with their room; dms do not", () => {
    expect(plainLines(msg("bob", "hi", "#rust"), true)).toEqual(["#rust bob: hi"]);
    expect(plainLines({ type: "history", room: "#go", more: false, messages: [msg("b", "/me waves", "#go")] }, true)).toEqual(["#go * b waves"]);
    expect(plainLines({ type: "dm", id: 1, from: "bob", to: "alice", text: "psst", ts: 0 }, true)).toEqual(["[dm] bob -> alice: psst"]);
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
