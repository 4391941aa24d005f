// The account store's format across versions: a file of the previous version (1, passwords only)
// opens and is rewritten at the current one by the next change; a newer one is refused untouched;
// and the rules of keys on disk: well-formed upper-case fingerprints, each bound to one account,
// and every account with at least one way to log in.

import { describe, expect, test } from "bun:test";
import { readFile, writeFile } from "node:fs/promises";
import { JsonFileStore, StoreError, type UserRecord } from "../../src/auth/store.ts";
import { STORE_VERSION } from "../../src/auth/store-format.ts";
import type { ChatError } from "../../src/protocol/errors.ts";
import { tempDir } from "../helpers/tmp.ts";

const SECRET = "ab".repeat(32);
const HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
const KEY_A = `${"AA:".repeat(31)}AA`;
const KEY_B = `${"BB:".repeat(31)}BB`;

/** A store file exactly as tlschat wrote it before keys existed. */
const VERSION_1 = JSON.stringify(
  {
    format: "tlschat-users",
    version: 1,
    secret: SECRET,
    users: [
      { name: "alice", hash: HASH, epoch: 3, createdAt: 10 },
      { name: "Bob", hash: HASH, epoch: 0, createdAt: 20 },
    ],
  },
  null,
  2,
);

function currentFile(users: object[]): string {
  return JSON.stringify({ format: "tlschat-users", version: STORE_VERSION, secret: SECRET, users });
}

const record = (name: string, extra: Partial<UserRecord> = {}): UserRecord => ({ name, hash: HASH, epoch: 0, createdAt: 1, keys: [], ...extra });
const key = (fingerprint: string) => ({ fingerprint, addedAt: 5, lastUsedAt: 6 });

async function storeFile(contents: string) {
  const dir = await tempDir();
  const path = dir.file("users.json");
  await writeFile(path, contents);
  return { dir, path, [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose]() };
}

describe("a store of the previous version (1)", () => {
  test("opens with every account as it was, each with a password and no keys", async () => {
    await using file = await storeFile(VERSION_1);
    const store = await JsonFileStore.open(file.path);
    try {
      expect(await store.get("alice")).toEqual({ name: "alice", hash: HASH, epoch: 3, createdAt: 10, keys: [] });
      expect(await store.get("bob")).toEqual({ name: "Bob", hash: HASH, epoch: 0, createdAt: 20, keys: [] });
      expect(Buffer.from(await store.secret()).toString("hex")).toBe(SECRET);
      // Reading migrates in memory only: the file is left as it was until something changes.
      expect(await readFile(file.path, "utf8")).toBe(VERSION_1);
    } finally {
      await store.close();
    }
  });

  test(`is written at version ${STORE_VERSION} by the next change, keeping the secret and every account`, async () => {
    await using file = await storeFile(VERSION_1);
    const store = await JsonFileStore.open(file.path);
    await store.update("alice", (current) => ({ ...current, keys: [key(KEY_A)] }));
    await store.close();
    const written = JSON.parse(await readFile(file.path, "utf8"));
    expect(written).toEqual({
      format: "tlschat-users",
      version: STORE_VERSION,
      secret: SECRET,
      users: [
        { name: "alice", hash: HASH, epoch: 3, createdAt: 10, keys: [key(KEY_A)] },
        { name: "Bob", hash: HASH, epoch: 0, createdAt: 20, keys: [] },
      ],
    });
  });

  test("with a user that has no hash is refused as corrupt: version 1 accounts all had passwords", async () => {
    const broken = VERSION_1.replace(`"hash": "${HASH}",`, "");
    await using file = await storeFile(broken);
    await expect(JsonFileStore.open(file.path)).rejects.toThrow(/corrupt/);
    expect(await readFile(file.path, "utf8")).toBe(broken);
  });
});

test("a store of a newer version is refused, naming both versions, and left unchanged", async () => {
  const newer = JSON.stringify({ format: "tlschat-users", version: STORE_VERSION + 1, secret: SECRET, users: [] });
  await using file = await storeFile(newer);
  const error = await JsonFileStore.open(file.path).catch((reason: unknown) => reason);
  expect(error).toBeInstanceOf(StoreError);
  expect((error as Error).message).toContain(`format version ${STORE_VERSION + 1}`);
  expect((error as Error).message).toContain(`reads up to ${STORE_VERSION}`);
  expect(await readFile(file.path, "utf8")).toBe(newer);
});

