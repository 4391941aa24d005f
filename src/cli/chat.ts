// `tlschat chat`: the chat client. Interactive when stdin and stdout are terminals; otherwise
// scriptable: stdin lines are sent to one room, received messages of the chosen rooms are
// printed one per line (or as NDJSON).

import { Command, InvalidArgumentError, Option } from "commander";
import { createInterface, type Key } from "node:readline";
import { ChatClient, type ChatEvent } from "../client/chat-client.ts";
import { roomName } from "../client/command-args.ts";
import { defaultCommands, type CommandContext } from "../client/commands.ts";
import { ConnectError } from "../client/connection.ts";
import { localLine, olderHeading, plainLines, promptText, refusalLine, screenLines, type ScreenLine, type Style } from "../client/format.ts";
import { RoomFocus } from "../client/room-focus.ts";
import { sanitize } from "../client/sanitize.ts";
import { Terminal } from "../client/terminal.ts";
import { ChatError } from "../protocol/errors.ts";
import type { ErrorFrame, ServerFrame } from "../protocol/frames.ts";
import { checkRoomName, checkUsername, LOBBY, roomKey } from "../protocol/validate.ts";
import {
  addConnectionOptions,
  connectFailure,
  givenPassword,
  obtainPassword,
  resolveTarget,
  SERVERS_HELP,
  withVerification,
  type ConnectionOptions,
} from "./connect.ts";
import { chosenIdentity, startChat } from "./identity.ts";
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, printLine, type CliIO, type ExitCode } from "./io.ts";

interface ChatOptions extends ConnectionOptions {
  json?: boolean;
  send?: string;
  bell?: boolean;
  history: boolean;
  /** In the order given: the first is where lines go. */
  room: string[];
}

/** --room, repeatable; "rust" means "#rust", since an unquoted # starts a shell comment. */
function collectRoom(value: string, previous: string[]): string[] {
  const room = roomName(value);
  try {
    checkRoomName(room);
  } catch (error) {
    throw new InvalidArgumentError((error as ChatError).message);
  }
  return [...previous, room];
}

export function chatCommand(io: CliIO, exit: ExitCode): Command {
  return addConnectionOptions(
    new Command("chat")
      .description("chat in rooms (interactive on a terminal, line-based in scripts)")
      .argument("[user]", "your account, optionally as USER@HOST[:PORT]"),
  )
    .option("--room <room>", "join ROOM if need be; the first is where lines go, and only these rooms print (repeatable; default #lobby)", collectRoom, [])
    .option("--json", "print received frames (messages, notices, lists, acks, errors) as JSON lines; with --room, only those rooms'")
    .addOption(new Option("--send <text>", "send one message and exit"))
    .option("--bell", "ring the terminal bell when someone mentions you")
    .option("--no-history", "do not print the recent messages sent on login and on joining (missed ones after a reconnect still print)")
    .addHelpText(
      "after",
      `
Interactive: type to talk in the current room, shown in the prompt; /help lists commands
(/join, /part, /switch, /rooms, /msg, /history, /search, /topic, /kick, /ban, /keys, ...). Your lines
show once the server has stored them. Alt-1..9, Ctrl-N and Ctrl-P switch rooms. Tab completes
commands, names and rooms. Ctrl-D or Ctrl-C twice quits. After a lost connection it reconnects
(to the next server, with several), shows what was missed, and sends what was typed meanwhile.
Scripts: each stdin line is sent to the first --room (as typed, /msg works too); messages print
as "name: text", or "#room name: text" when more than one --room is given.
Exit status: 0 ok, 1 login or connection failure (or a refused message in scripts), 2 usage.
${SERVERS_HELP}
With an identity (tlschat gencert --identity) and no password given, you log in by key.

Examples:
  tlschat chat alice@chat.example.com
  tlschat chat alice@localhost:7443 --ca certs/cert.pem
  TLSCHAT_PASSWORD=... tlschat chat bot@localhost --room builds --send "build finished"
  tail -f build.log | tlschat chat bot@localhost --password-file ~/.bot-password
  tlschat chat alice --server node1.example.com,node2.example.com --ca cluster-ca.pem`,
    )
    .action(async (user: string | undefined, opts: ChatOptions) => {
      exit.value = await runChat(user, opts, io);
    });
}

