// `tlschat serve`: runs the TLS chat server until SIGINT/SIGTERM. On a fresh checkout it needs no
// arguments: a missing default certificate is generated and a missing store is created.

import type { Database } from "bun:sqlite";
import type { UserStore } from "../auth/store.ts";
import { REF_WINDOW_MS } from "../core/limits.ts";
import type { Delivery } from "../core/fanout.ts";
import type { MessageLog } from "../core/message-log.ts";
import type { Rooms } from "../core/rooms.ts";
import { ChatError } from "../protocol/errors.ts";
import type { Logger } from "../server/log.ts";
import { openCluster, type Cluster, type Durability } from "../store/redis/cluster.ts";
import { importChat, ChatImportError } from "../store/redis/import-chat.ts";
import { importAccounts } from "../store/redis/import.ts";
import { addRedisOptions, openRedis, redisDisplayName } from "./redis.ts";
import { Command, InvalidArgumentError, Option } from "commander";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { JsonFileStore, StoreError } from "../auth/store.ts";
import { USERNAME_PATTERN } from "../protocol/validate.ts";
import { openEmbedded } from "../store/embedded.ts";
import { ChatDatabaseError, openChatDatabase, type FsyncMode } from "../store/sqlite/database.ts";
import { TLS12_MODERN_CIPHERS, TlsConfigError, type TlsVersionName } from "../server/tls-config.ts";
import type { ServerLimits } from "../core/limits.ts";
import { combineHealth, HEALTHY, type HealthSource } from "../metrics/health.ts";
import { startMetricsServer, type MetricsServer } from "../metrics/http.ts";
import { registerNodeMetrics } from "../metrics/process.ts";
import { Registry } from "../metrics/registry.ts";
import { startServer, type ChatServer } from "../server/server.ts";
import { DEFAULT_PORT } from "../protocol/transport.ts";
import {
  DEFAULT_SANS,
  DEFAULT_VALIDITY_DAYS,
  generateSelfSigned,
  pairFilesExist,
  writeCertificatePair,
} from "../tls/certificate.ts";
import { CliError, EXIT_OK, type CliIO, type ExitCode } from "./io.ts";
import { createLogger, type LogFormat } from "./log.ts";
import { byteSize, formatHostPort, hostPort, parsePort, positiveInteger, positiveSeconds, type HostPort } from "./options.ts";
import { VERSION } from "./version.ts";

export const DEFAULT_CERT = "certs/cert.pem";
export const DEFAULT_KEY = "certs/key.pem";
export const DEFAULT_DB = "data/users.json";
export const DEFAULT_CHAT_DB = "data/chat.db";
const DAY_MS = 24 * 60 * 60_000;
/** Options of the embedded stores, which a cluster node refuses rather than ignores. */
const EMBEDDED_ONLY_OPTIONS = ["--db", "--chat-db", "--message-log", "--fsync"];

interface ServeOptions {
  host: string;
  port: number;
  cert: string;
  key: string;
  db: string;
  chatDb: string;
  admin: string[];
  roomExpiry?: number;
  maxRooms?: number;
  maxRoomsPerUser?: number;
  maxRoomsCreated?: number;
  presenceMax?: number;
  messageLog: "db" | "memory";
  maxOutboundMemory?: number;
  fsync: FsyncMode;
  historyDays?: number;
  historyMaxMessages?: number;
  tlsMin?: TlsVersionName;
  tlsMax: TlsVersionName;
  ciphers?: string;
  registration: boolean;
  logFormat: LogFormat;
  maxConnections?: number;
  maxPerIp?: number;
  msgRate?: number;
  msgBurst?: number;
  authTimeout?: number;
  idleTimeout?: number;
  redis?: string;
  redisCa?: string;
  importDb?: string;
  importChat?: string;
  metrics?: HostPort;
}

