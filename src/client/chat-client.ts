// A logged-in chat session that outlives connections: it logs in (password or key, or the resume
// token on reconnects), keeps the online list and the rooms joined, sends through a PacedOutbox
// so nothing is refused, keeps each connection alive with a Keepalive, and reconnects with
// backoff, to the next of its servers (the nodes of a cluster) when there are several. Its own
// messages are shown when the server acknowledges them (PendingAcks, which also sends again what
// a lost connection left unanswered); after a reconnect the login's `since` marks and CatchUp
// show exactly the messages missed, whichever node answers.

import { ChatError, isErrorCode } from "../protocol/errors.ts";
import type { ClientFrame, ErrorFrame, HistoryFrame, LoggedMessage, ServerFrame, ServerLimitsInfo } from "../protocol/frames.ts";
import { Backoff } from "./backoff.ts";
import { CatchUp, type HistoryCause, type Shown } from "./catch-up.ts";
import { ClientConnection, ConnectError, type ClientIdentity } from "./connection.ts";
import { after, failureText, firstAnswering, notWorthRetrying, sameEverywhere, serverLabel, tryingNext, type ServerEndpoint } from "./failover.ts";
import { JoinedRooms, type RoomsView } from "./joined-rooms.ts";
import { Keepalive, pingIntervalFor, PONG_TIMEOUT_MS } from "./keepalive.ts";
import { PacedOutbox } from "./paced-outbox.ts";
import { PendingAcks, type AckFrame, type MessageFrame } from "./pending-acks.ts";

/** How long the server gets to answer a login or resume. */
export const LOGIN_TIMEOUT_MS = 30_000;
/** After saying `quit`, how long to wait for the server to close before giving up on it. */
export const QUIT_GRACE_MS = 2_000;
/**
 * The id of the ping sent after every login: the server answers frames in order, so its pong
 * comes after the last dm the login delivers.
 */
const CAUGHT_UP_PING_ID = "caught-up";

export type ChatEvent =
  /**
   * A frame for the user: everything the server sends but welcome, registered, pong and bye,
   * and those that come as the events below. Room messages and dms come once each, in order.
   * The session's rooms have taken the frame in by the time listeners see it.
   */
  | { kind: "frame"; frame: ServerFrame }
  /** Messages not shown before: at login or join ("recent", "missed") or asked for ("older"). */
  | { kind: "history"; frame: HistoryFrame; cause: HistoryCause }
  /** One of our messages is stored; `alreadyShown` when a history frame brought it first. */
  | { kind: "sent"; ack: AckFrame; message: LoggedMessage; alreadyShown: boolean }
  /** The server refused one of our messages. */
  | { kind: "refused"; error: ErrorFrame; message: MessageFrame }
  /** Connection news for a status line. */
  | { kind: "status"; text: string };

export interface ChatClientOptions {
  /**
   * Nodes of one cluster, in order of preference: the login takes the first that answers, and a
   * reconnect starts with the one after the server it lost.
   */
  servers: readonly ServerEndpoint[];
  /** Name to verify and send as SNI on every server; defaults to each one's host. */
  serverName?: string;
  user: string;
  /**
   * Kept in memory only, for logging in again when a resume token is refused. Without one the
   * client logs in by key: the identity's certificate.
   */
  password?: string;
  identity?: ClientIdentity;
  /** Present the identity in TLS 1.2 too (see ConnectOptions). */
  identityOverTls12?: boolean;
  /** Reconnect after a lost connection instead of ending the session. */
  reconnect: boolean;
  /** A fixed ping interval instead of one derived from the idle timeout the server advertises. */
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  backoff?: Backoff;
}

type Listener = (event: ChatEvent) => void;

export class ChatClient {
  user: string;
  private connection: ClientConnection | undefined;
  private resumeToken: string | undefined;
  private listeners: Listener[] = [];
  private onlineUsers: string[] = [];
  private readonly joinedRooms = new JoinedRooms();
  private readonly outbox = new PacedOutbox();
  private readonly pending = new PendingAcks();
  private readonly catchUp = new CatchUp({
    show: (shown) => this.showCaughtUp(shown),
    query: (frame) => {
      if (this.connection?.isOpen) this.connection.send(frame);
    },
  });
  private keepalive: Keepalive | undefined;
  /** As the server last advertised them; kept while reconnecting. */
  private limits: ServerLimitsInfo | undefined;
  /** "stopping": quit is saying goodbye; nothing more is sent, and a lost connection stays lost. */
  private lifecycle: "running" | "stopping" | "finished" = "running";
  private readonly backoff: Backoff;
  /** Those still worth trying: a server found untrustworthy is left out for the rest of the session. */
  private servers: readonly ServerEndpoint[];
  /** The server connected to, or the last one that was. */
  private current: ServerEndpoint;
  private password: string | undefined;
  private pendingPassword: string | undefined;
  private lastDmSender: string | undefined;
  private resolveFinished!: (error: Error | undefined) => void;
  /** Resolves when the session is over, with the reason when that was not the user's choice. */
  readonly finished = new Promise<Error | undefined>((resolve) => (this.resolveFinished = resolve));

