// The TLS chat server: accepts connections with Bun's native TLS sockets and wires each
// connection's session to the chat hub (directory, rooms, message log, fanout) and accounts,
// counting what happens into a metrics registry and saying whether it serves (health).

import type { Socket, TCPSocketListener } from "bun";
import { createAccountService } from "../auth/accounts.ts";
import type { UserStore } from "../auth/store.ts";
import { LocalDirectory, type Directory } from "../core/directory.ts";
import { LocalFanout, type Delivery } from "../core/fanout.ts";
import { Hub } from "../core/hub.ts";
import * as limits from "../core/limits.ts";
import { MemoryMessageLog, type MessageLog } from "../core/message-log.ts";
import type { Rooms } from "../core/rooms.ts";
import { Session, type SessionDeps, type SessionEvents } from "../core/session.ts";
import { HEALTHY, type Health } from "../metrics/health.ts";
import { Registry } from "../metrics/registry.ts";
import { LOBBY, userKey } from "../protocol/validate.ts";
import { Admission } from "./admission.ts";
import { clientKeyOf } from "./client-key.ts";
import { EnterPacer } from "./enter-pacer.ts";
import { DEFAULT_PORT } from "../protocol/transport.ts";
import { Connection, type ConnectionHost } from "./connection.ts";
import { FlushScheduler } from "./flush-scheduler.ts";
import { registerServerCounters, registerServerGauges } from "./metrics.ts";
import { defaultOutboundBudgetBytes, OutboundBudget } from "./outbound-budget.ts";
import { silentLogger, type Logger } from "./log.ts";
import { buildServerTls, type TlsSettings } from "./tls-config.ts";

export interface ServerOptions {
  host?: string;
  port?: number;
  tls: TlsSettings;
  /** Opened by the caller; the server closes it on stop. */
  store: UserStore;
  /** The room registry, opened by the caller; the server closes it on stop. */
  rooms: Rooms;
  /** The message log, opened by the caller and closed by the server; in memory when absent. */
  messageLog?: MessageLog;
  /** Where presence and delivery live (a cluster), closed by the server; this server alone when absent. */
  delivery?: Delivery;
  /** Usernames of the server's administrators. */
  admins?: readonly string[];
  allowRegistration?: boolean;
  limits?: Partial<limits.ServerLimits>;
  log?: Logger;
  /** Where the server registers its `tlschat_*` metrics (one server per registry); counted but not shown when absent. */
  metrics?: Registry;
}

