// What `chat` and `register` share: the USER@HOST:PORT target, how the server is verified
// (CA file, pinned fingerprint with trust on first use, or --insecure), where the password
// comes from, and which identity (client certificate for key login) is presented.

import { Command, InvalidArgumentError, Option } from "commander";
import { readFile } from "node:fs/promises";
import { ConnectError, type Verification } from "../client/connection.ts";
import { hostKey, KnownHosts, knownHostsPath, normalizeFingerprint } from "../client/known-hosts.ts";
import { pinVerification } from "../client/trust.ts";
import { DEFAULT_PORT } from "../protocol/transport.ts";
import { CliError, EXIT_USAGE, printLine, type CliIO } from "./io.ts";
import { parsePort } from "./options.ts";
import { confirm, readPassword, readStdinLine } from "./prompt.ts";

export const DEFAULT_SERVER_HOST = "localhost";

export interface ConnectionOptions {
  host?: string;
  port?: number;
  ca?: string;
  serverName?: string;
  fingerprint?: string;
  trustNew?: boolean;
  insecure?: boolean;
  passwordFile?: string;
  /** A path, false for --no-identity, undefined for the default identity if it exists. */
  identity?: string | false;
  identityOverTls12?: boolean;
}

export interface Target {
  user: string | undefined;
  host: string;
  port: number;
}

export function addConnectionOptions(command: Command): Command {
  return command
    .addOption(new Option("--host <host>", "server host name or address").env("TLSCHAT_SERVER"))
    .addOption(new Option("--port <port>", `server port [default: ${DEFAULT_PORT}]`).argParser(parsePort).env("TLSCHAT_SERVER_PORT"))
    .addOption(new Option("--ca <file>", "verify the server's certificate chain and host name against this CA file").env("TLSCHAT_CA"))
    .addOption(new Option("--server-name <name>", "host name to verify and send as SNI (default: the host)").env("TLSCHAT_SERVER_NAME"))
    .addOption(new Option("--fingerprint <sha256>", "trust the server only if its certificate has this SHA-256 fingerprint").env("TLSCHAT_FINGERPRINT"))
    .addOption(new Option("--trust-new", "pin an unknown server's certificate without asking").env("TLSCHAT_TRUST_NEW"))
    .addOption(new Option("--insecure", "do not verify the server at all (anyone can impersonate it)").env("TLSCHAT_INSECURE"))
    .addOption(new Option("--password-file <file>", "read the password from the first line of this file").env("TLSCHAT_PASSWORD_FILE"))
    .addOption(new Option("--identity <file>", "present this identity (client certificate and key) to log in by key [default: identity.pem in the config directory, if it exists]").env("TLSCHAT_IDENTITY"))
    .addOption(new Option("--no-identity", "present no identity"))
    .addOption(
      new Option("--identity-over-tls12", "present the identity to a server that only speaks TLS 1.2, which sends it in clear").env("TLSCHAT_IDENTITY_OVER_TLS12"),
    );
}

/** Parses USER[@HOST[:PORT]], with [v6]:port for IPv6; flags fill in what the target leaves out. */
export function resolveTarget(target: string | undefined, opts: ConnectionOptions): Target {
  let user: string | undefined;
  let host: string | undefined;
  let port: number | undefined;
  if (target !== undefined && target !== "") {
    const at = target.lastIndexOf("@");
    user = at >= 0 ? target.slice(0, at) : target;
    if (at >= 0) {
      const rest = target.slice(at + 1);
      const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(rest);
      if (!match) throw new CliError(`Cannot read "${target}": expected USER@HOST[:PORT]`, EXIT_USAGE);
      host = match[1] ?? match[2];
      if (match[3] !== undefined) {
        try {
          port = parsePort(match[3]);
        } catch (error) {
          throw new CliError(`Bad port in "${target}": ${(error as InvalidArgumentError).message}`, EXIT_USAGE);
        }
      }
    }
    if (user === "") user = undefined;
  }
  return { user, host: host ?? opts.host ?? DEFAULT_SERVER_HOST, port: port ?? opts.port ?? DEFAULT_PORT };
}

