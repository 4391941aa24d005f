// One connection's protocol state: anonymous until it logs in, then in all of its user's rooms.
// Frames are handled in order, one at a time; while one is being worked on asynchronously (a
// password hash, a stored room change) the following frames wait (bounded), so a client may
// pipeline `login` and its first messages. The connection's key (the fingerprint of the client
// certificate its TLS handshake proved) is all the session knows of TLS.

import { ChatError, type ErrorCode } from "../protocol/errors.ts";
import {
  decodeLine,
  encodeFrameBytes,
  parseClientFrame,
  type ClientFrame,
  type ClientFrameType,
  type KeyInfo,
  MAX_REASON_CHARS,
  type ModerationRequest,
  type ServerFrame,
  type Since,
} from "../protocol/frames.ts";
import { checkText } from "../protocol/validate.ts";
import type { Entered, Hub } from "./hub.ts";
import { DEFAULT_ROOMS_PAGE, FRAME_BURST, FRAME_RATE_PER_SEC, MAX_PENDING_FRAMES, MAX_TEXT_CHARS, type ServerLimits } from "./limits.ts";
import type { Peer } from "./peer.ts";
import { TokenBucket } from "../protocol/rate.ts";

export interface LoginResult {
  user: string;
  token: string;
}

/** What a new account is protected by: a password, a key (certificate fingerprint), or both. */
export interface NewCredentials {
  password?: string;
  key?: string;
}

/** Account operations; every failure is a ChatError whose code goes on the wire. */
export interface Accounts {
  /** `signal` aborts when the connection goes, so queued password hashing can be skipped. */
  register(user: string, credentials: NewCredentials, signal: AbortSignal): Promise<string>;
  login(user: string, password: string, address: string, signal: AbortSignal): Promise<LoginResult>;
  /** `fingerprint` is the connection's key, undefined when it presented none. */
  loginWithKey(user: string, fingerprint: string | undefined, address: string): Promise<LoginResult>;
  resume(user: string, token: string): Promise<LoginResult>;
  /** Resolves with a new resume token; every older one is revoked. */
  changePassword(user: string, oldPassword: string | undefined, newPassword: string, address: string, signal: AbortSignal): Promise<string>;
  addKey(user: string, fingerprint: string): Promise<string>;
  keys(user: string): Promise<KeyInfo[]>;
  /** Resolves with a new resume token; every older one is revoked. */
  removeKey(user: string, fingerprint: string): Promise<string>;
}

export type LoginMethod = "password" | "token" | "key";

/** What a session reports for the server's log. */
export interface SessionEvents {
  authenticated(session: Session, method: LoginMethod): void;
  registered(session: Session, user: string): void;
  refused(session: Session, frame: ClientFrameType, code: ErrorCode): void;
  /** Handling a frame threw something that is not a ChatError. */
  crashed(session: Session, frame: ClientFrameType | undefined, error: unknown): void;
}

export interface SessionDeps {
  hub: Hub;
  accounts: Accounts;
  /** Resolves when a connection that has logged in may enter the chat: bursts are spread over turns. */
  enterTurn: () => Promise<void>;
  limits: ServerLimits;
  events: SessionEvents;
  allowRegistration: boolean;
  now: () => number;
}

type Handler<T extends ClientFrameType> = (session: Session, frame: Extract<ClientFrame, { type: T }>) => void | Promise<void>;

const ALLOWED_BEFORE_LOGIN: ReadonlySet<ClientFrameType> = new Set(["register", "login", "resume", "ping", "quit"]);
/** Refusals after which the connection is closed, not just answered. */
const CLOSING_CODES: ReadonlySet<ErrorCode> = new Set(["banned"]);

export class Session {
  user: string | undefined;
  /** SHA-256 fingerprint of the certificate the client proved it holds; set once TLS is up. */
  clientKey: string | undefined;
  lastFrameAt: number;
  readonly openedAt: number;
  private readonly messageBucket: TokenBucket;
  private readonly frameBucket: TokenBucket;
  private rateViolations = 0;
  private loginMethod: LoginMethod | undefined;
  private busy = false;
  private pending: Uint8Array[] = [];
  private closed = false;
  private readonly gone = new AbortController();