export function serveCommand(io: CliIO, exit: ExitCode): Command {
  const command = new Command("serve")
    .description("run the TLS chat server")
    .addOption(new Option("--host <address>", "address to listen on").default("0.0.0.0").env("TLSCHAT_HOST"))
    .addOption(new Option("--port <port>", "TCP port").argParser(parsePort).default(DEFAULT_PORT).env("TLSCHAT_PORT"))
    .addOption(new Option("--cert <file>", "PEM certificate (generated if the default is missing)").default(DEFAULT_CERT).env("TLSCHAT_CERT"))
    .addOption(new Option("--key <file>", "PEM private key (generated if the default is missing)").default(DEFAULT_KEY).env("TLSCHAT_KEY"))
    .addOption(new Option("--db <file>", "account store (created if missing)").default(DEFAULT_DB).env("TLSCHAT_DB"))
    .addOption(new Option("--chat-db <file>", "chat database: rooms, members, bans (created if missing)").default(DEFAULT_CHAT_DB).env("TLSCHAT_CHAT_DB"))
    .addOption(new Option("--admin <user>", "server administrator (repeatable; env: comma-separated)").argParser(collectNames).default([]).env("TLSCHAT_ADMINS"))
    .addOption(new Option("--room-expiry <days>", "remove rooms that have had no members this long").argParser(positiveDays).env("TLSCHAT_ROOM_EXPIRY"))
    .addOption(new Option("--max-rooms <n>", "rooms on the server in total").argParser(positiveInteger).env("TLSCHAT_MAX_ROOMS"))
    .addOption(new Option("--max-rooms-per-user <n>", "rooms one user may be in").argParser(positiveInteger).env("TLSCHAT_MAX_ROOMS_PER_USER"))
    .addOption(new Option("--max-rooms-created <n>", "existing rooms one user may have created").argParser(positiveInteger).env("TLSCHAT_MAX_ROOMS_CREATED"))
    .addOption(new Option("--max-outbound-memory <size>", "bytes queued to all clients together before the furthest behind are dropped [default: a quarter of memory, at most 2G]").argParser(byteSize).env("TLSCHAT_MAX_OUTBOUND_MEMORY"))
    .addOption(new Option("--message-log <where>", "keep messages in the chat database, or only in memory (lost at restart)").choices(["db", "memory"]).default("db").env("TLSCHAT_MESSAGE_LOG"))
    .addOption(new Option("--fsync <mode>", "normal: acked messages survive a crash of the server; always: also a power loss, at a cost").choices(["normal", "always"]).default("normal").env("TLSCHAT_FSYNC"))
    .addOption(new Option("--history-days <days>", "remove messages older than this").argParser(positiveDays).env("TLSCHAT_HISTORY_DAYS"))
    .addOption(new Option("--history-max-messages <n>", "messages kept per room").argParser(positiveInteger).env("TLSCHAT_HISTORY_MAX_MESSAGES"))
    .addOption(new Option("--presence-max <n>", "no presence or join/leave notices in rooms with more members online than this").argParser(positiveInteger).env("TLSCHAT_PRESENCE_MAX"))
    .addOption(new Option("--tls-min <version>", "lowest TLS version [default: 1.3, or 1.2 with --tls-max 1.2]").choices(["1.2", "1.3"]).env("TLSCHAT_TLS_MIN"))
    .addOption(new Option("--tls-max <version>", "highest TLS version").choices(["1.2", "1.3"]).default("1.3").env("TLSCHAT_TLS_MAX"))
    .addOption(new Option("--ciphers <list>", `TLS 1.2 cipher list [default: ${TLS12_MODERN_CIPHERS}]`).env("TLSCHAT_CIPHERS"))
    .addOption(new Option("--no-registration", "refuse network registration (add accounts with `tlschat register --db FILE USER`)").env("TLSCHAT_NO_REGISTRATION"))
    .addOption(new Option("--log-format <format>", "log line format").choices(["text", "json"]).default("text").env("TLSCHAT_LOG_FORMAT"))
    .addOption(new Option("--max-connections <n>", "total connection cap").argParser(positiveInteger).env("TLSCHAT_MAX_CONNECTIONS"))
    .addOption(new Option("--max-per-ip <n>", "connections per client address").argParser(positiveInteger).env("TLSCHAT_MAX_PER_IP"))
    .addOption(new Option("--msg-rate <n>", "room messages and dms per second per connection (sustained)").argParser(positiveInteger).env("TLSCHAT_MSG_RATE"))
    .addOption(new Option("--msg-burst <n>", "room messages and dms a connection may send in a burst").argParser(positiveInteger).env("TLSCHAT_MSG_BURST"))
    .addOption(new Option("--auth-timeout <seconds>", "time to log in after connecting").argParser(positiveSeconds).env("TLSCHAT_AUTH_TIMEOUT"))
    .addOption(new Option("--idle-timeout <seconds>", "close connections silent this long").argParser(positiveSeconds).env("TLSCHAT_IDLE_TIMEOUT"))
    .addOption(new Option("--import-db <file>", "with --redis: copy this account store's accounts into Redis first (once; existing ones are kept)"))
    .addOption(new Option("--import-chat <file>", "with --redis: copy this chat database's rooms and messages into Redis first (once)"))
    .addOption(new Option("--metrics <host:port>", "serve Prometheus metrics at /metrics and a health check at /healthz over plain HTTP on this address [default: off]").argParser(hostPort).env("TLSCHAT_METRICS"))
    .addHelpText(
      "after",
      `
Examples:
  tlschat serve                                   TLS 1.3 on 0.0.0.0:7443, certificate made on first start
  tlschat serve --port 8443 --cert /etc/tlschat/cert.pem --key /etc/tlschat/key.pem
  tlschat serve --tls-max 1.2 --ciphers AES128-SHA --cert rsa/cert.pem --key rsa/key.pem   legacy, no forward secrecy
  tlschat serve --metrics 127.0.0.1:9464          also http://127.0.0.1:9464/metrics and /healthz
  tlschat serve --redis redis://127.0.0.1:6379 --port 7443   one node of a cluster (start more with other ports or hosts)`,
    )
    .action(async (opts: ServeOptions) => {
      exit.value = await runServe(opts, command, io);
    });
  addRedisOptions(command, "join a cluster: accounts, rooms, history and presence in this Redis instead of --db and --chat-db");
  return command;
}