describe(`keys in a version ${STORE_VERSION} store`, () => {
  test("an account with keys and no password opens", async () => {
    await using file = await storeFile(currentFile([{ name: "carol", epoch: 0, createdAt: 1, keys: [key(KEY_A)] }]));
    const store = await JsonFileStore.open(file.path);
    expect(await store.get("carol")).toEqual({ name: "carol", epoch: 0, createdAt: 1, keys: [key(KEY_A)] });
    await store.close();
  });

  test.each([
    ["an account with neither a password nor a key", [{ name: "carol", epoch: 0, createdAt: 1, keys: [] }]],
    ["an account without a keys list", [{ name: "carol", hash: HASH, epoch: 0, createdAt: 1 }]],
    ["a fingerprint in lower case", [record("carol", { keys: [key(KEY_A.toLowerCase())] })]],
    ["a fingerprint without colons", [record("carol", { keys: [key(KEY_A.replaceAll(":", ""))] })]],
    ["a key without its dates", [record("carol", { keys: [{ fingerprint: KEY_A } as never] })]],
    ["one key bound to two accounts", [record("carol", { keys: [key(KEY_A)] }), record("dave", { keys: [key(KEY_B), key(KEY_A)] })]],
  ])("%s is refused as corrupt and left unchanged", async (_, users) => {
    const contents = currentFile(users);
    await using file = await storeFile(contents);
    await expect(JsonFileStore.open(file.path)).rejects.toThrow(/corrupt/);
    expect(await readFile(file.path, "utf8")).toBe(contents);
  });

  test("a key is bound to one account at most: adding or updating to another's key is key_in_use and changes nothing", async () => {
    await using file = await storeFile(currentFile([record("carol", { keys: [key(KEY_A)] })]));
    const store = await JsonFileStore.open(file.path);
    try {
      const byAdd = await store.add(record("dave", { keys: [key(KEY_A)] })).catch((error: ChatError) => error);
      expect((byAdd as ChatError).code).toBe("key_in_use");
      expect(await store.get("dave")).toBeUndefined();
      await store.add(record("dave"));
      const byUpdate = await store.update("dave", (current) => ({ ...current, keys: [key(KEY_B), key(KEY_A)] })).catch((error: ChatError) => error);
      expect((byUpdate as ChatError).code).toBe("key_in_use");
      expect((await store.get("dave"))?.keys).toEqual([]);
      // The owner itself may rewrite its record with the key.
      await store.update("carol", (current) => ({ ...current, epoch: 1 }));
      expect(await store.get("carol")).toMatchObject({ epoch: 1, keys: [key(KEY_A)] });
    } finally {
      await store.close();
    }
  });

  test("two stores on one file cannot bind the same key to two accounts", async () => {
    await using file = await storeFile(currentFile([record("carol"), record("dave")]));
    const server = await JsonFileStore.open(file.path);
    const other = await JsonFileStore.open(file.path);
    try {
      const outcomes = await Promise.all([
        server.update("carol", (current) => ({ ...current, keys: [key(KEY_A)] })).then(() => "ok", (error: ChatError) => error.code),
        other.update("dave", (current) => ({ ...current, keys: [key(KEY_A)] })).then(() => "ok", (error: ChatError) => error.code),
      ]);
      expect(outcomes.sort()).toEqual(["key_in_use", "ok"]);
    } finally {
      await server.close();
      await other.close();
    }
    const reopened = await JsonFileStore.open(file.path);
    const records = await Promise.all(["carol", "dave"].map((user) => reopened.get(user)));
    const owners = records.filter((record) => record?.keys.length === 1);
    expect(owners).toHaveLength(1);
    await reopened.close();
  });
});

test("a burst of changes is written together, and a refused one fails alone while the rest reach the disk", async () => {
  await using file = await storeFile(currentFile([record("carol", { keys: [key(KEY_A)] })]));
  const store = await JsonFileStore.open(file.path);
  const names = Array.from({ length: 50 }, (_, i) => `user${i}`);
  const outcomes = await Promise.all([
    ...names.map((name) => store.add(record(name)).then(() => "ok", (error: ChatError) => error.code)),
    store.add(record("dave", { keys: [key(KEY_A)] })).then(() => "ok", (error: ChatError) => error.code),
    store.add(record("CAROL")).then(() => "ok", (error: ChatError) => error.code),
  ]);
  expect(outcomes).toEqual([...names.map(() => "ok"), "key_in_use", "user_exists"]);
  await store.close();
  const reopened = await JsonFileStore.open(file.path);
  expect(reopened.size).toBe(51);
  expect(await reopened.get("dave")).toBeUndefined();
  await reopened.close();
});
