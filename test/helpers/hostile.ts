// Tools for the hostile-client suite (test/security/): a seeded PRNG, a raw client that can be
// TLS or plain TCP, bind a chosen loopback source address and misbehave at byte level, and the
// checks every attack test ends with — bystanders got every message, the server still accepts
// newcomers, the account store is intact.

import { expect } from "bun:test";
import type { Socket } from "bun";
import { readFileSync } from "node:fs";
import { STORE_VERSION } from "../../src/auth/store-format.ts";
import { FrameReader, TestClient, withTimeout, type Frame } from "./client.ts";
import type { TestServer } from "./server.ts";
import { openChatDatabase } from "../../src/store/sqlite/database.ts";
import { SqliteMessageLog } from "../../src/store/sqlite/message-log.ts";
import { SqliteRooms } from "../../src/store/sqlite/rooms.ts";
import { LOBBY } from "../../src/protocol/validate.ts";

// ---------------------------------------------------------------------------------------------
// Seeded randomness: every "random" input in the suite is reproducible from its seed.

/** mulberry32: a tiny 32-bit PRNG, good enough for fuzzing and fully deterministic. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  private readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// A raw client.

export interface HostileOptions {
  port: number;
  host?: string;
  /** Source address, e.g. "127.0.0.2": on Linux all of 127/8 is loopback, so one machine is many IPs. */
  localAddress?: string;
  /** false: plain TCP, no TLS at all. Otherwise extra Bun TLS options (maxVersion, ...). */
  tls?: false | Record<string, unknown>;
  /** Trust anchor; with it the server certificate is verified for "localhost". */
  ca?: string;
}

const encoder = new TextEncoder();
const DEFAULT_TIMEOUT_MS = 5_000;

/**
 * A client that does what a test tells it, byte by byte: it keeps its own write queue (Bun drops
 * what `write` does not take), records every received byte and frame, and reports the handshake
 * outcome and the close instead of throwing.
 */
export class HostileClient implements AsyncDisposable {
  readonly frames: Frame[] = [];
  readonly chunks: Uint8Array[] = [];
  receivedBytes = 0;
  isClosed = false;
  handshakeOk: boolean | undefined;
  handshakeError: string | undefined;
  /** performance.now() at TCP connect, and at close. */
  openedAt = 0;
  closedAt = 0;
  readonly closed: Promise<void>;
  readonly handshake: Promise<boolean>;
  private socket!: Socket<undefined>;
  private resolveClosed!: () => void;
  private resolveHandshake!: (ok: boolean) => void;
  private outbound: Uint8Array[] = [];
  private readonly reader = new FrameReader();
  private readonly listeners = new Set<() => void>();
  private readonly tls: boolean;

  private constructor(tls: boolean) {
    this.tls = tls;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.handshake = new Promise((resolve) => (this.resolveHandshake = resolve));
    if (!tls) this.handshakeOk = true;
  }

  /** Opens the TCP connection; for TLS, `handshake` settles later (await `ready()` to wait). */
  static async open(options: HostileOptions): Promise<HostileClient> {
    const useTls = options.tls !== false;
    const client = new HostileClient(useTls);
    const tls = useTls
      ? {
          ca: options.ca,
          serverName: "localhost",
          rejectUnauthorized: options.ca !== undefined,
          ...(options.tls as Record<string, unknown> | undefined),
        }
      : undefined;
    const connectOptions = {
      hostname: options.host ?? "127.0.0.1",
      port: options.port,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      ...(tls ? { tls } : {}),
      socket: {
        open() {
          client.openedAt = performance.now();
        },
        handshake(_socket: Socket<undefined>, success: boolean, error: Error | null) {
          client.handshakeOk = success;
          if (!success) client.handshakeError = String(error?.message ?? error);
          client.resolveHandshake(success);
          client.flushOutbound();
        },
        data(_socket: Socket<undefined>, chunk: Uint8Array) {
          client.onData(chunk);
        },
        drain() {
          client.flushOutbound();
        },
        close() {
          client.onClose();
        },
        error(_socket: Socket<undefined>, error: Error) {
          client.handshakeError ??= error.message;
        },
        connectError(_socket: Socket<undefined>, error: Error) {
          client.handshakeError ??= error.message;
          client.onClose();
        },
      },
    };
    client.socket = (await Bun.connect(connectOptions as unknown as Parameters<typeof Bun.connect>[0])) as Socket<undefined>;
    client.openedAt ||= performance.now();
    if (!useTls) client.resolveHandshake(true);
    return client;
  }