async function runServe(opts: ServeOptions, command: Command, io: CliIO): Promise<number> {
  const log = createLogger(io.stderr, opts.logFormat);
  const certGiven = command.getOptionValueSource("cert") !== "default";
  const keyGiven = command.getOptionValueSource("key") !== "default";
  const { cert: certExists, key: keyExists } = await pairFilesExist({ certPath: opts.cert, keyPath: opts.key });
  if (!certExists || !keyExists) {
    if (certGiven || keyGiven) {
      throw new CliError(`${!certExists ? opts.cert : opts.key} does not exist (make one with: tlschat gencert --out ${dirname(opts.cert)})`);
    }
    if (certExists !== keyExists) {
      throw new CliError(`${certExists ? opts.key : opts.cert} is missing but ${certExists ? opts.cert : opts.key} exists; restore it or run tlschat gencert --force`);
    }
    const pair = await generateSelfSigned({ keyType: "ec", sans: DEFAULT_SANS, days: DEFAULT_VALIDITY_DAYS });
    await writeCertificatePair(pair, { certPath: opts.cert, keyPath: opts.key, force: false });
    log.info("certificate_generated", { cert: opts.cert, key: opts.key, fingerprint: pair.fingerprint256 });
  }
  const [cert, key] = await Promise.all([readText(opts.cert), readText(opts.key)]);

  const limits: Partial<ServerLimits> = {};
  if (opts.maxConnections !== undefined) limits.maxConnections = opts.maxConnections;
  if (opts.maxPerIp !== undefined) limits.maxConnectionsPerIp = opts.maxPerIp;
  if (opts.msgRate !== undefined) limits.messageRatePerSec = opts.msgRate;
  if (opts.msgBurst !== undefined) limits.messageBurst = opts.msgBurst;
  if (opts.authTimeout !== undefined) limits.authTimeoutMs = opts.authTimeout * 1000;
  if (opts.idleTimeout !== undefined) limits.idleTimeoutMs = opts.idleTimeout * 1000;
  if (opts.roomExpiry !== undefined) limits.roomExpiryMs = opts.roomExpiry * DAY_MS;
  if (opts.maxRooms !== undefined) limits.maxRooms = opts.maxRooms;
  if (opts.maxRoomsPerUser !== undefined) limits.maxRoomsPerUser = opts.maxRoomsPerUser;
  if (opts.maxRoomsCreated !== undefined) limits.maxRoomsCreatedPerUser = opts.maxRoomsCreated;
  if (opts.presenceMax !== undefined) limits.presenceMaxConnections = opts.presenceMax;
  if (opts.maxOutboundMemory !== undefined) limits.maxOutboundMemoryBytes = opts.maxOutboundMemory;
  if (opts.historyDays !== undefined) limits.historyRetentionMs = opts.historyDays * DAY_MS;
  if (opts.historyMaxMessages !== undefined) limits.historyMaxMessagesPerRoom = opts.historyMaxMessages;
  if (opts.redis !== undefined) {
    // The embedded stores' options mean nothing to a cluster node: say so rather than ignore them.
    const embeddedOnly = command.options.find(
      (option) => EMBEDDED_ONLY_OPTIONS.includes(option.long!) && command.getOptionValueSource(option.attributeName()) !== "default",
    );
    if (embeddedOnly !== undefined) throw new CliError(`${embeddedOnly.long} is for the embedded stores; a node with --redis keeps everything in Redis`);
  }
  if (opts.redis === undefined && (opts.importDb !== undefined || opts.importChat !== undefined)) {
    throw new CliError(`${opts.importDb !== undefined ? "--import-db" : "--import-chat"} needs --redis: it copies into a cluster's Redis`);
  }
  const backend = opts.redis === undefined ? await openEmbeddedBackend(opts, log) : await openClustered(opts, opts.redis, log);

  const registry = opts.metrics ? new Registry() : undefined;
  let server: ChatServer;
  try {
    server = await startServer({
      host: opts.host,
      port: opts.port,
      // Legacy mode (--tls-max 1.2) implies TLS 1.2 as the minimum unless said otherwise.
      tls: { cert, key, minVersion: opts.tlsMin ?? opts.tlsMax, maxVersion: opts.tlsMax, ciphers: opts.ciphers },
      store: backend.store,
      rooms: backend.rooms,
      messageLog: backend.messageLog,
      delivery: backend.delivery,
      admins: opts.admin,
      allowRegistration: opts.registration,
      limits,
      log,
      metrics: registry,
    });
  } catch (error) {
    await backend.messageLog?.close();
    await Promise.all([backend.store.close(), backend.rooms.close(), backend.delivery?.close()]);
    await backend.close();
    if (error instanceof TlsConfigError) throw new CliError(tlsConfigMessage(error));
    throw new CliError(`Cannot listen on ${opts.host}:${opts.port}: ${(error as Error).message}`);
  }
  if (!opts.registration) {
    const where = opts.redis === undefined ? `--db ${opts.db}` : "--redis URL";
    log.info("registration_closed", { hint: `add accounts with: tlschat register ${where} USER` });
  }
  // After the chat server, so a health check never passes before the node can take clients.
  let metrics: MetricsServer | undefined;
  try {
    metrics = opts.metrics && registry ? await startMetrics(opts.metrics, registry, server, backend.health, log) : undefined;
  } catch (error) {
    await backend.close();
    throw error;
  }

  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  log.info("shutting_down", { signal: String(io.signal.reason ?? "") });
  await server.stop();
  // Stopped last: health checks get 503 "shutting down" while the clients are let go.
  await metrics?.stop();
  await backend.close();
  return EXIT_OK;
}

