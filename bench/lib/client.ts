// The load generator's clients: many TLS connections in this one process, each verifying the
// server against its certificate (`ca` + serverName "localhost", rejectUnauthorized). To keep the
// generator cheap:
//  - writes are batched: frames queued during a turn leave in one buffer per socket;
//  - incoming lines are split on bytes and told apart by their type name, read in place; only
//    bench messages, acks and (when a handler wants them) the ids in history and search replies
//    are decoded, by scanning for field names and reading digits, never with JSON.parse (error
//    frames are the exception). Every other frame (online, join, ...) is skipped;
//  - a client in `skip` mode (logged in, nothing being measured) only keeps line alignment,
//    which matters when thousands of clients receive each other's presence notices.
//
// Bench message text (100 bytes): "S" sender(4) "Q" seq(7) "T" sentMicros(13) then 'x' padding.
// tlschat relays it inside {"type":"msg","id":N,...,"text":"..."}; ncat relays our own
// {"type":"say","text":"..."} line; both are found through the `"text":"` marker. A say may
// carry a ref "round(3) seq(7)" so that its ack names the message it acknowledges.

import type { Socket } from "bun";
import * as nodeTls from "node:tls";
import { HOST } from "./proc.ts";
import { BenchError, now } from "./util.ts";

export const TEXT_BYTES = 100;
const SAY_PREFIX = '{"type":"say","text":"';
/** The bench text's fields (sender, seq, send time in µs) as zeros, and the whole padded text. */
export const HEADER = "S0000Q0000000T0000000000000";
export const TEXT = HEADER + "x".repeat(TEXT_BYTES - HEADER.length);
const REF_PREFIX = '","ref":"';
const REF_ROUND_DIGITS = 3;
const REF_SEQ_DIGITS = 7;
const REF_DIGITS = REF_ROUND_DIGITS + REF_SEQ_DIGITS;
/**
 * Say lines by room and whether they carry a ref. `ref` and `room` come after the text, so the
 * offsets below stay fixed; a line without `room` goes to the lobby (ncat relays it as it is).
 */
const sayTemplates = new Map<string, Buffer>();
const OFF_SENDER = SAY_PREFIX.length + 1;
const OFF_SEQ = OFF_SENDER + 5;
const OFF_TIME = OFF_SEQ + 8;
const OFF_REF_ROUND = SAY_PREFIX.length + TEXT.length + REF_PREFIX.length;
const OFF_REF_SEQ = OFF_REF_ROUND + REF_ROUND_DIGITS;
export const MAX_SENDERS = 9_999;
export const MAX_SEQ = 9_999_999;

const TEXT_MARK = Buffer.from('"text":"');
const TOKEN_MARK = Buffer.from('"token":"');
const ID_MARK = Buffer.from('"id":');
const REF_MARK = Buffer.from('"ref":"');
const ROOM_MARK = Buffer.from('"room":"');
const MESSAGES_MARK = Buffer.from('"messages":[');
const MORE_TRUE = Buffer.from('"more":true');
const NL = 0x0a;
const QUOTE = 0x22;
const CH_S = 0x53; // 'S'
/** Where the type name starts: {"type":"X... (servers put `type` first). */
const TYPE_AT = 9;
// Whole type names with their closing quote: a first letter no longer tells frames apart
// (msg and moderation, join and joined).
const T_MSG = Buffer.from('msg"');
const T_SAY = Buffer.from('say"'); // ncat relays the sender's own line
const T_WELCOME = Buffer.from('welcome"');
const T_JOINED = Buffer.from('joined"');
const T_ERROR = Buffer.from('error"');
const T_ACK = Buffer.from('ack"');
const T_HISTORY = Buffer.from('history"');
const T_SEARCH = Buffer.from('search"');

function isType(buf: Buffer, start: number, end: number, name: Buffer): boolean {
  return hasAt(buf, start + TYPE_AT, name, end);
}

/** Whether `bytes` are at `at`, ending before `end`. */
export function hasAt(buf: Buffer, at: number, bytes: Buffer, end: number): boolean {
  if (at + bytes.length > end) return false;
  for (let i = 0; i < bytes.length; i++) if (buf[at + i] !== bytes[i]) return false;
  return true;
}

