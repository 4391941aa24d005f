// Rooms end to end: join, part, say, rooms, who, topic and invite-only rooms, with the error
// codes of each, and the caps on how many rooms there may be.

import { describe, expect, test } from "bun:test";
import { startTestServer } from "../helpers/server.ts";
import { joinRoom, moderate, newUsers, partRoom } from "./rooms-support.ts";
import { connect, errorFor, expectUsable, newUser, sibling } from "./support.ts";

const INVALID_ROOM_NAMES = ["rust", "#", `#${"a".repeat(33)}`, "#two words", "#café", "#a.b", ""];

describe("login", () => {
  test("a new account is in #lobby: welcome lists it and its history follows", async () => {
    await using server = await startTestServer();
    const alice = await connect(server);
    await alice.register("alice", "pw-alice-secret");
    alice.send({ type: "login", user: "alice", password: "pw-alice-secret" });
    expect((await alice.next("welcome")).rooms).toEqual(["#lobby"]);
    expect(await alice.next("history")).toEqual({ type: "history", room: "#lobby", messages: [], more: false });
  });
});

describe("join", () => {
  test("joining a room that does not exist creates it with the joiner as operator; history follows joined", async () => {
    await using server = await startTestServer();
    const [alice] = await newUsers(server, "alice");

    alice.send({ type: "join", room: "#Rust" });
    const joined = await alice.next("joined");
    expect(joined).toEqual({ type: "joined", room: "#Rust", topic: "", invite_only: false, members: ["alice"], ops: ["alice"] });
    const history = await alice.next("history");
    expect(history).toEqual({ type: "history", room: "#Rust", messages: [], more: false });
    expect(alice.received.indexOf(history)).toBe(alice.received.indexOf(joined) + 1);
  });

  test("others in the room get join with the room; the joiner's other connections get joined; outsiders get nothing", async () => {
    await using server = await startTestServer();
    const [alice, carol] = await newUsers(server, "alice", "carol");
    const bob = await newUser(server, "bob");
    const bobElsewhere = (await sibling(server, "bob", bob.token)).client;
    await joinRoom(alice, "#Rust");

    const before = Date.now();
    const joined = await joinRoom(bob.client, "#RUST");
    expect(joined).toMatchObject({ room: "#Rust", members: ["alice", "bob"], ops: ["alice"] });
    expect(await bobElsewhere.next("joined")).toEqual(joined);

    const notice = await alice.next("join");
    expect(notice).toMatchObject({ type: "join", room: "#Rust", user: "bob" });
    expect(notice.ts).toBeGreaterThanOrEqual(before - 1_000);
    await carol.sync();
    expect(carol.take("join")).toEqual([]);
  });

  test("joining a room one is already in answers that connection again and tells nobody", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#rust");
    await joinRoom(bob, "#rust");
    await alice.next("join");

    expect(await joinRoom(bob, "#rust")).toMatchObject({ members: ["alice", "bob"] });
    await alice.sync();
    expect(alice.take("join")).toEqual([]);
  });

  test("a name that is not # and 1-32 of letters, digits, _ and - is invalid_room", async () => {
    await using server = await startTestServer();
    const [alice] = await newUsers(server, "alice");
    for (const room of INVALID_ROOM_NAMES) {
      expect(await errorFor(alice, { type: "join", room })).toBe("invalid_room");
    }
    expect((await joinRoom(alice, `#${"a".repeat(32)}`)).room).toBe(`#${"a".repeat(32)}`);
    expect((await joinRoom(alice, "#A_b-9")).room).toBe("#A_b-9");
  });
});

describe("part", () => {
  test("parted goes to all the user's connections, leave with the room to the others, and the room is closed to them", async () => {
    await using server = await startTestServer();
    const [alice] = await newUsers(server, "alice");
    const bob = await newUser(server, "bob");
    const bobElsewhere = (await sibling(server, "bob", bob.token)).client;
    await joinRoom(alice, "#rust");
    await joinRoom(bob.client, "#rust");

    await partRoom(bob.client, "#rust");
    expect(await bobElsewhere.next("parted")).toEqual({ type: "parted", room: "#rust" });
    expect(await alice.next("leave")).toMatchObject({ type: "leave", room: "#rust", user: "bob" });

    expect(await errorFor(bob.client, { type: "say", room: "#rust", text: "still here?" })).toBe("not_in_room");
    alice.send({ type: "say", room: "#rust", text: "gone" });
    await alice.sync();
    await bobElsewhere.sync();
    expect(bobElsewhere.take("msg")).toEqual([]);
  });

  test("parting #lobby is allowed; then a say without a room is not_in_room", async () => {
    await using server = await startTestServer();
    const [alice] = await newUsers(server, "alice");
    await partRoom(alice, "#lobby");
    expect(await errorFor(alice, { type: "say", text: "hello?" })).toBe("not_in_room");
    await expectUsable(alice);
  });

  test("parting a room one is not in is not_in_room; an unknown one no_such_room; a bad name invalid_room", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#rust");

    expect(await errorFor(bob, { type: "part", room: "#rust" })).toBe("not_in_room");
    expect(await errorFor(bob, { type: "part", room: "#nowhere" })).toBe("no_such_room");
    expect(await errorFor(bob, { type: "part", room: "nowhere" })).toBe("invalid_room");
  });
});