/** Starts the metrics endpoint; if its address cannot be bound, the chat server is stopped too. */
async function startMetrics(address: HostPort, registry: Registry, server: ChatServer, healthOf: HealthSource | undefined, log: Logger): Promise<MetricsServer> {
  const health = combineHealth(healthOf ? [server, healthOf] : [server]);
  registerNodeMetrics(registry, { version: VERSION, health });
  let metrics: MetricsServer;
  try {
    metrics = startMetricsServer({ ...address, registry, health });
  } catch (error) {
    await server.stop();
    throw new CliError(`Cannot serve metrics on ${formatHostPort(address)}: ${(error as Error).message}`);
  }
  log.info("metrics_listening", { address: formatHostPort(metrics), paths: "/metrics,/healthz" });
  return metrics;
}

/** Where the server keeps its state: opened before it starts, handed to it, closed by it. */
interface Backend {
  store: UserStore;
  rooms: Rooms;
  messageLog?: MessageLog;
  delivery?: Delivery;
  /** Whether the shared store is reachable (cluster mode), for /healthz. */
  health?: HealthSource;
  /** What the server does not close (the Redis link, the checkpoint worker). */
  close(): void | Promise<void>;
}

/** The one-machine default: the JSON account store and the chat database. */
async function openEmbeddedBackend(opts: ServeOptions, log: Logger): Promise<Backend> {
  try {
    return await openEmbedded({
      accounts: opts.db,
      chatDb: opts.chatDb,
      fsync: opts.fsync,
      messageLog: opts.messageLog,
      checkpointsInline: (reason) => log.warn("checkpoints_inline", { reason, effect: "the event loop waits for each checkpoint's disk sync" }),
    });
  } catch (error) {
    if (error instanceof StoreError || error instanceof ChatDatabaseError) throw new CliError(error.message);
    throw error;
  }
}

