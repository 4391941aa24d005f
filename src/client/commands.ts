// Slash commands as a registry of name, usage, help and handler; it turns typed lines into
// frames and local output through a CommandContext and knows nothing of sockets or the screen.
//
// /me has no frame of its own: it sends a room message whose text starts with "/me ", and
// receiving clients show it through `renderAction` as "* alice waves". Typing "//me waves"
// therefore sends the same text; the "//" escape only stops this client from running a command.

import type { ClientFrame } from "../protocol/frames.ts";
import { checkText, checkUsername, USERNAME_PATTERN, userKey } from "../protocol/validate.ts";
import { registerKeyCommands } from "./key-commands.ts";
import { sanitize, sanitizeName } from "./sanitize.ts";

/** What a command may do; the chat session implements it. */
export interface CommandContext {
  send(frame: ClientFrame): void;
  /** Local output, never sent. */
  print(line: string, style?: "status" | "error"): void;
  /** Sender of the most recent direct message received, for /reply. */
  lastDmFrom(): string | undefined;
  /** Prompts for the old and new password without echoing them, then sends `passwd`. */
  changePassword(): Promise<void>;
  /** /quit and /exit: leave the chat after what was typed before has gone out. */
  quit(): void;
}

export interface ChatCommand {
  /** Without the slash; matched ignoring case. */
  name: string;
  aliases?: string[];
  usage: string;
  help: string;
  /** `args` is the rest of the line after the command name, trimmed. */
  run(args: string, ctx: CommandContext): void | Promise<void>;
}

/** "empty": blank line; "sent": at least one frame went out; "local": output only. */
export type DispatchResult = "empty" | "sent" | "local";

/** [candidates for the line's last word, that word]: the shape of a node:readline completer. */
export type Completion = [string[], string];

export interface CommandRegistryOptions {
  /** Longest text accepted in a say or dm, in code points (the server's limit). */
  maxTextChars: number;
}

const ACTION_PREFIX = "/me ";

export class CommandRegistry {
  private readonly commands: ChatCommand[] = [];
  private readonly byName = new Map<string, ChatCommand>();

  constructor(private readonly options: CommandRegistryOptions) {}

  register(cmd: ChatCommand): void {
    const names = [cmd.name, ...(cmd.aliases ?? [])].map((name) => name.toLowerCase());
    for (const name of names) {
      if (this.byName.has(name)) throw new Error(`Command name /${name} is already registered`);
    }
    for (const name of names) this.byName.set(name, cmd);
    this.commands.push(cmd);
  }

  /** Finds a command by name or alias, without the slash, ignoring case. */
  lookup(name: string): ChatCommand | undefined {
    return this.byName.get(name.toLowerCase());
  }

  /** Commands in registration order. */
  list(): readonly ChatCommand[] {
    return this.commands;
  }

  /**
   * Completes the last word of `linePrefix`: a command name (with its slash) when the line is
   * just "/" and letters, otherwise a user name. Names the server sent that are not valid
   * usernames are never offered, so completion cannot paste hostile text into the input line.
   */
  complete(linePrefix: string, users: readonly string[]): Completion {
    if (/^\/[^/\s]*$/.test(linePrefix)) {
      const typed = linePrefix.toLowerCase();
      const names = [...this.byName.keys()].map((name) => "/" + name).filter((name) => name.startsWith(typed));
      return [names.sort(), linePrefix];
    }
    const word = linePrefix.slice(linePrefix.lastIndexOf(" ") + 1);
    // An empty word lists everyone only where a user name is expected, not in mid-sentence.
    if (word === "" && !this.expectsUser(linePrefix)) return [[], word];
    const key = userKey(word);
    const matches = new Set(users.filter((user) => USERNAME_PATTERN.test(user) && userKey(user).startsWith(key)));
    return [[...matches].sort((a, b) => userKey(a).localeCompare(userKey(b))), word];
  }

  private expectsUser(linePrefix: string): boolean {
    const match = /^\/(\S+) +$/.exec(linePrefix);
    return match !== null && this.lookup(match[1] ?? "")?.name === "msg";
  }

  /**
   * Runs one input line: a room message, "//text" as the message "/text", or a command. Texts and
   * recipients are checked before they are sent, and a command's failure is printed, not thrown.
   */
  async dispatch(line: string, ctx: CommandContext): Promise<DispatchResult> {
    if (line.trim() === "") return "empty";
    let sent = false;
    const guarded: CommandContext = {
      send: (frame) => {
        this.check(frame);
        ctx.send(frame);
        sent = true;
      },
      print: (text, style) => ctx.print(text, style),
      lastDmFrom: () => ctx.lastDmFrom(),
      changePassword: () => ctx.changePassword(),
      quit: () => ctx.quit(),
    };
    try {
      await this.run(line, guarded);
    } catch (err) {
      ctx.print(err instanceof Error ? err.message : String(err), "error");
    }
    return sent ? "sent" : "local";
  }

