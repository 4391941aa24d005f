// The command registry and the built-in commands, run against a recording context: what each
// typed line sends, prints, or changes locally, and what Tab offers.

import { describe, expect, test } from "bun:test";
import {
  CommandRegistry,
  defaultCommands,
  renderAction,
  type CommandContext,
} from "../../src/client/commands.ts";
import { MAX_SEARCH_QUERY_CHARS, MODERATION_ACTIONS, type ClientFrame } from "../../src/protocol/frames.ts";

const MAX_TEXT_CHARS = 100;

class FakeContext implements CommandContext {
  sent: ClientFrame[] = [];
  printed: { line: string; style: "status" | "error" | undefined }[] = [];
  lastDm: string | undefined = undefined;
  passwordChanges = 0;
  quits = 0;
  room: string | undefined = undefined;
  rooms: string[] = [];
  topics = new Map<string, string>();
  /** Rooms switched to, and "when joined: ROOM" for switches awaiting the server. */
  switches: string[] = [];
  /** Rooms whose older messages were asked for; `olderAvailable` false makes the session decline. */
  olderAskedFor: string[] = [];
  olderAvailable = true;

  send(frame: ClientFrame): void {
    this.sent.push(frame);
  }
  print(line: string, style?: "status" | "error"): void {
    this.printed.push({ line, style });
  }
  lastDmFrom(): string | undefined {
    return this.lastDm;
  }
  currentRoom(): string | undefined {
    return this.room;
  }
  joinedRooms(): readonly string[] {
    return this.rooms;
  }
  topicOf(room: string): string | undefined {
    return this.topics.get(room);
  }
  switchTo(room: string): void {
    this.switches.push(room);
  }
  switchWhenJoined(room: string): void {
    this.switches.push(`when joined: ${room}`);
  }
  olderHistory(room: string): boolean {
    if (this.olderAvailable) this.olderAskedFor.push(room);
    return this.olderAvailable;
  }
  async changePassword(): Promise<void> {
    this.passwordChanges++;
  }
  quit(): void {
    this.quits++;
  }
  get errors(): string[] {
    return this.printed.filter((p) => p.style === "error").map((p) => p.line);
  }
}

function setup(): { registry: CommandRegistry; ctx: FakeContext } {
  return { registry: defaultCommands({ maxTextChars: MAX_TEXT_CHARS }), ctx: new FakeContext() };
}

/** A setup in `rooms`, the first of them current. */
function inRooms(...rooms: string[]): { registry: CommandRegistry; ctx: FakeContext } {
  const { registry, ctx } = setup();
  ctx.rooms = rooms;
  ctx.room = rooms[0];
  return { registry, ctx };
}

describe("CommandRegistry.dispatch", () => {
  test("a line without a slash is a room message, sent as typed", async () => {
    const { registry, ctx } = setup();
    expect(await registry.dispatch("  hello there ", ctx)).toBe("sent");
    expect(ctx.sent).toEqual([{ type: "say", text: "  hello there " }]);
  });

  test("an empty or blank line does nothing", async () => {
    const { registry, ctx } = setup();
    expect(await registry.dispatch("", ctx)).toBe("empty");
    expect(await registry.dispatch("   ", ctx)).toBe("empty");
    expect(ctx.sent).toEqual([]);
    expect(ctx.printed).toEqual([]);
  });

  test('"//" escapes a leading slash: the rest is sent literally', async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("//etc/passwd is a path", ctx);
    await registry.dispatch("//", ctx);
    expect(ctx.sent).toEqual([
      { type: "say", text: "/etc/passwd is a path" },
      { type: "say", text: "/" },
    ]);
  });

  test("an unknown command prints a hint and sends nothing", async () => {
    const { registry, ctx } = setup();
    expect(await registry.dispatch("/foo bar", ctx)).toBe("local");
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual(["Unknown command /foo — type /help"]);
  });

  test("an unknown command's name is sanitised before it is echoed", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/\x1b[2J", ctx);
    expect(ctx.errors).toEqual(["Unknown command /^[[2J — type /help"]);
  });

  test("command names ignore case", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/WHO", ctx);
    expect(ctx.sent).toEqual([{ type: "who" }]);
  });

  test("text with control characters is refused before it is sent", async () => {
    const { registry, ctx } = setup();
    expect(await registry.dispatch("tab\there", ctx)).toBe("local");
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual(["Text contains control characters"]);
  });

  test("text over the limit is refused before it is sent", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("x".repeat(MAX_TEXT_CHARS + 1), ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual([`Text is longer than ${MAX_TEXT_CHARS} characters`]);
  });

  test("a failing command is reported, not thrown", async () => {
    const { registry, ctx } = setup();
    ctx.changePassword = () => Promise.reject(new Error("Password change cancelled"));
    expect(await registry.dispatch("/passwd", ctx)).toBe("local");
    expect(ctx.errors).toEqual(["Password change cancelled"]);
  });
});

