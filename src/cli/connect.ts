// What `chat` and `register` share: the servers to use (USER@HOST:PORT, or several with
// --server), how each is verified (CA file, pinned fingerprint with trust on first use, or
// --insecure), where the password comes from, and which identity (client certificate for key
// login) is presented.

import { Command, InvalidArgumentError, Option } from "commander";
import { readFile } from "node:fs/promises";
import { ConnectError } from "../client/connection.ts";
import { serverLabel, type ServerAddress, type ServerEndpoint } from "../client/failover.ts";
import { hostKey, KnownHosts, knownHostsPath, normalizeFingerprint } from "../client/known-hosts.ts";
import { pinVerification } from "../client/trust.ts";
import { DEFAULT_PORT } from "../protocol/transport.ts";
import { CliError, EXIT_USAGE, printLine, type CliIO } from "./io.ts";
import { parsePort } from "./options.ts";
import { confirm, readPassword, readStdinLine } from "./prompt.ts";

export const DEFAULT_SERVER_HOST = "localhost";

/** One entry of --server: the port is filled in later, from --port or the default. */
export interface ServerEntry {
  host: string;
  port: number | undefined;
}

export interface ConnectionOptions {
  /** --server and TLSCHAT_SERVERS, in order. */
  server?: ServerEntry[];
  host?: string;
  port?: number;
  ca?: string;
  serverName?: string;
  /** --fingerprint, repeatable: any of them is trusted. */
  fingerprint?: string[];
  trustNew?: boolean;
  insecure?: boolean;
  passwordFile?: string;
  /** A path, false for --no-identity, undefined for the default identity if it exists. */
  identity?: string | false;
  identityOverTls12?: boolean;
}

export interface Target {
  user: string | undefined;
  /** In the order to try them; at least one. */
  servers: ServerAddress[];
}

/** What the help of `chat` and `register` says about where they connect and how servers are verified. */
export const SERVERS_HELP = `
Where to connect, first that applies: --server (or TLSCHAT_SERVERS), the HOST[:PORT] of
USER@HOST, --host, localhost; a port left out is --port's, else 7443. --server takes several
servers, a cluster's nodes, tried in order: --server host1:7443,host2:7443 (repeatable; IPv6 as
[::1]:7443); it wins over a host in USER@HOST.
Every server is verified: with --ca (one CA for all), a --fingerprint (any of those given), or its
pin in known_hosts (trust on first use, per host:port; a certificate pinned for one of the servers
given is trusted for the others).`;

export function addConnectionOptions(command: Command): Command {
  return command
    .addOption(
      new Option("--server <host[:port],...>", "servers to use, in order (a cluster's nodes); replaces the host of USER@HOST and --host (repeatable)")
        .argParser(collectServers)
        .env("TLSCHAT_SERVERS"),
    )
    .addOption(new Option("--host <host>", "server host name or address").env("TLSCHAT_SERVER"))
    .addOption(new Option("--port <port>", `server port, also for a --server without one [default: ${DEFAULT_PORT}]`).argParser(parsePort).env("TLSCHAT_SERVER_PORT"))
    .addOption(new Option("--ca <file>", "verify the server's certificate chain and host name against this CA file").env("TLSCHAT_CA"))
    .addOption(new Option("--server-name <name>", "host name to verify and send as SNI (default: the host)").env("TLSCHAT_SERVER_NAME"))
    .addOption(
      new Option("--fingerprint <sha256>", "trust a server only if its certificate has this SHA-256 fingerprint (repeatable: any of them)")
        .argParser(collectList)
        .env("TLSCHAT_FINGERPRINT"),
    )
    .addOption(new Option("--trust-new", "pin an unknown server's certificate without asking").env("TLSCHAT_TRUST_NEW"))
    .addOption(new Option("--insecure", "do not verify the server at all (anyone can impersonate it)").env("TLSCHAT_INSECURE"))
    .addOption(new Option("--password-file <file>", "read the password from the first line of this file").env("TLSCHAT_PASSWORD_FILE"))
    .addOption(new Option("--identity <file>", "present this identity (client certificate and key) to log in by key [default: identity.pem in the config directory, if it exists]").env("TLSCHAT_IDENTITY"))
    .addOption(new Option("--no-identity", "present no identity"))
    .addOption(
      new Option("--identity-over-tls12", "present the identity to a server that only speaks TLS 1.2, which sends it in clear").env("TLSCHAT_IDENTITY_OVER_TLS12"),
    );
}

/** Comma-separated values of a repeatable option, or of its variable, after the earlier ones. */
function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(",").map((item) => item.trim())];
}

