// The room messages and dms this session sent that the server has not answered yet. Each gets a
// `ref` of its own; an `ack` turns it into the message as the log stored it, an error carrying
// the ref into a refusal, and answers are handed out in the order the messages were sent (the
// server refuses at once but acknowledges after a commit). Those lost with a connection are sent
// again with the same ref, which the server recognises, so a reconnect neither loses nor
// repeats one. No sockets here.

import { ChatError } from "../protocol/errors.ts";
import type { ClientFrame, ErrorFrame, LoggedMessage, ServerFrame } from "../protocol/frames.ts";
import { LOBBY } from "../protocol/validate.ts";

export type MessageFrame = Extract<ClientFrame, { type: "say" | "dm" }>;
export type AckFrame = Extract<ServerFrame, { type: "ack" }>;

/** The server's answer to one of our messages. */
export type Answer =
  | { kind: "sent"; ack: AckFrame; sent: MessageFrame; message: LoggedMessage }
  | { kind: "refused"; error: ErrorFrame; sent: MessageFrame };

/** Messages that may wait for an answer at once: what a long outage of typing could queue. */
export const MAX_UNANSWERED_MESSAGES = 1_000;
/** Random characters that start every ref of a session, so two sessions of one user never share one. */
const REF_PREFIX_CHARS = 10;

interface Entry {
  frame: MessageFrame & { ref: string };
  /** Given to a connection; when that connection is lost unanswered, it is sent again. */
  handedOver: boolean;
  /** Here, but waiting for the answers to messages sent before it. */
  answer: Answer | undefined;
}

export class PendingAcks {
  private readonly prefix: string;
  private counter = 0;
  /** By ref, in the order sent (a Map keeps insertion order). */
  private readonly entries = new Map<string, Entry>();
  private answeredWaiters: Array<() => void> = [];

  constructor(prefix = randomPrefix()) {
    this.prefix = prefix;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The frame with a fresh ref, kept until the server answers it. */
  track(frame: MessageFrame): MessageFrame & { ref: string } {
    if (this.entries.size >= MAX_UNANSWERED_MESSAGES) {
      throw new ChatError("rate_limited", `${MAX_UNANSWERED_MESSAGES} messages are still waiting for the server`);
    }
    this.counter += 1;
    const tracked = { ...frame, ref: `${this.prefix}.${this.counter.toString(36)}` };
    this.entries.set(tracked.ref, { frame: tracked, handedOver: false, answer: undefined });
    return tracked;
  }

  /** A connection took the frame (frames without a ref of ours are not messages and are ignored). */
  handedOver(frame: ClientFrame): void {
    const entry = "ref" in frame && frame.ref !== undefined ? this.entries.get(frame.ref) : undefined;
    if (entry) entry.handedOver = true;
  }

  /**
   * Takes the server's answer, an ack or an error naming one of our refs; undefined when it names
   * none. Returns the answers now due, oldest message first: none while an earlier message still
   * waits for its own. An ack makes the message as stored, from `self`.
   */
  answer(frame: AckFrame | ErrorFrame, self: string): Answer[] | undefined {
    const entry = frame.ref === undefined ? undefined : this.entries.get(frame.ref);
    if (!entry || entry.answer) return undefined;
    entry.answer = frame.type === "ack" ? { kind: "sent", ack: frame, sent: entry.frame, message: stored(entry.frame, frame, self) } : { kind: "refused", error: frame, sent: entry.frame };
    const due: Answer[] = [];
    for (const [ref, waiting] of this.entries) {
      if (!waiting.answer) break;
      due.push(waiting.answer);
      this.entries.delete(ref);
    }
    if (this.entries.size === 0) this.notifyAnswered();
    return due;
  }

  /**
   * The connection they were handed to is gone: the messages it took and never answered, oldest
   * first, to go out again ahead of anything queued since.
   */
  takeLost(): MessageFrame[] {
    const lost = [...this.entries.values()].filter((entry) => entry.handedOver && !entry.answer);
    for (const entry of lost) entry.handedOver = false;
    return lost.map((entry) => entry.frame);
  }

  /** Resolves once every message sent so far has been answered (or `clear` gave up on them). */
  answered(): Promise<void> {
    if (this.entries.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.answeredWaiters.push(resolve));
  }

  /** For good: nothing more will be answered. */
  clear(): void {
    this.entries.clear();
    this.notifyAnswered();
  }

  private notifyAnswered(): void {
    for (const resolve of this.answeredWaiters.splice(0)) resolve();
  }
}

function stored(sent: MessageFrame, ack: AckFrame, self: string): LoggedMessage {
  return sent.type === "say"
    ? { type: "msg", id: ack.id, room: sent.room ?? LOBBY, from: self, text: sent.text, ts: ack.ts }
    : { type: "dm", id: ack.id, from: self, to: sent.to, text: sent.text, ts: ack.ts };
}

function randomPrefix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(REF_PREFIX_CHARS));
  return Array.from(bytes, (byte) => (byte % 36).toString(36)).join("");
}
