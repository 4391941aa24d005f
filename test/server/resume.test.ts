// Resume tokens and password changes end to end: a token logs in without the password, a changed
// password revokes older tokens, and tokens survive a restart on the same store.

import { describe, expect, test } from "bun:test";
import { startTestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { connect, errorFor, expectUsable, newUser, resume } from "./support.ts";

describe("resume", () => {
  test("the token from welcome logs in without a password", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await using first = alice.client;
    await using second = await connect(server);
    const started = performance.now();
    const welcome = await resume(second, "alice", alice.token);
    const elapsed = performance.now() - started;
    expect(welcome).toMatchObject({ type: "welcome", user: "alice" });
    expect(typeof welcome.token).toBe("string");
    // No password hash was computed: far below one argon2id run.
    expect(elapsed).toBeLessThan(200);
    second.send({ type: "say", text: "resumed" });
    expect((await first.next("msg")).text).toBe("resumed");
  });

  test("the user name in resume is case-insensitive; welcome carries the registered spelling", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "Alice");
    await using first = alice.client;
    await using second = await connect(server);
    expect((await resume(second, "ALICE", alice.token)).user).toBe("Alice");
  });

  test("a wrong, garbled or someone else's token is auth_failed and the connection stays usable", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice");
    await using aliceClient = alice.client;
    const bob = await newUser(server, "bob");
    await using bobClient = bob.client;
    await using client = await connect(server);

    const token: string = alice.token;
    const [version, expires, epoch, mac = ""] = token.split(".");
    // Flip a character in the middle of the MAC (the last base64url character has unused bits).
    const flipped = mac.slice(0, 10) + (mac[10] === "A" ? "B" : "A") + mac.slice(11);
    for (const bad of [
      "",
      "garbage",
      `${version}.${expires}.${epoch}.${flipped}`,
      token + "x",
      token.slice(0, -4),
      `${version}.${Number(expires) + 1000}.${epoch}.${mac}`,
      `${version}.${expires}.${Number(epoch) + 1}.${mac}`,
      `v2.${expires}.${epoch}.${mac}`,
      bob.token,
    ]) {
      expect(await errorFor(client, { type: "resume", user: "alice", token: bad })).toBe("auth_failed");
    }
    expect(await errorFor(client, { type: "resume", user: "nobody", token })).toBe("auth_failed");
    expect(await errorFor(client, { type: "resume", user: "\u0430lice", token })).toBe("auth_failed");
    await expectUsable(client);
    client.send({ type: "say", text: "sneak" });
    expect(await client.nextError()).toBe("not_authenticated");
    expect((await resume(client, "alice", token)).user).toBe("alice");
  });

  test("after passwd the old token is refused and the new one works; old password fails, new works", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice", "old-password");
    await using client = alice.client;
    const oldToken = alice.token;

    expect(await errorFor(client, { type: "passwd", old: "wrong-password", new: "new-password" })).toBe("auth_failed");
    await expectUsable(client);

    client.send({ type: "passwd", old: "old-password", new: "new-password" });
    const changed = await client.next("password_changed");
    expect(typeof changed.token).toBe("string");
    expect(changed.token).not.toBe(oldToken);
    await expectUsable(client); // still logged in

    await using other = await connect(server);
    expect(await errorFor(other, { type: "resume", user: "alice", token: oldToken })).toBe("auth_failed");
    expect(await errorFor(other, { type: "login", user: "alice", password: "old-password" })).toBe("auth_failed");
    expect((await resume(other, "alice", changed.token)).user).toBe("alice");

    await using third = await connect(server);
    expect((await third.login("alice", "new-password")).user).toBe("alice");
  });

  test("passwd with a weak new password is weak_password and changes nothing", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice", "old-password");
    await using client = alice.client;
    expect(await errorFor(client, { type: "passwd", old: "old-password", new: "short" })).toBe("weak_password");
    await using other = await connect(server);
    expect((await resume(other, "alice", alice.token)).user).toBe("alice");
  });

  test("a token survives a server restart on the same store", async () => {
    await using dir = await tempDir();
    const storePath = dir.file("users.json");
    let token: string;
    {
      await using first = await startTestServer({ storePath });
      const alice = await newUser(first, "alice");
      token = alice.token;
      await alice.client.close();
    }
    await using second = await startTestServer({ storePath });
    await using client = await connect(second);
    expect((await resume(client, "alice", token)).user).toBe("alice");
    await using other = await connect(second);
    expect((await other.login("alice", "pw-alice-secret")).user).toBe("alice");
  });
});
