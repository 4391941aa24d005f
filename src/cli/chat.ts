// `tlschat chat`: the chat client. Interactive when stdin and stdout are terminals; otherwise
// scriptable: stdin lines are sent, received messages are printed one per line (or as NDJSON).

import { Command, Option } from "commander";
import { createInterface } from "node:readline";
import type { ChatClient, ChatEvent } from "../client/chat-client.ts";
import { defaultCommands, type CommandContext } from "../client/commands.ts";
import { ConnectError } from "../client/connection.ts";
import { localLine, ownMessageLine, plainLines, screenLines, type Style } from "../client/format.ts";
import { sanitize } from "../client/sanitize.ts";
import { Terminal } from "../client/terminal.ts";
import { ChatError } from "../protocol/errors.ts";
import type { ClientFrame, ServerFrame } from "../protocol/frames.ts";
import { checkUsername } from "../protocol/validate.ts";
import {
  addConnectionOptions,
  buildVerification,
  connectFailure,
  givenPassword,
  obtainPassword,
  resolveTarget,
  type ConnectionOptions,
  type Target,
} from "./connect.ts";
import { chosenIdentity, startChat } from "./identity.ts";
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, printLine, type CliIO, type ExitCode } from "./io.ts";

interface ChatOptions extends ConnectionOptions {
  json?: boolean;
  send?: string;
  bell?: boolean;
  history: boolean;
}