async function runChat(userArg: string | undefined, opts: ChatOptions, io: CliIO): Promise<number> {
  const target = resolveTarget(userArg, opts);
  if (target.user === undefined) throw new CliError("Name your account: tlschat chat USER[@HOST[:PORT]]", EXIT_USAGE);
  try {
    checkUsername(target.user);
  } catch (error) {
    throw new CliError((error as ChatError).message, EXIT_USAGE);
  }
  const interactive = Boolean(io.stdin.isTTY && io.stdout.isTTY) && !opts.json && opts.send === undefined;
  // Once the chat screen owns the terminal, a server never met before is refused, not asked about.
  let starting = true;
  const servers = await withVerification(io, opts, target.servers, () => starting);
  const identity = await chosenIdentity(io, opts);
  // With an identity and no password given, the key logs in: nothing to type.
  const password = identity
    ? await givenPassword(io, opts)
    : await obtainPassword(io, opts, { confirmTwice: false, stdinAllowed: false, prompt: `Password for ${target.user}: ` });

  const early: ChatEvent[] = [];
  let client: ChatClient;
  try {
    client = await startChat(
      io,
      { servers, serverName: opts.serverName, user: target.user, password, identity, identityOverTls12: opts.identityOverTls12, reconnect: interactive },
      (event) => early.push(event),
    );
  } catch (error) {
    if (error instanceof ChatError) throw new CliError(`${error.code}: ${error.message}`);
    throw connectFailure(error);
  }
  starting = false;
  // Membership persists on the server: join only the rooms the user is not in yet. The server
  // handles a connection's frames in order, so lines sent after these go to joined rooms.
  for (const room of opts.room) if (!client.rooms.has(room)) client.send({ type: "join", room });
  if (opts.send !== undefined) return sendOne(client, opts.send, opts.room[0], io, early);
  return interactive ? runInteractive(client, opts, io, early) : runScripted(client, opts, io, early);
}