describe("default commands", () => {
  test("/help lists every command with its usage, help and aliases, then what room arguments mean", async () => {
    const { registry, ctx } = setup();
    expect(await registry.dispatch("/help", ctx)).toBe("local");
    expect(ctx.sent).toEqual([]);
    const lines = ctx.printed.map((p) => p.line);
    expect(lines).toHaveLength(registry.list().length + 1);
    for (const cmd of registry.list()) {
      expect(lines.some((line) => line.startsWith(cmd.usage) && line.includes(cmd.help))).toBe(true);
    }
    expect(lines.find((line) => line.startsWith("/quit"))).toContain("(also /exit)");
    expect(lines.find((line) => line.startsWith("/msg"))).toContain("(also /dm)");
    expect(lines.at(-1)).toBe("#ROOM left out means the current room; DURATION is a number and a unit: 30s, 10m, 2h, 7d.");
  });

  test("/help names every room and moderation command", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/help", ctx);
    const usages = ctx.printed.map((p) => p.line.split("  ")[0]!.trim());
    expect(usages).toEqual(expect.arrayContaining([
      "/join #ROOM", "/part [#ROOM]", "/switch #ROOM", "/rooms [AFTER]", "/who [#ROOM]", "/topic [TEXT]",
      "/kick [#ROOM] USER [REASON]", "/ban [#ROOM] USER [DURATION] [REASON]", "/unban [#ROOM] USER",
      "/mute [#ROOM] USER [DURATION] [REASON]", "/unmute [#ROOM] USER", "/op [#ROOM] USER", "/deop [#ROOM] USER",
      "/invite [#ROOM] USER", "/invite-only [#ROOM] on|off", "/history [#ROOM]", "/search [#ROOM] WORDS", "/delete ID",
    ]));
  });

  test("/help COMMAND explains one command, with or without its slash", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/help msg", ctx);
    await registry.dispatch("/help /dm", ctx);
    expect(ctx.printed.map((p) => p.line)).toEqual([
      "/msg USER TEXT  Send a direct message (kept for them until they log in if they are offline) (also /dm)",
      "/msg USER TEXT  Send a direct message (kept for them until they log in if they are offline) (also /dm)",
    ]);
  });

  test("/help with an unknown command prints a hint", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/help nope", ctx);
    expect(ctx.errors).toEqual(["Unknown command /nope — type /help"]);
  });

  test("/who asks the server", async () => {
    const { registry, ctx } = setup();
    expect(await registry.dispatch("/who", ctx)).toBe("sent");
    expect(ctx.sent).toEqual([{ type: "who" }]);
  });

  test("/msg sends a direct message; /dm is an alias", async () => {
    const { registry, ctx } = setup();
    expect(await registry.dispatch("/msg alice  hi   there ", ctx)).toBe("sent");
    await registry.dispatch("/dm bob yo", ctx);
    expect(ctx.sent).toEqual([
      { type: "dm", to: "alice", text: "hi   there" },
      { type: "dm", to: "bob", text: "yo" },
    ]);
  });

  test("/msg without a user or a text prints its usage and sends nothing", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/msg", ctx);
    await registry.dispatch("/msg alice", ctx);
    await registry.dispatch("/msg alice    ", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual(Array(3).fill("Usage: /msg USER TEXT"));
  });

  test("/msg to an invalid user name is refused locally", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/msg al!ce hi", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors[0]).toStartWith("Usernames are");
  });

  test("/reply answers the last direct message", async () => {
    const { registry, ctx } = setup();
    ctx.lastDm = "carol";
    await registry.dispatch("/reply sure thing", ctx);
    expect(ctx.sent).toEqual([{ type: "dm", to: "carol", text: "sure thing" }]);
  });

  test("/reply with nobody to reply to, or no text, sends nothing", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/reply hello?", ctx);
    ctx.lastDm = "carol";
    await registry.dispatch("/reply", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual(["No direct message to reply to yet", "Usage: /reply TEXT"]);
  });

  test("/reply refuses a sender name the server should never have sent", async () => {
    const { registry, ctx } = setup();
    ctx.lastDm = "eve\u202e";
    await registry.dispatch("/reply hi", ctx);
    expect(ctx.sent).toEqual([]);
  });

  test('/me sends a room message starting with "/me "', async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/me waves", ctx);
    await registry.dispatch("/me", ctx);
    expect(ctx.sent).toEqual([{ type: "say", text: "/me waves" }]);
    expect(ctx.errors).toEqual(["Usage: /me ACTION"]);
  });

  test("/passwd prompts through the session and refuses arguments", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/passwd", ctx);
    await registry.dispatch("/passwd hunter2 hunter3", ctx);
    expect(ctx.passwordChanges).toBe(1);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual(["Usage: /passwd"]);
  });

  test("/quit and /exit leave", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/quit", ctx);
    await registry.dispatch("/exit", ctx);
    expect(ctx.quits).toBe(2);
    expect(ctx.sent).toEqual([]);
  });
});

