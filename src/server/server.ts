// The TLS chat server: accepts connections with Bun's native TLS sockets, enforces connection
// caps and timeouts, and wires each connection's session to the shared room and accounts.

import type { Socket, TCPSocketListener } from "bun";
import { availableParallelism } from "node:os";
import { createAccountService } from "../auth/accounts.ts";
import type { UserStore } from "../auth/store.ts";
import type { ThrottlePolicy } from "../auth/throttle.ts";
import * as limits from "../core/limits.ts";
import { Room } from "../core/room.ts";
import { Session, type SessionEvents } from "../core/session.ts";
import { Connection, type ConnectionHost } from "./connection.ts";
import { silentLogger, type Logger } from "./log.ts";
import { buildServerTls, type TlsSettings } from "./tls-config.ts";

export interface ServerLimits {
  authTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  maxOutboundBytes: number;
  messageRatePerSec: number;
  messageBurst: number;
  maxRateViolations: number;
  historySize: number;
  presenceMaxUsers: number;
  maxConcurrentHashes: number;
  maxQueuedHashes: number;
  throttle: ThrottlePolicy;
}

export function defaultLimits(): ServerLimits {
  return {
    authTimeoutMs: limits.AUTH_TIMEOUT_MS,
    idleTimeoutMs: limits.IDLE_TIMEOUT_MS,
    maxConnections: limits.MAX_CONNECTIONS,
    maxConnectionsPerIp: limits.MAX_CONNECTIONS_PER_IP,
    maxOutboundBytes: limits.MAX_OUTBOUND_BYTES,
    messageRatePerSec: limits.MESSAGE_RATE_PER_SEC,
    messageBurst: limits.MESSAGE_BURST,
    maxRateViolations: limits.MAX_RATE_VIOLATIONS,
    historySize: limits.HISTORY_SIZE,
    presenceMaxUsers: limits.PRESENCE_NOTICE_MAX_USERS,
    // Leave a core for relaying: hashing must never stall message delivery.
    maxConcurrentHashes: Math.max(1, Math.min(limits.MAX_CONCURRENT_HASHES, availableParallelism() - 1)),
    maxQueuedHashes: limits.MAX_QUEUED_HASHES,
    throttle: {
      freeFailures: limits.FREE_LOGIN_FAILURES,
      baseDelayMs: limits.LOGIN_BACKOFF_BASE_MS,
      maxDelayMs: limits.LOGIN_BACKOFF_MAX_MS,
      windowMs: limits.LOGIN_FAILURE_WINDOW_MS,
      maxEntries: limits.MAX_THROTTLE_ENTRIES,
    },
  };
}

export interface ServerOptions {
  host?: string;
  port?: number;
  tls: TlsSettings;
  /** Opened by the caller; the server closes it on stop. */
  store: UserStore;
  allowRegistration?: boolean;
  limits?: Partial<ServerLimits>;
  log?: Logger;
}

