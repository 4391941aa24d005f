// The message log: every accepted room message gets a server-wide id and is kept for history.
// This is the in-memory log (recent messages per room, bounded by count and encoded size); the
// durable log replaces it behind the same interface.

import type { RoomMessage } from "../protocol/frames.ts";

/** JSON punctuation, field names, the type, id and timestamp of one encoded msg frame, at most. */
const MSG_FRAME_OVERHEAD_BYTES = 96;

/**
 * An upper bound of the message's encoded size without encoding it again (the relay already
 * did once): texts have no control characters, so a UTF-16 unit costs at most 3 bytes.
 */
function encodedSizeBound(message: RoomMessage): number {
  return MSG_FRAME_OVERHEAD_BYTES + message.room.length + message.from.length * 3 + message.text.length * 3;
}

export interface MessageLog {
  /** Assigns the next id and keeps the message for the room's history. */
  append(room: string, message: Omit<RoomMessage, "id">): RoomMessage;
  /** The room's most recent messages, oldest first, within the log's bounds. */
  recent(room: string): RoomMessage[];
  /** Forgets a removed room. */
  drop(room: string): void;
}

export interface MemoryLogOptions {
  /** Messages kept per room. */
  perRoom: number;
  /** Encoded bytes kept per room: the history frame must fit a connection's outbound allowance. */
  perRoomBytes: number;
}

interface Ring {
  entries: Array<{ message: RoomMessage; bytes: number }>;
  bytes: number;
}

export class MemoryMessageLog implements MessageLog {
  private readonly rooms = new Map<string, Ring>();
  private nextId = 1;

  constructor(private readonly options: MemoryLogOptions) {}

  append(room: string, fields: Omit<RoomMessage, "id">): RoomMessage {
    const message: RoomMessage = { type: "msg", id: this.nextId++, room: fields.room, from: fields.from, text: fields.text, ts: fields.ts };
    let ring = this.rooms.get(room);
    if (!ring) this.rooms.set(room, (ring = { entries: [], bytes: 0 }));
    const bytes = encodedSizeBound(message);
    ring.entries.push({ message, bytes });
    ring.bytes += bytes;
    while (ring.entries.length > this.options.perRoom || ring.bytes > this.options.perRoomBytes) {
      ring.bytes -= ring.entries.shift()!.bytes;
    }
    return message;
  }

  recent(room: string): RoomMessage[] {
    return this.rooms.get(room)?.entries.map((entry) => entry.message) ?? [];
  }

  drop(room: string): void {
    this.rooms.delete(room);
  }
}
