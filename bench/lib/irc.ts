// IRC clients for the ircd scenario: BenchClient's transport (TLS verified against the
// workspace certificate, backpressure) speaking IRC instead of tlschat's frames, and writing in
// pieces of whole lines of at most MAX_WRITE_BYTES. A bench message is a PRIVMSG to the one
// channel whose text is client.ts's bench text (sender, seq, send time), decoded from fixed
// offsets in that text as against tlschat. Every other line is skipped except the few that
// registration and JOIN wait for, PING (answered), and error numerics (400-599), which are
// reported as error events.

import { BenchClient, HEADER, hasAt, inPool, putDigits, readDigits, TEXT, traffic, type Endpoint } from "./client.ts";
import { BenchError, now } from "./util.ts";

/** The channel every client joins. */
export const IRC_CHANNEL = "#bench";

const PRIVMSG_PREFIX = `PRIVMSG ${IRC_CHANNEL} :`;
const PRIVMSG_TEMPLATE = Buffer.from(`${PRIVMSG_PREFIX}${TEXT}\r\n`);
// Where the bench text's fields are, from the text's start: each follows its letter.
const SENDER_AT = HEADER.indexOf("S") + 1;
const SEQ_AT = HEADER.indexOf("Q") + 1;
const TIME_AT = HEADER.indexOf("T") + 1;
const SENDER_DIGITS = SEQ_AT - 1 - SENDER_AT;
const SEQ_DIGITS = TIME_AT - 1 - SEQ_AT;
const TIME_DIGITS = HEADER.length - TIME_AT;

const CMD_PRIVMSG = Buffer.from("PRIVMSG ");
const CMD_JOIN = Buffer.from("JOIN ");
const CMD_PING = Buffer.from("PING ");
const TRAILING = Buffer.from(" :");
const NL = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const BANG = 0x21;
const CH_S = 0x53; // 'S'
/**
 * Most bytes per write, hence per TLS record. ngircd reads 2048 bytes when a socket is readable
 * and never asks GnuTLS for the rest of a bigger record, which then waits inside GnuTLS until
 * the client sends again: a sender whose window is full would never see its messages complete.
 */
export const MAX_WRITE_BYTES = 2048;
const RPL_WELCOME = 1;
const FIRST_ERROR_NUMERIC = 400;
const LAST_ERROR_NUMERIC = 599;

