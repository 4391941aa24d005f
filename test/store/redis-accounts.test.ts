// The Redis account store against the account store contract, what only it promises (the
// documented layout, refusing a malformed record, giving up on endless races), and the account
// service on two nodes sharing one Redis: an account, a token, a password change and failed
// logins made on one node hold on the other.

import { describe, expect, test } from "bun:test";
import { createAccountService, type AccountService } from "../../src/auth/accounts.ts";
import type { UserRecord } from "../../src/auth/store.ts";
import { defaultLimits } from "../../src/core/limits.ts";
import type { ChatError } from "../../src/protocol/errors.ts";
import { RedisUserStore } from "../../src/store/redis/accounts.ts";
import type { RedisConnection } from "../../src/store/redis/connection.ts";
import { keys } from "../../src/store/redis/keys.ts";
import { CONTRACT_POLICY } from "../auth/throttle-contract.ts";
import { describeUserStoreContract } from "../auth/user-store-contract.ts";
import { redisAvailable } from "../helpers/redis.ts";
import { redisForFile } from "../helpers/redis-fixture.ts";

const available = redisAvailable();
const redis = available ? redisForFile() : undefined;

if (redis) {
  describeUserStoreContract("RedisUserStore", async () => {
    const opened = [new RedisUserStore(await redis.fresh())];
    return {
      store: opened[0]!,
      async another() {
        const store = new RedisUserStore(await redis.connect());
        opened.push(store);
        return store;
      },
      [Symbol.asyncDispose]: async () => {
        await Promise.all(opened.map((store) => store.close()));
      },
    };
  });
}

const HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
const KEY_A = `${"A1:".repeat(31)}A1`;
const KEY_B = `${"B2:".repeat(31)}B2`;
const ADDRESS = "192.0.2.1";

async function codeOf(operation: Promise<unknown>): Promise<string> {
  return operation.then(
    () => "ok",
    (error: ChatError) => error.code,
  );
}

/** The fields of a Redis hash, read with redis-cli (one name or value per line). */
function hashFields(key: string): Record<string, string> {
  const lines = redis!.server.cli("HGETALL", key).split("\n").filter((line) => line !== "");
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < lines.length; i += 2) fields[lines[i]!] = lines[i + 1]!;
  return fields;
}

describe.skipIf(!available)("RedisUserStore", () => {
  test("keeps the documented layout: one hash per account with a version, and an index of key owners", async () => {
    const store = new RedisUserStore(await redis!.fresh());
    const bob: UserRecord = { name: "Bob", hash: HASH, epoch: 2, createdAt: 1_000, keys: [{ fingerprint: KEY_A, addedAt: 5, lastUsedAt: 9 }] };
    await store.add(bob);
    expect(hashFields(keys.account("bob"))).toEqual({ name: "Bob", hash: HASH, epoch: "2", createdAt: "1000", version: "1", [`key:${KEY_A}`]: "5 9" });
    expect(hashFields(keys.keyOwners)).toEqual({ [KEY_A]: "bob" });
    await store.update("bob", (current) => ({ ...current, keys: [{ fingerprint: KEY_B, addedAt: 10, lastUsedAt: 10 }] }));
    expect(hashFields(keys.account("bob"))).toMatchObject({ version: "2", [`key:${KEY_B}`]: "10 10" });
    expect(hashFields(keys.keyOwners)).toEqual({ [KEY_B]: "bob" });
  });

  test("a malformed account is store_unavailable, never mistaken for no account", async () => {
    const link = await redis!.fresh();
    await link.send("HSET", [keys.account("mallory"), "name", "mallory", "epoch", "one", "createdAt", "1", "version", "1", "hash", HASH]);
    expect(await codeOf(new RedisUserStore(link).get("mallory"))).toBe("store_unavailable");
  });

  test("an update that loses every race (the account changes before each write) gives up with server_busy", async () => {
    const link = await redis!.fresh();
    const store = new RedisUserStore(link);
    await store.add({ name: "alice", hash: HASH, epoch: 0, createdAt: 1, keys: [] });
    let attempts = 0;
    const outcome = await codeOf(
      store.update("alice", (current) => {
        attempts += 1;
        // Sent on the same link before the write, so it always lands in between.
        void link.send("HINCRBY", [keys.account("alice"), "version", "1"]);
        return { ...current, epoch: current.epoch + 1 };
      }),
    );
    expect(outcome).toBe("server_busy");
    expect(attempts).toBeGreaterThan(1);
    expect((await store.get("alice"))?.epoch).toBe(0);
  });

  test("the token secret is made once, by whichever node asks first, and kept against another offered later", async () => {
    const [a, b] = [new RedisUserStore(await redis!.fresh()), new RedisUserStore(await redis!.connect())];
    const [secretA, secretB] = await Promise.all([a.secret(), b.secret()]);
    expect(Buffer.from(secretA)).toEqual(Buffer.from(secretB));
    expect(redis!.server.cli("GET", keys.tokenSecret).trim()).toBe(Buffer.from(secretA).toString("hex"));
    expect(await b.adoptSecret(new Uint8Array(32).fill(7))).toBe(false);
    expect(await b.adoptSecret(secretA)).toBe(true);
    expect(Buffer.from(await new RedisUserStore(await redis!.connect()).secret())).toEqual(Buffer.from(secretA));
  });
});