  /** Connects and waits for a successful TLS handshake (verified against `ca`). */
  static async connect(options: HostileOptions): Promise<HostileClient> {
    const client = await HostileClient.open(options);
    const ok = await withTimeout(Promise.race([client.handshake, client.closed.then(() => false)]), DEFAULT_TIMEOUT_MS, "TLS handshake");
    if (!ok) throw new Error(`TLS handshake failed: ${client.handshakeError ?? "closed"}`);
    return client;
  }

  get tlsVersion(): string | null {
    return this.socket.getTLSVersion?.() ?? null;
  }

  /** Queues bytes; they leave after the handshake, as fast as the socket takes them. */
  write(data: string | Uint8Array): void {
    if (this.isClosed) return;
    this.outbound.push(typeof data === "string" ? encoder.encode(data) : data);
    this.flushOutbound();
  }

  send(frame: object): void {
    this.write(JSON.stringify(frame) + "\n");
  }

  /** Bytes still waiting in this client's own queue. */
  get pendingBytes(): number {
    return this.outbound.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  /** Stops reading from the socket: the server sees TCP backpressure. */
  pause(): void {
    (this.socket as unknown as { pause(): void }).pause();
  }

  terminate(): void {
    if (!this.isClosed) this.socket.terminate();
  }

  end(): void {
    if (!this.isClosed) this.socket.end();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.terminate();
    await withTimeout(this.closed, 2_000, "close").catch(() => undefined);
  }

  /** All received bytes as one string (TLS alerts never reach here; only application data). */
  get text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }

  /** Resolves once the connection is closed; returns ms from TCP connect to close. */
  async waitClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<number> {
    await withTimeout(this.closed, timeoutMs, "the server to close the connection");
    return this.closedAt - this.openedAt;
  }

