// The identity (client certificate for key login) that `chat` and `register` present: the one
// named by --identity or TLSCHAT_IDENTITY, else identity.pem in the config directory if it
// exists, none with --no-identity; how a broken one reads on the terminal; and the two ways a
// command with an identity treats passwords: `register` makes one optional, and `chat` logs in by
// key, asking for the password on a terminal only when the server refuses the key.

import { ChatClient, type ChatClientOptions, type ChatEvent } from "../client/chat-client.ts";
import { defaultIdentityPath, IdentityError, loadIdentity, type Identity } from "../client/identity.ts";
import { ChatError } from "../protocol/errors.ts";
import { givenPassword, promptPassword, type ConnectionOptions } from "./connect.ts";
import { CliError, printLine, type CliIO } from "./io.ts";
import { confirm, readStdinLine } from "./prompt.ts";

export async function chosenIdentity(io: CliIO, opts: ConnectionOptions): Promise<Identity | undefined> {
  if (opts.identity === false) return undefined;
  const named = typeof opts.identity === "string";
  let path: string;
  try {
    path = typeof opts.identity === "string" ? opts.identity : defaultIdentityPath(io.env);
  } catch {
    return undefined; // No config directory, so no default identity either.
  }
  try {
    return await loadIdentity(path);
  } catch (error) {
    if (!(error instanceof IdentityError)) throw error;
    if (error.problem === "missing" && !named) return undefined;
    throw new CliError(describeProblem(error));
  }
}

function describeProblem(error: IdentityError): string {
  const reason = error.reason ? `: ${error.reason}` : "";
  switch (error.problem) {
    case "missing":
      return `The identity ${error.path} does not exist; make one with tlschat gencert --identity`;
    case "unreadable":
      return `Cannot read the identity ${error.path}${reason}`;
    case "no_certificate":
      return `The identity ${error.path} holds no usable certificate${reason}`;
    case "no_key":
      return `The identity ${error.path} holds no usable private key${reason}`;
    case "mismatch":
      return `The private key in ${error.path} does not belong to its certificate`;
  }
}

/**
 * The password of a registration that binds an identity: a given one (--password-file,
 * TLSCHAT_PASSWORD); on a terminal one only if the user wants it; else the first line of a piped
 * stdin. Undefined, for an account whose only credential is the key, when stdin is empty or the
 * user declines.
 */
export async function optionalPassword(io: CliIO, opts: ConnectionOptions, user: string): Promise<string | undefined> {
  const given = await givenPassword(io, opts);
  if (given !== undefined) return given;
  if (io.stdin.isTTY) {
    const wanted = await confirm(io, "Set a password too, to log in where this identity is not?");
    return wanted ? promptPassword(io, `Password for ${user}: `, true) : undefined;
  }
  const line = await readStdinLine(io);
  return line === "" ? undefined : line;
}

/**
 * Starts the chat session. Without a password it logs in by key; if the server refuses the key
 * and a terminal can answer, the password is asked for and the login tried once more.
 */
export async function startChat(io: CliIO, options: ChatClientOptions, listener: (event: ChatEvent) => void): Promise<ChatClient> {
  try {
    return await ChatClient.start(options, listener);
  } catch (error) {
    const keyRefused = error instanceof ChatError && error.code === "auth_failed" && options.password === undefined;
    if (!keyRefused || !io.stdin.isTTY) throw error;
    printLine(io.stderr, `The server refused this identity's key for ${options.user}`);
    const password = await promptPassword(io, `Password for ${options.user}: `, false);
    return ChatClient.start({ ...options, password }, listener);
  }
}