  private async run(line: string, ctx: CommandContext): Promise<void> {
    if (!line.startsWith("/")) return ctx.send({ type: "say", text: line });
    if (line.startsWith("//")) return ctx.send({ type: "say", text: line.slice(1) });
    const [name, args] = splitFirstWord(line.slice(1));
    const cmd = this.lookup(name);
    if (cmd === undefined) return printUnknown(name, ctx);
    await cmd.run(args, ctx);
  }

  private check(frame: ClientFrame): void {
    if (frame.type === "dm") checkUsername(frame.to);
    if (frame.type === "say" || frame.type === "dm") checkText(frame.text, this.options.maxTextChars);
  }
}

function printUsage(cmd: ChatCommand, ctx: CommandContext): void {
  ctx.print(`Usage: ${cmd.usage}`, "error");
}

/** `name` was typed by the user but may hold escapes, so it is sanitised before it is echoed. */
function printUnknown(name: string, ctx: CommandContext): void {
  ctx.print(`Unknown command /${sanitize(name)} — type /help`, "error");
}

/** Splits "word rest of text" at the first whitespace; the rest is trimmed. */
function splitFirstWord(text: string): [string, string] {
  const space = text.search(/\s/);
  return space === -1 ? [text, ""] : [text.slice(0, space), text.slice(space).trim()];
}

/** The built-in commands: /help, /who, /msg (/dm), /reply, /me, /passwd, /quit (/exit), and the key commands. */
export function defaultCommands(options: CommandRegistryOptions): CommandRegistry {
  const registry = new CommandRegistry(options);

  const help: ChatCommand = {
    name: "help",
    usage: "/help [COMMAND]",
    help: "List the commands, or explain one",
    run(args, ctx) {
      const name = args.replace(/^\//, "");
      const wanted = name === "" ? registry.list() : [registry.lookup(name)];
      const found = wanted.filter((cmd) => cmd !== undefined);
      if (found.length === 0) return printUnknown(name, ctx);
      const width = Math.max(...found.map((cmd) => cmd.usage.length));
      for (const cmd of found) {
        const aliases = cmd.aliases?.length ? ` (also ${cmd.aliases.map((a) => "/" + a).join(", ")})` : "";
        ctx.print(`${cmd.usage.padEnd(width)}  ${cmd.help}${aliases}`, "status");
      }
    },
  };

  const msg: ChatCommand = {
    name: "msg",
    aliases: ["dm"],
    usage: "/msg USER TEXT",
    help: "Send a direct message",
    run(args, ctx) {
      const [to, text] = splitFirstWord(args);
      if (to === "" || text === "") return printUsage(msg, ctx);
      ctx.send({ type: "dm", to, text });
    },
  };

  const reply: ChatCommand = {
    name: "reply",
    usage: "/reply TEXT",
    help: "Answer the last direct message you received",
    run(args, ctx) {
      if (args === "") return printUsage(reply, ctx);
      const to = ctx.lastDmFrom();
      if (to === undefined) return ctx.print("No direct message to reply to yet", "error");
      ctx.send({ type: "dm", to, text: args });
    },
  };

  const me: ChatCommand = {
    name: "me",
    usage: "/me ACTION",
    help: "Tell the room what you are doing",
    run(args, ctx) {
      if (args === "") return printUsage(me, ctx);
      ctx.send({ type: "say", text: ACTION_PREFIX + args });
    },
  };

  const passwd: ChatCommand = {
    name: "passwd",
    usage: "/passwd",
    help: "Change your password (you are prompted; never type it after the command)",
    run(args, ctx) {
      // A password typed on the command line would be echoed and kept in input history.
      if (args !== "") return printUsage(passwd, ctx);
      return ctx.changePassword();
    },
  };

  registry.register(help);
  registry.register({
    name: "who",
    usage: "/who",
    help: "Ask the server who is online",
    run: (_args, ctx) => ctx.send({ type: "who" }),
  });
  registry.register(msg);
  registry.register(reply);
  registry.register(me);
  registry.register(passwd);
  registry.register({
    name: "quit",
    aliases: ["exit"],
    usage: "/quit",
    help: "Leave the chat",
    run: (_args, ctx) => ctx.quit(),
  });
  registerKeyCommands(registry);
  return registry;
}

/**
 * Renders a room message sent with /me as "* alice waves", already sanitised for the terminal;
 * undefined when `text` is an ordinary message.
 */
export function renderAction(from: string, text: string): string | undefined {
  if (!text.startsWith(ACTION_PREFIX)) return undefined;
  const action = text.slice(ACTION_PREFIX.length).trim();
  if (action === "") return undefined;
  return `* ${sanitizeName(from)} ${sanitize(action)}`;
}
