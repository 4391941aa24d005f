// What a scenario runs against: a fresh tlschat server (clients log in with resume tokens the
// bench issues itself with the store's secret) or an `ncat --broker --ssl` relay (no login).

import { issueToken } from "../../src/auth/tokens.ts";
import { BenchClient, connectAll, type ClientEvents, type Endpoint, type StopFlag } from "./client.ts";
import {
  freePort,
  GENEROUS_LIMITS,
  ServerProcess,
  userName,
  type MessageLogMode,
  type ServeLimits,
  type ServerCommand,
  type ServeSettings,
  type StoreInfo,
  type Workspace,
} from "./proc.ts";
import { sleep } from "./util.ts";

export const PASSWORD = "benchpassword";
/** Accounts in the store: enough for the connections scenario plus headroom. */
export const STORE_USERS = 10_600;
/**
 * Accounts in the cluster store, which each cluster's first node imports into its new Redis:
 * enough for the failover scenario's clients and sender. Few, since the import is one script per
 * account, part of every repetition's start.
 */
export const CLUSTER_STORE_USERS = 200;

export interface BenchContext {
  command: ServerCommand;
  ws: Workspace;
  /** The big store (STORE_USERS users, one shared argon2id hash). */
  store: StoreInfo;
  /** A 50-user store for the startup scenario. */
  smallStore: StoreInfo;
  /** The accounts (CLUSTER_STORE_USERS) and token secret every cluster's Redis gets. */
  clusterStore: StoreInfo;
}

export type TargetName = "tlschat" | "ncat";

export interface Target {
  name: TargetName;
  server: ServerProcess;
  endpoint: Endpoint;
  /** Connects the clients and, on tlschat, logs each in by resume token; resolves when all are ready. */
  join(clients: readonly BenchClient[], concurrency?: number, stop?: StopFlag): Promise<void>;
  stop(): Promise<void>;
}

const TOKEN_TTL_MS = 24 * 60 * 60 * 1000;

/** A resume token as the server would issue it (same secret, format and epoch 0). */
export function tokenFor(ctx: BenchContext, user: string, store: StoreInfo = ctx.store): string {
  return issueToken(store.secret, user, 0, Date.now() + TOKEN_TTL_MS);
}

export interface TlschatOptions {
  limits?: ServeLimits;
  /** Default `db`, as `serve` has it. */
  messageLog?: MessageLogMode;
  /** An existing chat database to serve; default a new one (no rooms but the lobby). */
  chatDb?: string;
  /** The account store; default the big one. */
  store?: StoreInfo;
}

/** A tlschat server on a store (the big one unless named). */
export async function startTlschat(ctx: BenchContext, options: TlschatOptions = {}): Promise<Target> {
  const port = freePort();
  const settings: ServeSettings = {
    state: {
      kind: "embedded",
      files: { accounts: (options.store ?? ctx.store).path, chat: options.chatDb ?? ctx.ws.newChatDb() },
      messageLog: options.messageLog ?? "db",
    },
    limits: options.limits ?? GENEROUS_LIMITS,
  };
  const server = await ServerProcess.startTlschat(ctx.command, ctx.ws, settings, port);
  const endpoint = { port, ca: ctx.ws.certPem };
  return {
    name: "tlschat",
    server,
    endpoint,
    join: (clients, concurrency = 64, stop) => connectAll(clients, endpoint, (client) => tokenFor(ctx, client.user, options.store ?? ctx.store), concurrency, stop),
    stop: () => server.stop(),
  };
}

export async function startNcat(ctx: BenchContext, maxConns: number): Promise<Target> {
  const port = freePort();
  const server = await ServerProcess.startNcat(ctx.ws, port, maxConns);
  const endpoint = { port, ca: ctx.ws.certPem };
  return {
    name: "ncat",
    server,
    endpoint,
    async join(clients, concurrency = 64, stop) {
      await connectAll(clients, endpoint, undefined, concurrency, stop);
      // The client's TLS 1.3 handshake completes before the broker has read its Finished and
      // added it to the relay list; give the broker a moment so no early message misses anyone.
      await sleep(300);
    },
    stop: () => server.stop(),
  };
}

/** tlschat with its message log (ignored by ncat, which keeps none). */
export function startTarget(ctx: BenchContext, name: TargetName, messageLog: MessageLogMode = "db", maxConns = 1000): Promise<Target> {
  return name === "tlschat" ? startTlschat(ctx, { messageLog }) : startNcat(ctx, maxConns);
}

/** Clients u<first+1>..u<first+count>, with indices 0..count-1. */
export function makeClients(count: number, events: ClientEvents, first = 0): BenchClient[] {
  return Array.from({ length: count }, (_, i) => new BenchClient(i, userName(first + i + 1), events));
}

