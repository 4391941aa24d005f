// Server-wide bans end to end: only administrators give them, every connection of the banned user
// is closed with `banned`, and login and resume are refused the same way until the ban ends.

import { describe, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { joinRoom, moderate, newUsers, refusedUntilBanEnds } from "./rooms-support.ts";
import { closedWithin, connect, errorFor, newUser, sibling } from "./support.ts";

const EVE_PASSWORD = "pw-eve-secret";

/** Sends `frame` on a fresh connection and returns the refusal's code once the server has closed it. */
async function refusedAndClosed(server: TestServer, frame: object): Promise<string> {
  const client = await connect(server);
  const code = await errorFor(client, frame);
  await closedWithin(client);
  return code;
}

describe("a server-wide ban", () => {
  test("closes every connection of the user with banned; their rooms and the administrator hear it once; it is logged", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    const [root, carol] = await newUsers(server, "root", "carol");
    const eve = await newUser(server, "eve", EVE_PASSWORD);
    const eveElsewhere = (await sibling(server, "eve", eve.token)).client;
    await joinRoom(eve.client, "#rust");
    await joinRoom(carol!, "#rust");

    root!.send({ type: "ban", scope: "server", user: "eve", reason: "spam" });
    for (const connection of [eve.client, eveElsewhere]) {
      expect(await connection.nextError()).toBe("banned");
      await closedWithin(connection);
    }
    const notice = await carol!.next("moderation");
    expect(notice).toMatchObject({ type: "moderation", action: "ban", scope: "server", user: "eve", by: "root", reason: "spam" });
    expect(notice.room).toBeUndefined();
    expect(await root!.next("moderation")).toEqual(notice);
    await carol!.sync();
    await root!.sync();
    expect(carol!.take("moderation")).toEqual([]);
    expect(root!.take("moderation")).toEqual([]);
    expect(server.logs.find((entry) => entry.event === "moderation")?.fields).toMatchObject({ action: "ban", room: "server", user: "eve", by: "root" });
  });

  test("refuses login and resume with banned and closes the connection", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    const [root] = await newUsers(server, "root");
    const eve = await newUser(server, "eve", EVE_PASSWORD);
    await moderate(root!, { type: "ban", scope: "server", user: "eve" });
    await closedWithin(eve.client);

    expect(await refusedAndClosed(server, { type: "login", user: "eve", password: EVE_PASSWORD })).toBe("banned");
    expect(await refusedAndClosed(server, { type: "resume", user: "eve", token: eve.token })).toBe("banned");
  });

  test("for some seconds runs out: the user gets back in once it has", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    const [root] = await newUsers(server, "root");
    const eve = await newUser(server, "eve", EVE_PASSWORD);
    await moderate(root!, { type: "ban", scope: "server", user: "eve", seconds: 1 });
    const bannedAt = Date.now();

    const refusals = await refusedUntilBanEnds("banned", async () => {
      const client = await connect(server);
      client.send({ type: "resume", user: "eve", token: eve.token });
      return client.nextOf(["welcome", "error"]);
    });
    expect(refusals).toBeGreaterThan(0);
    expect(Date.now() - bannedAt).toBeGreaterThanOrEqual(900);
  });

  test("is lifted by an administrator's server-wide unban", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    const [root] = await newUsers(server, "root");
    const eve = await newUser(server, "eve", EVE_PASSWORD);
    await moderate(root!, { type: "ban", scope: "server", user: "eve" });

    const notice = await moderate(root!, { type: "unban", scope: "server", user: "eve" });
    expect(notice).toMatchObject({ action: "unban", scope: "server", user: "eve", by: "root" });
    await sibling(server, "eve", eve.token);
  });
});

describe("who may ban server-wide", () => {
  test("anyone but an administrator gets not_allowed, and the target stays", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    const [alice, eve] = await newUsers(server, "alice", "eve");
    expect(await errorFor(alice!, { type: "ban", scope: "server", user: "eve" })).toBe("not_allowed");
    expect(await errorFor(alice!, { type: "unban", scope: "server", user: "eve" })).toBe("not_allowed");
    await eve!.sync();
    expect(eve!.isClosed).toBe(false);
  });

  test("an administrator cannot be banned server-wide, not even by another", async () => {
    await using server = await startTestServer({ admins: ["root", "admin2"] });
    const [root] = await newUsers(server, "root", "admin2");
    expect(await errorFor(root!, { type: "ban", scope: "server", user: "admin2" })).toBe("not_allowed");
  });

  test("a ban naming neither a room nor the server scope is bad_frame, as is the scope on other actions", async () => {
    await using server = await startTestServer({ admins: ["root"] });
    const [root] = await newUsers(server, "root", "eve");
    expect(await errorFor(root!, { type: "ban", user: "eve" })).toBe("bad_frame");
    expect(await errorFor(root!, { type: "ban", room: "#lobby", scope: "server", user: "eve" })).toBe("bad_frame");
    expect(await errorFor(root!, { type: "kick", scope: "server", user: "eve" })).toBe("bad_frame");
    expect(await errorFor(root!, { type: "ban", scope: "everywhere", user: "eve" })).toBe("bad_frame");
  });
});
