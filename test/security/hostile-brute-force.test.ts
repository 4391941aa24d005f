// Password guessing: per-user and per-address throttling after the free failures, the cost of a
// throttled attempt (no hashing: fast replies, little CPU), and a login storm past the hash queue
// (server_busy). Bystanders keep chatting; the victim's account is intact afterwards.

import { describe, expect, test } from "bun:test";
import { Bystanders, expectAftermath, expectServerUp, hostile, type HostileClient } from "../helpers/hostile.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const FREE_FAILURES = 3;
// A long first delay: once throttled, an attacker stays throttled for the whole test.
const throttle = { freeFailures: FREE_FAILURES, baseDelayMs: 60_000, maxDelayMs: 600_000, windowMs: 600_000, maxEntries: 10_000 };
/** argon2id at the server's settings, per hash, as measured on this machine (src/auth/passwords.ts). */
const HASH_MS = 35;

async function registerUser(server: TestServer, user: string, password: string): Promise<void> {
  await using client = await hostile(server, { localAddress: "127.0.0.200" });
  expect((await client.register(user, password)).type).toBe("registered");
}

/** Sends one login and returns the reply code ("welcome" or the error code) and how long it took. */
async function attempt(client: HostileClient, user: string, password: string): Promise<{ code: string; ms: number }> {
  const started = performance.now();
  client.send({ type: "login", user, password });
  const reply = await client.nextOf(["welcome", "error"], 10_000);
  return { code: reply.type === "welcome" ? "welcome" : reply.code, ms: performance.now() - started };
}

function count(codes: string[], code: string): number {
  return codes.filter((c) => c === code).length;
}

