// Registration and password login end to end: name and password rules, duplicates and races,
// identical failures for unknown users and wrong passwords, case-insensitive names.

import { describe, expect, test } from "bun:test";
import { startTestServer } from "../helpers/server.ts";
import { connect, errorFor, expectUsable } from "./support.ts";

describe("register", () => {
  test("then login on the same connection; the connection stays open after registered", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    client.send({ type: "register", user: "alice", password: "alice-password" });
    expect(await client.next("registered")).toEqual({ type: "registered", user: "alice" });
    await expectUsable(client);
    const welcome = await client.login("alice", "alice-password");
    expect(welcome.user).toBe("alice");
  });

  test("a taken name is user_exists, also when it differs only by case", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    await client.register("alice", "alice-password");
    expect(await errorFor(client, { type: "register", user: "alice", password: "another-password" })).toBe("user_exists");
    expect(await errorFor(client, { type: "register", user: "Alice", password: "another-password" })).toBe("user_exists");
    expect(await errorFor(client, { type: "register", user: "ALICE", password: "another-password" })).toBe("user_exists");
    await expectUsable(client);
    // The first registration's password still holds.
    expect((await client.login("alice", "alice-password")).user).toBe("alice");
  });

  test("of one name from two connections at once: exactly one registered, the other user_exists", async () => {
    await using server = await startTestServer();
    await using first = await connect(server);
    await using second = await connect(server);
    first.send({ type: "register", user: "racer", password: "first-password" });
    second.send({ type: "register", user: "Racer", password: "second-password" });
    const replies = await Promise.all([first.nextOf(["registered", "error"]), second.nextOf(["registered", "error"])]);
    const outcomes = replies.map((reply) => (reply.type === "error" ? reply.code : reply.type)).sort();
    expect(outcomes).toEqual(["registered", "user_exists"]);
    const winner = replies[0]!.type === "registered" ? "first-password" : "second-password";
    const loser = winner === "first-password" ? "second-password" : "first-password";
    await using checker = await connect(server);
    expect(await errorFor(checker, { type: "login", user: "racer", password: loser })).toBe("auth_failed");
    expect((await checker.login("racer", winner)).user).toBe(replies[0]!.type === "registered" ? "racer" : "Racer");
  });

  test.each([
    ["an empty name", ""],
    ["a 33-character name", "a".repeat(33)],
    ["a name with a space", "a b"],
    ["a name with a NUL", "bad\u0000"],
    ["a non-ASCII letter", "é"],
    ["a Cyrillic look-alike of alice", "\u0430lice"],
    ["a name with a slash", "a/b"],
    ["a name with a newline", "alice\n"],
  ])("%s is invalid_user", async (_, name) => {
    await using server = await startTestServer();
    await using client = await connect(server);
    expect(await errorFor(client, { type: "register", user: name, password: "good-password" })).toBe("invalid_user");
    await expectUsable(client);
  });

  test("names of 1 and 32 characters of letters, digits, '_', '.' and '-' are accepted", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    await client.register("x", "good-password");
    await client.register("A-b_c.9".padEnd(32, "z"), "good-password");
  });

  test("passwords of 7 and 1025 bytes are weak_password; 8 and 1024 bytes are accepted", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    expect(await errorFor(client, { type: "register", user: "u7", password: "1234567" })).toBe("weak_password");
    expect(await errorFor(client, { type: "register", user: "u1025", password: "p".repeat(1025) })).toBe("weak_password");
    // Bytes, not characters: 512 two-byte characters plus one byte is 1025 bytes.
    expect(await errorFor(client, { type: "register", user: "u1025b", password: "é".repeat(512) + "p" })).toBe("weak_password");
    await expectUsable(client);

    await client.register("u8", "12345678");
    await client.register("u1024", "p".repeat(1024));
    await client.register("u8b", "éééé"); // 4 characters, 8 bytes
    await using other = await connect(server);
    expect((await other.login("u1024", "p".repeat(1024))).user).toBe("u1024");
  });
});

describe("login", () => {
  test("wrong password and unknown user fail alike: same code, same message, similar time", async () => {
    await using server = await startTestServer({
      limits: { throttle: { freeFailures: 1_000, baseDelayMs: 1, maxDelayMs: 1, windowMs: 60_000, maxEntries: 1_000 } },
    });
    await using client = await connect(server);
    await client.register("alice", "alice-password");

    const attempt = async (user: string) => {
      const started = performance.now();
      client.send({ type: "login", user, password: "not-the-password" });
      const reply = await client.next("error");
      return { reply, ms: performance.now() - started };
    };
    // One of each first, so the dummy hash and the hasher are warm.
    await attempt("alice");
    await attempt("nobody");
    const wrongPassword: number[] = [];
    const unknownUser: number[] = [];
    for (let i = 0; i < 5; i++) {
      const wrong = await attempt("alice");
      const unknown = await attempt(`nobody${i}`);
      expect(wrong.reply).toMatchObject({ code: "auth_failed" });
      expect(unknown.reply).toEqual(wrong.reply);
      wrongPassword.push(wrong.ms);
      unknownUser.push(unknown.ms);
    }
    const ratio = median(unknownUser) / median(wrongPassword);
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
    // An unknown user is verified against a real hash, not answered at once.
    expect(median(unknownUser)).toBeGreaterThan(5);
  });

  test("names are case-insensitive and welcome carries the registered spelling", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    await client.register("Alice", "alice-password");
    expect((await client.login("ALICE", "alice-password")).user).toBe("Alice");
    await using other = await connect(server);
    expect((await other.login("alice", "alice-password")).user).toBe("Alice");
    other.send({ type: "who" });
    expect((await other.next("who")).users).toEqual(["Alice"]);
  });

  test("a wrong password leaves the connection usable for a correct login", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    await client.register("alice", "alice-password");
    expect(await errorFor(client, { type: "login", user: "alice", password: "Alice-password" })).toBe("auth_failed");
    await expectUsable(client);
    expect((await client.login("alice", "alice-password")).user).toBe("alice");
  });

  test("login or resume when already logged in is already_authenticated", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    await client.register("alice", "alice-password");
    await client.register("bob", "bob-password");
    const welcome = await client.login("alice", "alice-password");
    expect(await errorFor(client, { type: "login", user: "bob", password: "bob-password" })).toBe("already_authenticated");
    expect(await errorFor(client, { type: "resume", user: "alice", token: welcome.token })).toBe("already_authenticated");
    client.send({ type: "who" });
    expect((await client.next("who")).users).toEqual(["alice"]);
  });
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

describe("many logins from one address", () => {
  test("12 correct logins at once from one address (people behind one NAT) all get in: queued, not throttled", async () => {
    await using server = await startTestServer();
    const users = Array.from({ length: 12 }, (_, i) => `nat${i}`);
    await using registrar = await connect(server);
    for (const user of users) await registrar.register(user, `${user}-password`);
    const clients = await Promise.all(users.map(() => connect(server)));
    try {
      for (const [i, client] of clients.entries()) client.send({ type: "login", user: users[i], password: `${users[i]}-password` });
      const replies = await Promise.all(clients.map((client) => client.nextOf(["welcome", "error"], 10_000)));
      expect(replies.map((reply) => (reply.type === "error" ? reply.code : reply.type))).toEqual(users.map(() => "welcome"));
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  }, 15_000);
});
