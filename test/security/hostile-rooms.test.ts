// Attacks on rooms and moderation: creating and joining rooms in loops past every cap, join/part
// flapping, room names that look alike, differ in case, carry control characters or are special
// to JavaScript, moderation frames naming invalid users, members without privilege trying every
// operator action, an operator turning on an administrator, kicked and banned members racing to
// say and rejoin, and a user banned server-wide coming back with an old token. Each meets a clear
// error code; bystanders chat on and the server keeps serving.

import { describe, expect, test } from "bun:test";
import type { Frame, TestClient } from "../helpers/client.ts";
import { Bystanders, errorCodesOf, expectAftermath, hostile, loggedInHostile } from "../helpers/hostile.ts";
import { startTestServer } from "../helpers/server.ts";
import { joinRoom, moderate, newUsers, partRoom } from "../server/rooms-support.ts";
import { closedWithin, connect, errorFor, expectUsable, newUser, sibling } from "../server/support.ts";

const MODERATION_ACTIONS = ["kick", "ban", "unban", "mute", "unmute", "op", "deop", "invite"] as const;
/** Message and frame allowances high enough that only the rule under attack answers. */
const GENEROUS_RATES = { messageRatePerSec: 1_000, messageBurst: 1_000 };

/** Joins `room`, returning "joined" (its history read too) or the error code. */
async function tryJoin(client: TestClient, room: string): Promise<string> {
  client.send({ type: "join", room });
  const reply = await client.nextOf(["joined", "error"]);
  if (reply.type === "error") return reply.code;
  await client.next("history");
  return "joined";
}

/** Every room on the server, as one user may list them. */
async function roomNames(client: TestClient): Promise<string[]> {
  client.send({ type: "rooms", limit: 1_000 });
  const reply = await client.next("rooms");
  expect(reply.more).toBe(false);
  return reply.rooms.map((room: Frame) => room.room);
}

/** The next room message in `room`, passing over the bystanders' traffic in #lobby. */
async function nextIn(client: TestClient, room: string): Promise<Frame> {
  for (;;) {
    const message = await client.next("msg");
    if (message.room === room) return message;
  }
}