/** A node of a cluster: everything shared lives in Redis. */
async function openClustered(opts: ServeOptions, url: string, log: Logger): Promise<Backend> {
  const connection = await openRedis(url, opts.redisCa);
  let cluster: Cluster;
  try {
    cluster = await openCluster({ connection, displayName: redisDisplayName(url), log, refWindowMs: REF_WINDOW_MS });
  } catch (error) {
    if (error instanceof ChatError) throw new CliError(`${error.code}: ${error.message} at ${redisDisplayName(url)}`);
    throw error;
  }
  reportDurability(cluster.durability, log);
  try {
    if (opts.importDb !== undefined) await importAccountsFrom(opts.importDb, cluster, log);
    if (opts.importChat !== undefined) await importChatFrom(opts.importChat, cluster, log);
  } catch (error) {
    cluster.close();
    throw error;
  }
  const health: HealthSource = { health: () => (cluster.state === "up" ? HEALTHY : { ok: false, reason: "Redis is unreachable" }) };
  return { store: cluster.store, rooms: cluster.rooms, messageLog: cluster.messageLog, delivery: cluster.delivery, health, close: () => cluster.close() };
}

/** `--import-db`: an embedded server's accounts (and token secret) into the cluster, once. */
async function importAccountsFrom(path: string, cluster: Cluster, log: Logger): Promise<void> {
  if (!(await Bun.file(path).exists())) throw new CliError(`--import-db: ${path} does not exist`);
  let source: JsonFileStore;
  try {
    source = await JsonFileStore.open(path);
  } catch (error) {
    if (error instanceof StoreError) throw new CliError(`--import-db: ${error.message}`);
    throw error;
  }
  try {
    const result = await importAccounts(source, cluster.store);
    log.info("accounts_imported", { from: path, imported: result.imported.length, skipped: result.skipped.length, secret_copied: result.secretCopied });
    for (const skipped of result.skipped) log.warn("account_not_imported", { user: skipped.name, reason: skipped.reason });
  } finally {
    await source.close();
  }
}

