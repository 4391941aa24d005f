// Starts a real tlschat server on 127.0.0.1:0 with a fresh store in a temp dir, for one test.

import { JsonFileStore } from "../../src/auth/store.ts";
import { startServer, type ChatServer, type ServerLimits } from "../../src/server/server.ts";
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
  certificate: CertificatePair;
  logs: LogEntry[];
}

export interface TestServerOptions {
  limits?: Partial<ServerLimits>;
  allowRegistration?: boolean;
  tls?: Partial<TlsSettings>;
  keyType?: "ec" | "rsa";
  /** Reuse a store path (e.g. to restart on the same accounts). */
  storePath?: string;
  port?: number;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dir = await tempDir();
  const certificate = await testCertificate(options.keyType ?? "ec");
  const storePath = options.storePath ?? dir.file("users.json");
  const logs: LogEntry[] = [];
  const record =
    (level: LogEntry["level"]) =>
    (event: string, fields: LogFields = {}) =>
      logs.push({ level, event, fields });
  const log: Logger = { info: record("info"), warn: record("warn"), error: record("error") };
  let server: ChatServer;
  let store: JsonFileStore | undefined;
  try {
    store = await JsonFileStore.open(storePath);
    server = await startServer({
      host: "127.0.0.1",
      port: options.port ?? 0,
      tls: { cert: certificate.certPem, key: certificate.keyPem, minVersion: "1.3", maxVersion: "1.3", ...options.tls },
      store,
      allowRegistration: options.allowRegistration ?? true,
      limits: options.limits,
      log,
    });
  } catch (error) {
    await store?.close();
    await dir[Symbol.asyncDispose]();
    throw error;
  }
  const stop = async () => {
    await server.stop();
    await dir[Symbol.asyncDispose]();
  };
  return Object.assign(Object.create(server) as ChatServer, {
    host: server.host,
    port: server.port,
    fingerprint256: server.fingerprint256,
    dir,
    storePath,
    certificate,
    logs,
    stop,
    [Symbol.asyncDispose]: stop,
  });
}