/** --server HOST[:PORT],...: each entry checked here, so a bad one is a usage error naming it. */
function collectServers(value: string, previous: ServerEntry[] | undefined): ServerEntry[] {
  // An empty TLSCHAT_SERVERS is as if it were not set.
  if (value.trim() === "") return previous ?? [];
  return [
    ...(previous ?? []),
    ...value.split(",").map((item) => {
      const entry = item.trim();
      const server = hostAndPort(entry, `server "${entry}"`);
      if (!server) throw new InvalidArgumentError(`Cannot read server "${entry}": expected HOST[:PORT], [IPv6]:PORT for IPv6`);
      return server;
    }),
  ];
}

/**
 * HOST[:PORT], [v6]:port for IPv6; undefined when `text` is not of that form, and an
 * InvalidArgumentError naming `what` for a bad port.
 */
function hostAndPort(text: string, what: string): ServerEntry | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(text);
  if (!match) return undefined;
  const host = (match[1] ?? match[2])!;
  if (match[3] === undefined) return { host, port: undefined };
  const port = Number(match[3]);
  // Port 0 means "any" to a listener; nothing can be reached there.
  if (port < 1 || port > 65535) throw new InvalidArgumentError(`Bad port in ${what}: expected a port number 1-65535`);
  return { host, port };
}

/**
 * Parses USER[@HOST[:PORT]] and decides where to connect: --server (its list replaces the host
 * and port of the target), else the target's host, else --host, else localhost; a port left out
 * is --port's, else 7443.
 */
export function resolveTarget(target: string | undefined, opts: ConnectionOptions): Target {
  let user: string | undefined;
  let named: ServerEntry | undefined;
  if (target !== undefined && target !== "") {
    const at = target.lastIndexOf("@");
    user = at >= 0 ? target.slice(0, at) : target;
    if (at >= 0) {
      try {
        named = hostAndPort(target.slice(at + 1), `"${target}"`);
      } catch (error) {
        throw new CliError((error as InvalidArgumentError).message, EXIT_USAGE);
      }
      if (!named) throw new CliError(`Cannot read "${target}": expected USER@HOST[:PORT]`, EXIT_USAGE);
    }
    if (user === "") user = undefined;
  }
  const entries = opts.server !== undefined && opts.server.length > 0 ? opts.server : [{ host: named?.host ?? opts.host ?? DEFAULT_SERVER_HOST, port: named?.port }];
  return { user, servers: entries.map(({ host, port }) => ({ host, port: port ?? opts.port ?? DEFAULT_PORT })) };
}

/**
 * Each server with the check the options ask for (verification is on unless --insecure): the
 * same CA for all, or each pinned under its own host and port. `mayAsk` says whether an unknown
 * server may be asked about now; a chat stops asking once its screen owns the terminal.
 */
export async function withVerification(
  io: CliIO,
  opts: ConnectionOptions,
  servers: readonly ServerAddress[],
  mayAsk: () => boolean = () => true,
): Promise<ServerEndpoint[]> {
  const chosen = [opts.ca !== undefined, opts.insecure === true, opts.fingerprint !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new CliError("Use only one of --ca, --fingerprint and --insecure", EXIT_USAGE);
  if (opts.insecure) {
    const names = servers.map(serverLabel).join(", ");
    printLine(io.stderr, `WARNING: --insecure: the identity of ${names} is NOT verified; anyone on the path can read and change this chat`);
    return servers.map((server) => ({ ...server, verification: { kind: "insecure" } }));
  }
  if (opts.ca !== undefined) {
    let ca: string;
    try {
      ca = await readFile(opts.ca, "utf8");
    } catch (error) {
      throw new CliError(`Cannot read the CA file ${opts.ca}: ${(error as Error).message}`);
    }
    return servers.map((server) => ({ ...server, verification: { kind: "ca", ca } }));
  }
  for (const fingerprint of opts.fingerprint ?? []) {
    try {
      normalizeFingerprint(fingerprint);
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
  const keys = servers.map((server) => hostKey(server.host, server.port));
  return servers.map((server, index) => ({
    ...server,
    verification: pinVerification({
      knownHosts,
      hostPort: keys[index]!,
      siblings: keys.filter((_, other) => other !== index),
      expected: opts.fingerprint,
      trustNew: opts.trustNew === true,
      confirm: async (hostPort, fingerprint) => {
        if (!interactive || !mayAsk()) return undefined;
        printLine(io.stdout, `The authenticity of ${hostPort} can't be established.`);
        printLine(io.stdout, `Its certificate's SHA-256 fingerprint is ${fingerprint}.`);
        return confirm(io, "Trust it and remember it for next time?");
      },
      notify: (message) => printLine(io.stderr, message),
    }),
  }));
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