  private constructor(private readonly options: ChatClientOptions) {
    this.user = options.user;
    this.password = options.password;
    this.backoff = options.backoff ?? new Backoff();
    this.servers = options.servers;
    this.current = options.servers[0]!;
  }

  /**
   * Connects and logs in to the first server that lets it, saying (as status) where it goes on
   * after a failure; rejects with a ConnectError or a ChatError (auth_failed...).
   */
  static async start(options: ChatClientOptions, listener?: Listener): Promise<ChatClient> {
    const client = new ChatClient(options);
    if (listener) client.listeners.push(listener);
    await firstAnswering(
      client.servers,
      (server) => client.connectOnce(server),
      (server, error, next) => {
        if (next) client.emit({ kind: "status", text: tryingNext(server, error, next) });
      },
    );
    return client;
  }

  on(listener: Listener): void {
    this.listeners.push(listener);
  }

  online(): readonly string[] {
    return this.onlineUsers;
  }

  /** The rooms this user is in: from `welcome` at every login, then joined and parted. */
  get rooms(): RoomsView {
    return this.joinedRooms;
  }

  /** Who sent the most recent direct message we received, for /reply. */
  get lastDmFrom(): string | undefined {
    return this.lastDmSender;
  }

  get isFinished(): boolean {
    return this.lifecycle === "finished";
  }

  /** Logged in on an open connection (a connection is adopted only once logged in). */
  get connected(): boolean {
    return this.connection?.isOpen === true;
  }

  /** The longest text the server accepts, as it advertised in `welcome`. */
  get maxTextChars(): number {
    return this.limits?.maxTextChars ?? 0;
  }

  /** The server connected to (or last connected to), as "host:port". */
  get server(): string {
    return serverLabel(this.current);
  }

  get tlsSummary(): string {
    const connection = this.connection;
    return connection ? `${connection.tlsVersion} ${connection.cipher}` : "not connected";
  }

  /**
   * Queues a frame. Room messages and dms get a ref and wait their turn under the server's rate;
   * a frame queued while disconnected goes out after the next login, and a message the server
   * has not answered when a connection is lost goes out again on the next.
   */
  send(frame: ClientFrame): void {
    if (this.lifecycle !== "running") throw new ChatError("shutting_down", "The session has ended");
    this.outbox.push(frame.type === "say" || frame.type === "dm" ? this.pending.track(frame) : frame);
  }

  /**
   * Asks for the messages of `room` before the oldest shown, to come as a `history` event of
   * cause "older"; false when that cannot be asked now (disconnected, the room still catching
   * up or not joined, or its previous page still on its way).
   */
  olderHistory(room: string): boolean {
    return this.connected && this.catchUp.older(room);
  }

  /** Resolves when every queued frame has been handed to the connection's socket. */
  async drained(): Promise<void> {
    await this.outbox.emptied();
    await this.connection?.flushed();
  }

  /**
   * Asks the server to change the password (without `oldPassword`: to set a key-only account's
   * first one); a session logging in by password uses the new one for later logins once confirmed.
   */
  changePassword(oldPassword: string | undefined, newPassword: string): void {
    if (this.password !== undefined) this.pendingPassword = newPassword;
    this.send(oldPassword === undefined ? { type: "passwd", new: newPassword } : { type: "passwd", old: oldPassword, new: newPassword });
  }

  /**
   * Sends what is queued, waits for the server to answer every message, says `quit`, and waits
   * for the server to close.
   */
  async quit(): Promise<void> {
    if (this.lifecycle === "finished") return;
    const connection = this.connection;
    // While disconnected nothing can be delivered: quitting then drops what is queued.
    if (connection?.isOpen) {
      const closed = new Promise<void>((resolve) => connection.onClose(() => resolve()));
      await Promise.race([this.drained().then(() => this.pending.answered()), closed]);
      this.lifecycle = "stopping";
      if (connection.isOpen) {
        connection.send({ type: "quit" });
        await Promise.race([closed, Bun.sleep(QUIT_GRACE_MS)]);
      }
    }
    this.finish(undefined);
  }