describe.skipIf(!available)("the account service on two nodes over one Redis", () => {
  /** A node's account service, built the way a server builds it, with few free failures. */
  function serviceOn(link: RedisConnection, now = Date.now): AccountService {
    const limits = { ...defaultLimits(), throttle: CONTRACT_POLICY };
    return createAccountService(new RedisUserStore(link), limits, { tokenTtlMs: 60_000, maxLoginsPerAddress: 4, now }).accounts;
  }

  async function twoNodes(): Promise<[AccountService, AccountService]> {
    return [serviceOn(await redis!.fresh()), serviceOn(await redis!.connect())];
  }

  test("an account registered on A logs in on B, and a token A issued resumes on B", async () => {
    const [nodeA, nodeB] = await twoNodes();
    await nodeA.register("alice", { password: "alice-password" });
    const onA = await nodeA.login("alice", "alice-password", ADDRESS);
    expect((await nodeB.resume("alice", onA.token)).user).toBe("alice");
    expect((await nodeB.login("ALICE", "alice-password", ADDRESS)).user).toBe("alice");
  });

  test("a password changed on B revokes on A the tokens A issued", async () => {
    const [nodeA, nodeB] = await twoNodes();
    await nodeA.register("alice", { password: "alice-password" });
    const before = await nodeA.login("alice", "alice-password", ADDRESS);
    const token = await nodeB.changePassword("alice", "alice-password", "alice-new-password", ADDRESS);
    expect(await codeOf(nodeA.resume("alice", before.token))).toBe("auth_failed");
    expect((await nodeA.resume("alice", token)).user).toBe("alice");
  });

  test("of two nodes registering one name at once, exactly one wins", async () => {
    const [nodeA, nodeB] = await twoNodes();
    const outcomes = await Promise.all([
      codeOf(nodeA.register("alice", { password: "first-password" })),
      codeOf(nodeB.register("Alice", { password: "second-password" })),
    ]);
    expect([...outcomes].sort()).toEqual(["ok", "user_exists"]);
    const winner = outcomes[0] === "ok" ? "first-password" : "second-password";
    expect((await nodeB.login("alice", winner, ADDRESS)).user).toBe(outcomes[0] === "ok" ? "alice" : "Alice");
  });

  test("failed logins on A throttle the same user on B, even with the right password", async () => {
    const [nodeA, nodeB] = await twoNodes();
    await nodeA.register("alice", { password: "alice-password" });
    for (let failure = 0; failure <= CONTRACT_POLICY.freeFailures; failure++) {
      expect(await codeOf(nodeA.login("alice", "wrong-password", `198.51.100.${failure}`))).toBe("auth_failed");
    }
    expect(await codeOf(nodeB.login("alice", "alice-password", "203.0.113.5"))).toBe("throttled");
  });

  test("a key bound on A logs in on B", async () => {
    const [nodeA, nodeB] = await twoNodes();
    await nodeA.register("alice", { key: KEY_A });
    await nodeA.addKey("alice", KEY_B);
    expect((await nodeB.loginWithKey("alice", KEY_B, ADDRESS)).user).toBe("alice");
    expect((await nodeB.keys("alice")).map((key) => key.fingerprint).sort()).toEqual([KEY_A, KEY_B]);
  });

  test("while Redis is away a login is refused with store_unavailable, never auth_failed, and works again after", async () => {
    const [nodeA] = await twoNodes();
    await nodeA.register("alice", { password: "alice-password" });
    await redis!.server.stop();
    try {
      expect(await codeOf(nodeA.login("alice", "alice-password", ADDRESS))).toBe("store_unavailable");
    } finally {
      await redis!.server.start();
    }
    // The link reconnects by itself within its backoff.
    for (let attempt = 0; ; attempt++) {
      const outcome = await codeOf(nodeA.login("alice", "wrong-password", ADDRESS));
      if (outcome !== "store_unavailable" || attempt === 100) {
        expect(outcome).toBe("auth_failed");
        break;
      }
      await Bun.sleep(50);
    }
  });
});