  /** Takes the first received frame matching `predicate`, waiting up to `timeoutMs` for it. */
  async waitFrame(predicate: (frame: Frame) => boolean, timeoutMs = DEFAULT_TIMEOUT_MS, what = "a frame"): Promise<Frame> {
    const deadline = performance.now() + timeoutMs;
    let checked = 0;
    for (;;) {
      for (; checked < this.frames.length; checked++) {
        const frame = this.frames[checked]!;
        if (predicate(frame)) {
          this.frames.splice(checked, 1);
          return frame;
        }
      }
      if (this.isClosed) throw new Error(`connection closed while waiting for ${what} (got ${this.describe()})`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (got ${this.describe()})`);
      await this.nextEvent(left);
    }
  }

  next(type: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    return this.waitFrame((frame) => frame.type === type, timeoutMs, type);
  }

  nextOf(types: string[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    return this.waitFrame((frame) => types.includes(frame.type), timeoutMs, types.join("|"));
  }

  async nextError(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    return (await this.next("error", timeoutMs)).code;
  }

  /** Ping round trip: everything the server sent before the pong has arrived. */
  async sync(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    const id = `sync-${Math.random()}`;
    this.send({ type: "ping", id });
    await this.waitFrame((frame) => frame.type === "pong" && frame.id === id, timeoutMs, "pong");
  }

  async register(user: string, password: string): Promise<Frame> {
    this.send({ type: "register", user, password });
    return this.nextOf(["registered", "error"]);
  }

  async login(user: string, password: string): Promise<Frame> {
    this.send({ type: "login", user, password });
    const reply = await this.nextOf(["welcome", "error"]);
    if (reply.type === "welcome") await this.next("history");
    return reply;
  }

  /** Waits for another event (data or close) or the timeout, whichever comes first. */
  private nextEvent(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.listeners.add(done);
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private describe(): string {
    return this.frames.map((frame) => (frame.type === "error" ? `error:${frame.code}` : frame.type)).join(",") || "nothing";
  }

  private flushOutbound(): void {
    if (this.isClosed) return;
    if (this.tls && this.handshakeOk !== true) return;
    while (this.outbound.length > 0) {
      const chunk = this.outbound[0]!;
      const written = this.socket.write(chunk);
      if (written < 0) {
        this.outbound = [];
        return;
      }
      if (written < chunk.length) {
        this.outbound[0] = chunk.subarray(written);
        return; // `drain` resumes.
      }
      this.outbound.shift();
    }
  }

  private onData(chunk: Uint8Array): void {
    this.chunks.push(chunk.slice());
    this.receivedBytes += chunk.length;
    this.frames.push(...this.reader.push(chunk));
    this.notify();
  }

  private onClose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closedAt = performance.now();
    this.outbound = [];
    this.resolveHandshake(false);
    this.resolveClosed();
    this.notify();
  }
}

/** A verified TLS connection to a test server, optionally from another loopback address. */
export function hostile(server: TestServer, options: Partial<HostileOptions> = {}): Promise<HostileClient> {
  return HostileClient.connect({ port: server.port, ca: server.certificate.certPem, ...options });
}

/** Polls server-side state that no frame announces (logs, counters). */
export async function until(condition: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// ---------------------------------------------------------------------------------------------
// The checks every attack test ends with.

let probeCounter = 0;

/** A newcomer can still register and log in (from `localAddress`, default 127.0.0.1). */
export async function expectServerUp(server: TestServer, localAddress?: string): Promise<string> {
  const user = `probe${++probeCounter}${Math.floor(Math.random() * 1e6)}`;
  const password = `probe-password-${user}`;
  await using client = await hostile(server, localAddress ? { localAddress } : {});
  const registered = await client.register(user, password);
  expect(registered).toEqual({ type: "registered", user });
  const welcome = await client.login(user, password);
  expect(welcome.type).toBe("welcome");
  expect(welcome.user).toBe(user);
  return user;
}

/** The store file parses, has the right format, and holds every user in `users`. */
export function expectStoreIntact(storePath: string, users: string[]): string[] {
  const parsed = JSON.parse(readFileSync(storePath, "utf8")) as { format: string; version: number; users: Array<{ name: string; hash: string }> };
  expect(parsed.format).toBe("tlschat-users");
  expect(parsed.version).toBe(STORE_VERSION);
  expect(Array.isArray(parsed.users)).toBe(true);
  const names = parsed.users.map((user) => user.name);
  for (const user of users) expect(names).toContain(user);
  for (const user of parsed.users) expect(user.hash).toStartWith("$argon2id$");
  return names;
}

let bystanderCounter = 0;

/**
 * Two well-behaved users logged in before an attack: `sender` sends numbered room messages,
 * `receiver` must get every one of them, in order, whatever else is going on.
 */
export class Bystanders implements AsyncDisposable {
  readonly users: string[];
  private batches = 0;

  private constructor(
    readonly sender: TestClient,
    readonly receiver: TestClient,
    readonly senderName: string,
    readonly receiverName: string,
  ) {
    this.users = [senderName, receiverName];
  }

  /** Registers and logs in two fresh users, both connected from 127.0.0.1. */
  static async start(server: TestServer): Promise<Bystanders> {
    const n = ++bystanderCounter;
    const senderName = `bysend${n}`;
    const receiverName = `byrecv${n}`;
    // Each connects just before it registers and logs in, so a server with a short login
    // deadline (the slowloris tests) does not cut one while the other's password is hashed.
    const loggedIn = async (name: string) => {
      const client = await TestClient.connect({ port: server.port, ca: server.certificate.certPem });
      await client.register(name, `${name}-password`);
      await client.login(name, `${name}-password`);
      return client;
    };
    const receiver = await loggedIn(receiverName);
    const sender = await loggedIn(senderName);
    await receiver.next("online");
    return new Bystanders(sender, receiver, senderName, receiverName);
  }

  /**
   * Sends numbered messages every `intervalMs` (10/s by default: the default sustained rate, so
   * the sender is never rate limited however long the attack lasts) until `stop()`; `stop()`
   * then checks the receiver got all of them, in order, and neither bystander got an error.
   */
  startTraffic(intervalMs = 100, max = 200): { stop(): Promise<number> } {
    const tag = `b${++this.batches}`;
    let sent = 0;
    const sendOne = () => {
      if (sent < max) this.sender.send({ type: "say", text: `${tag}-${sent++}` });
    };
    sendOne();
    const timer = setInterval(sendOne, intervalMs);
    return {
      stop: async () => {
        clearInterval(timer);
        await this.expectReceived(tag, sent);
        return sent;
      },
    };
  }

  /** Sends `n` numbered messages at once and checks all arrive in order. */
  async exchange(n = 10): Promise<void> {
    const tag = `b${++this.batches}`;
    for (let i = 0; i < n; i++) this.sender.send({ type: "say", text: `${tag}-${i}` });
    await this.expectReceived(tag, n);
  }

  /** Runs `attack` with bystander traffic going on, then checks delivery and a burst after it. */
  async during<T>(attack: () => Promise<T>): Promise<T> {
    const traffic = this.startTraffic();
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await attack() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    // The attack's own failure is the more telling one; report it first.
    const stopped = traffic.stop().catch((error: unknown) => {
      if (outcome.ok) throw error;
    });
    await stopped;
    if (!outcome.ok) throw outcome.error;
    await this.exchange(10);
    return outcome.value;
  }

  private async expectReceived(tag: string, n: number): Promise<void> {
    const texts: string[] = [];
    const ids: number[] = [];
    const deadline = Date.now() + 10_000;
    while (texts.length < n) {
      const frame = await this.receiver.next("msg", Math.max(1, deadline - Date.now()));
      if (frame.from !== this.senderName || !String(frame.text).startsWith(`${tag}-`)) continue;
      texts.push(frame.text);
      ids.push(frame.id);
    }
    expect(texts).toEqual(Array.from({ length: n }, (_, i) => `${tag}-${i}`));
    for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
    await this.sender.sync();
    await this.receiver.sync();
    expect(this.sender.take("error")).toEqual([]);
    expect(this.receiver.take("error")).toEqual([]);
    expect(this.sender.isClosed).toBe(false);
    expect(this.receiver.isClosed).toBe(false);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.sender.close();
    await this.receiver.close();
  }
}

/** The tail of every attack test: bystanders fine (checked by `during`), newcomers welcome, store intact. */
export async function expectAftermath(server: TestServer, bystanders: Bystanders, users: string[] = [], localAddress?: string): Promise<void> {
  const probe = await expectServerUp(server, localAddress);
  expectStoreIntact(server.storePath, [...bystanders.users, ...users, probe]);
}

// ---------------------------------------------------------------------------------------------
// Attackers with accounts, and what they were told.

/** Registers `user` (password `${user}-password`) and logs in, from `localAddress` if given. */
export async function loggedInHostile(server: TestServer, user: string, localAddress?: string): Promise<HostileClient> {
  const client = await hostile(server, localAddress ? { localAddress } : {});
  expect((await client.register(user, `${user}-password`)).type).toBe("registered");
  expect((await client.login(user, `${user}-password`)).type).toBe("welcome");
  return client;
}

/** The codes of every error frame a client has received so far. */
export function errorCodesOf(client: HostileClient | TestClient): string[] {
  const frames = client instanceof HostileClient ? client.frames : client.received;
  return frames.filter((frame) => frame.type === "error").map((frame) => frame.code);
}

/** A frame's size on the wire, newline excluded: the server encodes with JSON.stringify too. */
export function encodedBytes(frame: Frame): number {
  return Buffer.byteLength(JSON.stringify(frame));
}

// ---------------------------------------------------------------------------------------------
// A chat database filled before a server opens it.

export interface ChatSeed {
  /** Users the database has seen (members of #lobby, as after their first login). */
  users?: readonly string[];
  /** Rooms to create, by name, with their members; the first member created it and is its operator. */
  rooms?: Readonly<Record<string, readonly string[]>>;
  /** Messages stored in this order: in a room (by name), or with `to` a dm. */
  messages?: Iterable<{ room?: string; from: string; to?: string; text: string; undelivered?: boolean }>;
}

/**
 * Fills a chat database through the server's own room registry and message log, so an attack can
 * start from tens of thousands of messages without sending them at the rate limit. Start a server
 * on it with `startTestServer({ chatDbPath })`. Returns the ids the messages got, in order.
 */
export async function seedChatDatabase(path: string, seed: ChatSeed): Promise<number[]> {
  const db = await openChatDatabase(path);
  const rooms = SqliteRooms.load(db);
  const log = new SqliteMessageLog(db);
  const now = Date.now();
  try {
    if (!rooms.get(LOBBY)) await rooms.create(LOBBY, "", now);
    const know = async (user: string) => {
      if (!rooms.knows(user)) await rooms.welcomeUser(user, LOBBY, now);
    };
    for (const user of seed.users ?? []) await know(user);
    for (const [name, members] of Object.entries(seed.rooms ?? {})) {
      const room = rooms.get(name) ?? (await rooms.create(name, members[0] ?? "", now));
      for (const member of members) {
        await know(member);
        await rooms.addMember(room.key, member);
      }
      if (members[0] !== undefined) await rooms.setOp(room.key, members[0], true);
    }
    const appended = [];
    for (const message of seed.messages ?? []) {
      const room = message.room === undefined ? undefined : rooms.get(message.room);
      if (message.room !== undefined && !room) throw new Error(`seed: no room ${message.room}`);
      appended.push(
        log.append({
          room: room && { key: room.key, name: room.name },
          from: message.from,
          to: message.to,
          text: message.text,
          ts: now,
          undelivered: message.undelivered,
        }),
      );
    }
    return (await Promise.all(appended)).map((message) => message.id);
  } finally {
    await log.close();
    await rooms.close();
  }
}