describe("room spam", () => {
  test("a user creating rooms in a loop gets 10 (maxRoomsCreatedPerUser), then too_many_rooms; parting them does not give the quota back", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [spammer] = await newUsers(server, "spammer");
    await bystanders.during(async () => {
      const outcomes: string[] = [];
      for (let i = 0; i < 40; i++) outcomes.push(await tryJoin(spammer, `#spam${i}`));
      expect(outcomes).toEqual([...Array(10).fill("joined"), ...Array(30).fill("too_many_rooms")]);
      for (let i = 0; i < 10; i++) await partRoom(spammer, `#spam${i}`);
      expect(await tryJoin(spammer, "#spam-again")).toBe("too_many_rooms");
    });
    expect((await roomNames(bystanders.receiver)).filter((room) => room.startsWith("#spam"))).toHaveLength(10);
    await expectAftermath(server, bystanders, ["spammer"]);
  });

  test("four users creating rooms at once fill maxRooms and no more, for an administrator too; existing rooms stay joinable", async () => {
    await using server = await startTestServer({ limits: { maxRooms: 25 }, admins: ["root"] });
    await using bystanders = await Bystanders.start(server);
    const creators = await newUsers(server, "maker0", "maker1", "maker2", "maker3");
    const [root] = await newUsers(server, "root");
    await bystanders.during(async () => {
      const outcomes = await Promise.all(
        creators.map(async (creator, c) => {
          const mine: string[] = [];
          for (let i = 0; i < 10; i++) mine.push(await tryJoin(creator, `#m${c}-${i}`));
          return mine;
        }),
      );
      const all = outcomes.flat();
      // #lobby is one of the 25.
      expect(all.filter((outcome) => outcome === "joined")).toHaveLength(24);
      expect(all.filter((outcome) => outcome !== "joined")).toEqual(Array(16).fill("too_many_rooms"));
      expect(await tryJoin(root!, "#admin-room")).toBe("too_many_rooms");
    });
    const rooms = await roomNames(bystanders.receiver);
    expect(rooms).toHaveLength(25);
    expect(await tryJoin(bystanders.receiver, rooms.find((room) => room !== "#lobby")!)).toBe("joined");
    await expectAftermath(server, bystanders, ["maker0", "maker1", "maker2", "maker3", "root"]);
  });

  test("a user in 100 rooms (maxRoomsPerUser) gets too_many_rooms for the 101st, new or existing; the next login brings all 100 with their histories", async () => {
    // Ten creators make the hundred rooms the joiner walks into.
    await using server = await startTestServer({ limits: GENEROUS_RATES });
    await using bystanders = await Bystanders.start(server);
    const creators = await newUsers(server, ...Array.from({ length: 10 }, (_, c) => `creator${c}`));
    for (const [c, creator] of creators.entries()) for (let i = 0; i < 10; i++) await joinRoom(creator, `#c${c}-${i}`);
    const joiner = await newUser(server, "joiner");
    await bystanders.during(async () => {
      const outcomes: string[] = [];
      for (let c = 0; c < 10; c++) for (let i = 0; i < 10; i++) outcomes.push(await tryJoin(joiner.client, `#c${c}-${i}`));
      // #lobby plus 99 of them make 100.
      expect(outcomes).toEqual([...Array(99).fill("joined"), "too_many_rooms"]);
      expect(await tryJoin(joiner.client, "#brand-new")).toBe("too_many_rooms");
    });
    const again = await connect(server);
    again.send({ type: "resume", user: "joiner", token: joiner.token });
    const welcome = await again.next("welcome");
    expect(welcome.rooms).toHaveLength(100);
    for (const room of welcome.rooms) expect((await again.next("history")).room).toBe(room);
    await expectUsable(again);
    await expectAftermath(server, bystanders, ["joiner", ...creators.map((_, c) => `creator${c}`)]);
  }, 20_000);

  test("300 joins in one write: 64 wait while the first is stored, the next closes the connection with rate_limited; the caps hold", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    await bystanders.during(async () => {
      await using flooder = await loggedInHostile(server, "flooder");
      flooder.write(Array.from({ length: 300 }, (_, i) => JSON.stringify({ type: "join", room: `#flood${i}` }) + "\n").join(""));
      await flooder.waitClosed(5_000);
      expect(errorCodesOf(flooder).at(-1)).toBe("rate_limited");
      expect(flooder.frames.filter((frame) => frame.type === "joined").length).toBeLessThanOrEqual(10);
    });
    expect((await roomNames(bystanders.receiver)).filter((room) => room.startsWith("#flood")).length).toBeLessThanOrEqual(10);
    await expectAftermath(server, bystanders, ["flooder"]);
  });

  test("join/part flapping as fast as round trips allow: the flapper meets rate_limited, and the room hears no more than the frame allowance let through", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [watcher, flapper] = await newUsers(server, "watcher", "flapper");
    await joinRoom(watcher, "#busy");
    const started = performance.now();
    const outcomes = await bystanders.during(async () => {
      const seen: string[] = [];
      for (let cycle = 0; cycle < 150 && !flapper.isClosed; cycle++) {
        flapper.send({ type: "join", room: "#busy" });
        const joined = await flapper.nextOf(["joined", "error"]).catch(() => undefined);
        if (joined?.type === "joined") await flapper.next("history");
        flapper.send({ type: "part", room: "#busy" });
        const parted = await flapper.nextOf(["parted", "error"]).catch(() => undefined);
        seen.push(joined?.type === "error" ? joined.code : "joined", parted?.type === "error" ? parted.code : "parted");
      }
      return seen;
    });
    const seconds = (performance.now() - started) / 1_000;
    expect(outcomes).toContain("rate_limited");
    expect(new Set(outcomes.filter((outcome) => outcome !== "joined" && outcome !== "parted"))).toEqual(
      new Set(["rate_limited", ...(outcomes.includes("not_in_room") ? ["not_in_room"] : [])]),
    );
    await watcher.sync();
    const notices = [...watcher.take("join"), ...watcher.take("leave")].filter((notice) => notice.user === "flapper");
    // Burst 100, then 50 frames a second; each accepted frame is at most one notice.
    expect(notices.length).toBeLessThanOrEqual(100 + Math.ceil(50 * seconds));
    await expectUsable(watcher);
    await expectAftermath(server, bystanders, ["watcher", "flapper"]);
  });
});