export function putDigits(buf: Uint8Array, offset: number, width: number, value: number): void {
  for (let i = offset + width - 1; i >= offset; i--) {
    buf[i] = 48 + (value % 10);
    value = Math.floor(value / 10);
  }
}

export function readDigits(buf: Uint8Array, offset: number, width: number): number {
  let value = 0;
  for (let i = offset; i < offset + width; i++) value = value * 10 + (buf[i]! - 48);
  return value;
}

/** The decimal number starting at `offset` (before `end`), or NaN if there is no digit there. */
function readNumber(buf: Uint8Array, offset: number, end: number): number {
  let value = 0;
  let i = offset;
  for (; i < end && buf[i]! >= 48 && buf[i]! <= 57; i++) value = value * 10 + (buf[i]! - 48);
  return i === offset ? NaN : value;
}

/** The JSON string value starting at `offset` (no escapes in the names the bench uses). */
function readString(buf: Buffer, offset: number, end: number): string {
  const close = buf.indexOf(QUOTE, offset);
  return close < 0 || close >= end ? "" : buf.toString("utf8", offset, close);
}

export interface SayOptions {
  /** Default: none, which the server takes as the lobby. */
  room?: string;
  /** Gives every line the ref "round seq", so its ack can be matched; rounds keep refs unique. */
  refRound?: number;
}

function sayTemplate(room: string | undefined, withRef: boolean): Buffer {
  const key = `${room ?? ""} ${withRef}`;
  let template = sayTemplates.get(key);
  if (!template) {
    const ref = withRef ? `${REF_PREFIX}${"0".repeat(REF_DIGITS)}` : "";
    const inRoom = room === undefined ? '"' : `","room":"${room}"`;
    sayTemplates.set(key, (template = Buffer.from(`${SAY_PREFIX}${TEXT}${ref}${inRoom}}\n`)));
  }
  return template;
}

/** `count` say lines from `sender` with sequence numbers first.., stamped with the current time. */
export function sayLines(sender: number, first: number, count: number, options: SayOptions = {}): Buffer {
  const { room, refRound } = options;
  const template = sayTemplate(room, refRound !== undefined);
  const buf = Buffer.allocUnsafe(count * template.length);
  const micros = Math.floor(now() * 1000);
  for (let i = 0; i < count; i++) {
    const base = i * template.length;
    buf.set(template, base);
    putDigits(buf, base + OFF_SENDER, 4, sender);
    putDigits(buf, base + OFF_SEQ, 7, first + i);
    putDigits(buf, base + OFF_TIME, 13, micros);
    if (refRound !== undefined) {
      putDigits(buf, base + OFF_REF_ROUND, REF_ROUND_DIGITS, refRound);
      putDigits(buf, base + OFF_REF_SEQ, REF_SEQ_DIGITS, first + i);
    }
  }
  return buf;
}

/** A message in a history or search reply: its id and, for bench messages, sender and seq (else NaN). */
export interface LoggedEntry {
  id: number;
  sender: number;
  seq: number;
}

/** The messages of a history or search line, in the order the server sent them. */
function loggedEntries(line: Buffer): LoggedEntry[] {
  const entries: LoggedEntry[] = [];
  let at = line.indexOf(MESSAGES_MARK);
  if (at < 0) return entries;
  // Field names cannot occur inside JSON strings (their quotes would be escaped), so every
  // `"id":` after the list's start is a message's id.
  for (;;) {
    const idMark = line.indexOf(ID_MARK, at);
    if (idMark < 0) return entries;
    const id = readNumber(line, idMark + ID_MARK.length, line.length);
    const textMark = line.indexOf(TEXT_MARK, idMark);
    const text = textMark + TEXT_MARK.length;
    const bench = textMark >= 0 && line[text] === CH_S && text + HEADER.length <= line.length;
    entries.push({ id, sender: bench ? readDigits(line, text + 1, 4) : NaN, seq: bench ? readDigits(line, text + 6, 7) : NaN });
    at = textMark < 0 ? idMark + ID_MARK.length : text;
  }
}

