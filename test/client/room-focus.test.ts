// The interactive current room and unread counts, driven by the frames the session's rooms see:
// where lines go, how switching works (by name, number and cycling), and what counts as unread.

import { describe, expect, test } from "bun:test";
import { JoinedRooms } from "../../src/client/joined-rooms.ts";
import { RoomFocus } from "../../src/client/room-focus.ts";
import type { ServerFrame } from "../../src/protocol/frames.ts";

const SELF = "alice";

/** Rooms and a focus on them, fed frames as ChatClient does: rooms first, then the focus. */
function session(...names: string[]) {
  const rooms = new JoinedRooms();
  rooms.reset(names);
  const focus = new RoomFocus(rooms);
  const feed = (...frames: ServerFrame[]) => {
    for (const frame of frames) {
      rooms.apply(frame, SELF);
      focus.observe(frame);
    }
  };
  return { rooms, focus, feed };
}

const msg = (room: string, text = "hi"): ServerFrame => ({ type: "msg", id: 1, room, from: "bob", text, ts: 0 });
const joined = (room: string): ServerFrame => ({ type: "joined", room, topic: "", invite_only: false, members: [SELF], ops: [] });

describe("RoomFocus: the current room", () => {
  test("starts in the lobby when joined, else in the first room, else in none", () => {
    expect(session("#rust", "#LOBBY").focus.current).toBe("#LOBBY");
    expect(session("#rust", "#go").focus.current).toBe("#rust");
    expect(session().focus.current).toBeUndefined();
  });

  test("switches to a joined room by name, in any case, and refuses others", () => {
    const { focus } = session("#lobby", "#Rust");
    expect(focus.switchTo("#rust")).toBe(true);
    expect(focus.current).toBe("#Rust");
    expect(focus.switchTo("#go")).toBe(false);
    expect(focus.current).toBe("#Rust");
  });

  test("switches by position (from 1) and cycles in the order joined, wrapping around", () => {
    const { focus } = session("#lobby", "#rust", "#go");
    expect(focus.switchToPosition(3)).toBe(true);
    expect(focus.current).toBe("#go");
    expect(focus.switchToPosition(4)).toBe(false);
    expect(focus.current).toBe("#go");
    focus.cycle(1);
    expect(focus.current).toBe("#lobby");
    focus.cycle(-1);
    expect(focus.current).toBe("#go");
    focus.cycle(-1);
    expect(focus.current).toBe("#rust");
    expect(session().focus.cycle(1)).toBe(false);
  });

  test("a /join switches only once the server confirms it", () => {
    const { focus, feed } = session("#lobby");
    focus.switchWhenJoined("#rust");
    expect(focus.current).toBe("#lobby");
    feed(joined("#go"));
    expect(focus.current).toBe("#lobby");
    feed(joined("#Rust"));
    expect(focus.current).toBe("#Rust");
  });

  test("switching by hand cancels a switch still waiting for its join", () => {
    const { focus, feed } = session("#lobby", "#go");
    focus.switchWhenJoined("#rust");
    focus.switchTo("#go");
    feed(joined("#rust"));
    expect(focus.current).toBe("#go");
  });

  test("leaving the current room falls back to the lobby, and does not come back by itself", () => {
    const { focus, feed } = session("#lobby", "#rust");
    focus.switchTo("#rust");
    feed({ type: "parted", room: "#rust" });
    expect(focus.current).toBe("#lobby");
    feed(joined("#rust"));
    expect(focus.current).toBe("#lobby");
  });

  test("after a relogin the current room stays chosen while it is still joined", () => {
    const { rooms, focus, feed } = session("#lobby", "#rust", "#go");
    focus.switchTo("#rust");
    rooms.reset(["#go", "#rust"]);
    feed(msg("#go"));
    expect(focus.current).toBe("#rust");
    rooms.reset(["#go", "#lobby"]);
    feed(msg("#go"));
    expect(focus.current).toBe("#lobby");
  });
});

describe("RoomFocus: unread counts", () => {
  test("count live messages in rooms other than the current one, in the order joined", () => {
    const { focus, feed } = session("#lobby", "#rust", "#go");
    feed(msg("#go"), msg("#rust"), msg("#go"), msg("#lobby"));
    expect(focus.unread()).toEqual([
      { room: "#rust", count: 1 },
      { room: "#go", count: 2 },
    ]);
  });

  test("are cleared by switching to the room, however the switch happens", () => {
    const { focus, feed } = session("#lobby", "#rust", "#go");
    feed(msg("#rust"), msg("#go"));
    focus.switchTo("#rust");
    expect(focus.unread()).toEqual([{ room: "#go", count: 1 }]);
    focus.cycle(1);
    expect(focus.current).toBe("#go");
    expect(focus.unread()).toEqual([]);
  });

  test("do not count history, which was already there", () => {
    const { focus, feed } = session("#lobby", "#rust");
    feed({ type: "history", room: "#rust", more: false, messages: [msg("#rust") as Extract<ServerFrame, { type: "msg" }>] });
    expect(focus.unread()).toEqual([]);
  });

  test("are forgotten for a room that was left", () => {
    const { focus, feed } = session("#lobby", "#rust");
    feed(msg("#rust"), { type: "parted", room: "#rust" }, joined("#rust"));
    expect(focus.unread()).toEqual([]);
  });
});