/** --send: one message, then quit once the server has stored it; a refusal is a failure. */
async function sendOne(client: ChatClient, text: string, room: string | undefined, io: CliIO, early: readonly ChatEvent[]): Promise<number> {
  // The servers the login went past, as a script says them; what the login brought is not printed.
  for (const event of early) if (event.kind === "status") printLine(io.stderr, event.text);
  let refused: ErrorFrame | undefined;
  client.on((event) => {
    if (event.kind === "refused") refused ??= event.error;
    if (event.kind === "frame" && event.frame.type === "error") refused ??= event.frame;
  });
  client.send(room === undefined ? { type: "say", text } : { type: "say", text, room });
  await client.quit();
  if (refused) {
    printLine(io.stderr, `tlschat: message refused: ${sanitize(refused.code)}: ${sanitize(refused.message)}`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}

/** The parts of the command context that differ between a terminal and a script. */
interface CommandSurface {
  print(line: string, style: "status" | "error"): void;
  readSecret(prompt: string): Promise<string>;
  quit(): void;
  currentRoom(): string | undefined;
  switchTo(room: string): void;
  switchWhenJoined(room: string): void;
}

/** The one CommandContext of `chat`: frames go to the session, local output to `surface`. */
function commandContext(client: ChatClient, surface: CommandSurface): CommandContext {
  return {
    send(frame) {
      client.send(frame);
      // Shown once stored, which needs the connection back first: say it is not lost.
      if ((frame.type === "say" || frame.type === "dm") && !client.connected) surface.print("Not connected: it goes out once reconnected", "status");
    },
    print: (line, style) => surface.print(line, style ?? "status"),
    lastDmFrom: () => client.lastDmFrom,
    currentRoom: () => surface.currentRoom(),
    joinedRooms: () => client.rooms.names(),
    topicOf: (room) => client.rooms.get(room)?.topic,
    switchTo: (room) => surface.switchTo(room),
    switchWhenJoined: (room) => surface.switchWhenJoined(room),
    olderHistory: (room) => client.olderHistory(room),
    async changePassword() {
      const oldPassword = await surface.readSecret("Current password (none: just Enter): ");
      const newPassword = await surface.readSecret("New password: ");
      if ((await surface.readSecret("Repeat the new password: ")) !== newPassword) {
        throw new Error("The new passwords do not match; nothing was changed");
      }
      // No current password: a key-only account setting its first one.
      client.changePassword(oldPassword === "" ? undefined : oldPassword, newPassword);
    },
    quit: () => surface.quit(),
  };
}

/**
 * The rooms a script prints: those named with --room, else the lobby; with --json and no --room,
 * every room (each frame carries its room). Undefined means every room.
 */
function printedRooms(opts: ChatOptions): Set<string> | undefined {
  if (opts.room.length > 0) return new Set(opts.room.map(roomKey));
  return opts.json ? undefined : new Set([roomKey(LOBBY)]);
}

async function runScripted(client: ChatClient, opts: ChatOptions, io: CliIO, early: ChatEvent[]): Promise<number> {
  let refusals = 0;
  const printed = printedRooms(opts);
  const withRoom = printed !== undefined && printed.size > 1;
  const refused = (error: ErrorFrame) => {
    refusals += 1;
    printLine(io.stderr, `tlschat: server refused: ${sanitize(error.code)}: ${sanitize(error.message)}`);
  };
  const print = (frame: ServerFrame) => {
    const room = "room" in frame ? frame.room : undefined;
    if (room !== undefined && printed !== undefined && !printed.has(roomKey(room))) return;
    if (opts.json) io.stdout.write(JSON.stringify(frame) + "\n");
    else for (const line of plainLines(frame, withRoom)) io.stdout.write(line + "\n");
  };
  const show = (event: ChatEvent) => {
    switch (event.kind) {
      case "status":
        return printLine(io.stderr, event.text);
      case "sent":
        // A script's stdout is what was received; what it sent is its own input.
        if (opts.json) print(event.ack);
        return;
      case "refused":
        refused(event.error);
        return print(event.error);
      case "history":
        if (event.cause !== "recent" || opts.history) print(event.frame);
        return;
      case "frame":
        if (event.frame.type === "error") refused(event.frame);
        return print(event.frame);
    }
  };
  for (const event of early.splice(0)) show(event);
  client.on(show);

  const lines = createInterface({ input: io.stdin, terminal: false });
  // In a script, /quit ends the input as EOF would; lines after it are not sent.
  let quitTyped = false;
  // Joins were sent before any line, so a script switches at once instead of awaiting `joined`.
  let target = opts.room[0];
  const commands = defaultCommands({ maxTextChars: client.maxTextChars });
  const context = commandContext(client, {
    print: (line, style) => {
      // A line the client refused to send (bad text, unknown command) fails the script.
      if (style === "error") refusals += 1;
      printLine(io.stderr, line);
    },
    readSecret: () => Promise.reject(new Error("/passwd needs a terminal")),
    quit: () => {
      quitTyped = true;
      lines.close();
    },
    currentRoom: () => target,
    switchTo: (room) => (target = room),
    switchWhenJoined: (room) => (target = room),
  });
  const onAbort = () => lines.close();
  io.signal.addEventListener("abort", onAbort, { once: true });
  // A lost connection ends the script now, not when stdin next has a line.
  void client.finished.then(onAbort);
  try {
    for await (const line of lines) {
      if (quitTyped || client.isFinished) break;
      await commands.dispatch(line, context);
    }
  } finally {
    io.signal.removeEventListener("abort", onAbort);
  }
  if (!client.isFinished) await client.quit();
  const lostError = await client.finished;
  if (lostError) {
    printLine(io.stderr, `tlschat: ${lostError.message}`);
    return EXIT_FAILURE;
  }
  return refusals > 0 ? EXIT_FAILURE : EXIT_OK;
}

/** Alt-1..9 switches to a room by its number, Ctrl-N and Ctrl-P to the next and previous one. */
function switchByKey(focus: RoomFocus, key: Key): boolean {
  if (key.meta && key.name !== undefined && /^[1-9]$/.test(key.name)) {
    focus.switchToPosition(Number(key.name));
    return true;
  }
  if (key.ctrl && (key.name === "n" || key.name === "p")) {
    focus.cycle(key.name === "n" ? 1 : -1);
    return true;
  }
  return false;
}

async function runInteractive(client: ChatClient, opts: ChatOptions, io: CliIO, early: ChatEvent[]): Promise<number> {
  const color = io.env.NO_COLOR === undefined || io.env.NO_COLOR === "";
  const focus = new RoomFocus(client.rooms);
  if (opts.room[0] !== undefined) focus.switchWhenJoined(opts.room[0]);
  const style = (): Style => ({ color, self: client.user, room: focus.current });
  const commands = defaultCommands({ maxTextChars: client.maxTextChars });
  const terminal = new Terminal({
    input: io.stdin,
    output: io.stdout,
    prompt: () => promptText(client.user, focus.current, focus.unread()),
    completer: (line) => commands.complete(line, client.online(), client.rooms.names()),
  });
  const dim = (text: string) => localLine(text, "status", color);

  const printLines = (lines: readonly ScreenLine[], ...above: string[]) => {
    if (lines.length === 0 && above.length === 0) return terminal.refreshPrompt();
    terminal.print(...above, ...lines.map((line) => line.text));
    if (opts.bell && lines.some((line) => line.mention)) terminal.bell();
  };
  const show = (event: ChatEvent) => {
    switch (event.kind) {
      case "status":
        return terminal.print(dim(`-- ${event.text}`));
      case "sent":
        return event.alreadyShown ? undefined : printLines(screenLines(event.message, style()));
      case "refused":
        return terminal.print(refusalLine(event.error, event.message, style()));
      case "history": {
        if (event.cause === "recent" && !opts.history) return;
        // Missed messages of other rooms are unread like live ones.
        if (event.cause === "missed") for (const message of event.frame.messages) focus.observe(message);
        const lines = screenLines(event.frame, style());
        return event.cause === "older" ? printLines(lines, olderHeading(event.frame, color)) : printLines(lines);
      }
      case "frame":
        focus.observe(event.frame);
        if (event.frame.type === "password_changed") return terminal.print(dim("-- Password changed"));
        return printLines(screenLines(event.frame, style()));
    }
  };

  const context = commandContext(client, {
    print: (line, style) => terminal.print(localLine(line, style, color)),
    readSecret: (prompt) => terminal.readSecret(prompt),
    quit: () => void client.quit(),
    currentRoom: () => focus.current,
    switchTo: (room) => {
      focus.switchTo(room);
      terminal.refreshPrompt();
    },
    switchWhenJoined: (room) => focus.switchWhenJoined(room),
  });

  // The servers that failed before this one first, then what the login brought under the line.
  for (const event of early.filter((event) => event.kind === "status")) show(event);
  terminal.print(dim(`-- Connected to ${client.server} (${client.tlsSummary}) as ${client.user}. /help for commands.`));
  for (const event of early.filter((event) => event.kind !== "status")) show(event);
  client.on(show);
  terminal.on("line", (line) => void commands.dispatch(line, context));
  terminal.on("quit", () => context.quit());
  terminal.on("key", (key) => {
    if (!switchByKey(focus, key)) return false;
    terminal.refreshPrompt();
    return true;
  });
  const onAbort = () => void client.stop();
  io.signal.addEventListener("abort", onAbort, { once: true });
  terminal.start();

  const finalError = await client.finished;
  io.signal.removeEventListener("abort", onAbort);
  terminal.close();
  if (finalError) {
    printLine(io.stderr, `tlschat: ${finalError instanceof ConnectError || finalError instanceof ChatError ? finalError.message : String(finalError)}`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}