/** Builds the server check the options ask for; verification is on unless --insecure. */
export async function buildVerification(io: CliIO, opts: ConnectionOptions, target: Target): Promise<Verification> {
  const chosen = [opts.ca !== undefined, opts.insecure === true, opts.fingerprint !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new CliError("Use only one of --ca, --fingerprint and --insecure", EXIT_USAGE);
  if (opts.insecure) {
    printLine(io.stderr, `WARNING: --insecure: the identity of ${target.host}:${target.port} is NOT verified; anyone on the path can read and change this chat`);
    return { kind: "insecure" };
  }
  if (opts.ca !== undefined) {
    try {
      return { kind: "ca", ca: await readFile(opts.ca, "utf8") };
    } catch (error) {
      throw new CliError(`Cannot read the CA file ${opts.ca}: ${(error as Error).message}`);
    }
  }
  if (opts.fingerprint !== undefined) {
    try {
      normalizeFingerprint(opts.fingerprint);
    } catch (error) {
      throw new CliError(`--fingerprint: ${(error as Error).message}`, EXIT_USAGE);
    }
  }
  let knownHosts: KnownHosts;
  try {
    knownHosts = await KnownHosts.load(knownHostsPath(io.env));
  } catch (error) {
    throw new CliError(`Cannot read known hosts: ${(error as Error).message}`);
  }
  if (knownHosts.ignoredLines.length > 0) {
    printLine(io.stderr, `warning: ignoring unreadable line(s) ${knownHosts.ignoredLines.join(", ")} of ${knownHosts.path}`);
  }
  const interactive = Boolean(io.stdin.isTTY && io.stdout.isTTY);
  return pinVerification({
    knownHosts,
    hostPort: hostKey(target.host, target.port),
    expected: opts.fingerprint,
    trustNew: opts.trustNew === true,
    confirm: interactive
      ? (hostPort, fingerprint) => {
          printLine(io.stdout, `The authenticity of ${hostPort} can't be established.`);
          printLine(io.stdout, `Its certificate's SHA-256 fingerprint is ${fingerprint}.`);
          return confirm(io, "Trust it and remember it for next time?");
        }
      : undefined,
    notify: (message) => printLine(io.stderr, message),
  });
}

/**
 * The password, from the first source that has one: --password-file, TLSCHAT_PASSWORD, a TTY
 * prompt (asked twice when `confirmTwice`), or one line of piped stdin when `stdinAllowed`.
 */
export async function obtainPassword(
  io: CliIO,
  opts: ConnectionOptions,
  how: { confirmTwice: boolean; stdinAllowed: boolean; prompt: string },
): Promise<string> {
  const given = await givenPassword(io, opts);
  if (given !== undefined) return given;
  if (io.stdin.isTTY) return promptPassword(io, how.prompt, how.confirmTwice);
  if (how.stdinAllowed) return readStdinLine(io);
  throw new CliError("No password: use --password-file or TLSCHAT_PASSWORD when stdin is not a terminal", EXIT_USAGE);
}

/** Asks for a password on the terminal, twice when `confirmTwice` (a new one, which a typo would lock away). */
export async function promptPassword(io: CliIO, prompt: string, confirmTwice: boolean): Promise<string> {
  const password = await readPassword(io, prompt);
  if (confirmTwice && (await readPassword(io, "Repeat the password: ")) !== password) {
    throw new CliError("The passwords do not match");
  }
  return password;
}

/** The password named without asking for it: --password-file, then TLSCHAT_PASSWORD. */
export async function givenPassword(io: CliIO, opts: ConnectionOptions): Promise<string | undefined> {
  if (opts.passwordFile !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.passwordFile, "utf8");
    } catch (error) {
      throw new CliError(`Cannot read the password file ${opts.passwordFile}: ${(error as Error).message}`);
    }
    return text.split(/\r?\n/)[0] ?? "";
  }
  const fromEnv = io.env.TLSCHAT_PASSWORD;
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : undefined;
}

/** A connection failure as one line for the user (the changed-key warning keeps its lines). */
export function connectFailure(error: unknown): CliError {
  if (error instanceof ConnectError && error.kind === "identity_needs_tls13") {
    return new CliError(`${error.message}; pass --identity-over-tls12 to present it anyway, or --no-identity to connect without it`);
  }
  if (error instanceof ConnectError) return new CliError(error.message);
  return new CliError(error instanceof Error ? error.message : String(error));
}
