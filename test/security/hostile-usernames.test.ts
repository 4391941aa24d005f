// Username tricks: case variants, look-alikes (Cyrillic, fullwidth, zero-width, dotless/dotted
// I, Kelvin sign), control characters, over-long names and JavaScript-special names. None may
// create a second account that looks like an existing one, or reach someone else's account.

import { describe, expect, test } from "bun:test";
import { Bystanders, expectAftermath, hostile, type HostileClient } from "../helpers/hostile.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

async function code(client: HostileClient, frame: object): Promise<string> {
  client.send(frame);
  const reply = await client.nextOf(["registered", "welcome", "error"]);
  if (reply.type === "welcome") await client.next("history");
  return reply.type === "error" ? reply.code : reply.type;
}

async function withAlice(): Promise<{ server: TestServer; bystanders: Bystanders }> {
  const server = await startTestServer();
  const bystanders = await Bystanders.start(server);
  await using client = await hostile(server);
  expect(await code(client, { type: "register", user: "alice", password: "alice-password" })).toBe("registered");
  return { server, bystanders };
}

describe("username tricks", () => {
  test("case variants of a registered name are user_exists", async () => {
    const { server, bystanders } = await withAlice();
    await using _server = server;
    await using _bystanders = bystanders;
    await bystanders.during(async () => {
      await using attacker = await hostile(server);
      for (const user of ["Alice", "ALICE", "aLiCe", "alicE"]) {
        expect({ user, code: await code(attacker, { type: "register", user, password: "mallory-password" }) }).toEqual({ user, code: "user_exists" });
      }
    });
    await expectAftermath(server, bystanders, ["alice"]);
    // Still exactly one alice, under its original spelling and hash.
    const names = (await Bun.file(server.storePath).json()).users.map((u: { name: string }) => u.name);
    expect(names.filter((name: string) => name.toLowerCase() === "alice")).toEqual(["alice"]);
  });

  test("look-alikes, control characters and over-long names are invalid_user and never stored", async () => {
    const { server, bystanders } = await withAlice();
    await using _server = server;
    await using _bystanders = bystanders;
    const tricks: Array<[string, string]> = [
      ["Cyrillic a", "\u0430lice"],
      ["fullwidth a", "\uff41lice"],
      ["trailing zero-width space", "alice\u200b"],
      ["leading zero-width space", "\u200balice"],
      ["zero-width joiner", "al\u200dice"],
      ["BOM", "\ufeffalice"],
      ["soft hyphen", "ali\u00adce"],
      ["combining acute", "alice\u0301"],
      ["dotless i", "al\u0131ce"],
      ["dotted capital I", "AL\u0130CE"],
      ["Kelvin sign", "\u212alice"],
      ["right-to-left override", "\u202eecila"],
      ["NUL", "al\u0000ice"],
      ["newline", "al\nice"],
      ["carriage return", "alice\r"],
      ["tab", "al\tice"],
      ["escape sequence", "\u001b[31malice"],
      ["DEL", "alice\u007f"],
      ["C1 control", "alice\u0085"],
      ["space", "ali ce"],
      ["trailing space", "alice "],
      ["slash", "../alice"],
      ["empty", ""],
      ["33 characters", "a".repeat(33)],
      ["10 KB", "a".repeat(10_000)],
    ];
    await bystanders.during(async () => {
      await using attacker = await hostile(server);
      for (const [what, user] of tricks) {
        expect({ what, code: await code(attacker, { type: "register", user, password: "mallory-password" }) }).toEqual({ what, code: "invalid_user" });
      }
    });
    const names = (await Bun.file(server.storePath).json()).users.map((u: { name: string }) => u.name);
    for (const [, user] of tricks) expect(names).not.toContain(user);
    await expectAftermath(server, bystanders, ["alice"]);
  });

  test("login with a look-alike and alice's password is auth_failed; with \"ALICE\" it is alice's account", async () => {
    const server = await startTestServer({
      limits: { throttle: { freeFailures: 100, baseDelayMs: 1_000, maxDelayMs: 10_000, windowMs: 60_000, maxEntries: 1_000 } },
    });
    await using _server = server;
    await using bystanders = await Bystanders.start(server);
    {
      await using client = await hostile(server);
      expect(await code(client, { type: "register", user: "alice", password: "alice-password" })).toBe("registered");
    }
    await bystanders.during(async () => {
      for (const user of ["\u0430lice", "\uff41lice", "alice\u200b", "al\u0000ice", "AL\u0130CE", "\u212alice", "a".repeat(10_000)]) {
        await using attacker = await hostile(server);
        expect({ user: user.slice(0, 40), code: await code(attacker, { type: "login", user, password: "alice-password" }) }).toEqual({
          user: user.slice(0, 40),
          code: "auth_failed",
        });
      }
      await using upper = await hostile(server);
      upper.send({ type: "login", user: "ALICE", password: "alice-password" });
      const welcome = await upper.next("welcome");
      expect(welcome.user).toBe("alice");
      await upper.next("history");
      // The same account: a dm to "alice" (any case) reaches this connection.
      bystanders.sender.send({ type: "dm", to: "Alice", text: "same account?" });
      expect(await upper.next("dm")).toMatchObject({ from: bystanders.senderName, to: "alice", text: "same account?" });
      // And a dm to a look-alike reaches nobody, nor one that lowercases to a valid name (U+212A lowercases to "k").
      for (const lookAlike of ["\u0430lice", "\u212Alice"]) {
        bystanders.sender.send({ type: "dm", to: lookAlike, text: "look-alike" });
        expect(await bystanders.sender.nextError()).toBe("invalid_user");
      }
    });
    expect(server.logs.filter((entry) => entry.event === "login" && entry.fields.user === "alice")).toHaveLength(1);
    await expectAftermath(server, bystanders, ["alice"]);
  });

  test("JavaScript-special names (__proto__, constructor, toString, hasOwnProperty) are ordinary, separate accounts", async () => {
    const server = await startTestServer();
    await using _server = server;
    await using bystanders = await Bystanders.start(server);
    const special = ["__proto__", "constructor", "toString", "hasOwnProperty", "prototype", "valueOf"];
    await bystanders.during(async () => {
      for (const user of special) {
        await using client = await hostile(server);
        expect(await code(client, { type: "register", user, password: `${user}-password` })).toBe("registered");
        expect(await code(client, { type: "login", user, password: `${user}-password` })).toBe("welcome");
      }
      // Each is its own account: one's password does not open another.
      await using cross = await hostile(server);
      expect(await code(cross, { type: "login", user: "constructor", password: "__proto__-password" })).toBe("auth_failed");
      expect(await code(cross, { type: "register", user: "__PROTO__", password: "whatever-password" })).toBe("user_exists");
    });
    await expectAftermath(server, bystanders, special);
    expect(Object.keys(Object.prototype)).toEqual([]);
  });
});
