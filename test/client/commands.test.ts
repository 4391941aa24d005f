import { describe, expect, test } from "bun:test";
import {
  CommandRegistry,
  defaultCommands,
  renderAction,
  type CommandContext,
} from "../../src/client/commands.ts";
import type { ClientFrame } from "../../src/protocol/frames.ts";

const MAX_TEXT_CHARS = 100;

class FakeContext implements CommandContext {
  sent: ClientFrame[] = [];
  printed: { line: string; style: "status" | "error" | undefined }[] = [];
  lastDm: string | undefined = undefined;
  passwordChanges = 0;
  quits = 0;

  send(frame: ClientFrame): void {
    this.sent.push(frame);
  }
  print(line: string, style?: "status" | "error"): void {
    this.printed.push({ line, style });
  }
  lastDmFrom(): string | undefined {
    return this.lastDm;
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
  test("/help lists every command with its usage, help and aliases", async () => {
    const { registry, ctx } = setup();
    expect(await registry.dispatch("/help", ctx)).toBe("local");
    expect(ctx.sent).toEqual([]);
    const lines = ctx.printed.map((p) => p.line);
    expect(lines).toHaveLength(registry.list().length);
    for (const cmd of registry.list()) {
      expect(lines.some((line) => line.startsWith(cmd.usage) && line.includes(cmd.help))).toBe(true);
    }
    expect(lines.find((line) => line.startsWith("/quit"))).toContain("(also /exit)");
    expect(lines.find((line) => line.startsWith("/msg"))).toContain("(also /dm)");
  });

  test("/help COMMAND explains one command, with or without its slash", async () => {
    const { registry, ctx } = setup();
    await registry.dispatch("/help msg", ctx);
    await registry.dispatch("/help /dm", ctx);
    expect(ctx.printed.map((p) => p.line)).toEqual([
      "/msg USER TEXT  Send a direct message (also /dm)",
      "/msg USER TEXT  Send a direct message (also /dm)",
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

describe("CommandRegistry.complete", () => {
  const users = ["alice", "albert", "bob", "Alfred", "al\x1b[2Jx"];

  test("completes command names and aliases after a slash", () => {
    const { registry } = setup();
    expect(registry.complete("/m", users)).toEqual([["/me", "/msg"], "/m"]);
    expect(registry.complete("/E", users)).toEqual([["/exit"], "/E"]);
    expect(registry.complete("/zz", users)).toEqual([[], "/zz"]);
    expect(registry.complete("/", users)[0]).toEqual([
      "/dm", "/exit", "/help", "/key", "/keys", "/me", "/msg", "/passwd", "/quit", "/reply", "/who",
    ]);
  });

  test("completes the user argument of /msg, ignoring case, offering only valid names", () => {
    const { registry } = setup();
    expect(registry.complete("/msg al", users)).toEqual([["albert", "Alfred", "alice"], "al"]);
    expect(registry.complete("/dm b", users)).toEqual([["bob"], "b"]);
  });

  test("lists every user for an empty /msg argument, but not mid-sentence", () => {
    const { registry } = setup();
    expect(registry.complete("/msg ", users)).toEqual([["albert", "Alfred", "alice", "bob"], ""]);
    expect(registry.complete("hello ", users)).toEqual([[], ""]);
  });

  test("completes user names anywhere as a word", () => {
    const { registry } = setup();
    expect(registry.complete("thanks ali", users)).toEqual([["alice"], "ali"]);
    expect(registry.complete("bo", users)).toEqual([["bob"], "bo"]);
  });

  test('does not treat the "//" escape as a command', () => {
    const { registry } = setup();
    expect(registry.complete("//m", users)).toEqual([[], "//m"]);
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