export interface ClientEvents {
  /**
   * A bench message arrived: sender, sequence number, send time and arrival time (ms), and the
   * id the server gave it (NaN from ncat, which relays the say line).
   */
  msg?(client: BenchClient, sender: number, seq: number, sentMs: number, nowMs: number, id: number): void;
  /** An ack of a say with a bench ref: its round and seq, the message's id, arrival time (ms). */
  ack?(client: BenchClient, round: number, seq: number, id: number, nowMs: number): void;
  /** A history reply (or the catch-up at login): the room ("" for dms), its messages, `more`. */
  history?(client: BenchClient, room: string, entries: LoggedEntry[], more: boolean, nowMs: number): void;
  /** A search reply: how many messages it found, arrival time (ms). */
  search?(client: BenchClient, found: number, nowMs: number): void;
  welcome?(client: BenchClient): void;
  error?(client: BenchClient, code: string, message: string): void;
  closed?(client: BenchClient): void;
}

export interface Endpoint {
  port: number;
  /** PEM certificate the server must present (self-signed: it is its own CA). */
  ca: string;
}

/** Source addresses 127.0.1.1, 127.0.1.2, ... (loopback; the destination stays 127.0.0.1). */
export const loopbackSource = (i: number): string => `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;

/** Socket data: which client and which of its connections, so a late event of an old socket is ignored. */
interface Link {
  client: BenchClient;
  generation: number;
}

type State = "idle" | "connecting" | "open" | "closed";

/** Bytes received by all clients, to see when the server has gone quiet. */
export const traffic = { bytesIn: 0 };

let dirty: BenchClient[] = [];
function flushDirty(): void {
  const batch = dirty;
  dirty = [];
  for (const client of batch) client.flush();
}

/** A client certificate and key, presented in the handshake to log in by key. */
export interface BenchIdentity {
  cert: string;
  key: string;
}

export class BenchClient {
  state: State = "idle";
  /** Presented in every handshake when set. */
  identity: BenchIdentity | undefined;
  /** Logged in (welcome seen) on the current connection. */
  ready = false;
  /** Ignore incoming lines, keep only line alignment. */
  skip = false;
  token: string | undefined;
  bytesIn = 0;
  connects = 0;
  /** Counts this client's connections; events of an older socket are ignored. */
  generation = 0;
  private socket: Socket<Link> | undefined;
  /** Set instead of `socket` when connected through node:tls (needed for a source address). */
  private nodeSocket: nodeTls.TLSSocket | undefined;
  private tail: Buffer | null = null;
  private out: Uint8Array[] = [];
  private blocked = false;
  private scheduled = false;
  private handshakeWaiter: { resolve(): void; reject(error: Error): void } | undefined;
  private welcomeWaiter: { resolve(): void; reject(error: Error): void } | undefined;
  private joinedWaiter: { resolve(): void; reject(error: Error): void } | undefined;

  constructor(
    readonly index: number,
    readonly user: string,
    public events: ClientEvents,
  ) {}

  /**
   * TCP connect + TLS handshake with certificate and host name verification. With
   * `localAddress` (a loopback source address such as 127.0.1.7) the connection goes through
   * node:tls, since Bun.connect cannot choose a source address.
   */
  connect(endpoint: Endpoint, localAddress?: string): Promise<void> {
    if (this.state === "connecting" || this.state === "open") throw new BenchError(`client ${this.user} is already connected`);
    this.generation += 1;
    this.connects += 1;
    this.state = "connecting";
    this.ready = false;
    this.skip = false;
    this.tail = null;
    this.out = [];
    this.blocked = false;
    const link: Link = { client: this, generation: this.generation };
    const handshake = new Promise<void>((resolve, reject) => (this.handshakeWaiter = { resolve, reject }));
    if (localAddress !== undefined) {
      this.connectNode(endpoint, localAddress, link);
      return handshake;
    }
    Bun.connect<Link>({
      hostname: HOST,
      port: endpoint.port,
      data: link,
      tls: { ca: endpoint.ca, serverName: "localhost", rejectUnauthorized: true, ...this.identity },
      socket: HANDLERS,
    }).then(
      (socket) => {
        if (link.generation === this.generation) this.socket = socket;
      },
      (error: Error) => this.failed(link, error),
    );
    return handshake;
  }

  private connectNode(endpoint: Endpoint, localAddress: string, link: Link): void {
    // localAddress is passed on to net.connect; the tls option types leave it out.
    const options = { host: HOST, port: endpoint.port, localAddress, ca: endpoint.ca, servername: "localhost", rejectUnauthorized: true, ...this.identity };
    const socket = nodeTls.connect(options as nodeTls.ConnectionOptions);
    socket.setNoDelay(true);
    const current = () => link.generation === this.generation;
    socket.on("secureConnect", () => {
      if (!current()) return void socket.destroy();
      if (!socket.authorized) {
        this.handshakeWaiter?.reject(new BenchError(`TLS verification failed for ${this.user}: ${String(socket.authorizationError)}`));
        this.handshakeWaiter = undefined;
        socket.destroy();
        return;
      }
      this.nodeSocket = socket;
      this.state = "open";
      this.handshakeWaiter?.resolve();
      this.handshakeWaiter = undefined;
    });
    socket.on("data", (chunk: Buffer) => current() && this.onData(chunk));
    socket.on("drain", () => current() && this.onDrain());
    socket.on("error", (error: Error) => current() && this.failed(link, error));
    socket.on("close", () => {
      if (!current()) return;
      this.nodeSocket = undefined;
      this.onClose();
    });
  }

  /** Resolves at the next welcome on this connection; rejects on an error frame or close. */
  welcome(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => (this.welcomeWaiter = { resolve, reject }));
  }

  /** Joins (or creates) a room; resolves at its `joined`, rejects on an error frame or close. */
  joinRoom(room: string): Promise<void> {
    const joined = new Promise<void>((resolve, reject) => (this.joinedWaiter = { resolve, reject }));
    this.send(`{"type":"join","room":"${room}"}\n`);
    return joined;
  }

  /** With `since`, the server sends what each room got after that id instead of its recent messages. */
  resume(token: string, since?: number): void {
    const after = since === undefined ? "" : `,"since":${since}`;
    this.send(`{"type":"resume","user":"${this.user}","token":"${token}"${after}}\n`);
  }

  queryHistory(room: string, bounds: { before?: number; after?: number; limit?: number }): void {
    this.send(JSON.stringify({ type: "history", room, ...bounds }) + "\n");
  }

  querySearch(query: string): void {
    this.send(JSON.stringify({ type: "search", query }) + "\n");
  }

  login(password: string): void {
    this.send(JSON.stringify({ type: "login", user: this.user, password }) + "\n");
  }

  /** Logs in with the certificate of `identity`, which the handshake has already proved. */
  loginByKey(): void {
    this.send(`{"type":"login","user":"${this.user}","key":true}\n`);
  }

  /** Queues data; everything queued in this turn leaves in one write. */
  send(data: Uint8Array | string): void {
    if (this.state !== "open") return;
    this.out.push(typeof data === "string" ? Buffer.from(data) : data);
    if (!this.scheduled) {
      this.scheduled = true;
      if (dirty.length === 0) setImmediate(flushDirty);
      dirty.push(this);
    }
  }

  /** Writes now unless earlier data still waits for `drain`. */
  writeNow(data: Uint8Array): void {
    if (this.state !== "open") return;
    if (this.blocked || this.out.length > 0 || !(this.socket || this.nodeSocket)) {
      this.out.push(data);
      return;
    }
    this.writeSome(data);
  }

  /** Whether the socket is waiting for `drain` (a sender should not generate more now). */
  get backlogged(): boolean {
    return this.blocked || this.out.length > 0;
  }

  flush(): void {
    this.scheduled = false;
    if (this.blocked || this.state !== "open" || !(this.socket || this.nodeSocket) || this.out.length === 0) return;
    const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    this.writeSome(data);
  }

  /** Drops the connection at once (no close_notify wait). */
  terminate(): void {
    if (this.state === "closed" || this.state === "idle") return;
    this.socket?.terminate();
    this.nodeSocket?.destroy();
  }

  private writeSome(data: Uint8Array): void {
    if (this.nodeSocket) {
      // node:tls keeps what it cannot send yet; `false` only asks us to wait for `drain`.
      if (!this.nodeSocket.write(data)) this.blocked = true;
      return;
    }
    const written = this.socket!.write(data);
    if (written === data.length) return;
    if (written < 0) return; // closed; `close` follows
    this.out.unshift(written === 0 ? data : data.subarray(written));
    this.blocked = true;
  }

  onHandshake(socket: Socket<Link>, success: boolean, error: Error | null): void {
    if (!success || error !== null || !socket.getTLSVersion()) {
      const reason = new BenchError(`TLS verification failed for ${this.user}: ${error?.message ?? "no TLS session"}`);
      this.handshakeWaiter?.reject(reason);
      this.handshakeWaiter = undefined;
      socket.terminate();
      return;
    }
    this.socket = socket;
    this.state = "open";
    this.handshakeWaiter?.resolve();
    this.handshakeWaiter = undefined;
  }

  onDrain(): void {
    this.blocked = false;
    this.flush();
  }

  onClose(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.ready = false;
    this.socket = undefined;
    const error = new BenchError(`connection of ${this.user} closed`);
    this.handshakeWaiter?.reject(error);
    this.welcomeWaiter?.reject(error);
    this.joinedWaiter?.reject(error);
    this.handshakeWaiter = this.welcomeWaiter = this.joinedWaiter = undefined;
    this.events.closed?.(this);
  }

  failed(link: Link, error: Error): void {
    if (link.generation !== this.generation) return;
    if (this.state === "connecting") {
      this.state = "closed";
      this.handshakeWaiter?.reject(error);
      this.handshakeWaiter = undefined;
      this.events.closed?.(this);
    }
  }

  onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    traffic.bytesIn += chunk.length;
    let buf = chunk;
    if (this.tail !== null) {
      buf = Buffer.concat([this.tail, chunk]);
      this.tail = null;
    }
    if (this.skip) {
      const last = buf.lastIndexOf(NL);
      if (last !== buf.length - 1) this.tail = Buffer.from(buf.subarray(last + 1));
      return;
    }
    const time = now();
    let start = 0;
    const end = buf.length;
    while (start < end) {
      const newline = buf.indexOf(NL, start);
      if (newline < 0) {
        this.tail = Buffer.from(buf.subarray(start));
        return;
      }
      this.line(buf, start, newline, time);
      start = newline + 1;
      if (this.skip) {
        // A handler switched to skip mode (after welcome): keep only the line alignment.
        const last = buf.lastIndexOf(NL);
        if (last < end - 1) this.tail = Buffer.from(buf.subarray(last + 1));
        return;
      }
    }
  }

  private line(buf: Buffer, start: number, end: number, time: number): void {
    if (isType(buf, start, end, T_MSG) || isType(buf, start, end, T_SAY)) {
      const mark = buf.indexOf(TEXT_MARK, start);
      if (mark < 0 || mark >= end) return;
      const text = mark + TEXT_MARK.length;
      if (buf[text] !== CH_S || text + HEADER.length > end) return; // not a bench message
      const sender = readDigits(buf, text + 1, 4);
      const seq = readDigits(buf, text + 6, 7);
      const sent = readDigits(buf, text + 14, 13) / 1000;
      // tlschat sends the id right after the type: {"type":"msg","id":N,...
      const idAt = start + TYPE_AT + T_MSG.length + 1;
      const id = hasAt(buf, idAt, ID_MARK, mark) ? readNumber(buf, idAt + ID_MARK.length, mark) : NaN;
      this.events.msg?.(this, sender, seq, sent, time, id);
    } else if (isType(buf, start, end, T_ACK)) {
      if (!this.events.ack) return;
      const refMark = buf.indexOf(REF_MARK, start);
      const ref = refMark + REF_MARK.length;
      const benchRef = refMark >= 0 && ref + REF_DIGITS < end && buf[ref + REF_DIGITS] === QUOTE;
      const idMark = buf.indexOf(ID_MARK, start);
      const id = idMark >= 0 && idMark < end ? readNumber(buf, idMark + ID_MARK.length, end) : NaN;
      const round = benchRef ? readDigits(buf, ref, REF_ROUND_DIGITS) : NaN;
      const seq = benchRef ? readDigits(buf, ref + REF_ROUND_DIGITS, REF_SEQ_DIGITS) : NaN;
      this.events.ack(this, round, seq, id, time);
    } else if (isType(buf, start, end, T_HISTORY)) {
      if (!this.events.history) return;
      const line = buf.subarray(start, end);
      const list = line.indexOf(MESSAGES_MARK);
      const roomMark = line.indexOf(ROOM_MARK);
      const room = roomMark >= 0 && roomMark < list ? readString(line, roomMark + ROOM_MARK.length, list) : "";
      const more = line.lastIndexOf(MORE_TRUE) > list;
      this.events.history(this, room, loggedEntries(line), more, time);
    } else if (isType(buf, start, end, T_SEARCH)) {
      this.events.search?.(this, loggedEntries(buf.subarray(start, end)).length, time);
    } else if (isType(buf, start, end, T_WELCOME)) {
      const mark = buf.lastIndexOf(TOKEN_MARK, end);
      if (mark > start) {
        const from = mark + TOKEN_MARK.length;
        const to = buf.indexOf(QUOTE, from);
        if (to > from && to < end) this.token = buf.toString("latin1", from, to);
      }
      this.ready = true;
      this.welcomeWaiter?.resolve();
      this.welcomeWaiter = undefined;
      this.events.welcome?.(this);
    } else if (isType(buf, start, end, T_JOINED)) {
      this.joinedWaiter?.resolve();
      this.joinedWaiter = undefined;
    } else if (isType(buf, start, end, T_ERROR)) {
      let code = "unparsable";
      let message = "";
      try {
        const frame = JSON.parse(buf.toString("utf8", start, end)) as { code?: string; message?: string };
        code = String(frame.code);
        message = String(frame.message ?? "");
      } catch {
        // keep "unparsable"
      }
      if (code !== "server_busy") {
        const refusal = new BenchError(`${this.user} got error ${code}: ${message}`);
        this.welcomeWaiter?.reject(refusal);
        this.joinedWaiter?.reject(refusal);
        this.welcomeWaiter = this.joinedWaiter = undefined;
      }
      this.events.error?.(this, code, message);
    }
  }
}

const HANDLERS = {
  open(socket: Socket<Link>) {
    socket.setNoDelay(true);
  },
  handshake(socket: Socket<Link>, success: boolean, error: Error | null) {
    const link = socket.data;
    if (link.generation === link.client.generation) link.client.onHandshake(socket, success, error);
    else socket.terminate();
  },
  data(socket: Socket<Link>, chunk: Buffer) {
    const link = socket.data;
    if (link.generation === link.client.generation) link.client.onData(chunk);
  },
  drain(socket: Socket<Link>) {
    const link = socket.data;
    if (link.generation === link.client.generation) link.client.onDrain();
  },
  close(socket: Socket<Link>) {
    const link = socket.data;
    if (link.generation === link.client.generation) link.client.onClose();
  },
  error(_socket: Socket<Link>, _error: Error) {
    // `close` follows.
  },
  connectError(socket: Socket<Link>, error: Error) {
    socket.data.client.failed(socket.data, error);
  },
};

/** Set `stopped` to make `inPool` start no further work. */
export interface StopFlag {
  stopped: boolean;
}

/** Runs `work` over items with at most `concurrency` in progress. */
export async function inPool<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
  stop: StopFlag = { stopped: false },
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stop.stopped) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Connects (and, with tokens, logs in by resume token) every client; ready when each has its welcome. */
export async function connectAll(
  clients: readonly BenchClient[],
  endpoint: Endpoint,
  tokens: ((client: BenchClient) => string) | undefined,
  concurrency: number,
  stop?: StopFlag,
): Promise<void> {
  await inPool(clients, concurrency, async (client) => {
    await client.connect(endpoint);
    if (tokens) {
      const welcomed = client.welcome();
      client.resume(tokens(client));
      await welcomed;
    }
  }, stop);
}

export function terminateAll(clients: readonly BenchClient[]): void {
  for (const client of clients) client.terminate();
}