/** `--import-chat`: an embedded server's rooms and history into the cluster, once. */
async function importChatFrom(path: string, cluster: Cluster, log: Logger): Promise<void> {
  if (!(await Bun.file(path).exists())) throw new CliError(`--import-chat: ${path} does not exist`);
  let db: Database;
  try {
    db = await openChatDatabase(path);
  } catch (error) {
    if (error instanceof ChatDatabaseError) throw new CliError(`--import-chat: ${error.message}`);
    throw error;
  }
  try {
    const result = await importChat(db, cluster.rooms, cluster.messageLog, Date.now());
    log.info("chat_imported", { from: path, rooms: result.rooms, messages: result.messages, skipped_rooms: result.skippedRooms.length });
    for (const room of result.skippedRooms) log.warn("room_not_imported", { room, reason: "the cluster has a room of that name" });
  } catch (error) {
    if (error instanceof ChatImportError) throw new CliError(`--import-chat: ${error.message}`);
    throw error;
  } finally {
    db.close();
  }
}

/** Says at start what an acknowledged message survives, from Redis's persistence settings. */
function reportDurability(durability: Durability, log: Logger): void {
  switch (durability.kind) {
    case "always":
      log.info("redis_durability", { appendfsync: "always", acks: "survive a crash of Redis or of its machine" });
      return;
    case "everysec":
      log.warn("redis_durability", { appendfsync: "everysec", acks: "up to a second of acknowledged messages may be lost if Redis or its machine crashes" });
      return;
    case "no-fsync":
      log.warn("redis_durability", { appendfsync: "no", acks: "acknowledged messages not yet written by the kernel are lost if the machine crashes" });
      return;
    case "no-aof":
      log.error("redis_durability", {
        appendonly: "no",
        acks: "NOT durable: Redis keeps no append-only file, so a Redis restart loses acknowledged messages, accounts and rooms; run it with --appendonly yes --appendfsync always",
      });
      return;
    case "unknown":
      log.warn("redis_durability", { acks: "unknown: CONFIG GET is not allowed for this Redis user", reason: durability.reason });
      return;
    default: {
      const unreachable: never = durability;
      throw new Error(`unhandled durability ${String(unreachable)}`);
    }
  }
}

function positiveDays(value: string): number {
  const days = Number(value);
  if (!Number.isFinite(days) || days <= 0) throw new InvalidArgumentError("expected a positive number of days");
  return days;
}

/** `--admin a --admin b` and `TLSCHAT_ADMINS=a,b` both give [a, b]; names are checked like usernames. */
function collectNames(value: string, previous: string[]): string[] {
  const names = value.split(",").map((name) => name.trim()).filter((name) => name.length > 0);
  for (const name of names) {
    if (!USERNAME_PATTERN.test(name)) throw new InvalidArgumentError(`"${name}" is not a valid username`);
  }
  return [...previous, ...names];
}

/** The TLS settings problem in terms of the options that caused it. */
function tlsConfigMessage(error: TlsConfigError): string {
  const problem = error.problem;
  switch (problem.kind) {
    case "min_above_max":
      return `--tls-min ${problem.minVersion} is above --tls-max ${problem.maxVersion}`;
    case "ciphers_without_tls12":
      return "--ciphers only applies to TLS 1.2; add --tls-max 1.2 (legacy) or --tls-min 1.2";
    case "ciphers_empty":
      return "--ciphers is empty";
    case "ciphers_unfit_for_key":
      return problem.keyType === "ec" ? `${error.message} (tlschat gencert --key-type rsa)` : error.message;
    default:
      return error.message;
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new CliError(`Cannot read ${path}: ${(error as Error).message}`);
  }
}