  constructor(
    readonly peer: Peer,
    readonly address: string,
    private readonly deps: SessionDeps,
  ) {
    this.openedAt = this.lastFrameAt = deps.now();
    const limits = deps.limits;
    this.messageBucket = new TokenBucket(limits.messageRatePerSec, limits.messageBurst, this.openedAt);
    // Never stricter than the message allowance, or raising that would not help.
    const frameRate = Math.max(FRAME_RATE_PER_SEC, limits.messageRatePerSec * 2);
    this.frameBucket = new TokenBucket(frameRate, Math.max(FRAME_BURST, limits.messageBurst * 2), this.openedAt);
  }

  get authenticated(): boolean {
    return this.user !== undefined;
  }

  /** Handles one received line (without its newline). */
  receive(line: Uint8Array): void {
    if (this.closed) return;
    this.lastFrameAt = this.deps.now();
    if (this.busy) {
      if (this.pending.length >= MAX_PENDING_FRAMES) {
        this.close("rate_limited", "Too many frames sent while an earlier one was still being handled");
        return;
      }
      // The caller's buffer may be reused once we return.
      this.pending.push(line.slice());
      return;
    }
    this.handle(line);
  }

  /** The connection is gone: leave the user's rooms and drop anything still waiting. */
  connectionClosed(): void {
    this.closed = true;
    this.gone.abort();
    this.pending = [];
    if (this.user !== undefined) this.deps.hub.leave(this.user, this.peer);
  }

  private reply(frame: ServerFrame): void {
    this.peer.send(encodeFrameBytes(frame));
  }

  private replyError(code: ErrorCode, message: string, ref?: string): void {
    this.reply(ref === undefined ? { type: "error", code, message } : { type: "error", code, message, ref });
  }

  private close(code: ErrorCode, message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.peer.close(code, message);
  }

  private handle(line: Uint8Array): void {
    let frame: ClientFrame;
    try {
      const now = this.deps.now();
      // Every frame costs a little (a parse, often a reply); room messages and dms also cost
      // everyone else's attention, so they have their own, stricter allowance.
      if (!this.frameBucket.take(now)) return this.rateLimited();
      frame = parseClientFrame(decodeLine(line));
      if ((frame.type === "say" || frame.type === "dm") && this.authenticated && !this.messageBucket.take(now)) {
        return this.rateLimited(frame.ref);
      }
      this.rateViolations = 0;
    } catch (error) {
      this.fail(error, undefined);
      return;
    }
    if (!this.authenticated && !ALLOWED_BEFORE_LOGIN.has(frame.type)) {
      this.fail(new ChatError("not_authenticated", "Log in first"), frame);
      return;
    }
    let outcome: void | Promise<void>;
    try {
      outcome = dispatch(this, frame);
    } catch (error) {
      this.fail(error, frame);
      return;
    }
    if (outcome instanceof Promise) {
      this.busy = true;
      outcome
        .catch((error: unknown) => this.fail(error, frame))
        .finally(() => {
          this.busy = false;
          this.drainPending();
        });
    }
  }

  /** `ref`: the refused message's, when it parsed far enough to have one. */
  private rateLimited(ref?: string): void {
    this.rateViolations += 1;
    if (this.rateViolations >= this.deps.limits.maxRateViolations) {
      this.close("rate_limited", "Sending too fast; disconnected");
    } else {
      this.replyError("rate_limited", "Sending too fast; slow down", ref);
    }
  }

  private drainPending(): void {
    while (!this.busy && !this.closed && this.pending.length > 0) {
      this.handle(this.pending.shift()!);
    }
  }

