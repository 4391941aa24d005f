// Room state survives a server restart: a new server on the same account store and chat database
// puts users back in their rooms, with the same operators, topics and bans.

import { expect, test } from "bun:test";
import { startTestServer, type TestServerOptions } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { joinRoom, moderate, partRoom } from "./rooms-support.ts";
import { closedWithin, connect, errorFor, newUser, sibling } from "./support.ts";

const ALICE_PASSWORD = "pw-alice-secret";
const EVE_PASSWORD = "pw-eve-secret";
const MALLORY_PASSWORD = "pw-mallory-secret";

test("membership, operators, topics and bans survive a restart; every connection of a user is in the same rooms", async () => {
  await using dir = await tempDir();
  const options: TestServerOptions = { admins: ["root"], storePath: dir.file("users.json"), chatDbPath: dir.file("chat.db") };

  {
    // The first server stops at the end of this block.
    await using before = await startTestServer(options);
    const alice = await newUser(before, "alice", ALICE_PASSWORD);
    const root = await newUser(before, "root");
    await newUser(before, "eve", EVE_PASSWORD);
    await newUser(before, "mallory", MALLORY_PASSWORD);
    await joinRoom(alice.client, "#Rust");
    await joinRoom(alice.client, "#go");
    await partRoom(alice.client, "#lobby");
    alice.client.send({ type: "topic", room: "#rust", topic: "ownership" });
    await alice.client.next("topic");
    await moderate(alice.client, { type: "ban", room: "#rust", user: "eve" });
    await moderate(root.client, { type: "ban", scope: "server", user: "mallory" });
  }

  await using after = await startTestServer(options);
  const back = await connect(after);
  back.send({ type: "login", user: "alice", password: ALICE_PASSWORD });
  const welcome = await back.next("welcome");
  expect(welcome.rooms).toEqual(["#Rust", "#go"]);
  const histories = [await back.next("history"), await back.next("history")];
  expect(histories.map((history) => history.room)).toEqual(["#Rust", "#go"]);

  const elsewhere = await sibling(after, "alice", welcome.token);
  expect(elsewhere.welcome.rooms).toEqual(["#Rust", "#go"]);

  const rejoined = await joinRoom(back, "#rust");
  expect(rejoined).toMatchObject({ room: "#Rust", topic: "ownership", members: ["alice"], ops: ["alice"] });
  expect(await errorFor(back, { type: "say", text: "lobby?" })).toBe("not_in_room");

  const eve = await connect(after);
  await eve.login("eve", EVE_PASSWORD);
  expect(await errorFor(eve, { type: "join", room: "#rust" })).toBe("room_banned");

  const mallory = await connect(after);
  expect(await errorFor(mallory, { type: "login", user: "mallory", password: MALLORY_PASSWORD })).toBe("banned");
  await closedWithin(mallory);
});
