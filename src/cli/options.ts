// Option parsers shared by the subcommands: they turn bad values into commander usage errors.

import { InvalidArgumentError, type Command } from "commander";
import { CliError, EXIT_USAGE } from "./io.ts";

export function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError("expected a port number 0-65535");
  return port;
}

export function positiveInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < 1 || !Number.isSafeInteger(number)) {
    throw new InvalidArgumentError("expected a positive integer");
  }
  return number;
}

export function positiveSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError("expected a positive number of seconds");
  return seconds;
}

export interface HostPort {
  /** Without brackets, as Bun.serve takes it: `::1`, not `[::1]`. */
  host: string;
  port: number;
}

/** `HOST:PORT`, an IPv6 address in brackets (`[::1]:9464`); port 0 picks a free one. */
export function hostPort(value: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d+)$/.exec(value);
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || port > 65535) throw new InvalidArgumentError("expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464");
  return { host: match[1] ?? match[2]!, port };
}

/** How an address is written in logs and messages: IPv6 in brackets. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

const SIZE_UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size in bytes, with an optional binary unit: 512M, 2G, 65536. */
export function byteSize(value: string): number {
  const match = /^(\d+)([kmg]?)(?:i?b)?$/i.exec(value.trim());
  const bytes = match ? Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]! : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new InvalidArgumentError("expected a size such as 512M, 2G or a number of bytes");
  return bytes;
}

const ENV_TRUE = new Set(["1", "true", "yes", "on"]);
const ENV_FALSE = new Set(["", "0", "false", "no", "off"]);

/**
 * Commander turns a boolean option on when its environment variable merely exists, so
 * TLSCHAT_INSECURE=0 would switch verification off. Before an action runs, read such variables
 * strictly: true/1/yes/on set the flag, false/0/no/off/empty leave it unset, anything else is a
 * usage error.
 */
export function readBooleanEnvStrictly(command: Command, env: Record<string, string | undefined>): void {
  for (const option of command.options) {
    if (option.required || option.optional || option.envVar === undefined) continue;
    const name = option.attributeName();
    if (command.getOptionValueSource(name) !== "env") continue;
    const raw = (env[option.envVar] ?? "").trim().toLowerCase();
    if (ENV_TRUE.has(raw)) continue;
    if (!ENV_FALSE.has(raw)) {
      throw new CliError(`${option.envVar} must be true/1/yes/on or false/0/no/off, not "${env[option.envVar]}"`, EXIT_USAGE);
    }
    command.setOptionValueWithSource(name, option.negate ? true : undefined, "default");
  }
}