  /** Refuses a frame; the error carries the frame's `ref`, so the client knows which one. */
  private fail(error: unknown, frame: ClientFrame | undefined): void {
    if (this.closed) return;
    const ref = frame !== undefined && "ref" in frame ? frame.ref : undefined;
    if (!(error instanceof ChatError)) {
      // A bug or a runtime failure: one frame fails, the server and the connection go on.
      this.deps.events.crashed(this, frame?.type, error);
      this.replyError("internal_error", "The server failed to handle that frame", ref);
      return;
    }
    if (frame !== undefined) this.deps.events.refused(this, frame.type, error.code);
    if (CLOSING_CODES.has(error.code)) this.close(error.code, error.message);
    else this.replyError(error.code, error.message, ref);
  }

  /**
   * Lets a message be stored while the next frames are handled (a sender's burst is committed
   * together); the hub keeps the order, and a refusal still names the frame.
   */
  private inBackground(work: Promise<void>, frame: ClientFrame): void {
    work.catch((error: unknown) => this.fail(error, frame));
  }

  // Handlers, one per client frame type; the mapped type makes the table exhaustive.

  static readonly handlers: { [T in ClientFrameType]: Handler<T> } = {
    register: async (session, frame) => {
      if (!session.deps.allowRegistration) {
        throw new ChatError("registration_closed", "This server does not accept registrations");
      }
      const key = frame.key ? session.requireClientKey() : undefined;
      const user = await session.deps.accounts.register(frame.user, { password: frame.password, key }, session.gone.signal);
      session.deps.events.registered(session, user);
      session.reply({ type: "registered", user });
    },
    login: async (session, frame) => {
      session.requireAnonymous();
      const accounts = session.deps.accounts;
      if ("key" in frame) {
        await session.enter(await accounts.loginWithKey(frame.user, session.clientKey, session.address), "key", frame.since);
        return;
      }
      await session.enter(await accounts.login(frame.user, frame.password, session.address, session.gone.signal), "password", frame.since);
    },
    resume: async (session, frame) => {
      session.requireAnonymous();
      await session.enter(await session.deps.accounts.resume(frame.user, frame.token), "token", frame.since);
    },
    say: (session, frame) => {
      const text = checkText(frame.text, MAX_TEXT_CHARS);
      session.inBackground(session.deps.hub.say(session.user!, session.peer, frame.room, text, frame.ref), frame);
    },
    dm: (session, frame) => {
      const text = checkText(frame.text, MAX_TEXT_CHARS);
      session.inBackground(session.deps.hub.dm(session.user!, session.peer, frame.to, text, frame.ref), frame);
    },
    history: async (session, frame) => {
      session.reply(await session.deps.hub.history(session.user!, frame));
    },
    delete: (session, frame) => session.deps.hub.deleteMessage(session.user!, frame.id),
    search: async (session, frame) => {
      session.reply(await session.deps.hub.search(session.user!, frame.query, frame.room, frame.limit));
    },
    join: (session, frame) => session.deps.hub.join(session.user!, session.peer, frame.room),
    part: (session, frame) => session.deps.hub.part(session.user!, frame.room),
    rooms: (session, frame) => {
      session.reply(session.deps.hub.roomList(session.user!, frame.after, frame.limit ?? DEFAULT_ROOMS_PAGE));
    },
    who: (session, frame) => {
      session.reply(session.deps.hub.who(session.user!, frame.room));
    },
    topic: (session, frame) => session.deps.hub.setTopic(session.user!, frame.room, frame.topic),
    mode: (session, frame) => session.deps.hub.setInviteOnly(session.user!, frame.room, frame.invite_only),
    kick: (session, frame) => session.moderate(frame),
    ban: (session, frame) => session.moderate(frame),
    unban: (session, frame) => session.moderate(frame),
    mute: (session, frame) => session.moderate(frame),
    unmute: (session, frame) => session.moderate(frame),
    op: (session, frame) => session.moderate(frame),
    deop: (session, frame) => session.moderate(frame),
    invite: (session, frame) => session.moderate(frame),
    ping: (session, frame) => {
      session.reply(frame.id === undefined ? { type: "pong" } : { type: "pong", id: frame.id });
    },
    passwd: async (session, frame) => {
      // Whoever holds the account's key may give it a first password; a stolen resume token may not.
      if (frame.old === undefined && session.loginMethod !== "key") {
        throw new ChatError("not_allowed", "Send the old password; only a session logged in by key may set a first one without it");
      }
      const token = await session.deps.accounts.changePassword(session.user!, frame.old, frame.new, session.address, session.gone.signal);
      session.reply({ type: "password_changed", token });
    },
    key_add: async (session) => {
      const fingerprint = await session.deps.accounts.addKey(session.user!, session.requireClientKey());
      session.reply({ type: "key_added", fingerprint });
    },
    keys: async (session) => {
      session.reply({ type: "keys", keys: await session.deps.accounts.keys(session.user!) });
    },
    key_remove: async (session, frame) => {
      const token = await session.deps.accounts.removeKey(session.user!, frame.fingerprint);
      session.reply({ type: "key_removed", fingerprint: frame.fingerprint, token });
    },
    quit: (session) => {
      session.reply({ type: "bye" });
      session.closed = true;
      session.peer.close();
    },
  };

