// Presence and dms are server-wide, not per room: a dm reaches a user wherever they are; online and
// offline go to the users who share a room with the subject; and a room with more online connections
// than the threshold hears no presence or membership notices at all.

import { describe, expect, test } from "bun:test";
import type { TestClient } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";
import { joinRoom, newUsers, partRoom } from "./rooms-support.ts";
import { newUser, resume, connect } from "./support.ts";

/** Everything of `type` that reached `client` up to a round trip from now. */
async function received(client: TestClient, type: string) {
  await client.sync();
  return client.take(type);
}

describe("dm", () => {
  test("reaches a user who shares no room with the sender", async () => {
    await using server = await startTestServer();
    const [alice, bob] = await newUsers(server, "alice", "bob");
    await partRoom(alice!, "#lobby");
    await partRoom(bob!, "#lobby");

    alice!.send({ type: "dm", to: "bob", text: "psst" });
    expect(await bob!.next("dm")).toMatchObject({ type: "dm", from: "alice", to: "bob", text: "psst" });
  });
});

describe("online and offline", () => {
  test("go to users sharing a room with the subject, and to no one else", async () => {
    await using server = await startTestServer();
    const [alice, carol] = await newUsers(server, "alice", "carol");
    expect(await alice!.next("online")).toMatchObject({ user: "carol" });
    await partRoom(carol!, "#lobby");

    const dave = await newUser(server, "dave");
    expect(await alice!.next("online")).toMatchObject({ type: "online", user: "dave" });
    await dave.client.close();
    expect(await alice!.next("offline")).toMatchObject({ type: "offline", user: "dave" });

    expect(await received(carol!, "online")).toEqual([]);
    expect(await received(carol!, "offline")).toEqual([]);
  });

  test("go through any shared room, not only the lobby", async () => {
    await using server = await startTestServer();
    const [alice] = await newUsers(server, "alice");
    const dave = await newUser(server, "dave");
    await joinRoom(alice!, "#rust");
    await joinRoom(dave.client, "#rust");
    await partRoom(alice!, "#lobby");
    await partRoom(dave.client, "#lobby");

    await dave.client.close();
    expect(await alice!.next("offline")).toMatchObject({ user: "dave" });
    await resume(await connect(server), "dave", dave.token);
    expect(await alice!.next("online")).toMatchObject({ user: "dave" });
  });
});

describe("the presence threshold (presenceMaxConnections)", () => {
  // The threshold counts connections (one per user here): at 2 a pair still hears about each other, and a third makes the room quiet.
  const limits = { presenceMaxConnections: 2 };

  test("a room with more online connections than the threshold hears no online or offline", async () => {
    await using server = await startTestServer({ limits });
    const [alice, bob] = await newUsers(server, "alice", "bob");
    expect(await alice!.next("online")).toMatchObject({ user: "bob" });

    const carol = await newUser(server, "carol");
    await carol.client.close();
    for (const client of [alice!, bob!]) {
      expect(await received(client, "online")).toEqual([]);
      expect(await received(client, "offline")).toEqual([]);
    }
  });

  test("a room with more online connections than the threshold hears no join or leave; a small room still does", async () => {
    await using server = await startTestServer({ limits });
    const [alice, bob, carol] = await newUsers(server, "alice", "bob", "carol");
    await joinRoom(alice!, "#pair");
    await joinRoom(carol!, "#pair");
    expect(await alice!.next("join")).toMatchObject({ room: "#pair", user: "carol" });

    await joinRoom(alice!, "#crowd");
    await joinRoom(bob!, "#crowd");
    await alice!.next("join");
    await joinRoom(carol!, "#crowd");
    await partRoom(carol!, "#crowd");
    for (const client of [alice!, bob!]) {
      expect(await received(client, "join")).toEqual([]);
      expect(await received(client, "leave")).toEqual([]);
    }
  });
});