  /** Ends at once, dropping anything queued. */
  async stop(): Promise<void> {
    const connection = this.connection;
    this.finish(undefined);
    await connection?.close();
  }

  private emit(event: ChatEvent): void {
    for (const listener of this.listeners.slice()) listener(event);
  }

  /** `loggedIn` runs once the login succeeded, before anything the server sent after `welcome`. */
  private async connectOnce(server: ServerEndpoint, loggedIn?: () => void): Promise<void> {
    const connection = await ClientConnection.connect({
      ...server,
      serverName: this.options.serverName,
      identity: this.options.identity,
      identityOverTls12: this.options.identityOverTls12,
    });
    // The server sends `history` in the same write as `welcome`: listen from the start and
    // replay what followed the welcome once the session is adopted.
    const backlog: ServerFrame[] = [];
    let adopted = false;
    connection.onFrame((frame) => (adopted ? this.onFrame(frame) : backlog.push(frame)));
    try {
      const welcome = await this.authenticate(connection);
      // Stopped while this login was on its way: the connection must not outlive the session.
      if (this.lifecycle === "finished") throw new ChatError("shutting_down", "The session has ended");
      this.adopt(connection, server, welcome);
      adopted = true;
      loggedIn?.();
      for (const frame of backlog.slice(backlog.indexOf(welcome) + 1)) this.onFrame(frame);
    } catch (error) {
      await connection.close();
      throw error;
    }
  }

  private async authenticate(connection: ClientConnection): Promise<Extract<ServerFrame, { type: "welcome" }>> {
    const since = this.catchUp.since();
    const marks = since === undefined ? {} : { since };
    if (this.resumeToken !== undefined) {
      const resumed = await this.exchange(connection, { type: "resume", user: this.user, token: this.resumeToken, ...marks });
      if (resumed.type === "welcome") return resumed;
      this.resumeToken = undefined; // Expired or revoked: the password or the key still works.
    }
    const login: ClientFrame =
      this.password === undefined
        ? { type: "login", user: this.user, key: true, ...marks }
        : { type: "login", user: this.user, password: this.password, ...marks };
    const answer = await this.exchange(connection, login);
    if (answer.type === "welcome") return answer;
    throw new ChatError(isErrorCode(answer.code) ? answer.code : "internal_error", answer.message);
  }

  private async exchange(
    connection: ClientConnection,
    frame: ClientFrame,
  ): Promise<Extract<ServerFrame, { type: "welcome" | "error" }>> {
    const answer = connection.waitFor(
      (reply) => (reply.type === "welcome" || reply.type === "error" ? reply : undefined),
      LOGIN_TIMEOUT_MS,
      "answer to the login",
    );
    connection.send(frame);
    return answer;
  }

  private adopt(connection: ClientConnection, server: ServerEndpoint, welcome: Extract<ServerFrame, { type: "welcome" }>): void {
    this.connection = connection;
    this.current = server;
    this.user = welcome.user;
    this.resumeToken = welcome.token;
    this.onlineUsers = welcome.online.slice();
    this.joinedRooms.reset(welcome.rooms);
    this.limits = welcome.limits;
    this.backoff.reset();
    this.catchUp.loggedIn(welcome.rooms);
    connection.onClose((error) => this.onConnectionLost(connection, error));
    // Before anything queued: the pong then also comes before the acks of messages sent again.
    connection.send({ type: "ping", id: CAUGHT_UP_PING_ID });
    this.keepalive = new Keepalive({
      intervalMs: this.options.pingIntervalMs ?? pingIntervalFor(welcome.limits.idleTimeoutMs),
      timeoutMs: this.options.pongTimeoutMs ?? PONG_TIMEOUT_MS,
      ping: () => connection.send({ type: "ping" }),
      // The server has gone silent: treat the connection as lost.
      onSilence: () => void connection.close(),
    });
    this.keepalive.start();
    this.outbox.start((frame) => {
      connection.send(frame);
      this.pending.handedOver(frame);
    }, welcome.limits);
  }