export function chatCommand(io: CliIO, exit: ExitCode): Command {
  return addConnectionOptions(
    new Command("chat")
      .description("chat in the room (interactive on a terminal, line-based in scripts)")
      .argument("[user]", "your account, optionally as USER@HOST[:PORT]"),
  )
    .option("--json", "print received chat frames (msg, history, dm, join, leave, who, error) as JSON lines")
    .addOption(new Option("--send <text>", "send one message and exit"))
    .option("--bell", "ring the terminal bell when someone mentions you")
    .option("--no-history", "do not print the recent messages sent on login")
    .addHelpText(
      "after",
      `
Interactive: type to talk; /help lists commands (/msg, /reply, /me, /who, /passwd, /keys, /key, /quit).
Tab completes commands and names. Ctrl-D or Ctrl-C twice quits.
Scripts: each stdin line is sent (as typed, /msg works too); messages print as "name: text".
Exit status: 0 ok, 1 login or connection failure (or a refused message in scripts), 2 usage.

The server is verified with --ca, a --fingerprint, or its pin in known_hosts (trust on first use).
With an identity (tlschat gencert --identity) and no password given, you log in by key.

Examples:
  tlschat chat alice@chat.example.com
  tlschat chat alice@localhost:7443 --ca certs/cert.pem
  TLSCHAT_PASSWORD=... tlschat chat bot@localhost --send "build finished"
  tail -f build.log | tlschat chat bot@localhost --password-file ~/.bot-password`,
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
  const verification = await buildVerification(io, opts, target);
  const identity = await chosenIdentity(io, opts);
  // With an identity and no password given, the key logs in: nothing to type.
  const password = identity
    ? await givenPassword(io, opts)
    : await obtainPassword(io, opts, { confirmTwice: false, stdinAllowed: false, prompt: `Password for ${target.user}: ` });

  const early: ChatEvent[] = [];
  let client: ChatClient;
  try {
    const { host, port } = target;
    client = await startChat(
      io,
      { host, port, serverName: opts.serverName, verification, user: target.user, password, identity, identityOverTls12: opts.identityOverTls12, reconnect: interactive },
      (event) => early.push(event),
    );
  } catch (error) {
    if (error instanceof ChatError) throw new CliError(`${error.code}: ${error.message}`);
    throw connectFailure(error);
  }
  if (opts.send !== undefined) return sendOne(client, opts.send, io);
  return interactive ? runInteractive(client, target, opts, io, early) : runScripted(client, opts, io, early);
}

/** --send: one message, then quit; a refusal is a failure. */
async function sendOne(client: ChatClient, text: string, io: CliIO): Promise<number> {
  let refused: Extract<ServerFrame, { type: "error" }> | undefined;
  client.on((event) => {
    if (event.kind === "frame" && event.frame.type === "error") refused ??= event.frame;
  });
  client.send({ type: "say", text });
  await client.quit();
  if (refused) {
    printLine(io.stderr, `tlschat: message refused: ${refused.code}: ${sanitize(refused.message)}`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}

/** The parts of the command context that differ between a terminal and a script. */
interface CommandSurface {
  print(line: string, style: "status" | "error"): void;
  /** Shows a frame the user just sent; the server does not echo our own messages. */
  showSent(frame: ClientFrame): void;
  readSecret(prompt: string): Promise<string>;
  quit(): void;
}

/** The one CommandContext of `chat`: frames go to the session, local output to `surface`. */
function commandContext(client: ChatClient, surface: CommandSurface): CommandContext {
  return {
    send(frame) {
      client.send(frame);
      surface.showSent(frame);
    },
    print: (line, style) => surface.print(line, style ?? "status"),
    lastDmFrom: () => client.lastDmFrom,
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

async function runScripted(client: ChatClient, opts: ChatOptions, io: CliIO, early: ChatEvent[]): Promise<number> {
  let refusals = 0;
  const show = (event: ChatEvent) => {
    if (event.kind === "status") return printLine(io.stderr, event.text);
    const frame = event.frame;
    if (frame.type === "error") {
      refusals += 1;
      printLine(io.stderr, `tlschat: server refused: ${frame.code}: ${sanitize(frame.message)}`);
    }
    if (frame.type === "history" && !opts.history) return;
    if (opts.json) io.stdout.write(JSON.stringify(frame) + "\n");
    else for (const line of plainLines(frame)) io.stdout.write(line + "\n");
  };
  for (const event of early.splice(0)) show(event);
  client.on(show);

  const lines = createInterface({ input: io.stdin, terminal: false });
  // In a script, /quit ends the input as EOF would; lines after it are not sent.
  let quitTyped = false;
  const commands = defaultCommands({ maxTextChars: client.maxTextChars });
  const context = commandContext(client, {
    print: (line, style) => {
      // A line the client refused to send (bad text, unknown command) fails the script.
      if (style === "error") refusals += 1;
      printLine(io.stderr, line);
    },
    // A script's stdout is what was received; what it sent is its own input.
    showSent: () => undefined,
    readSecret: () => Promise.reject(new Error("/passwd needs a terminal")),
    quit: () => {
      quitTyped = true;
      lines.close();
    },
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

async function runInteractive(client: ChatClient, target: Target, opts: ChatOptions, io: CliIO, early: ChatEvent[]): Promise<number> {
  const color = io.env.NO_COLOR === undefined || io.env.NO_COLOR === "";
  const style = (): Style => ({ color, self: client.user });
  const commands = defaultCommands({ maxTextChars: client.maxTextChars });
  const terminal = new Terminal({
    input: io.stdin,
    output: io.stdout,
    prompt: `${client.user}> `,
    completer: (line) => commands.complete(line, client.online()),
  });
  const dim = (text: string) => localLine(text, "status", color);

  const show = (event: ChatEvent) => {
    if (event.kind === "status") return terminal.print(dim(`-- ${event.text}`));
    const frame = event.frame;
    if (frame.type === "password_changed") return terminal.print(dim("-- Password changed"));
    if (frame.type === "history" && !opts.history) return;
    const lines = screenLines(frame, style());
    if (lines.length === 0) return;
    terminal.print(...lines.map((line) => line.text));
    if (opts.bell && lines.some((line) => line.mention)) terminal.bell();
  };

  const context = commandContext(client, {
    print: (line, style) => terminal.print(localLine(line, style, color)),
    showSent: (frame) => {
      const line = ownMessageLine(frame, style());
      if (line !== undefined) terminal.print(line);
    },
    readSecret: (prompt) => terminal.readSecret(prompt),
    quit: () => void client.quit(),
  });

  terminal.print(dim(`-- Connected to ${target.host}:${target.port} (${client.tlsSummary}) as ${client.user}. /help for commands.`));
  for (const event of early.splice(0)) show(event);
  client.on(show);
  terminal.on("line", (line) => void commands.dispatch(line, context));
  terminal.on("quit", () => context.quit());
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
