// The Redis options the commands that work on a cluster share (--redis URL, env
// TLSCHAT_REDIS_URL; --redis-ca for rediss://), and opening the link they name: a bad URL is a
// usage error, an unreachable Redis one line that names it (never its password).

import { type Command, Option } from "commander";
import { readFile } from "node:fs/promises";
import { ChatError } from "../protocol/errors.ts";
import { RedisConnection } from "../store/redis/connection.ts";
import { CliError, EXIT_USAGE } from "./io.ts";

export interface RedisOptions {
  redis?: string;
  redisCa?: string;
}

const REDIS_PROTOCOLS = new Set(["redis:", "rediss:"]);

/** Adds --redis (described by `purpose`) and --redis-ca to `command`. */
export function addRedisOptions(command: Command, purpose: string): Command {
  return command
    .addOption(new Option("--redis <url>", `${purpose} (redis://[USER:PASSWORD@]HOST:PORT[/DB], rediss:// for TLS)`).env("TLSCHAT_REDIS_URL"))
    .addOption(new Option("--redis-ca <file>", "verify a rediss:// Redis against this CA file instead of the system's").env("TLSCHAT_REDIS_CA"));
}

/** The URL without its credentials, for messages. */
export function redisDisplayName(url: string): string {
  const parsed = new URL(url);
  parsed.username = "";
  parsed.password = "";
  return parsed.toString();
}

/**
 * Connects to the Redis at `url`. A CliError when it cannot be reached: the link gives up on
 * the first attempt (about a second at most), and its retry loop is stopped.
 */
export async function openRedis(url: string, caFile: string | undefined): Promise<RedisConnection> {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new CliError("--redis needs a URL such as redis://127.0.0.1:6379", EXIT_USAGE);
  }
  if (!REDIS_PROTOCOLS.has(protocol)) throw new CliError(`--redis needs a redis:// or rediss:// URL, not ${protocol}//`, EXIT_USAGE);
  if (caFile !== undefined && protocol !== "rediss:") throw new CliError("--redis-ca is for rediss:// (Redis over TLS) only", EXIT_USAGE);
  let ca: string | undefined;
  try {
    ca = caFile === undefined ? undefined : await readFile(caFile, "utf8");
  } catch (error) {
    throw new CliError(`Cannot read the Redis CA file ${caFile}: ${(error as Error).message}`);
  }
  const connection = new RedisConnection({ url, ca });
  try {
    await connection.open();
  } catch (error) {
    connection.close();
    if (error instanceof ChatError) throw new CliError(`${error.code}: ${error.message} at ${redisDisplayName(url)}`);
    throw error;
  }
  return connection;
}