describe("room names", () => {
  test("case variants are one room, shown as created, with its creator alone as operator", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice, mallory] = await newUsers(server, "alice", "mallory");
    await joinRoom(alice!, "#Rust");
    await bystanders.during(async () => {
      for (const variant of ["#rust", "#RUST", "#rUsT", "#Rust"]) {
        mallory!.send({ type: "join", room: variant });
        expect(await mallory!.next("joined")).toMatchObject({ room: "#Rust", members: ["alice", "mallory"], ops: ["alice"] });
        await mallory!.next("history");
      }
      expect(await errorFor(mallory!, { type: "topic", room: "#RUST", topic: "mine now" })).toBe("not_allowed");
      expect(await errorFor(mallory!, { type: "kick", room: "#rust", user: "alice" })).toBe("not_allowed");
      alice!.send({ type: "say", room: "#rUST", text: "one room" });
      expect(await nextIn(mallory!, "#Rust")).toMatchObject({ from: "alice", text: "one room" });
    });
    expect((await roomNames(mallory!)).filter((room) => room.toLowerCase() === "#rust")).toEqual(["#Rust"]);
    await expectAftermath(server, bystanders, ["alice", "mallory"]);
  });

  test("look-alikes, control characters, 33 characters, spaces and a missing # are invalid_room in every frame that names a room; nothing is created", async () => {
    await using server = await startTestServer({ limits: GENEROUS_RATES });
    await using bystanders = await Bystanders.start(server);
    const [alice] = await newUsers(server, "alice");
    await joinRoom(alice!, "#rust");
    const tricks: Array<[string, string]> = [
      ["33 characters", `#${"a".repeat(33)}`],
      ["only #", "#"],
      ["no #", "rust"],
      ["two #", "##rust"],
      ["empty", ""],
      ["space", "#ru st"],
      ["trailing space", "#rust "],
      ["trailing newline", "#rust\n"],
      ["NUL", "#rust\u0000"],
      ["escape sequence", "#\u001b[31mrust"],
      ["DEL", "#rust\u007f"],
      ["C1 control", "#rust\u0085"],
      ["Cyrillic r", "#\u0440ust"],
      ["fullwidth r", "#\uff52ust"],
      ["zero-width space", "#rust\u200b"],
      ["long s (lowercases to s)", "#ru\u017ft"],
      ["Kelvin sign (lowercases to k)", "#\u212aotlin"],
      ["dotted capital I", "#\u0130rc"],
      ["combining acute", "#ruste\u0301"],
      ["emoji", "#🦀"],
      ["slash", "#ru/st"],
      ["dot", "#ru.st"],
      ["colon", "#dm:alice:bob"],
      ["at", "@dm"],
    ];
    const frames = (room: string): object[] => [
      { type: "join", room },
      { type: "part", room },
      { type: "say", room, text: "hello" },
      { type: "history", room },
      { type: "search", room, query: "hello" },
      { type: "who", room },
      { type: "topic", room, topic: "t" },
      { type: "mode", room, invite_only: true },
      { type: "kick", room, user: "alice" },
      { type: "ban", room, user: "alice" },
    ];
    await bystanders.during(async () => {
      for (const [what, room] of tricks) {
        for (const frame of frames(room)) {
          const type = (frame as { type: string }).type;
          expect({ what, type, code: await errorFor(alice!, frame) }).toEqual({ what, type, code: "invalid_room" });
        }
      }
      // 32 characters is the longest name.
      expect(await tryJoin(alice!, `#${"a".repeat(32)}`)).toBe("joined");
    });
    expect(await roomNames(alice!)).toEqual([`#${"a".repeat(32)}`, "#lobby", "#rust"]);
    await expectAftermath(server, bystanders, ["alice"]);
  });

  test("JavaScript-special names (#__proto__, #constructor, #hasOwnProperty, #toString, #prototype, #valueOf) are ordinary, separate rooms", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice, bob] = await newUsers(server, "alice", "bob");
    const special = ["#__proto__", "#constructor", "#hasOwnProperty", "#toString", "#prototype", "#valueOf"];
    await bystanders.during(async () => {
      for (const room of special) {
        alice!.send({ type: "join", room });
        expect(await alice!.next("joined")).toMatchObject({ room, members: ["alice"], ops: ["alice"], topic: "" });
        await alice!.next("history");
      }
      await joinRoom(bob!, "#__PROTO__");
      alice!.send({ type: "say", room: "#constructor", text: "only the constructor room" });
      alice!.send({ type: "say", room: "#__proto__", text: "only the proto room" });
      expect(await nextIn(bob!, "#__proto__")).toMatchObject({ text: "only the proto room" });
      alice!.send({ type: "who", room: "#hasOwnProperty" });
      expect(await alice!.next("who")).toMatchObject({ room: "#hasOwnProperty", users: ["alice"] });
    });
    await bob!.sync();
    expect(bob!.take("msg").filter((message) => message.room === "#constructor")).toEqual([]);
    alice!.send({ type: "rooms" });
    const listed = (await alice!.next("rooms")).rooms;
    for (const room of special) expect(listed).toContainEqual({ room, members: room === "#__proto__" ? 2 : 1, topic: "" });
    expect(Object.keys(Object.prototype)).toEqual([]);
    await expectAftermath(server, bystanders, ["alice", "bob"]);
  });

  test("moderation frames naming a look-alike, a control character, an over-long name or a non-string reach nobody; a case variant is the same user", async () => {
    await using server = await startTestServer({ limits: GENEROUS_RATES, admins: ["root"] });
    await using bystanders = await Bystanders.start(server);
    const [alice, bob, root] = await newUsers(server, "alice", "bob", "root");
    await joinRoom(alice!, "#rust");
    await joinRoom(bob!, "#rust");
    const invalid = ["\u0432ob", "b\u043eb", "bob\u200b", "bob\u0000", "bob\n", "\u001b[2Jbob", "bo b", "", "b".repeat(33), "b".repeat(10_000), "#rust"];
    const nonStrings: unknown[] = [5, null, true, ["bob"], { $ne: 1 }];
    await bystanders.during(async () => {
      for (const type of MODERATION_ACTIONS) {
        for (const user of invalid) {
          expect({ type, user: user.slice(0, 20), code: await errorFor(alice!, { type, room: "#rust", user }) }).toEqual({ type, user: user.slice(0, 20), code: "invalid_user" });
        }
        for (const user of nonStrings) {
          expect({ type, user, code: await errorFor(alice!, { type, room: "#rust", user }) }).toEqual({ type, user, code: "bad_frame" });
        }
      }
      for (const user of invalid) {
        expect({ user: user.slice(0, 20), code: await errorFor(root!, { type: "ban", scope: "server", user }) }).toEqual({ user: user.slice(0, 20), code: "invalid_user" });
      }
    });
    // None of it touched bob: no notice, still a member who can speak.
    await bob!.sync();
    expect(bob!.take("moderation")).toEqual([]);
    expect(bob!.isClosed).toBe(false);
    bob!.send({ type: "say", room: "#rust", text: "still here" });
    expect(await nextIn(alice!, "#rust")).toMatchObject({ from: "bob", text: "still here" });
    expect(server.logs.filter((entry) => entry.event === "moderation")).toEqual([]);
    // A case variant names bob himself.
    expect(await moderate(alice!, { type: "kick", room: "#rust", user: "BOB" })).toMatchObject({ action: "kick", user: "bob" });
    expect(await bob!.next("parted")).toEqual({ type: "parted", room: "#rust" });
    await expectAftermath(server, bystanders, ["alice", "bob", "root"]);
  });
});

