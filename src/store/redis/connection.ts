// The node's link to Redis: one command connection and one subscriber connection, each with our
// own reconnect loop and a deadline on every command. Bun's client would queue commands while
// disconnected and give up reconnecting after its retries; here a command made while Redis is
// away fails at once with `store_unavailable`, one that gets no answer in time fails the same way,
// and the link keeps trying to come back however long Redis is gone. Subscriptions are made again
// after every reconnect (Redis forgets them), and once both connections serve again `onReconnected`
// listeners read what was published meanwhile.

import { RedisClient } from "bun";
import { ChatError } from "../../protocol/errors.ts";

/** How long a command may wait for its answer before Redis counts as unreachable. */
export const REDIS_COMMAND_TIMEOUT_MS = 2_000;
/** How often the oldest command in flight is checked against that deadline. */
const DEADLINE_CHECK_INTERVAL_MS = 100;
/** Time allowed to open a connection. */
const REDIS_CONNECT_TIMEOUT_MS = 1_000;
/** Pause before the first reconnect attempt, doubled after each failure up to the maximum. */
const RECONNECT_FIRST_DELAY_MS = 50;
const RECONNECT_MAX_DELAY_MS = 1_000;

export type LinkState = "up" | "down";

export interface RedisLinkOptions {
  /** redis://, rediss:// (TLS), with user:password@ and /db as usual. */
  url: string;
  /** PEM CA certificates to verify a rediss:// server against (the system's when absent). */
  ca?: string;
  commandTimeoutMs?: number;
}

/** A Lua script run by its hash, loaded again when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH). */
export class RedisScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = new Bun.CryptoHasher("sha1").update(source).digest("hex");
  }
}

type MessageListener = (message: string, channel: string) => void;

interface InFlight {
  startedAt: number;
  settled: boolean;
}

/** One Bun client with the reconnect loop and the command deadline. */
class Link {
  private client: RedisClient | undefined;
  private connecting: Promise<void> | undefined;
  private delayMs = RECONNECT_FIRST_DELAY_MS;
  private retry: ReturnType<typeof setTimeout> | undefined;
  /** Commands in the order sent; those before `answeredUpTo` have been answered. */
  private inFlight: InFlight[] = [];
  private answeredUpTo = 0;
  private readonly deadlines: ReturnType<typeof setInterval>;
  private closed = false;
  state: LinkState = "down";

  constructor(
    private readonly options: RedisLinkOptions,
    private readonly changed: (state: LinkState, reason: string | undefined) => void,
    private readonly connected: (client: RedisClient) => Promise<void>,
  ) {
    const timeoutMs = options.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS;
    this.deadlines = setInterval(() => this.checkDeadline(timeoutMs), DEADLINE_CHECK_INTERVAL_MS);
    this.deadlines.unref();
  }

  /** Connects now; resolves once up, or rejects with why it is not (and keeps retrying). */
  open(): Promise<void> {
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  send(command: string, args: string[]): Promise<unknown> {
    const client = this.client;
    if (this.state !== "up" || !client) return Promise.reject(unavailable("Redis is unreachable"));
    const entry: InFlight = { startedAt: performance.now(), settled: false };
    this.inFlight.push(entry);
    return client.send(command, args).then(
      (reply) => {
        entry.settled = true;
        return reply;
      },
      (error: unknown) => {
        entry.settled = true;
        throw asStoreError(error);
      },
    );
  }

  /** The client itself, for subscribing (only while up). */
  get raw(): RedisClient | undefined {
    return this.state === "up" ? this.client : undefined;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.deadlines);
    clearTimeout(this.retry);
    const client = this.client;
    // Detached first: a link closed on purpose is not a lost one.
    this.client = undefined;
    client?.close();
  }

  private async connect(): Promise<void> {
    const client = new RedisClient(this.options.url, {
      autoReconnect: false,
      enableOfflineQueue: false,
      connectionTimeout: REDIS_CONNECT_TIMEOUT_MS,
      enableAutoPipelining: true,
      ...(this.options.ca !== undefined ? { tls: { ca: this.options.ca } } : {}),
    });
    client.onclose = (error) => {
      if (this.client === client) this.lost(error instanceof Error ? error.message : "connection closed");
    };
    try {
      await client.connect();
      // A Redis still loading its append-only file accepts connections but answers LOADING to
      // most commands: not up yet, so try again later rather than fail the reads made on return.
      await client.send("PING", []);
      await this.connected(client);
    } catch (error) {
      client.close();
      this.lost((error as Error).message);
      throw unavailable(`Redis is unreachable (${(error as Error).message})`);
    }
    if (this.closed) {
      client.close();
      return;
    }
    this.client = client;
    this.delayMs = RECONNECT_FIRST_DELAY_MS;
    this.setState("up", undefined);
  }