  private onFrame(frame: ServerFrame): void {
    this.keepalive?.heard();
    this.joinedRooms.apply(frame, this.user);
    switch (frame.type) {
      case "history":
        return this.catchUp.history(frame);
      case "msg":
        return this.catchUp.message(frame);
      case "dm":
        if (frame.from !== this.user) this.lastDmSender = frame.from;
        return this.catchUp.message(frame);
      case "ack":
      case "error":
        return this.onAnswer(frame);
      case "joined":
        this.catchUp.joined(frame.room);
        break;
      case "parted":
        this.catchUp.parted(frame.room);
        break;
      case "online":
        if (!this.onlineUsers.includes(frame.user)) this.onlineUsers.push(frame.user);
        break;
      case "offline":
        this.onlineUsers = this.onlineUsers.filter((user) => user !== frame.user);
        break;
      case "who":
        if (frame.room === undefined) this.onlineUsers = frame.users.slice();
        break;
      case "key_removed":
        // The server revoked every token of the account, ours included.
        this.resumeToken = frame.token;
        break;
      case "password_changed":
        this.resumeToken = frame.token;
        if (this.pendingPassword !== undefined) this.password = this.pendingPassword;
        this.pendingPassword = undefined;
        break;
      case "pong":
        if (frame.id === CAUGHT_UP_PING_ID) this.catchUp.dmsCaughtUp();
        return;
      case "bye":
      case "welcome":
      case "registered":
        return;
    }
    this.emit({ kind: "frame", frame });
  }

  private showCaughtUp(shown: Shown): void {
    if (shown.kind === "history") this.emit({ kind: "history", frame: shown.frame, cause: shown.cause });
    else this.emit({ kind: "frame", frame: shown.message });
  }

  /** An ack or an error: the answer to one of our messages, or (with no ref of ours) a frame for the user. */
  private onAnswer(frame: AckFrame | ErrorFrame): void {
    const due = this.pending.answer(frame, this.user);
    if (due === undefined) return this.emit({ kind: "frame", frame });
    for (const answer of due) {
      if (answer.kind === "refused") this.emit({ kind: "refused", error: answer.error, message: answer.sent });
      else this.emit({ kind: "sent", ack: answer.ack, message: answer.message, alreadyShown: !this.catchUp.acknowledged(answer.message) });
    }
  }

  private onConnectionLost(connection: ClientConnection, error: Error | undefined): void {
    if (connection !== this.connection) return;
    this.keepalive?.stop();
    this.outbox.pause();
    this.outbox.putBack(this.pending.takeLost());
    if (this.lifecycle !== "running") {
      this.finish(undefined);
      return;
    }
    if (!this.options.reconnect) {
      this.finish(new ConnectError("connect_failed", `Connection to ${this.server} lost${error ? `: ${error.message}` : ""}`));
      return;
    }
    this.emit({ kind: "status", text: `Connection lost${error ? ` (${error.message})` : ""}` });
    void this.reconnectLoop();
  }

  /**
   * Rounds of attempts, each trying every server once, back to back, starting after the one
   * lost. A delay from the backoff comes before each round, the first too: its jitter spreads
   * out the clients a failed node dropped together, before they reach the next node.
   */
  private async reconnectLoop(): Promise<void> {
    while (this.lifecycle === "running") {
      const delay = this.backoff.next();
      this.emit({ kind: "status", text: `Reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${this.backoff.attempts})` });
      await Bun.sleep(delay);
      if (this.lifecycle !== "running") return;
      try {
        await firstAnswering(
          after(this.servers, this.current),
          (server) => this.reconnectTo(server),
          (server, error) => this.reconnectFailed(server, error),
        );
        return;
      } catch (error) {
        // A refused login will not fix itself by retrying, and without a server left nothing can.
        if (sameEverywhere(error) || this.servers.length === 0) {
          this.finish(error as Error);
          return;
        }
      }
    }
  }

  private async reconnectTo(server: ServerEndpoint): Promise<void> {
    if (this.lifecycle !== "running") throw new ChatError("shutting_down", "The session has ended");
    // Said before the catch-up is shown, so the missed messages come under it.
    await this.connectOnce(server, () => this.emit({ kind: "status", text: `Reconnected to ${serverLabel(server)}` }));
  }

  private reconnectFailed(server: ServerEndpoint, error: Error): void {
    if (this.lifecycle !== "running") return;
    if (!notWorthRetrying(error)) {
      this.emit({ kind: "status", text: `Reconnect failed: ${failureText(server, error)}` });
      return;
    }
    // An untrusted server stays untrusted: asking it again would only repeat the refusal.
    this.servers = this.servers.filter((other) => other !== server);
    // With none left the session ends with this error, which is then said once.
    if (this.servers.length > 0) this.emit({ kind: "status", text: `Not trying ${serverLabel(server)} again: ${failureText(server, error)}` });
  }

  private finish(error: Error | undefined): void {
    if (this.lifecycle === "finished") return;
    this.lifecycle = "finished";
    this.keepalive?.stop();
    this.outbox.close();
    this.pending.clear();
    this.resolveFinished(error);
  }
}
