// Moving an embedded server's accounts into Redis: every account arrives as it was (hash, epoch,
// keys), the token secret too, so passwords and the tokens clients hold keep working; an account
// Redis already has is left alone and reported, and a second run changes nothing.

import { describe, expect, test } from "bun:test";
import { createAccountService } from "../../src/auth/accounts.ts";
import { JsonFileStore, type UserRecord, type UserStore } from "../../src/auth/store.ts";
import { defaultLimits } from "../../src/core/limits.ts";
import { RedisUserStore } from "../../src/store/redis/accounts.ts";
import { importAccounts } from "../../src/store/redis/import.ts";
import { redisAvailable } from "../helpers/redis.ts";
import { redisForFile } from "../helpers/redis-fixture.ts";
import { tempDir } from "../helpers/tmp.ts";

const available = redisAvailable();
const redis = available ? redisForFile() : undefined;

const KEY_A = `${"A1:".repeat(31)}A1`;
const KEY_B = `${"B2:".repeat(31)}B2`;
const ADDRESS = "192.0.2.1";

function serviceOn(store: UserStore) {
  return createAccountService(store, defaultLimits(), { tokenTtlMs: 60_000, maxLoginsPerAddress: 4, now: Date.now }).accounts;
}

/** A file store holding alice (password), bob (password and a key, epoch 3) and carol (key only). */
async function embeddedAccounts() {
  const dir = await tempDir();
  const file = await JsonFileStore.open(dir.file("users.json"));
  const service = serviceOn(file);
  await service.register("alice", { password: "alice-password" });
  await service.register("Bob", { password: "bob-password", key: KEY_A });
  for (let i = 0; i < 3; i++) await file.update("bob", (current) => ({ ...current, epoch: current.epoch + 1 }));
  await service.register("carol", { key: KEY_B });
  return {
    file,
    service,
    async [Symbol.asyncDispose]() {
      await file.close();
      await dir[Symbol.asyncDispose]();
    },
  };
}

describe.skipIf(!available)("importAccounts", () => {
  test("copies every account as it is and the token secret: passwords, keys and issued tokens work against Redis", async () => {
    await using embedded = await embeddedAccounts();
    const aliceToken = (await embedded.service.login("alice", "alice-password", ADDRESS)).token;
    const redisStore = new RedisUserStore(await redis!.fresh());

    expect(await importAccounts(embedded.file, redisStore)).toEqual({ imported: ["alice", "Bob", "carol"], skipped: [], secretCopied: true });
    for (const user of ["alice", "bob", "carol"]) expect(await redisStore.get(user)).toEqual(await embedded.file.get(user));
    expect(Buffer.from(await redisStore.secret())).toEqual(Buffer.from(await embedded.file.secret()));

    const cluster = serviceOn(redisStore);
    expect((await cluster.resume("alice", aliceToken)).user).toBe("alice");
    expect((await cluster.login("bob", "bob-password", ADDRESS)).user).toBe("Bob");
    expect((await cluster.loginWithKey("carol", KEY_B, ADDRESS)).user).toBe("carol");
  });

  test("leaves alone and reports what Redis already has; run again, it changes nothing", async () => {
    await using embedded = await embeddedAccounts();
    const redisStore = new RedisUserStore(await redis!.fresh());
    const theirs: UserRecord = { name: "ALICE", hash: "$argon2id$theirs", epoch: 9, createdAt: 5, keys: [] };
    await redisStore.add(theirs);
    await redisStore.add({ name: "dave", epoch: 0, createdAt: 6, keys: [{ fingerprint: KEY_B, addedAt: 6, lastUsedAt: 6 }] });

    expect(await importAccounts(embedded.file, redisStore)).toEqual({
      imported: ["Bob"],
      skipped: [
        { name: "alice", reason: "user_exists" },
        { name: "carol", reason: "key_in_use" },
      ],
      secretCopied: true,
    });
    expect(await redisStore.get("alice")).toEqual(theirs);
    expect(await redisStore.get("carol")).toBeUndefined();

    const again = await importAccounts(embedded.file, redisStore);
    expect(again.imported).toEqual([]);
    expect(again.skipped.map((skip) => skip.reason)).toEqual(["user_exists", "user_exists", "key_in_use"]);
  });

  test("a cluster that already has a token secret keeps it, and says so", async () => {
    await using embedded = await embeddedAccounts();
    const redisStore = new RedisUserStore(await redis!.fresh());
    const clusterSecret = Buffer.from(await redisStore.secret());
    const report = await importAccounts(embedded.file, redisStore);
    expect(report.secretCopied).toBe(false);
    expect(report.imported).toHaveLength(3);
    expect(Buffer.from(await new RedisUserStore(await redis!.connect()).secret())).toEqual(clusterSecret);
  });
});
