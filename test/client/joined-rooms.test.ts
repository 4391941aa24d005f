// The session's record of the user's rooms, fed the frames a server sends: which rooms, in what
// order, and what is known of each (topic, members, operators, invite-only).

import { describe, expect, test } from "bun:test";
import { JoinedRooms } from "../../src/client/joined-rooms.ts";
import type { ServerFrame } from "../../src/protocol/frames.ts";

const SELF = "alice";

function joined(room: string, extra: Partial<Extract<ServerFrame, { type: "joined" }>> = {}): ServerFrame {
  return { type: "joined", room, topic: "", invite_only: false, members: [SELF], ops: [], ...extra };
}

function fed(...frames: ServerFrame[]): JoinedRooms {
  const rooms = new JoinedRooms();
  rooms.reset(["#lobby"]);
  for (const frame of frames) rooms.apply(frame, SELF);
  return rooms;
}

describe("JoinedRooms", () => {
  test("starts from the rooms in welcome, in the server's order, with nothing known of them yet", () => {
    const rooms = new JoinedRooms();
    rooms.reset(["#lobby", "#Rust"]);
    expect(rooms.names()).toEqual(["#lobby", "#Rust"]);
    expect(rooms.has("#rust")).toBe(true);
    expect(rooms.get("#RUST")).toEqual({ name: "#Rust", topic: undefined, inviteOnly: undefined, members: new Map(), ops: new Set() });
  });

  test("a joined frame adds the room at the end, with its topic, members and operators", () => {
    const rooms = fed(joined("#Rust", { topic: "Q&A", invite_only: true, members: ["alice", "Bob"], ops: ["Bob"] }));
    expect(rooms.names()).toEqual(["#lobby", "#Rust"]);
    const rust = rooms.get("#rust")!;
    expect(rust.topic).toBe("Q&A");
    expect(rust.inviteOnly).toBe(true);
    expect([...rust.members.values()]).toEqual(["alice", "Bob"]);
    expect(rust.ops).toEqual(new Set(["bob"]));
  });

  test("a joined frame for a room already joined refreshes it in place", () => {
    const rooms = fed(joined("#rust"), joined("#go"), joined("#rust", { topic: "again" }));
    expect(rooms.names()).toEqual(["#lobby", "#rust", "#go"]);
    expect(rooms.get("#rust")!.topic).toBe("again");
  });

  test("parted removes the room", () => {
    const rooms = fed(joined("#rust"), { type: "parted", room: "#RUST" });
    expect(rooms.names()).toEqual(["#lobby"]);
    expect(rooms.has("#rust")).toBe(false);
  });

  test("join and leave notices change the member list", () => {
    const rooms = fed(
      joined("#rust", { members: ["alice", "bob"] }),
      { type: "join", room: "#rust", user: "Carol", ts: 0 },
      { type: "leave", room: "#rust", user: "BOB", ts: 0 },
    );
    expect([...rooms.get("#rust")!.members.values()]).toEqual(["alice", "Carol"]);
  });

  test("topic notices update the topic", () => {
    const rooms = fed(joined("#rust", { topic: "old" }), { type: "topic", room: "#rust", topic: "new", by: "bob", ts: 0 });
    expect(rooms.get("#rust")!.topic).toBe("new");
  });

  test("moderation notices change operators, members and the mode", () => {
    const notice = (action: Extract<ServerFrame, { type: "moderation" }>["action"], extra: object = {}): ServerFrame => ({
      type: "moderation", action, room: "#rust", by: "bob", ts: 0, ...extra,
    });
    const rooms = fed(
      joined("#rust", { members: ["alice", "bob", "eve", "mallory"], ops: ["bob"] }),
      notice("op", { user: "Eve" }),
      notice("deop", { user: "bob" }),
      notice("kick", { user: "mallory" }),
      notice("ban", { user: "eve" }),
      notice("mode", { invite_only: true }),
    );
    const rust = rooms.get("#rust")!;
    expect(rust.ops).toEqual(new Set(["eve"]));
    expect([...rust.members.values()]).toEqual(["alice", "bob"]);
    expect(rust.inviteOnly).toBe(true);
  });

  test("our own kick leaves the room only when the server says parted", () => {
    const kicked: ServerFrame = { type: "moderation", action: "kick", room: "#rust", user: "Alice", by: "bob", ts: 0 };
    const rooms = fed(joined("#rust"), kicked);
    expect(rooms.has("#rust")).toBe(true);
    rooms.apply({ type: "parted", room: "#rust" }, SELF);
    expect(rooms.has("#rust")).toBe(false);
  });

  test("a relogin keeps what is known of rooms still joined, drops the others, and adds new ones", () => {
    const rooms = fed(joined("#rust", { topic: "Q&A" }), joined("#go"));
    rooms.reset(["#go", "#lobby", "#rust", "#new"]);
    expect(rooms.names()).toEqual(["#lobby", "#rust", "#go", "#new"]);
    expect(rooms.get("#rust")!.topic).toBe("Q&A");
    rooms.reset(["#rust"]);
    expect(rooms.names()).toEqual(["#rust"]);
  });

  test("names that are not room names are never taken in", () => {
    const rooms = new JoinedRooms();
    rooms.reset(["#lobby", "#r\u202eoom", "lobby", ""]);
    rooms.apply(joined("#\u001b[2J"), SELF);
    expect(rooms.names()).toEqual(["#lobby"]);
  });

  test("frames about rooms not joined change nothing", () => {
    const rooms = fed(
      { type: "join", room: "#elsewhere", user: "bob", ts: 0 },
      { type: "topic", room: "#elsewhere", topic: "t", by: "bob", ts: 0 },
      { type: "moderation", action: "op", room: "#elsewhere", user: "bob", by: "op", ts: 0 },
      { type: "parted", room: "#elsewhere" },
    );
    expect(rooms.names()).toEqual(["#lobby"]);
  });
});
