// Starts a real tlschat server on 127.0.0.1:0 with a fresh store in a temp dir, for one test.

import type { UserStore } from "../../src/auth/store.ts";
import { REF_WINDOW_MS } from "../../src/core/limits.ts";
import type { MessageLog } from "../../src/core/message-log.ts";
import type { Rooms } from "../../src/core/rooms.ts";
import { openCluster, type Cluster } from "../../src/store/redis/cluster.ts";
import { RedisConnection } from "../../src/store/redis/connection.ts";
import { openEmbedded, type EmbeddedState } from "../../src/store/embedded.ts";
import type { ServerLimits } from "../../src/core/limits.ts";
import type { Registry } from "../../src/metrics/registry.ts";
import { startServer, type ChatServer } from "../../src/server/server.ts";
import type { Logger, LogFields } from "../../src/server/log.ts";
import type { TlsSettings } from "../../src/server/tls-config.ts";
import type { CertificatePair } from "../../src/tls/certificate.ts";
import { testCertificate } from "./certs.ts";
import { tempDir, type TempDir } from "./tmp.ts";

export interface LogEntry {
  level: "info" | "warn" | "error";
  event: string;
  fields: LogFields;
}

export interface TestServer extends ChatServer {
  dir: TempDir;
  storePath: string;
  chatDbPath: string;
  certificate: CertificatePair;
  logs: LogEntry[];
  /** With `redisUrl`: the node's cluster parts. */
  cluster?: Cluster;
}

export interface TestServerOptions {
  limits?: Partial<ServerLimits>;
  allowRegistration?: boolean;
  tls?: Partial<TlsSettings>;
  keyType?: "ec" | "rsa";
  /** Reuse a store path (e.g. to restart on the same accounts). */
  storePath?: string;
  /** Reuse a chat database (e.g. to restart on the same rooms). */
  chatDbPath?: string;
  admins?: string[];
  /** Where messages are kept: the chat database (the default, as in `serve`) or memory. */
  messageLog?: "db" | "memory";
  port?: number;
  /** Runs the server as a node of the cluster on this Redis instead of on files. */
  redisUrl?: string;
  /** Where the server registers its metrics, for a test to render or serve. */
  metrics?: Registry;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dir = await tempDir();
  const certificate = await testCertificate(options.keyType ?? "ec");
  const storePath = options.storePath ?? dir.file("users.json");
  const chatDbPath = options.chatDbPath ?? dir.file("chat.db");
  const logs: LogEntry[] = [];
  const record =
    (level: LogEntry["level"]) =>
    (event: string, fields: LogFields = {}) =>
      logs.push({ level, event, fields });
  const log: Logger = { info: record("info"), warn: record("warn"), error: record("error") };
  let server: ChatServer;
  let store: UserStore | undefined;
  let rooms: Rooms | undefined;
  let cluster: Cluster | undefined;
  let embedded: EmbeddedState | undefined;
  try {
    let messageLog: MessageLog | undefined;
    if (options.redisUrl !== undefined) {
      const connection = new RedisConnection({ url: options.redisUrl });
      await connection.open();
      cluster = await openCluster({ connection, displayName: options.redisUrl, log, refWindowMs: REF_WINDOW_MS });
      ({ store, rooms, messageLog } = cluster);
    } else {
      embedded = await openEmbedded({
        accounts: storePath,
        chatDb: chatDbPath,
        messageLog: options.messageLog ?? "db",
        checkpointsInline: (reason) => log.warn("checkpoints_inline", { reason }),
      });
      ({ store, rooms, messageLog } = embedded);
    }
    server = await startServer({
      host: "127.0.0.1",
      port: options.port ?? 0,
      tls: { cert: certificate.certPem, key: certificate.keyPem, minVersion: "1.3", maxVersion: "1.3", ...options.tls },
      store,
      rooms: rooms!,
      messageLog,
      delivery: cluster?.delivery,
      admins: options.admins,
      allowRegistration: options.allowRegistration ?? true,
      limits: options.limits,
      log,
      metrics: options.metrics,
    });
  } catch (error) {
    await store?.close();
    await rooms?.close();
    cluster?.close();
    await embedded?.close();
    await dir[Symbol.asyncDispose]();
    throw error;
  }
  const stop = async () => {
    await server.stop();
    cluster?.close();
    await embedded?.close();
    await dir[Symbol.asyncDispose]();
  };
  return Object.assign(Object.create(server) as ChatServer, {
    host: server.host,
    port: server.port,
    fingerprint256: server.fingerprint256,
    dir,
    storePath,
    chatDbPath,
    certificate,
    logs,
    cluster,
    stop,
    [Symbol.asyncDispose]: stop,
  });
}