/** `count` PRIVMSG lines from `sender` with sequence numbers first.., stamped with the current time. */
export function privmsgLines(sender: number, first: number, count: number): Buffer {
  const template = PRIVMSG_TEMPLATE;
  const buf = Buffer.allocUnsafe(count * template.length);
  const micros = Math.floor(now() * 1000);
  const text = PRIVMSG_PREFIX.length;
  for (let i = 0; i < count; i++) {
    const base = i * template.length;
    buf.set(template, base);
    putDigits(buf, base + text + SENDER_AT, SENDER_DIGITS, sender);
    putDigits(buf, base + text + SEQ_AT, SEQ_DIGITS, first + i);
    putDigits(buf, base + text + TIME_AT, TIME_DIGITS, micros);
  }
  return buf;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/** One IRC user: nick and user name are the BenchClient's `user`. */
export class IrcClient extends BenchClient {
  private pending: Buffer | null = null;
  /** Pieces of at most MAX_WRITE_BYTES, written one by one as the socket takes them. */
  private pieces: Uint8Array[] = [];
  private readonly nick = Buffer.from(this.user);
  private registration: Waiter | undefined;
  private joining: Waiter | undefined;

  override connect(endpoint: Endpoint, localAddress?: string): Promise<void> {
    this.pending = null;
    this.pieces = [];
    return super.connect(endpoint, localAddress);
  }

  /** Whole lines, in writes of at most MAX_WRITE_BYTES. */
  override writeNow(data: Uint8Array): void {
    for (let at = 0; at < data.length; ) {
      const lastEnd = data.lastIndexOf(NL, at + MAX_WRITE_BYTES - 1);
      const end = lastEnd < at ? Math.min(data.length, at + MAX_WRITE_BYTES) : lastEnd + 1;
      this.pieces.push(data.subarray(at, end));
      at = end;
    }
    this.writePieces();
  }

  override get backlogged(): boolean {
    return this.pieces.length > 0 || super.backlogged;
  }

  override onDrain(): void {
    super.onDrain();
    this.writePieces();
  }

  /** One piece per write, and none while the socket holds back part of the last one. */
  private writePieces(): void {
    while (this.pieces.length > 0 && !super.backlogged) super.writeNow(this.pieces.shift()!);
  }

  /** Sends NICK and USER; resolves at the 001 welcome, rejects on an error numeric or close. */
  register(): Promise<void> {
    const registered = new Promise<void>((resolve, reject) => (this.registration = { resolve, reject }));
    this.send(`NICK ${this.user}\r\nUSER ${this.user} 0 * :tlschat bench\r\n`);
    return registered;
  }

  /** Joins the channel; resolves when the server echoes this client's own JOIN. */
  join(channel: string): Promise<void> {
    const joined = new Promise<void>((resolve, reject) => (this.joining = { resolve, reject }));
    this.send(`JOIN ${channel}\r\n`);
    return joined;
  }

  override onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    traffic.bytesIn += chunk.length;
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    const time = now();
    let start = 0;
    while (start < buf.length) {
      const newline = buf.indexOf(NL, start);
      if (newline < 0) {
        this.pending = Buffer.from(buf.subarray(start));
        return;
      }
      this.ircLine(buf, start, newline > start && buf[newline - 1] === CR ? newline - 1 : newline, time);
      start = newline + 1;
    }
  }

  override onClose(): void {
    const error = new BenchError(`connection of ${this.user} closed`);
    this.registration?.reject(error);
    this.joining?.reject(error);
    this.registration = this.joining = undefined;
    super.onClose();
  }

  private ircLine(buf: Buffer, start: number, end: number, time: number): void {
    // ":prefix COMMAND params": the prefix is the sender (nick!user@host) or the server.
    let command = start;
    if (buf[start] === COLON) {
      const space = buf.indexOf(SPACE, start);
      if (space < 0 || space >= end) return;
      command = space + 1;
    }
    if (hasAt(buf, command, CMD_PRIVMSG, end)) {
      const mark = buf.indexOf(TRAILING, command + CMD_PRIVMSG.length);
      const text = mark + TRAILING.length;
      if (mark < 0 || text + HEADER.length > end || buf[text] !== CH_S) return; // not a bench message
      const sender = readDigits(buf, text + SENDER_AT, SENDER_DIGITS);
      const seq = readDigits(buf, text + SEQ_AT, SEQ_DIGITS);
      const sent = readDigits(buf, text + TIME_AT, TIME_DIGITS) / 1000;
      this.events.msg?.(this, sender, seq, sent, time, NaN);
    } else if (isNumeric(buf, command, end)) {
      const numeric = readDigits(buf, command, 3);
      if (numeric === RPL_WELCOME) {
        this.ready = true;
        this.registration?.resolve();
        this.registration = undefined;
      } else if (numeric >= FIRST_ERROR_NUMERIC && numeric <= LAST_ERROR_NUMERIC) {
        const message = buf.toString("utf8", command, end);
        const refusal = new BenchError(`${this.user} got ${message}`);
        this.registration?.reject(refusal);
        this.joining?.reject(refusal);
        this.registration = this.joining = undefined;
        this.events.error?.(this, String(numeric), message);
      }
    } else if (hasAt(buf, command, CMD_JOIN, end)) {
      if (this.fromSelf(buf, start, command)) {
        this.joining?.resolve();
        this.joining = undefined;
      }
    } else if (hasAt(buf, command, CMD_PING, end)) {
      this.send(`PONG ${buf.toString("latin1", command + CMD_PING.length, end)}\r\n`);
    }
  }

  /** Whether the line's prefix (":nick!user@host ") names this client. */
  private fromSelf(buf: Buffer, start: number, command: number): boolean {
    const { nick } = this;
    const after = start + 1 + nick.length;
    return after < command && buf[after] === BANG && hasAt(buf, start + 1, nick, after);
  }
}

function isNumeric(buf: Buffer, at: number, end: number): boolean {
  if (at + 3 >= end || buf[at + 3] !== SPACE) return false;
  for (let i = at; i < at + 3; i++) if (buf[i]! < 48 || buf[i]! > 57) return false;
  return true;
}

/**
 * Connects, registers and joins `channel`, every client, at most `concurrency` at a time;
 * resolves when each has seen its own JOIN, so every one of them is a member before anyone sends.
 */
export async function joinAll(clients: readonly IrcClient[], endpoint: Endpoint, channel: string, concurrency: number): Promise<void> {
  await inPool(clients, concurrency, async (client) => {
    await client.connect(endpoint);
    await client.register();
    await client.join(channel);
  });
}
