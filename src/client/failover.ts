// The servers a client may use, as a cluster's nodes that stand in for each other: tried in the
// order given until one answers, and after a lost connection from the one after it, wrapping
// around. It knows what a failure means for that search (an answer about the account is the same
// from every node; a server that cannot be trusted is not worth trying again), not how a server
// is reached.

import { ChatError } from "../protocol/errors.ts";
import { ConnectError, type Verification } from "./connection.ts";

export interface ServerAddress {
  readonly host: string;
  readonly port: number;
}

/** A server to use and how it is verified (pins are kept per host and port). */
export interface ServerEndpoint extends ServerAddress {
  readonly verification: Verification;
}

/** "host:port", IPv6 addresses in brackets: how a server is named to the user. */
export function serverLabel(server: ServerAddress): string {
  return server.host.includes(":") ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

/** A failure of `server` as one line that names it (a failure to connect does already). */
export function failureText(server: ServerAddress, error: Error): string {
  return error instanceof ChatError ? `${serverLabel(server)}: ${error.code}: ${error.message}` : error.message;
}

/** The status line for a server that failed when there is another to try. */
export function tryingNext(server: ServerAddress, error: Error, next: ServerAddress): string {
  return `${failureText(server, error)}; trying ${serverLabel(next)}`;
}

/** A refused login: every node of a cluster checks the same account, so no other one is asked. */
export function sameEverywhere(error: unknown): boolean {
  return error instanceof ChatError && error.code === "auth_failed";
}

/** This server failed in a way that trying it again will not change: it is not trusted, or not fit for the identity. */
export function notWorthRetrying(error: unknown): boolean {
  return error instanceof ConnectError && (error.kind === "untrusted" || error.kind === "identity_needs_tls13");
}

/**
 * Resolves with the first of `servers` for which `attempt` succeeds, trying them one after
 * another; `failed` hears of each failure, with the server tried next (if any). A failure that
 * would be the same everywhere rejects at once. When every server failed, rejects with the
 * failure that tells the user most: one they must act on (an untrusted server), else a server's
 * refusal (it answered), else the connection failures of all of them in one line.
 */
export async function firstAnswering<S extends ServerAddress, T>(
  servers: readonly S[],
  attempt: (server: S) => Promise<T>,
  failed: (server: S, error: Error, next: S | undefined) => void = () => {},
): Promise<T> {
  if (servers.length === 0) throw new RangeError("No server to try");
  const errors: Error[] = [];
  for (const [index, server] of servers.entries()) {
    try {
      return await attempt(server);
    } catch (error) {
      if (sameEverywhere(error) || !(error instanceof Error)) throw error;
      errors.push(error);
      failed(server, error, servers[index + 1]);
    }
  }
  const telling = errors.find(notWorthRetrying) ?? errors.find((error) => error instanceof ChatError);
  if (telling) throw telling;
  if (errors.length === 1) throw errors[0];
  throw new ConnectError("connect_failed", errors.map((error) => error.message).join("; "));
}

/** `servers` in the order a reconnect tries them: those after `last` first, `last` itself at the end. */
export function after<S>(servers: readonly S[], last: S): S[] {
  const index = servers.indexOf(last);
  return [...servers.slice(index + 1), ...servers.slice(0, index + 1)];
}