  private moderate(request: ModerationRequest): Promise<void> {
    // The reason is shown to the whole room: the same rules as a message text.
    if (request.reason !== undefined) checkText(request.reason, MAX_REASON_CHARS);
    return this.deps.hub.moderate(this.user!, request);
  }

  private requireAnonymous(): void {
    if (this.authenticated) throw new ChatError("already_authenticated", `Already logged in as ${this.user}`);
  }

  private requireClientKey(): string {
    if (this.clientKey === undefined) throw new ChatError("no_such_key", "This connection presented no usable client certificate");
    return this.clientKey;
  }

  /**
   * Puts the connection in all of the user's rooms, then sends `welcome`, one `history` frame per
   * room (what followed the client's `since` marks, or the recent messages) and the dms it
   * missed, each once the socket has room for it. What is relayed live meanwhile is not repeated.
   */
  private async enter(result: LoginResult, method: LoginMethod, since: Since | undefined): Promise<void> {
    if (this.closed) return;
    await this.deps.enterTurn();
    if (this.closed) return;
    const hub = this.deps.hub;
    const entered = await hub.enter(result.user, this.peer);
    if (this.closed) {
      hub.leave(result.user, this.peer);
      return;
    }
    this.user = result.user;
    this.loginMethod = method;
    const { messageRatePerSec, messageBurst, idleTimeoutMs } = this.deps.limits;
    this.reply({
      type: "welcome",
      user: result.user,
      online: entered.online,
      rooms: entered.rooms.map((room) => room.name),
      token: result.token,
      limits: { messageRatePerSec, messageBurst, maxTextChars: MAX_TEXT_CHARS, idleTimeoutMs },
    });
    this.deps.events.authenticated(this, method);
    try {
      await this.sendMissed(entered, result.user, since);
    } catch (error) {
      if (!(error instanceof ChatError)) throw error;
      // The client counts itself caught up once logged in and moves its marks on with what comes
      // live; left open, this connection would hide the gap. A reconnect asks again from the marks.
      this.close(error.code, `What you missed could not be sent (${error.message}); reconnect to get it`);
    }
  }

  private async sendMissed(entered: Entered, user: string, since: Since | undefined): Promise<void> {
    const hub = this.deps.hub;
    for (const room of entered.rooms) {
      await this.peer.writable();
      if (this.closed) return;
      this.reply(await hub.catchUp(room, since, entered.historyUpTo.get(room.key)!));
    }
    for await (const dms of hub.missedDms(user, since, entered.dmsUpTo)) {
      for (const dm of dms) {
        await this.peer.writable();
        if (this.closed) return;
        this.reply(dm);
      }
    }
  }
}



function dispatch(session: Session, frame: ClientFrame): void | Promise<void> {
  // The mapped type guarantees a handler per frame type; TypeScript cannot correlate the two
  // unions through the lookup, hence the cast.
  const handler = Session.handlers[frame.type] as Handler<typeof frame.type>;
  return handler(session, frame as never);
}