  private lost(reason: string): void {
    const client = this.client;
    // Detached first: closing it runs onclose, which must not report this loss a second time.
    this.client = undefined;
    client?.close();
    this.inFlight = [];
    this.answeredUpTo = 0;
    this.setState("down", reason);
    if (this.closed || this.retry !== undefined) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.open().catch(() => undefined);
    }, this.delayMs);
    this.delayMs = Math.min(this.delayMs * 2, RECONNECT_MAX_DELAY_MS);
  }

  /** Replies come in order, so the oldest unanswered command is the one that tells. */
  private checkDeadline(timeoutMs: number): void {
    while (this.answeredUpTo < this.inFlight.length && this.inFlight[this.answeredUpTo]!.settled) this.answeredUpTo++;
    // Cut the answered front in one go: shifting one at a time costs a copy per command.
    if (this.answeredUpTo > 0) {
      this.inFlight = this.inFlight.slice(this.answeredUpTo);
      this.answeredUpTo = 0;
    }
    const oldest = this.inFlight[0];
    if (oldest && performance.now() - oldest.startedAt > timeoutMs) {
      // Closing rejects every command still waiting; the loop then reconnects.
      this.lost(`no answer in ${timeoutMs} ms`);
    }
  }

  private setState(state: LinkState, reason: string | undefined): void {
    if (this.state === state) return;
    this.state = state;
    this.changed(state, reason);
  }
}

export interface StateChange {
  state: LinkState;
  /** Why it went down. */
  reason?: string;
}

/** The commands and subscriptions a node needs, over two links. */
export class RedisConnection {
  private readonly commands: Link;
  private readonly subscriber: Link;
  private readonly channels = new Map<string, MessageListener>();
  /** Scripts loaded (or being loaded) on the current command connection, by hash. */
  private readonly loaded = new Map<string, Promise<void>>();
  private readonly stateListeners: Array<(change: StateChange) => void> = [];
  private readonly reconnectedListeners: Array<() => void> = [];
  private reported: LinkState = "down";
  /** Set once both links were first up: every later "up" is a return. */
  private wasUp = false;

  constructor(options: RedisLinkOptions) {
    const changed = (_state: LinkState, reason: string | undefined) => this.report(reason);
    // A new connection may be to a Redis that restarted and forgot every script.
    this.commands = new Link(options, changed, async () => this.loaded.clear());
    this.subscriber = new Link(options, changed, (client) => this.subscribeAll(client));
  }

  /** Connects both links; rejects with `store_unavailable` if Redis cannot be reached now. */
  async open(): Promise<void> {
    await Promise.all([this.commands.open(), this.subscriber.open()]);
  }

  /** Up when both links are. */
  get state(): LinkState {
    return this.commands.state === "up" && this.subscriber.state === "up" ? "up" : "down";
  }

  /** Called once per change of `state`, with the reason when it went down. */
  onStateChange(listener: (change: StateChange) => void): void {
    this.stateListeners.push(listener);
  }

  /**
   * Called each time both links are up again after either was lost, the subscriptions already
   * made again: what was published meanwhile may be missing, and commands now get answers.
   */
  onReconnected(listener: () => void): void {
    this.reconnectedListeners.push(listener);
  }

  send(command: string, args: Array<string | number>): Promise<unknown> {
    return this.commands.send(command, args.map(String));
  }

  async run(script: RedisScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    const params = [String(keys.length), ...keys, ...args.map(String)];
    // Loaded once per connection before its first use, so a burst of calls does not send the
    // whole script once per call after as many NOSCRIPT answers.
    let loading = this.loaded.get(script.sha);
    if (!loading) {
      loading = this.commands.send("SCRIPT", ["LOAD", script.source]).then(() => undefined);
      this.loaded.set(script.sha, loading);
      loading.catch(() => this.loaded.delete(script.sha));
    }
    await loading;
    try {
      return await this.commands.send("EVALSHA", [script.sha, ...params]);
    } catch (error) {
      if (!(error instanceof RedisReplyError) || !error.message.startsWith("NOSCRIPT")) throw error;
      // EVAL runs the script and caches it, so the next EVALSHA finds it.
      return this.commands.send("EVAL", [script.source, ...params]);
    }
  }

  /** Subscribes now if up, and again after every reconnect; one listener per channel. */
  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    this.channels.set(channel, listener);
    const client = this.subscriber.raw;
    if (client) await client.subscribe(channel, listener).catch((error: unknown) => Promise.reject(asStoreError(error)));
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    await this.subscriber.raw?.unsubscribe(channel).catch(() => undefined);
  }

  close(): void {
    this.commands.close();
    this.subscriber.close();
  }

  private async subscribeAll(client: RedisClient): Promise<void> {
    for (const [channel, listener] of this.channels) await client.subscribe(channel, listener);
  }

  private report(reason: string | undefined): void {
    const state = this.state;
    if (state === this.reported) return;
    this.reported = state;
    const change: StateChange = state === "up" ? { state } : { state, reason: reason ?? "a connection to Redis is down" };
    for (const listener of this.stateListeners) listener(change);
    if (state !== "up") return;
    if (this.wasUp) for (const listener of this.reconnectedListeners) listener();
    this.wasUp = true;
  }
}

/** An error Redis answered (a script error, NOSCRIPT, a wrong type), as opposed to Redis being away. */
export class RedisReplyError extends Error {}

function asStoreError(error: unknown): Error {
  if (error instanceof ChatError) return error;
  const code = (error as { code?: string }).code ?? "";
  // Bun names connection trouble ERR_REDIS_CONNECTION_CLOSED and the like; a reply error is the server's answer.
  if (code.startsWith("ERR_REDIS_CONNECTION") || code === "ERR_REDIS_TIMEOUT") return unavailable(`Redis is unreachable (${(error as Error).message})`);
  return new RedisReplyError((error as Error).message);
}

export function unavailable(message: string): ChatError {
  return new ChatError("store_unavailable", message);
}