describe("typing in a room", () => {
  test("a line goes to the current room; with none, to the server's default room", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("to the lobby by default", ctx);
    ctx.room = "#rust";
    await registry.dispatch("to rust", ctx);
    await registry.dispatch("//slash in rust", ctx);
    await registry.dispatch("/me waves in rust", ctx);
    expect(ctx.sent).toEqual([
      { type: "say", text: "to the lobby by default" },
      { type: "say", text: "to rust", room: "#rust" },
      { type: "say", text: "/slash in rust", room: "#rust" },
      { type: "say", text: "/me waves in rust", room: "#rust" },
    ]);
  });
});

describe("room commands", () => {
  test("/join sends a join and switches once the server confirms; the # may be left out", async () => {
    const { registry, ctx } = inRooms("#lobby");
    await registry.dispatch("/join #rust", ctx);
    await registry.dispatch("/join go", ctx);
    expect(ctx.sent).toEqual([
      { type: "join", room: "#rust" },
      { type: "join", room: "#go" },
    ]);
    expect(ctx.switches).toEqual(["when joined: #rust", "when joined: #go"]);
  });

  test("/join of a room already joined only switches to it, as the server shows its name", async () => {
    const { registry, ctx } = inRooms("#lobby", "#Rust");
    await registry.dispatch("/join #rust", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.switches).toEqual(["#Rust"]);
  });

  test("/join with a bad room name is refused before it is sent", async () => {
    const { registry, ctx } = inRooms("#lobby");
    await registry.dispatch("/join #no!", ctx);
    await registry.dispatch("/join", ctx);
    await registry.dispatch("/join #a #b", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual([
      "Room names are '#' and 1-32 letters, digits, '_' or '-'",
      "Usage: /join #ROOM",
      "Usage: /join #ROOM",
    ]);
    expect(ctx.switches).toEqual([]);
  });

  test("/part leaves the current room, or the one named", async () => {
    const { registry, ctx } = inRooms("#rust", "#lobby");
    await registry.dispatch("/part", ctx);
    await registry.dispatch("/part #lobby", ctx);
    await registry.dispatch("/leave go", ctx);
    expect(ctx.sent).toEqual([
      { type: "part", room: "#rust" },
      { type: "part", room: "#lobby" },
      { type: "part", room: "#go" },
    ]);
  });

  test("/part in no room prints its usage", async () => {
    const { registry, ctx } = inRooms();
    await registry.dispatch("/part", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual(["Usage: /part [#ROOM]"]);
  });

  test("/switch changes the current room to a joined one, and refuses others", async () => {
    const { registry, ctx } = inRooms("#lobby", "#Rust");
    expect(await registry.dispatch("/switch #rust", ctx)).toBe("local");
    await registry.dispatch("/switch lobby", ctx);
    await registry.dispatch("/switch #go", ctx);
    expect(ctx.switches).toEqual(["#Rust", "#lobby"]);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual(["You are not in #go; /join it first"]);
  });

  test("/rooms asks for the list, or for the page after a room", async () => {
    const { registry, ctx } = inRooms("#lobby");
    await registry.dispatch("/rooms", ctx);
    await registry.dispatch("/rooms #m", ctx);
    expect(ctx.sent).toEqual([{ type: "rooms" }, { type: "rooms", after: "#m" }]);
  });

  test("/who asks who is online everywhere, or in one room", async () => {
    const { registry, ctx } = inRooms("#lobby");
    await registry.dispatch("/who", ctx);
    await registry.dispatch("/who #rust", ctx);
    expect(ctx.sent).toEqual([{ type: "who" }, { type: "who", room: "#rust" }]);
  });

  test("/topic TEXT sets the current room's topic", async () => {
    const { registry, ctx } = inRooms("#rust");
    await registry.dispatch("/topic  Borrow checker Q&A ", ctx);
    expect(ctx.sent).toEqual([{ type: "topic", room: "#rust", topic: "Borrow checker Q&A" }]);
  });

  test("/topic shows a known topic, and asks the server (a join of a joined room) when it is not known", async () => {
    const { registry, ctx } = inRooms("#rust", "#lobby", "#go");
    ctx.topics.set("#rust", "Borrow checker Q&A");
    ctx.topics.set("#lobby", "");
    await registry.dispatch("/topic", ctx);
    ctx.room = "#lobby";
    await registry.dispatch("/topic", ctx);
    ctx.room = "#go";
    await registry.dispatch("/topic", ctx);
    expect(ctx.printed).toEqual([
      { line: "Topic of #rust: Borrow checker Q&A", style: "status" },
      { line: "#lobby has no topic", style: "status" },
    ]);
    expect(ctx.sent).toEqual([{ type: "join", room: "#go" }]);
  });
});

describe("moderation commands", () => {
  function inRust() {
    const { registry, ctx } = setup();
    ctx.rooms = ["#rust", "#lobby"];
    ctx.room = "#rust";
    return { registry, ctx };
  }

  test("each acts on the current room, or on the room named first", async () => {
    const { registry, ctx } = inRust();
    for (const action of MODERATION_ACTIONS) {
      await registry.dispatch(`/${action} eve`, ctx);
      await registry.dispatch(`/${action} #lobby eve`, ctx);
    }
    expect(ctx.errors).toEqual([]);
    expect(ctx.sent).toEqual(
      MODERATION_ACTIONS.flatMap((type): ClientFrame[] => [
        { type, room: "#rust", user: "eve" },
        { type, room: "#lobby", user: "eve" },
      ]),
    );
  });

  test("/kick takes a reason", async () => {
    const { registry, ctx } = inRust();
    await registry.dispatch("/kick eve stop shouting", ctx);
    expect(ctx.sent).toEqual([{ type: "kick", room: "#rust", user: "eve", reason: "stop shouting" }]);
  });

  test("/ban and /mute take a duration with a unit, a reason, both, or neither", async () => {
    const { registry, ctx } = inRust();
    await registry.dispatch("/ban eve 10m spam", ctx);
    await registry.dispatch("/ban #lobby eve 7d", ctx);
    await registry.dispatch("/ban eve for the spam", ctx);
    await registry.dispatch("/mute eve 30s", ctx);
    await registry.dispatch("/mute eve 2h calm down", ctx);
    expect(ctx.sent).toEqual([
      { type: "ban", room: "#rust", user: "eve", seconds: 600, reason: "spam" },
      { type: "ban", room: "#lobby", user: "eve", seconds: 7 * 86_400 },
      { type: "ban", room: "#rust", user: "eve", reason: "for the spam" },
      { type: "mute", room: "#rust", user: "eve", seconds: 30 },
      { type: "mute", room: "#rust", user: "eve", seconds: 7200, reason: "calm down" },
    ]);
  });

  test("a duration without a unit, or out of range, is refused before anything is sent", async () => {
    const { registry, ctx } = inRust();
    await registry.dispatch("/ban eve 10", ctx);
    await registry.dispatch("/mute eve 0s", ctx);
    await registry.dispatch("/ban eve 3651d", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual([
      "Give the duration a unit: 10s, 10m, 10h or 10d",
      "A duration is from 1s to 3650d; leave it out for no end",
      "A duration is from 1s to 3650d; leave it out for no end",
    ]);
  });

  test("commands that take no more than a user print their usage when given more", async () => {
    const { registry, ctx } = inRust();
    await registry.dispatch("/op eve now", ctx);
    await registry.dispatch("/unban", ctx);
    await registry.dispatch("/kick #rust", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual(["Usage: /op [#ROOM] USER", "Usage: /unban [#ROOM] USER", "Usage: /kick [#ROOM] USER [REASON]"]);
  });

  test("a bad user name, a bad room name or an over-long reason is refused locally", async () => {
    const { registry, ctx } = inRust();
    await registry.dispatch("/kick ev!l", ctx);
    await registry.dispatch("/kick #no! eve", ctx);
    await registry.dispatch(`/kick eve ${"x".repeat(301)}`, ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual([
      "Usernames are 1-32 characters of letters, digits, '_', '.' and '-'",
      "Room names are '#' and 1-32 letters, digits, '_' or '-'",
      "Text is longer than 300 characters",
    ]);
  });

  test("in no room, a room must be named", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/kick eve", ctx);
    await registry.dispatch("/kick #rust eve", ctx);
    expect(ctx.errors).toEqual(["Usage: /kick [#ROOM] USER [REASON]"]);
    expect(ctx.sent).toEqual([{ type: "kick", room: "#rust", user: "eve" }]);
  });

  test("/invite-only on|off sets the room's mode", async () => {
    const { registry, ctx } = inRust();
    await registry.dispatch("/invite-only on", ctx);
    await registry.dispatch("/invite-only #lobby off", ctx);
    await registry.dispatch("/invite-only maybe", ctx);
    expect(ctx.sent).toEqual([
      { type: "mode", room: "#rust", invite_only: true },
      { type: "mode", room: "#lobby", invite_only: false },
    ]);
    expect(ctx.errors).toEqual(["Usage: /invite-only [#ROOM] on|off"]);
  });
});

describe("message log commands", () => {
  test("/history asks for the current room's older messages, or a joined room's named in any case", async () => {
    const { registry, ctx } = inRooms("#lobby", "#Rust");
    await registry.dispatch("/history", ctx);
    await registry.dispatch("/history rust", ctx);
    await registry.dispatch("/history #RUST", ctx);
    expect(ctx.olderAskedFor).toEqual(["#lobby", "#Rust", "#Rust"]);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual([]);
  });

  test("/history of a room not joined, in no room, with two rooms, or when the session declines, says so", async () => {
    const { registry, ctx } = inRooms("#lobby", "#Rust");
    await registry.dispatch("/history #go", ctx);
    await registry.dispatch("/history #lobby #Rust", ctx);
    ctx.olderAvailable = false;
    await registry.dispatch("/history", ctx);
    ctx.room = undefined;
    ctx.olderAvailable = true;
    await registry.dispatch("/history", ctx);
    expect(ctx.olderAskedFor).toEqual([]);
    expect(ctx.errors).toEqual([
      "You are not in #go",
      "Usage: /history [#ROOM]",
      "Older messages of #lobby cannot be asked for yet (not connected, catching up, or a page is on its way)",
      "You are in no room; /join one first",
    ]);
  });

  test("/search sends the words as typed, everywhere or in the room named first", async () => {
    const { registry, ctx } = inRooms("#lobby", "#Rust");
    await registry.dispatch('/search borrow "checker" NEAR(x', ctx);
    await registry.dispatch("/search #rust lifetimes", ctx);
    expect(ctx.sent).toEqual([
      { type: "search", query: 'borrow "checker" NEAR(x' },
      { type: "search", query: "lifetimes", room: "#rust" },
    ]);
  });

  test("/search without words, with too many characters, or in a bad room name, sends nothing", async () => {
    const { registry, ctx } = inRooms("#lobby", "#Rust");
    await registry.dispatch("/search", ctx);
    await registry.dispatch("/search #rust", ctx);
    await registry.dispatch(`/search ${"x".repeat(MAX_SEARCH_QUERY_CHARS + 1)}`, ctx);
    await registry.dispatch("/search #bad!room words", ctx);
    expect(ctx.sent).toEqual([]);
    expect(ctx.errors).toEqual([
      "Usage: /search [#ROOM] WORDS",
      "Usage: /search [#ROOM] WORDS",
      `A search is at most ${MAX_SEARCH_QUERY_CHARS} characters`,
      "Room names are '#' and 1-32 letters, digits, '_' or '-'",
    ]);
  });

  test("/delete takes one message id, a whole number from 1", async () => {
    const { registry, ctx } = inRooms("#lobby", "#Rust");
    await registry.dispatch("/delete 42", ctx);
    for (const bad of ["/delete", "/delete 0", "/delete -3", "/delete 4.5", "/delete 42 43", "/delete x", `/delete ${"9".repeat(20)}`]) {
      await registry.dispatch(bad, ctx);
    }
    expect(ctx.sent).toEqual([{ type: "delete", id: 42 }]);
    expect(ctx.errors).toEqual(Array(7).fill("Usage: /delete ID"));
  });
});

describe("CommandRegistry.complete", () => {
  const users = ["alice", "albert", "bob", "Alfred", "al\x1b[2Jx"];
  const rooms = ["#lobby", "#Rust", "#rust-beginners", "#r\x1b[2J"];

  test("completes command names and aliases after a slash", () => {
    const { registry } = setup();
    expect(registry.complete("/m", users, rooms)).toEqual([["/me", "/msg", "/mute"], "/m"]);
    expect(registry.complete("/E", users, rooms)).toEqual([["/exit"], "/E"]);
    expect(registry.complete("/zz", users, rooms)).toEqual([[], "/zz"]);
    expect(registry.complete("/", users, rooms)[0]).toEqual([
      "/ban", "/delete", "/deop", "/dm", "/exit", "/help", "/history", "/invite", "/invite-only", "/join", "/key", "/keys", "/kick", "/leave",
      "/me", "/msg", "/mute", "/op", "/part", "/passwd", "/quit", "/reply", "/rooms", "/search", "/switch", "/topic",
      "/unban", "/unmute", "/who",
    ]);
  });

  test("completes the user argument of /msg, ignoring case, offering only valid names", () => {
    const { registry } = setup();
    expect(registry.complete("/msg al", users, rooms)).toEqual([["albert", "Alfred", "alice"], "al"]);
    expect(registry.complete("/dm b", users, rooms)).toEqual([["bob"], "b"]);
  });

  test("lists every user for an empty /msg argument, but not mid-sentence", () => {
    const { registry } = setup();
    expect(registry.complete("/msg ", users, rooms)).toEqual([["albert", "Alfred", "alice", "bob"], ""]);
    expect(registry.complete("hello ", users, rooms)).toEqual([[], ""]);
  });

  test("completes user names anywhere as a word", () => {
    const { registry } = setup();
    expect(registry.complete("thanks ali", users, rooms)).toEqual([["alice"], "ali"]);
    expect(registry.complete("bo", users, rooms)).toEqual([["bob"], "bo"]);
  });

  test('completes a word starting with "#" from the joined rooms, ignoring case, offering only valid names', () => {
    const { registry } = setup();
    expect(registry.complete("/switch #ru", users, rooms)).toEqual([["#Rust", "#rust-beginners"], "#ru"]);
    expect(registry.complete("see #L", users, rooms)).toEqual([["#lobby"], "#L"]);
    expect(registry.complete("/kick #r", users, rooms)).toEqual([["#Rust", "#rust-beginners"], "#r"]);
  });

  test("lists the rooms for an empty room argument, and users after a moderation command's room", () => {
    const { registry } = setup();
    expect(registry.complete("/switch ", users, rooms)).toEqual([["#lobby", "#Rust", "#rust-beginners"], ""]);
    expect(registry.complete("/part ", users, rooms)[0]).toHaveLength(3);
    expect(registry.complete("/ban ", users, rooms)).toEqual([["albert", "Alfred", "alice", "bob"], ""]);
    expect(registry.complete("/ban #rust ", users, rooms)).toEqual([["albert", "Alfred", "alice", "bob"], ""]);
    expect(registry.complete("/switch #rust ", users, rooms)).toEqual([[], ""]);
    expect(registry.complete("/topic ", users, rooms)).toEqual([[], ""]);
  });

  test('does not treat the "//" escape as a command', () => {
    const { registry } = setup();
    expect(registry.complete("//m", users, rooms)).toEqual([[], "//m"]);
  });
});

describe("CommandRegistry.register", () => {
  test("refuses a name or alias that is already taken", () => {
    const registry = defaultCommands({ maxTextChars: MAX_TEXT_CHARS });
    const run = () => {};
    expect(() => registry.register({ name: "exit", usage: "/exit", help: "", run })).toThrow("/exit");
    expect(() => registry.register({ name: "bye", aliases: ["dm"], usage: "/bye", help: "", run })).toThrow("/dm");
    expect(registry.lookup("bye")).toBeUndefined();
  });

  test("runs a registered command with its trimmed arguments", async () => {
    const registry = new CommandRegistry({ maxTextChars: MAX_TEXT_CHARS });
    const seen: string[] = [];
    registry.register({ name: "echo", usage: "/echo TEXT", help: "Echo", run: (args, ctx) => ctx.print(args) });
    const ctx = new FakeContext();
    ctx.print = (line) => void seen.push(line);
    await registry.dispatch("/echo   a  b  ", ctx);
    expect(seen).toEqual(["a  b"]);
  });
});

describe("renderAction", () => {
  test('renders "/me" messages as "* name action"', () => {
    expect(renderAction("alice", "/me waves")).toBe("* alice waves");
  });

  test("returns undefined for ordinary messages and empty actions", () => {
    expect(renderAction("alice", "hello")).toBeUndefined();
    expect(renderAction("alice", "/meow")).toBeUndefined();
    expect(renderAction("alice", "/me   ")).toBeUndefined();
  });

  test("sanitises both the name and the action", () => {
    expect(renderAction("ev\u202ee", "/me \x1b[2Jwipes")).toBe("* ev<U+202E>e ^[[2Jwipes");
  });
});

describe("key commands", () => {
  const FINGERPRINT = `${"AB:".repeat(31)}AB`;

  test("/keys asks for the account's keys and /key add binds this connection's certificate", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/keys", ctx);
    await registry.dispatch("/key add", ctx);
    expect(ctx.sent).toEqual([{ type: "keys" }, { type: "key_add" }]);
  });

  test("/key remove takes a fingerprint as openssl, gencert or /keys print it, or in plain hex of any case", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch(`/key remove ${FINGERPRINT}`, ctx);
    await registry.dispatch(`/key remove ${FINGERPRINT.replaceAll(":", "").toLowerCase()}`, ctx);
    expect(ctx.sent).toEqual([
      { type: "key_remove", fingerprint: FINGERPRINT },
      { type: "key_remove", fingerprint: FINGERPRINT },
    ]);
  });

  test("anything else is a usage error or a bad fingerprint, and nothing is sent", async () => {
    const { registry, ctx } = setup();
    for (const line of ["/key", "/key drop", "/key add now", "/key remove", `/key remove ${FINGERPRINT} extra`]) {
      expect(await registry.dispatch(line, ctx)).toBe("local");
    }
    expect(ctx.errors).toEqual(Array(5).fill("Usage: /key add | /key remove FINGERPRINT"));
    await registry.dispatch("/key remove AB:CD", ctx);
    expect(ctx.errors.at(-1)).toContain("SHA-256");
    expect(ctx.sent).toEqual([]);
  });
});