export interface ChatServer extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  readonly fingerprint256: string;
  /** Open connections, authenticated or not. */
  readonly connectionCount: number;
  /** Tells every client `shutting_down`, waits briefly for queues to flush, closes the store. */
  stop(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<ChatServer> {
  const tls = buildServerTls(options.tls);
  const log = options.log ?? silentLogger;
  for (const warning of tls.warnings) log.warn("tls_warning", { message: warning });
  const config: ServerLimits = { ...defaultLimits(), ...options.limits };
  const now = Date.now;

  const { accounts, hasher } = createAccountService(options.store, config, {
    tokenTtlMs: limits.RESUME_TOKEN_TTL_MS,
    maxLoginsPerAddress: limits.MAX_CONCURRENT_LOGINS_PER_IP,
    now,
  });
  const room = new Room({
    historySize: config.historySize,
    // A quarter of the outbound allowance: the history frame plus live traffic at login must fit.
    historyMaxBytes: Math.min(limits.HISTORY_MAX_BYTES, Math.floor(config.maxOutboundBytes / 4)),
    presenceMaxUsers: config.presenceMaxUsers,
    now,
  });
  const connections = new Set<Connection>();
  const perAddress = new Map<string, number>();
  let nextId = 1;
  let stopping: Promise<void> | undefined;

  const events: SessionEvents = {
    authenticated(session, method) {
      log.info("login", { id: session.peer.id, user: session.user, address: session.address, method });
    },
    registered(session, user) {
      log.info("register", { id: session.peer.id, user, address: session.address });
    },
    crashed(session, frame, error) {
      log.error("internal_error", { id: session.peer.id, frame, message: error instanceof Error ? error.message : String(error) });
    },
    refused(session, frame, code) {
      if (frame === "login" || frame === "resume" || frame === "passwd") {
        log.warn("login_failed", { id: session.peer.id, address: session.address, frame, code });
      }
    },
  };

  // One flush per connection per event-loop turn: frames queued while handling a batch of reads
  // leave in one write.
  let dirty: Connection[] = [];
  const flushDirty = () => {
    const batch = dirty;
    dirty = [];
    for (const connection of batch) connection.flushScheduledWrites();
  };
  const host: ConnectionHost = {
    maxLineBytes: limits.MAX_LINE_BYTES,
    maxOutboundBytes: config.maxOutboundBytes,
    maxWriteBytes: limits.MAX_WRITE_BYTES,
    closeGraceMs: limits.CLOSE_GRACE_MS,
    scheduleFlush(connection) {
      if (dirty.length === 0) setImmediate(flushDirty);
      dirty.push(connection);
    },
    slowConsumer(connection) {
      log.warn("slow_consumer", { id: connection.id, user: connection.session.user, address: connection.address });
    },
  };

  const sessionDeps = {
    room,
    accounts,
    events,
    allowRegistration: options.allowRegistration ?? true,
    now,
    limits: {
      maxTextChars: limits.MAX_TEXT_CHARS,
      idleTimeoutMs: config.idleTimeoutMs,
      messageRatePerSec: config.messageRatePerSec,
      messageBurst: config.messageBurst,
      // Never stricter than the message allowance, or raising that would not help.
      frameRatePerSec: Math.max(limits.FRAME_RATE_PER_SEC, config.messageRatePerSec * 2),
      frameBurst: Math.max(limits.FRAME_BURST, config.messageBurst * 2),
      maxRateViolations: config.maxRateViolations,
      maxPendingFrames: limits.MAX_PENDING_FRAMES,
    },
  };

  const listener: TCPSocketListener<Connection> = Bun.listen<Connection>({
    hostname: options.host ?? "0.0.0.0",
    port: options.port ?? 7443,
    // The extra fields (minVersion, maxVersion) are real Bun options missing from its types.
    tls: tls.options as unknown as Bun.TLSOptions,
    socket: {
      open(socket: Socket<Connection>) {
        const address = socket.remoteAddress;
        const connection = new Connection(nextId++, address, socket, host);
        connection.session = new Session(connection, address, sessionDeps);
        socket.data = connection;
        socket.setNoDelay(true);
        const fromAddress = (perAddress.get(address) ?? 0) + 1;
        perAddress.set(address, fromAddress);
        connections.add(connection);
        if (stopping) {
          connection.close("shutting_down", "Server is shutting down");
        } else if (connections.size > config.maxConnections + limits.REFUSAL_HEADROOM) {
          // Past the headroom even a polite refusal (a TLS handshake) costs too much.
          connection.terminate();
        } else if (connections.size > config.maxConnections || fromAddress > config.maxConnectionsPerIp) {
          log.warn("refused", { id: connection.id, address, code: "server_full" });
          connection.close("server_full", "Too many connections; try again later");
        } else {
          log.info("connect", { id: connection.id, address });
        }
      },
      handshake(socket, success) {
        // Never speak the protocol outside TLS: no version means no TLS session.
        if (!success || !socket.getTLSVersion()) {
          // A connection already being closed (login timeout, server full) keeps that reason.
          if (socket.data.isOpen) socket.data.reason = "tls_failed";
          socket.data.terminate();
          return;
        }
        socket.data.onHandshake();
      },
      data(socket, chunk) {
        socket.data.onData(chunk);
      },
      drain(socket) {
        socket.data.onDrain();
      },
      close(socket) {
        const connection = socket.data;
        if (!connection || !connections.delete(connection)) return;
        const left = (perAddress.get(connection.address) ?? 1) - 1;
        if (left > 0) perAddress.set(connection.address, left);
        else perAddress.delete(connection.address);
        connection.onClosed();
        log.info("disconnect", { id: connection.id, user: connection.session.user, reason: connection.reason });
        if (connections.size === 0) allClosed?.();
      },
      error(socket, error) {
        log.warn("socket_error", { id: socket.data?.id, message: error.message });
      },
    },
  });

  // Timeouts are checked by one sweep instead of a timer per connection.
  const sweepMs = Math.min(1000, Math.max(20, Math.floor(Math.min(config.authTimeoutMs, config.idleTimeoutMs) / 4)));
  const sweep = setInterval(() => {
    const time = now();
    for (const connection of connections) {
      if (!connection.isOpen) continue;
      const session = connection.session;
      if (!session.authenticated && time - session.openedAt > config.authTimeoutMs) {
        connection.close("timeout", "Log in within the time limit");
      } else if (time - session.lastFrameAt > config.idleTimeoutMs) {
        connection.close("timeout", "Idle for too long");
      }
    }
  }, sweepMs);
  // A failed warm-up is retried by the first login that needs the dummy hash.
  hasher.warmUp().catch(() => undefined);

  let allClosed: (() => void) | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(sweep);
      listener.stop();
      if (connections.size > 0) {
        const closed = new Promise<void>((resolve) => (allClosed = resolve));
        for (const connection of connections) connection.close("shutting_down", "Server is shutting down");
        await Promise.race([closed, Bun.sleep(limits.SHUTDOWN_GRACE_MS)]);
      }
      listener.stop(true);
      await options.store.close();
      log.info("stopped", {});
    })();
    return stopping;
  };

  const tlsRange = options.tls.minVersion === options.tls.maxVersion ? options.tls.minVersion : `${options.tls.minVersion}-${options.tls.maxVersion}`;
  log.info("listening", { address: `${listener.hostname}:${listener.port}`, tls: tlsRange, fingerprint: tls.fingerprint256 });
  return {
    host: listener.hostname,
    port: listener.port,
    fingerprint256: tls.fingerprint256,
    get connectionCount() {
      return connections.size;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
