// The chat server's metrics: their names and what each counts. Counters are integers bumped where the event happens (a delivery is one
// increment, no labels or lookups); gauges are read from the server's own state at scrape time.

import type { Counter, Registry } from "../metrics/registry.ts";

export interface ServerCounters {
  connectionsOpened: Counter;
  connectionsRefused: Counter;
  logins: Counter;
  registrations: Counter;
  authFailures: Counter;
  messages: Counter;
  deliveries: Counter;
  slowConsumers: Counter;
  storeErrors: Counter;
  internalErrors: Counter;
}

export function registerServerCounters(registry: Registry): ServerCounters {
  return {
    connectionsOpened: registry.counter("tlschat_connections_opened_total", "Connections accepted, refused ones included"),
    connectionsRefused: registry.counter("tlschat_connections_refused_total", "Connections refused on arrival (server full or too many from one address)"),
    logins: registry.counter("tlschat_logins_total", "Successful logins, by password, resume token or key"),
    registrations: registry.counter("tlschat_registrations_total", "Accounts registered over the network"),
    authFailures: registry.counter("tlschat_auth_failures_total", "Refused login, resume and passwd frames (the log's login_failed lines)"),
    messages: registry.counter("tlschat_messages_total", "Room messages and dms stored in the message log (a retried ref counts once)"),
    deliveries: registry.counter("tlschat_deliveries_total", "Frames queued to connections: every message, notice and reply, once per connection"),
    slowConsumers: registry.counter("tlschat_slow_consumers_total", "Connections dropped for not reading (their queue cap or the server-wide budget)"),
    storeErrors: registry.counter("tlschat_store_errors_total", "Frames refused with store_unavailable, and failed background store work (retention, room expiry)"),
    internalErrors: registry.counter("tlschat_internal_errors_total", "Frames that failed with internal_error (a bug or an unexpected runtime failure)"),
  };
}

/** What the gauges read, at scrape time only. */
export interface ServerState {
  connections(): number;
  usersOnline(): number;
  outboundBytes(): number;
  outboundBudgetBytes: number;
}

export function registerServerGauges(registry: Registry, state: ServerState): void {
  registry.computed("gauge", "tlschat_connections", "Open connections, logged in or not", state.connections);
  registry.computed("gauge", "tlschat_users_online", "Users with at least one logged-in connection", state.usersOnline);
  registry.computed("gauge", "tlschat_outbound_bytes", "Bytes queued to all connections together, not yet written", state.outboundBytes);
  registry.computed("gauge", "tlschat_outbound_budget_bytes", "Bytes all queues together may hold before the furthest behind are dropped", () => state.outboundBudgetBytes);
}
