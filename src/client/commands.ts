// Slash commands as a registry of name, usage, help and handler; it turns typed lines into
// frames for the current room and local output through a CommandContext, and knows nothing of
// sockets or the screen. The room and moderation commands are in room-commands.ts, those about
// the message log (/history, /search, /delete) in log-commands.ts.
//
// /me has no frame of its own: it sends a room message whose text starts with "/me ", and
// receiving clients show it through `renderAction` as "* alice waves". Typing "//me waves"
// therefore sends the same text; the "//" escape only stops this client from running a command.

import { MAX_REASON_CHARS, MODERATION_ACTIONS, type ClientFrame, type ModerationRequest } from "../protocol/frames.ts";
import { checkRoomName, checkText, checkUsername, ROOM_NAME_PATTERN, roomKey, USERNAME_PATTERN, userKey } from "../protocol/validate.ts";
import { printUsage, splitFirstWord } from "./command-args.ts";
import { logCommands } from "./log-commands.ts";
import { roomCommands } from "./room-commands.ts";
import { registerKeyCommands } from "./key-commands.ts";
import { sanitize, sanitizeName } from "./sanitize.ts";

/** What a command may do; the chat session implements it. */
export interface CommandContext {
  send(frame: ClientFrame): void;
  /** Local output, never sent. */
  print(line: string, style?: "status" | "error"): void;
  /** Sender of the most recent direct message received, for /reply. */
  lastDmFrom(): string | undefined;
  /** The room typed lines go to; undefined means the server's default room (the lobby). */
  currentRoom(): string | undefined;
  /** The rooms the user is in, in the order they were joined. */
  joinedRooms(): readonly string[];
  /** A joined room's topic as last heard; undefined when the server has not said yet. */
  topicOf(room: string): string | undefined;
  /** Makes a joined room the current one. */
  switchTo(room: string): void;
  /** Makes `room` the current one once the server confirms the join just sent. */
  switchWhenJoined(room: string): void;
  /** Asks for the joined room's messages before the oldest shown; false when that cannot be done now. */
  olderHistory(room: string): boolean;
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
  /** What the first argument names, so Tab can list candidates for it. */
  completes?: "user" | "room";
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
/** Printed after the list of commands: what the room commands' arguments mean. */
const HELP_NOTES = "#ROOM left out means the current room; DURATION is a number and a unit: 30s, 10m, 2h, 7d.";

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
   * just "/" and letters, a room name when the word starts with "#", otherwise a user name. Names
   * the server sent that are not valid are never offered, so completion cannot paste hostile
   * text into the input line.
   */
  complete(linePrefix: string, users: readonly string[], rooms: readonly string[]): Completion {
    if (/^\/[^/\s]*$/.test(linePrefix)) {
      const typed = linePrefix.toLowerCase();
      const names = [...this.byName.keys()].map((name) => "/" + name).filter((name) => name.startsWith(typed));
      return [names.sort(), linePrefix];
    }
    const word = linePrefix.slice(linePrefix.lastIndexOf(" ") + 1);
    // An empty word lists candidates only where the command expects them, not in mid-sentence.
    const expected = word === "" ? this.expectedArgument(linePrefix) : word.startsWith("#") ? "room" : "user";
    if (expected === undefined) return [[], word];
    return expected === "room" ? [matching(rooms, ROOM_NAME_PATTERN, roomKey, word), word] : [matching(users, USERNAME_PATTERN, userKey, word), word];
  }

  /** What the command being typed expects next: its first argument, or a user after a room. */
  private expectedArgument(linePrefix: string): "user" | "room" | undefined {
    const match = /^\/(\S+) +(#\S+ +)?$/.exec(linePrefix);
    const completes = match === null ? undefined : this.lookup(match[1] ?? "")?.completes;
    if (match?.[2] !== undefined) return completes === "user" ? "user" : undefined;
    return completes;
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
      currentRoom: () => ctx.currentRoom(),
      joinedRooms: () => ctx.joinedRooms(),
      topicOf: (room) => ctx.topicOf(room),
      switchTo: (room) => ctx.switchTo(room),
      switchWhenJoined: (room) => ctx.switchWhenJoined(room),
      olderHistory: (room) => ctx.olderHistory(room),
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
    if (!line.startsWith("/")) return ctx.send(say(line, ctx));
    if (line.startsWith("//")) return ctx.send(say(line.slice(1), ctx));
    const [name, args] = splitFirstWord(line.slice(1));
    const cmd = this.lookup(name);
    if (cmd === undefined) return printUnknown(name, ctx);
    await cmd.run(args, ctx);
  }

  private check(frame: ClientFrame): void {
    if (frame.type === "dm") checkUsername(frame.to);
    if (frame.type === "say" || frame.type === "dm") checkText(frame.text, this.options.maxTextChars);
    if ("room" in frame && frame.room !== undefined) checkRoomName(frame.room);
    if (isModeration(frame)) {
      checkUsername(frame.user);
      if (frame.reason !== undefined) checkText(frame.reason, MAX_REASON_CHARS);
    }
  }
}

function isModeration(frame: ClientFrame): frame is ModerationRequest {
  return (MODERATION_ACTIONS as readonly string[]).includes(frame.type);
}

/** A room message for the current room (no room: the server's default). */
function say(text: string, ctx: CommandContext): ClientFrame {
  const room = ctx.currentRoom();
  return room === undefined ? { type: "say", text } : { type: "say", text, room };
}

/** Valid names from `names` that start with `typed`, ignoring case, each once, sorted. */
function matching(names: readonly string[], valid: RegExp, key: (name: string) => string, typed: string): string[] {
  const prefix = key(typed);
  const found = new Set(names.filter((name) => valid.test(name) && key(name).startsWith(prefix)));
  return [...found].sort((a, b) => key(a).localeCompare(key(b)));
}

/** `name` was typed by the user but may hold escapes, so it is sanitised before it is echoed. */
function printUnknown(name: string, ctx: CommandContext): void {
  ctx.print(`Unknown command /${sanitize(name)} — type /help`, "error");
}

/**
 * The built-in commands: /help, /msg (/dm), /reply, /me, the room and moderation commands, the
 * message log's commands, /passwd, the key commands, and /quit (/exit).
 */
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
      if (name === "") ctx.print(HELP_NOTES, "status");
    },
  };

  const msg: ChatCommand = {
    name: "msg",
    aliases: ["dm"],
    usage: "/msg USER TEXT",
    help: "Send a direct message (kept for them until they log in if they are offline)",
    completes: "user",
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
      ctx.send(say(ACTION_PREFIX + args, ctx));
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
  registry.register(msg);
  registry.register(reply);
  registry.register(me);
  for (const cmd of roomCommands()) registry.register(cmd);
  for (const cmd of logCommands()) registry.register(cmd);
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