export interface ChatServer extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  readonly fingerprint256: string;
  /** Open connections, authenticated or not. */
  readonly connectionCount: number;
  /** Ok while the server serves; not ok ("shutting down") from the moment `stop()` is called. */
  health(): Health;
  /** Tells every client `shutting_down`, waits briefly for queues to flush, closes the store. */
  stop(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<ChatServer> {
  const tls = buildServerTls(options.tls);
  const log = options.log ?? silentLogger;
  for (const warning of tls.warnings) log.warn("tls_warning", { message: warning });
  const config: limits.ServerLimits = { ...limits.defaultLimits(), ...options.limits };
  const now = Date.now;

  const { accounts, hasher } = createAccountService(options.store, config, {
    tokenTtlMs: limits.RESUME_TOKEN_TTL_MS,
    maxLoginsPerAddress: limits.MAX_CONCURRENT_LOGINS_PER_IP,
    now,
  });
  const registry = options.metrics ?? new Registry();
  const counters = registerServerCounters(registry);
  const directory = options.delivery?.directory ?? new LocalDirectory();
  // A quarter of the outbound allowance: a list or history reply plus live traffic must fit.
  const maxListBytes = Math.min(limits.MAX_LIST_REPLY_BYTES, Math.floor(config.maxOutboundBytes / 4));
  const messageLog =
    options.messageLog ??
    new MemoryMessageLog({ perConversation: config.historySize, perConversationBytes: Math.min(limits.HISTORY_MAX_BYTES, maxListBytes) });
  const hub = new Hub(
    directory,
    options.rooms,
    messageLog,
    options.delivery?.fanout ?? new LocalFanout(directory, messageLog.lastId()),
    { nameOf: async (user) => (await options.store.get(user))?.name },
    {
      lobby: LOBBY,
      admins: new Set((options.admins ?? []).map(userKey)),
      maxRoomsPerUser: config.maxRoomsPerUser,
      maxRooms: config.maxRooms,
      maxRoomsCreatedPerUser: config.maxRoomsCreatedPerUser,
      maxTopicChars: limits.MAX_TOPIC_CHARS,
      presenceMaxAudience: config.presenceMaxConnections,
      maxListBytes: Math.min(maxListBytes, limits.HISTORY_MAX_BYTES),
      roomExpiryMs: config.roomExpiryMs,
      recentHistory: config.historySize,
      catchUpPerRoom: limits.CATCH_UP_PER_ROOM,
      historyPageSize: limits.DEFAULT_HISTORY_PAGE,
      searchPageSize: limits.DEFAULT_SEARCH_RESULTS,
      refWindowMs: limits.REF_WINDOW_MS,
      retentionMs: config.historyRetentionMs,
      maxMessagesPerRoom: config.historyMaxMessagesPerRoom,
    },
    {
      stored() {
        counters.messages.inc();
      },
      moderated(notice) {
        const { action, room, scope, user, by, seconds, invite_only } = notice;
        log.info("moderation", { action, room: room ?? scope, user, by, seconds, invite_only });
      },
      topicSet(room, by) {
        log.info("moderation", { action: "topic", room, by });
      },
    },
    now,
  );
  await hub.open();
  options.delivery?.attach(hub);
  let nextId = 1;
  let stopping: Promise<void> | undefined;

  const events: SessionEvents = {
    authenticated(session, method) {
      counters.logins.inc();
      const key = method === "key" ? session.clientKey : undefined;
      log.info("login", { id: session.peer.id, user: session.user, address: session.address, method, key });
    },
    registered(session, user) {
      counters.registrations.inc();
      log.info("register", { id: session.peer.id, user, address: session.address });
    },
    crashed(session, frame, error) {
      counters.internalErrors.inc();
      log.error("internal_error", { id: session.peer.id, frame, message: errorText(error) });
    },
    refused(session, frame, code) {
      if (code === "store_unavailable") counters.storeErrors.inc();
      if (frame === "login" || frame === "resume" || frame === "passwd") {
        counters.authFailures.inc();
        log.warn("login_failed", { id: session.peer.id, address: session.address, frame, code });
      }
    },
  };

  const budget = new OutboundBudget(config.maxOutboundMemoryBytes ?? defaultOutboundBudgetBytes());
  const enforceBudget = () => {
    if (!budget.exceeded) return;
    const queued = budget.queuedBytes;
    const dropped = budget.enforce(admission.connections);
    log.warn("outbound_budget_exceeded", { budget: budget.limitBytes, queued, dropped });
  };
  const flushes = new FlushScheduler(enforceBudget);
  const host: ConnectionHost = {
    maxLineBytes: limits.MAX_LINE_BYTES,
    maxOutboundBytes: config.maxOutboundBytes,
    writableBelowBytes: Math.floor(config.maxOutboundBytes / 4),
    maxWriteBytes: limits.MAX_WRITE_BYTES,
    closeGraceMs: limits.CLOSE_GRACE_MS,
    budget,
    deliveries: counters.deliveries,
    scheduleFlush: (connection) => flushes.schedule(connection),
    slowConsumer(connection) {
      counters.slowConsumers.inc();
      log.warn("slow_consumer", { id: connection.id, user: connection.session.user, address: connection.address });
    },
  };

  const enterPacer = new EnterPacer(limits.MAX_ENTERS_PER_TURN);
  const sessionDeps: SessionDeps = {
    hub,
    accounts,
    enterTurn: () => enterPacer.turn(),
    events,
    allowRegistration: options.allowRegistration ?? true,
    now,
    limits: config,
  };

  const admission = new Admission<Connection>(
    {
      maxConnections: config.maxConnections,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      refusalHeadroom: limits.REFUSAL_HEADROOM,
      authTimeoutMs: config.authTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
    },
    now,
  );
  const retention = setInterval(() => void trimHistory(), limits.HISTORY_TRIM_INTERVAL_MS);
  let trimming = false;
  /** Removes old messages step by step, yielding to the relay between steps. */
  const trimHistory = async () => {
    if (trimming) return;
    trimming = true;
    try {
      let total = 0;
      for (let removed = await hub.trimHistory(); removed > 0; removed = await hub.trimHistory()) {
        total += removed;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (total > 0) log.info("history_trimmed", { count: total });
    } catch (error) {
      counters.storeErrors.inc();
      log.error("history_trim_failed", { message: errorText(error) });
    } finally {
      trimming = false;
    }
  };
  const roomSweep = setInterval(() => {
    hub.removeExpiredRooms().then(
      (removed) => removed.length > 0 && log.info("rooms_expired", { count: removed.length }),
      (error: unknown) => {
        counters.storeErrors.inc();
        log.error("rooms_expiry_failed", { message: errorText(error) });
      },
    );
  }, limits.ROOM_SWEEP_INTERVAL_MS);

  const listener: TCPSocketListener<Connection> = Bun.listen<Connection>({
    hostname: options.host ?? "0.0.0.0",
    port: options.port ?? DEFAULT_PORT,
    // The extra fields (minVersion, maxVersion) are real Bun options missing from its types.
    tls: tls.options as unknown as Bun.TLSOptions,
    socket: {
      open(socket: Socket<Connection>) {
        const address = socket.remoteAddress;
        const connection = new Connection(nextId++, address, socket, host, (peer) => new Session(peer, address, sessionDeps));
        socket.data = connection;
        socket.setNoDelay(true);
        counters.connectionsOpened.inc();
        const verdict = admission.admit(connection);
        if (stopping) {
          connection.close("shutting_down", "Server is shutting down");
        } else if (verdict === "cut") {
          counters.connectionsRefused.inc();
          connection.terminate();
        } else if (verdict === "refuse") {
          counters.connectionsRefused.inc();
          log.warn("refused", { id: connection.id, address, code: "server_full" });
          connection.close("server_full", "Too many connections; try again later");
        } else {
          log.info("connect", { id: connection.id, address });
        }
      },
      handshake(socket, success) {
        // Never speak the protocol outside TLS: no version means no TLS session.
        if (!success || !socket.getTLSVersion()) socket.data.handshakeFailed();
        // Bun calls every self-signed client certificate unauthorized, which says nothing about
        // the key: the handshake has proved the client holds it.
        else socket.data.onHandshake(clientKeyOf(socket.getPeerCertificate()));
      },
      data(socket, chunk) {
        socket.data.onData(chunk);
      },
      drain(socket) {
        socket.data.onDrain();
      },
      close(socket) {
        const connection = socket.data;
        if (!connection || !admission.release(connection)) return;
        connection.onClosed();
        log.info("disconnect", { id: connection.id, user: connection.session.user, reason: connection.reason });
        if (admission.connections.size === 0) allClosed?.();
      },
      error(socket, error) {
        log.warn("socket_error", { id: socket.data?.id, message: error.message });
      },
    },
  });

  registerServerGauges(registry, {
    connections: () => admission.connections.size,
    usersOnline: () => directory.size,
    outboundBytes: () => budget.queuedBytes,
    outboundBudgetBytes: budget.limitBytes,
  });

  // A failed warm-up is retried by the first login that needs the dummy hash.
  hasher.warmUp().catch(() => undefined);

  let allClosed: (() => void) | undefined;
  let shuttingDown = false;
  const stop = (): Promise<void> => {
    // Health fails before anything closes, so a load balancer stops sending new clients while
    // the connected ones are told `shutting_down`.
    shuttingDown = true;
    stopping ??= (async () => {
      admission.stop();
      clearInterval(roomSweep);
      clearInterval(retention);
      listener.stop();
      const connections = admission.connections;
      if (connections.size > 0) {
        const closed = new Promise<void>((resolve) => (allClosed = resolve));
        for (const connection of connections) connection.close("shutting_down", "Server is shutting down");
        await Promise.race([closed, Bun.sleep(limits.SHUTDOWN_GRACE_MS)]);
      }
      listener.stop(true);
      await options.delivery?.close();
      // The log commits what is pending before the database it may share with the rooms closes.
      await messageLog.close();
      await Promise.all([options.store.close(), options.rooms.close()]);
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
      return admission.connections.size;
    },
    health: () => (shuttingDown ? SHUTTING_DOWN : HEALTHY),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

const SHUTTING_DOWN: Health = { ok: false, reason: "shutting down" };

/** What a failure says, for a log line. */
function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
