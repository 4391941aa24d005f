// The account store as the server uses it: what lands on disk, refusal of corrupt files, two
// writers sharing one file through the lock, stale-lock takeover, how soon another process's
// changes are seen, and a write failure that must not take the server down.

import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { JsonFileStore, STORE_REFRESH_MS, StoreError } from "../../src/auth/store.ts";
import { STORE_VERSION } from "../../src/auth/store-format.ts";
import type { ChatError } from "../../src/protocol/errors.ts";
import { startTestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { connect, errorFor, expectUsable, newUser } from "./support.ts";

describe("on disk", () => {
  test("after registration the store is private, versioned JSON with an argon2id hash and no password", async () => {
    await using server = await startTestServer();
    const password = "Plaintext-Secret-Passphrase";
    await using client = await connect(server);
    await client.register("alice", password);

    expect(existsSync(server.storePath)).toBe(true);
    expect((await stat(server.storePath)).mode & 0o777).toBe(0o600);
    const text = await readFile(server.storePath, "utf8");
    const file = JSON.parse(text);
    expect(file.format).toBe("tlschat-users");
    expect(file.version).toBe(STORE_VERSION);
    const alice = file.users.find((user: { name: string }) => user.name === "alice");
    expect(alice).toBeDefined();
    expect(alice.hash).toStartWith("$argon2id$");
    expect(text).not.toContain(password);
    expect(text.toLowerCase()).not.toContain(password.toLowerCase());
    expect(text).not.toContain(Buffer.from(password).toString("base64"));
    expect(text).not.toContain(Buffer.from(password).toString("hex"));
    // No temp file left behind.
    expect(existsSync(`${server.storePath}.${process.pid}.tmp`)).toBe(false);
  });

  test("a password change rewrites the hash and leaves no password on disk", async () => {
    await using server = await startTestServer();
    const alice = await newUser(server, "alice", "first-password");
    await using client = alice.client;
    const before = JSON.parse(await readFile(server.storePath, "utf8")).users[0].hash;
    client.send({ type: "passwd", old: "first-password", new: "second-password" });
    await client.next("password_changed");
    const text = await readFile(server.storePath, "utf8");
    const after = JSON.parse(text).users[0];
    expect(after.hash).toStartWith("$argon2id$");
    expect(after.hash).not.toBe(before);
    expect(text).not.toContain("first-password");
    expect(text).not.toContain("second-password");
    expect((await stat(server.storePath)).mode & 0o777).toBe(0o600);
  });
});

describe("opening", () => {
  test("a corrupt store throws a StoreError naming the problem and is left byte for byte", async () => {
    await using dir = await tempDir();
    const path = dir.file("users.json");
    await writeFile(path, "{not json");
    const error = await JsonFileStore.open(path).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toMatch(/corrupt|not valid JSON/);
    expect(await readFile(path, "utf8")).toBe("{not json");
    // The failed open released its lock: once fixed, the store opens.
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  test.each([
    ["a JSON array", "[]"],
    ["another format", JSON.stringify({ format: "other", version: 1, secret: "00".repeat(32), users: [] })],
    ["a bad user entry", JSON.stringify({ format: "tlschat-users", version: 1, secret: "00".repeat(32), users: [{ name: "a b" }] })],
  ])("%s is refused as corrupt and left unchanged", async (_, contents) => {
    await using dir = await tempDir();
    const path = dir.file("users.json");
    await writeFile(path, contents);
    await expect(JsonFileStore.open(path)).rejects.toBeInstanceOf(StoreError);
    expect(await readFile(path, "utf8")).toBe(contents);
  });

  test("a server cannot start on a corrupt store", async () => {
    await using dir = await tempDir();
    const storePath = dir.file("users.json");
    await writeFile(storePath, "{not json");
    await expect(startTestServer({ storePath })).rejects.toBeInstanceOf(StoreError);
    expect(await readFile(storePath, "utf8")).toBe("{not json");
  });

  test("two stores on one file (a server and register --db) both write, and each sees the other's accounts", async () => {
    await using dir = await tempDir();
    const path = dir.file("users.json");
    const server = await JsonFileStore.open(path);
    const offline = await JsonFileStore.open(path);
    try {
      expect(Buffer.from(await offline.secret())).toEqual(Buffer.from(await server.secret()));
      await server.add({ name: "alice", hash: "$argon2id$a", epoch: 0, createdAt: 1, keys: [] });
      await offline.add({ name: "bob", hash: "$argon2id$b", epoch: 0, createdAt: 2, keys: [] });
      expect((await server.get("bob"))?.hash).toBe("$argon2id$b");
      await server.add({ name: "carol", hash: "$argon2id$c", epoch: 0, createdAt: 3, keys: [] });
      await expect(offline.add({ name: "Carol", hash: "$argon2id$x", epoch: 0, createdAt: 4, keys: [] })).rejects.toThrow("already registered");
      await Promise.all([
        server.update("alice", (current) => ({ ...current, hash: "$argon2id$a2", epoch: 1 })),
        offline.add({ name: "dave", hash: "$argon2id$d", epoch: 0, createdAt: 5, keys: [] }),
      ]);
    } finally {
      await server.close();
      await offline.close();
    }
    const reopened = await JsonFileStore.open(path);
    expect(await Promise.all(["alice", "bob", "carol", "dave"].map(async (user) => (await reopened.get(user))?.hash))).toEqual([
      "$argon2id$a2",
      "$argon2id$b",
      "$argon2id$c",
      "$argon2id$d",
    ]);
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  test("a write waits for a lock held by a live process, and fails with store_unavailable if it is never released", async () => {
    await using dir = await tempDir();
    const path = dir.file("users.json");
    const store = await JsonFileStore.open(path, { lockWaitMs: 200 });
    // PID 1 is always alive: a lock naming it is never stale.
    await writeFile(`${path}.lock`, "1\n");
    const started = Date.now();
    const refused = await store.add({ name: "alice", hash: "$argon2id$a", epoch: 0, createdAt: 1, keys: [] }).catch((error: ChatError) => error);
    expect((refused as ChatError).code).toBe("store_unavailable");
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(await store.get("alice")).toBeUndefined();
    expect(await readFile(`${path}.lock`, "utf8")).toBe("1\n");
    await rm(`${path}.lock`);
    await store.add({ name: "alice", hash: "$argon2id$a", epoch: 0, createdAt: 1, keys: [] });
    expect((await store.get("alice"))?.name).toBe("alice");
    await store.close();
  });

  test("a stale lock left by a dead process is taken over", async () => {
    await using dir = await tempDir();
    const path = dir.file("users.json");
    await writeFile(`${path}.lock`, "2147483646\n");
    const store = await JsonFileStore.open(path);
    try {
      await store.add({ name: "alice", hash: "$argon2id$a", epoch: 0, createdAt: 1, keys: [] });
      expect((await store.get("alice"))?.name).toBe("alice");
    } finally {
      await store.close();
    }
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  test("a store made corrupt behind a running server's back is never overwritten", async () => {
    await using dir = await tempDir();
    const path = dir.file("users.json");
    const store = await JsonFileStore.open(path);
    await store.add({ name: "alice", hash: "$argon2id$a", epoch: 0, createdAt: 1, keys: [] });
    await writeFile(path, "{broken");
    // The last good view keeps serving logins.
    expect((await store.get("alice"))?.name).toBe("alice");
    const refused = await store.add({ name: "bob", hash: "$argon2id$b", epoch: 0, createdAt: 2, keys: [] }).catch((error: ChatError) => error);
    expect((refused as ChatError).code).toBe("store_unavailable");
    expect(await readFile(path, "utf8")).toBe("{broken");
    await store.close();
  });
});

describe("changes made by another process", () => {
  /** A server's store on a clock the test moves, and an offline writer on the same file. */
  async function serverAndOfflineStores() {
    const dir = await tempDir();
    const path = dir.file("users.json");
    const clock = { now: 0 };
    const server = await JsonFileStore.open(path, { now: () => clock.now });
    const offline = await JsonFileStore.open(path);
    return {
      server,
      offline,
      clock,
      async [Symbol.asyncDispose]() {
        await server.close();
        await offline.close();
        await dir[Symbol.asyncDispose]();
      },
    };
  }

  test("a name not in memory is looked up in the file at once, so an account added offline can log in straight away", async () => {
    await using stores = await serverAndOfflineStores();
    expect(await stores.server.get("bob")).toBeUndefined();
    await stores.offline.add({ name: "bob", hash: "$argon2id$b", epoch: 0, createdAt: 1, keys: [] });
    expect((await stores.server.get("bob"))?.hash).toBe("$argon2id$b");
  });

  test(`a name found in memory is served from memory for ${STORE_REFRESH_MS} ms, then the file is looked at again`, async () => {
    await using stores = await serverAndOfflineStores();
    await stores.server.add({ name: "alice", hash: "$argon2id$a", epoch: 0, createdAt: 1, keys: [] });
    await stores.offline.update("alice", (current) => ({ ...current, hash: "$argon2id$a2", epoch: 1 }));
    stores.clock.now = STORE_REFRESH_MS - 1;
    expect((await stores.server.get("alice"))?.hash).toBe("$argon2id$a");
    stores.clock.now = STORE_REFRESH_MS;
    expect((await stores.server.get("alice"))?.hash).toBe("$argon2id$a2");
  });
});

describe("a store that cannot be written", () => {
  test("registration gets store_unavailable, the server keeps serving, and registers again once fixed", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    const before = await readFile(server.storePath, "utf8");

    // A read-only directory stops the atomic write's temp file, but root ignores permissions:
    // as root, block the temp file by putting a directory where it goes.
    const asRoot = process.getuid?.() === 0;
    const obstacle = `${server.storePath}.${process.pid}.tmp`;
    if (asRoot) await mkdir(obstacle);
    else await chmod(server.dir.path, 0o500);
    try {
      await using client = await connect(server);
      expect(await errorFor(client, { type: "register", user: "carol", password: "carol-password" })).toBe("store_unavailable");
      await expectUsable(client);
      // Not acknowledged, not remembered: carol cannot log in.
      expect(await errorFor(client, { type: "login", user: "carol", password: "carol-password" })).toBe("auth_failed");
      // The file on disk is untouched.
      expect(await readFile(server.storePath, "utf8")).toBe(before);

      // Logged-in users still chat.
      alice.send({ type: "say", text: "still chatting" });
      expect((await bob.next("msg")).text).toBe("still chatting");
      // A password change cannot be stored either, and the old password keeps working.
      expect(await errorFor(alice, { type: "passwd", old: "pw-alice-secret", new: "new-password" })).toBe("store_unavailable");
    } finally {
      if (asRoot) await rmdir(obstacle);
      else await chmod(server.dir.path, 0o700);
    }

    await using client = await connect(server);
    await client.register("carol", "carol-password");
    expect((await client.login("carol", "carol-password")).user).toBe("carol");
    await using check = await connect(server);
    expect((await check.login("alice", "pw-alice-secret")).user).toBe("alice");
    const file = JSON.parse(await readFile(server.storePath, "utf8"));
    expect(file.users.map((user: { name: string }) => user.name).sort()).toEqual(["alice", "bob", "carol"]);
  });
});