describe("privilege", () => {
  test("an outsider, a plain member, an ex-operator and a kicked member try every operator action, topic, mode and a server-wide ban: not_allowed, and the room hears nothing", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const [alice, bob, dave, erin, mallory] = await newUsers(server, "alice", "bob", "dave", "erin", "mallory");
    await joinRoom(alice!, "#rust");
    for (const member of [bob!, dave!, erin!]) await joinRoom(member, "#rust");
    await moderate(alice!, { type: "op", room: "#rust", user: "dave" });
    await partRoom(dave!, "#rust");
    await joinRoom(dave!, "#rust"); // no longer an operator
    await moderate(alice!, { type: "kick", room: "#rust", user: "erin" });
    for (const client of [alice!, bob!, dave!]) {
      await client.sync();
      client.take("moderation");
    }
    const attackers: Array<[string, TestClient]> = [
      ["outsider", mallory!],
      ["member", bob!],
      ["ex-operator", dave!],
      ["kicked", erin!],
    ];
    await bystanders.during(async () => {
      for (const [who, client] of attackers) {
        for (const type of MODERATION_ACTIONS) {
          for (const user of ["alice", "bob", who === "outsider" ? "mallory" : "dave"]) {
            expect({ who, type, user, code: await errorFor(client, { type, room: "#rust", user }) }).toEqual({ who, type, user, code: "not_allowed" });
          }
        }
        expect({ who, code: await errorFor(client, { type: "topic", room: "#rust", topic: "taken over" }) }).toEqual({ who, code: "not_allowed" });
        expect({ who, code: await errorFor(client, { type: "mode", room: "#rust", invite_only: true }) }).toEqual({ who, code: "not_allowed" });
        expect({ who, code: await errorFor(client, { type: "ban", scope: "server", user: "alice" }) }).toEqual({ who, code: "not_allowed" });
        expect({ who, code: await errorFor(client, { type: "unban", scope: "server", user: "alice" }) }).toEqual({ who, code: "not_allowed" });
      }
    });
    for (const client of [alice!, bob!, dave!]) {
      await client.sync();
      expect(client.take("moderation")).toEqual([]);
      expect(client.take("topic")).toEqual([]);
    }
    expect(server.logs.filter((entry) => entry.event === "moderation")).toHaveLength(2); // alice's op and kick
    // alice is still the operator, the room still open and still as it was.
    alice!.send({ type: "topic", room: "#rust", topic: "still alice's" });
    expect(await bob!.next("topic")).toMatchObject({ topic: "still alice's", by: "alice" });
    mallory!.send({ type: "join", room: "#rust" });
    expect(await mallory!.next("joined")).toMatchObject({ room: "#rust", ops: ["alice"], invite_only: false, members: ["alice", "bob", "dave", "mallory"] });
    await expectAftermath(server, bystanders, ["alice", "bob", "dave", "erin", "mallory"]);
  });

  test("an operator turning on an administrator: kick, ban, mute, unban, unmute and deop are not_allowed whatever the name's case; a server-wide ban too", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    await using bystanders = await Bystanders.start(server);
    const [alice, root, carol] = await newUsers(server, "alice", "root", "carol");
    await joinRoom(alice!, "#rust");
    await joinRoom(root!, "#rust");
    await joinRoom(carol!, "#rust");
    await bystanders.during(async () => {
      for (const type of ["kick", "ban", "mute", "unban", "unmute", "deop"]) {
        for (const user of ["root", "ROOT", "Root"]) {
          expect({ type, user, code: await errorFor(alice!, { type, room: "#rust", user }) }).toEqual({ type, user, code: "not_allowed" });
        }
      }
      expect(await errorFor(alice!, { type: "ban", room: "#rust", user: "root", seconds: 1 })).toBe("not_allowed");
      expect(await errorFor(alice!, { type: "ban", scope: "server", user: "root" })).toBe("not_allowed");
      // Promoting is allowed: it takes nothing from the administrator.
      expect(await moderate(alice!, { type: "op", room: "#rust", user: "Root" })).toMatchObject({ action: "op", user: "root" });
    });
    await carol!.sync();
    expect(carol!.take("moderation").map((notice) => notice.action)).toEqual(["op"]);
    root!.send({ type: "say", room: "#rust", text: "still here" });
    expect(await nextIn(carol!, "#rust")).toMatchObject({ from: "root", text: "still here" });
    await expectAftermath(server, bystanders, ["alice", "root", "carol"]);
  });

  for (const action of ["ban", "kick"] as const) {
    test(`a member being ${action === "ban" ? "banned" : "kicked"} while racing to say and rejoin: each say is acked and relayed once, or refused and never relayed`, async () => {
      await using server = await startTestServer();
      await using bystanders = await Bystanders.start(server);
      const [alice, carol, bob] = await newUsers(server, "alice", "carol", "bob");
      for (const client of [alice!, carol!, bob!]) await joinRoom(client, "#rust");
      const refusal = action === "ban" ? "room_banned" : "not_in_room";
      /** bob's say outcomes so far, by ref: an ack, or an error carrying the ref. */
      const outcomes = (): Map<string, Frame> =>
        new Map(bob!.received.filter((frame) => (frame.type === "ack" || frame.type === "error") && frame.ref !== undefined).map((frame) => [frame.ref, frame]));
      await bystanders.during(async () => {
        // bob says and rejoins, waiting only for the server to have handled each pair; alice
        // acts once bob's fifth message is acknowledged, while bob goes on.
        for (let i = 0; i < 25; i++) {
          bob!.send({ type: "say", room: "#rust", text: `bob ${i}`, ref: `r${i}` });
          bob!.send({ type: "join", room: "#rust" });
          if (i === 4) {
            while (!outcomes().has("r4")) await bob!.next("ack");
            alice!.send({ type: action, room: "#rust", user: "bob" });
          }
          await bob!.sync();
        }
        // Acks follow their commit, so the last may still be on their way.
        while (outcomes().size < 25) await bob!.next("ack");
      });
      // Refused joins carry no ref: for a ban they are room_banned; a kicked member may rejoin.
      const joinRefusals = bob!.received.filter((frame) => frame.type === "error" && frame.ref === undefined).map((frame) => frame.code);
      expect(new Set(joinRefusals)).toEqual(new Set(action === "ban" ? ["room_banned"] : []));
      const acked = new Map<number, string>();
      const sequence: string[] = [];
      for (let i = 0; i < 25; i++) {
        const outcome = outcomes().get(`r${i}`)!;
        if (outcome.type === "ack") acked.set(outcome.id, `bob ${i}`);
        else expect({ i, code: outcome.code }).toEqual({ i, code: refusal });
        sequence.push(outcome.type === "ack" ? "ack" : "refused");
      }
      expect(sequence.slice(0, 5)).toEqual(Array(5).fill("ack"));
      expect(sequence).toContain("refused");
      // A ban holds: once refused, never accepted again.
      if (action === "ban") expect(sequence.slice(sequence.indexOf("refused")).every((outcome) => outcome === "refused")).toBe(true);
      await carol!.sync();
      const relayed = carol!.take("msg").filter((message) => message.from === "bob");
      expect(new Map(relayed.map((message) => [message.id, message.text]))).toEqual(acked);
      expect(relayed).toHaveLength(acked.size);
      bob!.take("error"); // the refusals, checked above
      await expectUsable(bob!);
      await expectAftermath(server, bystanders, ["alice", "carol", "bob"]);
    });
  }

  test("a user banned server-wide comes back with an old token, frames pipelined behind it: banned, closed, and none of them takes effect", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    await using bystanders = await Bystanders.start(server);
    const [root, bob] = await newUsers(server, "root", "bob");
    const eve = await newUser(server, "eve");
    const eveElsewhere = await sibling(server, "eve", eve.token);
    await joinRoom(eve.client, "#den");
    let seenBefore = 0;
    await bystanders.during(async () => {
      await moderate(root!, { type: "ban", scope: "server", user: "EVE" });
      for (const connection of [eve.client, eveElsewhere.client]) {
        expect(await connection.nextError()).toBe("banned");
        await closedWithin(connection);
      }
      seenBefore = bob!.received.length;
      for (const first of [
        { type: "resume", user: "eve", token: eve.token },
        { type: "resume", user: "EVE", token: eveElsewhere.token },
        { type: "login", user: "eve", password: "pw-eve-secret" },
      ]) {
        await using comeback = await hostile(server);
        const pipelined = [
          first,
          { type: "say", text: "eve is back" },
          { type: "say", room: "#den", text: "eve is back in the den" },
          { type: "dm", to: "bob", text: "psst" },
          { type: "join", room: "#eves-new-room" },
          { type: "history", room: "#lobby" },
          { type: "unban", scope: "server", user: "eve" },
        ];
        comeback.write(pipelined.map((frame) => JSON.stringify(frame) + "\n").join(""));
        await comeback.waitClosed();
        expect(comeback.frames.map((frame) => (frame.type === "error" ? frame.code : frame.type))).toEqual(["banned"]);
      }
    });
    await bob!.sync();
    // Since the ban closed eve's connections, bob heard nothing from or of her: no message, dm or online.
    expect(bob!.received.slice(seenBefore).filter((frame) => frame.from === "eve" || (frame.user === "eve" && frame.type !== "offline"))).toEqual([]);
    expect(await roomNames(bob!)).not.toContain("#eves-new-room");
    expect(server.logs.filter((entry) => entry.event === "login_failed" && entry.fields.code === "banned")).toHaveLength(3);
    expect(server.logs.filter((entry) => entry.event === "login" && entry.fields.user === "eve")).toHaveLength(2);
    await expectUsable(root!);
    await expectAftermath(server, bystanders, ["root", "bob", "eve"]);
  });
});