describe("brute force", () => {
  test("200 wrong passwords for one user over 20 connections from one address: throttled, cheap, and the right password is refused too", async () => {
    await using server = await startTestServer({ limits: { throttle } });
    await using bystanders = await Bystanders.start(server);
    await registerUser(server, "victim", "victim-password");
    const attackers = await Promise.all(Array.from({ length: 20 }, () => hostile(server, { localAddress: "127.0.0.66" })));
    try {
      const results = await bystanders.during(async () => {
        const cpuBefore = process.cpuUsage();
        const started = performance.now();
        // Each connection guesses one password after another; the 20 connections run side by side.
        const perConnection = await Promise.all(
          attackers.map(async (client, c) => {
            const out: Array<{ code: string; ms: number }> = [];
            for (let i = 0; i < 10; i++) out.push(await attempt(client, "victim", `guess-${c}-${i}`));
            return out;
          }),
        );
        const cpu = process.cpuUsage(cpuBefore);
        return { all: perConnection.flat(), cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - started };
      });
      const codes = results.all.map((r) => r.code);
      expect(codes).toHaveLength(200);
      expect(count(codes, "auth_failed") + count(codes, "throttled")).toBe(200);
      // At most one attempt per connection can be in flight past the check before the failures are
      // recorded (see the next test), plus the free failures: everything else is throttled.
      expect(count(codes, "auth_failed")).toBeLessThanOrEqual(20 + FREE_FAILURES + 1);
      // Refused before hashing: each throttled attempt is a round trip on loopback.
      const throttledMs = results.all.filter((r) => r.code === "throttled").map((r) => r.ms);
      expect(Math.max(...throttledMs)).toBeLessThan(20);
      // Far below one hash per attempt (the whole storm, client side included, in this process).
      expect(results.cpuMs).toBeLessThan((200 * HASH_MS) / 4);
      expect(results.wallMs).toBeLessThan(3_000);

      // The right password from the attacking address: throttled (address and user both blocked).
      expect((await attempt(attackers[0]!, "victim", "victim-password")).code).toBe("throttled");
      // The right password from a fresh address: still throttled (the user is blocked).
      await using owner = await hostile(server, { localAddress: "127.0.0.67" });
      expect((await attempt(owner, "victim", "victim-password")).code).toBe("throttled");
      // Everyone else, from elsewhere, logs in normally.
      await expectServerUp(server, "127.0.0.68");
    } finally {
      await Promise.all(attackers.map((client) => client[Symbol.asyncDispose]()));
    }
    await expectAftermath(server, bystanders, ["victim"], "127.0.0.69");
  });

  test("20 simultaneous wrong-password logins for one user (one per connection): at most freeFailures + 1 are hashed", async () => {
    // Attempts in flight at the same time must not all slip past the throttle while their hashes
    // run: each attempt counts as a failure from the moment it starts.
    await using server = await startTestServer({ limits: { throttle } });
    await using bystanders = await Bystanders.start(server);
    await registerUser(server, "victim", "victim-password");
    const attackers = await Promise.all(Array.from({ length: 20 }, (_, i) => hostile(server, { localAddress: `127.0.2.${i + 1}` })));
    try {
      const codes = await bystanders.during(async () => {
        const results = await Promise.all(attackers.map((client, i) => attempt(client, "victim", `guess-${i}`)));
        return results.map((r) => r.code);
      });
      expect(count(codes, "auth_failed") + count(codes, "throttled")).toBe(20);
      expect(count(codes, "auth_failed")).toBeLessThanOrEqual(FREE_FAILURES + 1);
    } finally {
      await Promise.all(attackers.map((client) => client[Symbol.asyncDispose]()));
    }
    await expectAftermath(server, bystanders, ["victim"], "127.0.0.69");
  });

  test("one user guessed from 10 addresses, 2 tries each (sequentially): the per-user throttle stops it", async () => {
    await using server = await startTestServer({ limits: { throttle } });
    await using bystanders = await Bystanders.start(server);
    await registerUser(server, "victim", "victim-password");
    const codes = await bystanders.during(async () => {
      const out: string[] = [];
      for (let a = 1; a <= 10; a++) {
        await using client = await hostile(server, { localAddress: `127.0.3.${a}` });
        for (let i = 0; i < 2; i++) out.push((await attempt(client, "VICTIM", `guess-${a}-${i}`)).code);
      }
      return out;
    });
    expect(codes.slice(0, FREE_FAILURES + 1)).toEqual(Array(FREE_FAILURES + 1).fill("auth_failed"));
    expect(codes.slice(FREE_FAILURES + 1)).toEqual(Array(20 - FREE_FAILURES - 1).fill("throttled"));
    await expectAftermath(server, bystanders, ["victim"], "127.0.0.69");
  });

  test("one address guessing 20 different users (known and unknown, sequentially): the per-address throttle stops it, other addresses are fine", async () => {
    await using server = await startTestServer({ limits: { throttle } });
    await using bystanders = await Bystanders.start(server);
    await registerUser(server, "victim", "victim-password");
    const codes = await bystanders.during(async () => {
      await using client = await hostile(server, { localAddress: "127.0.0.77" });
      const out: string[] = [];
      for (let i = 0; i < 20; i++) out.push((await attempt(client, i % 2 ? "victim" : `nobody${i}`, `guess-${i}`)).code);
      // Even the right password, from this address.
      out.push((await attempt(client, "victim", "victim-password")).code);
      return out;
    });
    expect(codes.slice(0, FREE_FAILURES + 1)).toEqual(Array(FREE_FAILURES + 1).fill("auth_failed"));
    expect(codes.slice(FREE_FAILURES + 1)).toEqual(Array(21 - FREE_FAILURES - 1).fill("throttled"));
    await expectAftermath(server, bystanders, ["victim"], "127.0.0.78");
  });

  test("a login storm past the hash queue (1 running + 4 queued): the rest get server_busy, and everyone gets in afterwards", async () => {
    await using server = await startTestServer({ limits: { maxConcurrentHashes: 1, maxQueuedHashes: 4, throttle: { ...throttle, freeFailures: 1_000 } } });
    await using bystanders = await Bystanders.start(server);
    const users = Array.from({ length: 20 }, (_, i) => `storm${i}`);
    for (const user of users) await registerUser(server, user, `${user}-password`);
    const clients = await Promise.all(users.map((_, i) => hostile(server, { localAddress: `127.0.4.${i + 1}` })));
    try {
      const codes = await bystanders.during(async () => {
        const results = await Promise.all(clients.map((client, i) => attempt(client, users[i]!, `${users[i]}-password`)));
        return results.map((r) => r.code);
      });
      expect(count(codes, "welcome") + count(codes, "server_busy")).toBe(20);
      expect(count(codes, "server_busy")).toBeGreaterThanOrEqual(1);
      expect(count(codes, "welcome")).toBeGreaterThanOrEqual(5);
      // The refused ones retry one at a time and get in: server_busy left nothing stuck.
      for (let i = 0; i < clients.length; i++) {
        if (codes[i] === "server_busy") expect((await attempt(clients[i]!, users[i]!, `${users[i]}-password`)).code).toBe("welcome");
      }
    } finally {
      await Promise.all(clients.map((client) => client[Symbol.asyncDispose]()));
    }
    await expectAftermath(server, bystanders, users);
  }, 15_000);
});
