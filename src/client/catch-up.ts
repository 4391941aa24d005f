// What this session has shown of each room and of its dms, so that a reconnect neither skips nor
// repeats a message. Per room (and "@dm") it keeps a mark: every message up to that id has been
// shown. The next login sends the marks as `since`; the server answers with what followed each
// one, and a room whose answer says `more` is paged with `history after` until it is complete.
// Until then the room's live messages wait, and once it is complete they are shown, minus those
// the pages brought, told apart by id. This relies on what the server promises: ids increase
// across the whole server, and a connection gets each room's messages and acks in id order.
// It knows no sockets: queries and what to show go to a sink.

import { MAX_HISTORY_PAGE, MAX_SINCE_ENTRIES, SINCE_DMS, type ClientFrame, type HistoryFrame, type LoggedMessage } from "../protocol/frames.ts";
import { roomKey } from "../protocol/validate.ts";

/**
 * Why a history frame is shown: "recent", the newest messages of a room at login or join with no
 * mark for it; "missed", what followed the mark; "older", a page asked for with `older`.
 */
export type HistoryCause = "recent" | "missed" | "older";

export type Shown = { kind: "history"; frame: HistoryFrame; cause: HistoryCause } | { kind: "message"; message: LoggedMessage };

export interface CatchUpSink {
  show(shown: Shown): void;
  /** A query for the current connection; dropped if there is none (the next login starts over). */
  query(frame: ClientFrame): void;
}

/** Live messages of one room kept while its catch-up is incomplete; past this, pages fetch them. */
export const MAX_HELD_MESSAGES = 1_000;

/** Why a room is not showing live messages as they come. */
type Phase =
  /** Complete: live messages are shown as they come. */
  | "complete"
  /** Its login or join history is on its way; `missed` when it answers a mark we sent. */
  | { awaiting: "recent" | "missed" }
  /** A `history after` page is on its way. */
  | "paging";

interface Conversation {
  /** As the server shows it; "@dm" for the dms. */
  name: string;
  /** Every message up to this id has been shown; undefined when nothing is known yet. */
  mark: number | undefined;
  /** The oldest id shown, where `older` continues. */
  oldest: number | undefined;
  phase: Phase;
  /** Live messages that arrived while not complete, in arrival order. */
  held: LoggedMessage[];
  /** Some held messages were let go: the next page is asked for even if the last said no more. */
  heldOverflow: boolean;
  /** Ids above the mark already shown (our own, acknowledged while catching up). */
  ahead: Set<number>;
  /** An `older` page is on its way. */
  olderPending: boolean;
}

export class CatchUp {
  private readonly rooms = new Map<string, Conversation>();
  private readonly dms: Conversation = conversation(SINCE_DMS);
  /** The largest id shown anywhere, where the dms' mark starts when no dm has been seen. */
  private highest = 0;
  /** A room already followed was joined again: its next history frame repeats what was shown. */
  private repeatJoinOf: string | undefined;

  constructor(private readonly sink: CatchUpSink) {}

  /** The marks to send with the next login or resume; undefined before anything was shown. */
  since(): Record<string, number> | undefined {
    const since: Record<string, number> = {};
    let entries = 0;
    for (const entry of [this.dms, ...this.rooms.values()]) {
      if (entry.mark === undefined || entries >= MAX_SINCE_ENTRIES) continue;
      since[entry.name] = entry.mark;
      entries += 1;
    }
    return entries === 0 ? undefined : since;
  }

  /** A login was answered with `welcome`: each of `rooms` sends its history next, then the dms. */
  loggedIn(rooms: readonly string[]): void {
    const names = new Map(rooms.map((name) => [roomKey(name), name]));
    for (const key of this.rooms.keys()) if (!names.has(key)) this.rooms.delete(key);
    for (const [key, name] of names) {
      const room = this.rooms.get(key) ?? conversation(name);
      room.name = name;
      this.rooms.set(key, room);
      this.restart(room, { awaiting: room.mark === undefined ? "recent" : "missed" });
    }
    this.restart(this.dms, { awaiting: "missed" });
    this.repeatJoinOf = undefined;
  }

  /** Every dm missed while away has arrived: the server has answered a frame sent after the login. */
  dmsCaughtUp(): void {
    if (this.dms.phase === "complete") return;
    const held = this.dms.held.sort((a, b) => a.id - b.id);
    const firstLogin = this.dms.mark === undefined;
    this.complete(this.dms, held);
    // Dms older than what this session has seen anywhere were not missed, they came before it.
    if (firstLogin && this.highest > (this.dms.mark ?? 0)) this.dms.mark = this.highest;
  }

  /** `joined` for `room`: its recent history comes next. */
  joined(room: string): void {
    const key = roomKey(room);
    if (this.rooms.has(key)) {
      this.repeatJoinOf = key;
      return;
    }
    const fresh = conversation(room);
    fresh.phase = { awaiting: "recent" };
    this.rooms.set(key, fresh);
  }

  parted(room: string): void {
    this.rooms.delete(roomKey(room));
  }