describe("say", () => {
  test("with a room reaches that room's members, as msg with the room; without one it goes to #lobby", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await newUsers(server, "alice", "bob", "carol");
    await joinRoom(alice, "#Rust");
    await joinRoom(bob, "#rust");

    alice.send({ type: "say", room: "#RUST", text: "borrowck" });
    expect(await bob.next("msg")).toMatchObject({ type: "msg", room: "#Rust", from: "alice", text: "borrowck" });
    alice.send({ type: "say", text: "hello everyone" });
    expect(await carol.next("msg")).toMatchObject({ room: "#lobby", from: "alice", text: "hello everyone" });
    expect(carol.received.filter((frame) => frame.type === "msg")).toHaveLength(1);
  });

  test("a room one is not in is not_in_room, an unknown room no_such_room, a bad name invalid_room", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#rust");

    expect(await errorFor(bob, { type: "say", room: "#rust", text: "hi" })).toBe("not_in_room");
    expect(await errorFor(bob, { type: "say", room: "#nowhere", text: "hi" })).toBe("no_such_room");
    for (const room of INVALID_ROOM_NAMES) {
      expect(await errorFor(bob, { type: "say", room, text: "hi" })).toBe("invalid_room");
    }
    await alice.sync();
    expect(alice.take("msg")).toEqual([]);
  });

  test("a room's history, sent on join, holds what was said there and nothing from elsewhere", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#rust");
    alice.send({ type: "say", room: "#rust", text: "first" });
    alice.send({ type: "say", text: "in the lobby" });
    alice.send({ type: "say", room: "#rust", text: "second" });
    await alice.sync();

    bob.send({ type: "join", room: "#rust" });
    await bob.next("joined");
    const history = await bob.next("history");
    expect(history.room).toBe("#rust");
    expect(history.messages.map((message: { text: string }) => message.text)).toEqual(["first", "second"]);
  });
});

describe("rooms", () => {
  test("lists rooms in name order with their member counts and topics", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#Rust");
    await joinRoom(bob, "#rust");
    await joinRoom(bob, "#go");
    alice.send({ type: "topic", room: "#rust", topic: "memory safety" });
    await bob.next("topic");

    bob.send({ type: "rooms" });
    expect(await bob.next("rooms")).toEqual({
      type: "rooms",
      rooms: [
        { room: "#go", members: 1, topic: "" },
        { room: "#lobby", members: 2, topic: "" },
        { room: "#Rust", members: 2, topic: "memory safety" },
      ],
      more: false,
    });
  });

  test("pages with limit and after, saying more while visible rooms remain; invite-only rooms only to their members", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    for (const room of ["#r1", "#r2", "#r3", "#secret"]) await joinRoom(alice, room);
    await moderate(alice, { type: "mode", room: "#secret", invite_only: true });

    const page = async (frame: object) => {
      bob.send({ type: "rooms", ...frame });
      const reply = await bob.next("rooms");
      return { rooms: reply.rooms.map((entry: { room: string }) => entry.room), more: reply.more };
    };
    expect(await page({ limit: 2 })).toEqual({ rooms: ["#lobby", "#r1"], more: true });
    expect(await page({ after: "#r1", limit: 2 })).toEqual({ rooms: ["#r2", "#r3"], more: false });
    expect(await page({ after: "#R3" })).toEqual({ rooms: [], more: false });

    alice.send({ type: "rooms", after: "#r3" });
    expect((await alice.next("rooms")).rooms).toEqual([{ room: "#secret", members: 1, topic: "" }]);
  });

  test("a limit outside 1-1000 is bad_frame", async () => {
    await using server = await startTestServer();
    const [alice] = await newUsers(server, "alice");
    for (const limit of [0, 1001, 2.5, "10"]) expect(await errorFor(alice, { type: "rooms", limit })).toBe("bad_frame");
  });
});

describe("who", () => {
  test("without a room lists everyone online, whatever rooms they are in", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await partRoom(bob, "#lobby");

    alice.send({ type: "who" });
    const who = await alice.next("who");
    expect(who.room).toBeUndefined();
    expect([...who.users].sort()).toEqual(["alice", "bob"]);
    expect(who.more).toBe(false);
  });

  test("with a room lists that room's members who are online", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await newUsers(server, "alice", "bob", "carol");
    await joinRoom(alice, "#rust");
    await joinRoom(bob, "#rust");
    await bob.close();
    await alice.next("offline");

    carol.send({ type: "who", room: "#RUST" });
    expect(await carol.next("who")).toEqual({ type: "who", room: "#rust", users: ["alice"], more: false });
  });

  test("an invite-only room is not_in_room to outsiders; an unknown room no_such_room", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#secret");
    await moderate(alice, { type: "mode", room: "#secret", invite_only: true });

    expect(await errorFor(bob, { type: "who", room: "#secret" })).toBe("not_in_room");
    expect(await errorFor(bob, { type: "who", room: "#nowhere" })).toBe("no_such_room");
    expect(await errorFor(bob, { type: "who", room: "secret" })).toBe("invalid_room");
  });
});