  history(frame: HistoryFrame): void {
    const key = frame.room === undefined ? undefined : roomKey(frame.room);
    const room = key === undefined ? undefined : this.rooms.get(key);
    // The dms with someone, or a room this session does not follow: nothing to keep track of.
    if (!room) return this.sink.show({ kind: "history", frame, cause: "recent" });
    if (key === this.repeatJoinOf) {
      this.repeatJoinOf = undefined;
      return;
    }
    const phase = room.phase;
    if (phase === "complete") {
      if (!room.olderPending) return; // Nothing asked for: live messages already cover the room.
      room.olderPending = false;
      return this.showOlder(room, frame);
    }
    const cause = phase === "paging" ? "missed" : phase.awaiting;
    const fresh = frame.messages.filter((message) => this.isNew(room, message));
    if (fresh.length > 0) this.sink.show({ kind: "history", frame: { ...frame, messages: fresh }, cause });
    for (const message of fresh) this.shown(room, message);
    // All there was is shown: an empty room has missed nothing before now.
    room.mark ??= 0;
    // An answer that says there is more but brings nothing would be asked for again forever.
    const more = cause === "missed" && frame.more && frame.messages.length > 0;
    if (more || room.heldOverflow) return this.nextPage(room);
    const held = room.held;
    room.held = [];
    this.complete(room, held);
  }

  /** A live room message or dm. */
  message(message: LoggedMessage): void {
    const entry = this.conversationOf(message);
    if (!entry) {
      this.highest = Math.max(this.highest, message.id);
      return this.sink.show({ kind: "message", message });
    }
    if (entry.phase !== "complete") return this.hold(entry, message);
    if (!this.isNew(entry, message)) return;
    this.sink.show({ kind: "message", message });
    this.shown(entry, message);
  }

  /** Our own message was stored: true to show it, false when a history frame has shown it already. */
  acknowledged(message: LoggedMessage): boolean {
    const entry = this.conversationOf(message);
    if (!entry) return true;
    if (!this.isNew(entry, message)) return false;
    if (entry.phase === "complete") {
      this.shown(entry, message);
    } else {
      // The mark stays until the catch-up has shown everything before it.
      entry.ahead.add(message.id);
      entry.oldest = Math.min(entry.oldest ?? message.id, message.id);
    }
    return true;
  }

  /**
   * Asks for the page before the oldest message shown in `room`; false while that cannot be
   * done: the room is not followed, is catching up, or an earlier page is still on its way.
   */
  older(room: string): boolean {
    const entry = this.rooms.get(roomKey(room));
    if (!entry || entry.olderPending || entry.phase !== "complete") return false;
    entry.olderPending = true;
    this.sink.query(entry.oldest === undefined ? { type: "history", room: entry.name } : { type: "history", room: entry.name, before: entry.oldest });
    return true;
  }

  private conversationOf(message: LoggedMessage): Conversation | undefined {
    return message.type === "dm" ? this.dms : this.rooms.get(roomKey(message.room));
  }

  private isNew(entry: Conversation, message: LoggedMessage): boolean {
    return (entry.mark === undefined || message.id > entry.mark) && !entry.ahead.has(message.id);
  }

  private shown(entry: Conversation, message: LoggedMessage): void {
    entry.mark = Math.max(entry.mark ?? 0, message.id);
    entry.oldest = Math.min(entry.oldest ?? message.id, message.id);
    this.highest = Math.max(this.highest, message.id);
  }

  private hold(entry: Conversation, message: LoggedMessage): void {
    if (entry.held.length < MAX_HELD_MESSAGES) {
      entry.held.push(message);
      return;
    }
    // Every held message is in the log after the mark: one more page brings them back.
    entry.held = [];
    entry.heldOverflow = true;
  }

  private nextPage(room: Conversation): void {
    room.phase = "paging";
    // What was held so far arrived before this query, so its answer includes it.
    room.held = [];
    room.heldOverflow = false;
    this.sink.query({ type: "history", room: room.name, after: room.mark ?? 0, limit: MAX_HISTORY_PAGE });
  }

  /** Shows what was held that the history did not, and from now on live messages as they come. */
  private complete(entry: Conversation, held: readonly LoggedMessage[]): void {
    entry.phase = "complete";
    for (const message of held) {
      if (!this.isNew(entry, message)) continue;
      this.sink.show({ kind: "message", message });
      this.shown(entry, message);
    }
    // What we sent while catching up was stored after everything the catch-up has now shown.
    for (const id of entry.ahead) entry.mark = Math.max(entry.mark ?? 0, id);
    entry.ahead.clear();
  }

  private showOlder(room: Conversation, frame: HistoryFrame): void {
    const older = frame.messages.filter((message) => room.oldest === undefined || message.id < room.oldest);
    for (const message of older) room.oldest = Math.min(room.oldest ?? message.id, message.id);
    this.sink.show({ kind: "history", frame: { ...frame, messages: older }, cause: "older" });
  }

  private restart(entry: Conversation, phase: Phase): void {
    entry.phase = phase;
    entry.held = [];
    entry.heldOverflow = false;
    entry.olderPending = false;
  }
}

function conversation(name: string): Conversation {
  return { name, mark: undefined, oldest: undefined, phase: "complete", held: [], heldOverflow: false, ahead: new Set(), olderPending: false };
}