describe("topic", () => {
  test("an operator sets it: everyone in the room gets topic with who set it, and joined and rooms show it", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await newUsers(server, "alice", "bob", "carol");
    await joinRoom(alice, "#rust");
    await joinRoom(bob, "#rust");

    alice.send({ type: "topic", room: "#rust", topic: "fearless concurrency" });
    const topic = await bob.next("topic");
    expect(topic).toMatchObject({ type: "topic", room: "#rust", topic: "fearless concurrency", by: "alice" });
    expect(typeof topic.ts).toBe("number");
    expect(await alice.next("topic")).toEqual(topic);
    await carol.sync();
    expect(carol.take("topic")).toEqual([]);

    expect((await joinRoom(carol, "#rust")).topic).toBe("fearless concurrency");
  });

  test("anyone else gets not_allowed and the topic stays", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#rust");
    await joinRoom(bob, "#rust");

    expect(await errorFor(bob, { type: "topic", room: "#rust", topic: "go is better" })).toBe("not_allowed");
    bob.send({ type: "rooms" });
    expect((await bob.next("rooms")).rooms.find((entry: { room: string }) => entry.room === "#rust").topic).toBe("");
  });

  test("a topic over 300 characters is refused; 300 are accepted", async () => {
    await using server = await startTestServer();
    const [alice] = await newUsers(server, "alice");
    await joinRoom(alice, "#rust");

    expect(await errorFor(alice, { type: "topic", room: "#rust", topic: "x".repeat(301) })).toBe("invalid_text");
    alice.send({ type: "topic", room: "#rust", topic: "x".repeat(300) });
    expect((await alice.next("topic")).topic).toHaveLength(300);
  });
});

describe("invite-only rooms", () => {
  test("the uninvited get not_allowed; an invited user hears of it, may join once, and the room is announced as such", async () => {
    await using server = await startTestServer();
    const [alice, bob, carol] = await newUsers(server, "alice", "bob", "carol");
    await joinRoom(alice, "#secret");

    const mode = await moderate(alice, { type: "mode", room: "#secret", invite_only: true });
    expect(mode).toMatchObject({ type: "moderation", action: "mode", room: "#secret", invite_only: true, by: "alice" });
    expect(await errorFor(bob, { type: "join", room: "#secret" })).toBe("not_allowed");

    alice.send({ type: "invite", room: "#secret", user: "bob" });
    expect(await bob.next("moderation")).toMatchObject({ action: "invite", room: "#secret", user: "bob", by: "alice" });
    expect(await joinRoom(bob, "#secret")).toMatchObject({ invite_only: true, members: ["alice", "bob"] });
    expect(await errorFor(carol, { type: "join", room: "#secret" })).toBe("not_allowed");
  });

  test("only an operator may change the mode or invite", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#secret");
    await joinRoom(bob, "#secret");

    expect(await errorFor(bob, { type: "mode", room: "#secret", invite_only: true })).toBe("not_allowed");
    expect(await errorFor(bob, { type: "invite", room: "#secret", user: "carol" })).toBe("not_allowed");
  });
});

describe("room caps", () => {
  test("a user in maxRoomsPerUser rooms gets too_many_rooms and can join again after parting one", async () => {
    await using server = await startTestServer({ limits: { maxRoomsPerUser: 2 } });
    const [alice] = await newUsers(server, "alice");
    await joinRoom(alice, "#one");

    expect(await errorFor(alice, { type: "join", room: "#two" })).toBe("too_many_rooms");
    await partRoom(alice, "#one");
    await joinRoom(alice, "#two");
  });

  test("a server with maxRooms rooms creates no more, but its rooms can still be joined", async () => {
    await using server = await startTestServer({ limits: { maxRooms: 2 } });
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#only");

    expect(await errorFor(bob, { type: "join", room: "#another" })).toBe("too_many_rooms");
    await joinRoom(bob, "#only");
  });

  test("a user who created maxRoomsCreatedPerUser rooms creates no more, even after leaving them; others still can", async () => {
    await using server = await startTestServer({ limits: { maxRoomsCreatedPerUser: 1 } });
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await joinRoom(alice, "#mine");
    await partRoom(alice, "#mine");

    expect(await errorFor(alice, { type: "join", room: "#another" })).toBe("too_many_rooms");
    await joinRoom(bob, "#another");
    await joinRoom(alice, "#another");
  });
});
