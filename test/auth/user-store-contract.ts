// The UserStore contract: what every account store (the JSON file, a cluster's Redis) must do,
// as one `describe` that each implementation's test file runs, so that they cannot drift apart.
// "Another handle" is what shares the store: a second process on the file, a second node on
// Redis; races between two handles must lose nothing and let exactly one of two rivals win.

import { describe, expect, test } from "bun:test";
import type { UserRecord, UserStore } from "../../src/auth/store.ts";
import { ChatError } from "../../src/protocol/errors.ts";

export interface UserStoreFixture extends AsyncDisposable {
  /** An empty store. */
  store: UserStore;
  /** A new handle on the same accounts, closed with the fixture. */
  another(): Promise<UserStore>;
}

const HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
const KEY_A = `${"A1:".repeat(31)}A1`;
const KEY_B = `${"B2:".repeat(31)}B2`;
const KEY_C = `${"C3:".repeat(31)}C3`;
/** Racing updates per handle. */
const RACING_UPDATES = 25;

function passwordAccount(name: string, createdAt = 1_000): UserRecord {
  return { name, hash: HASH, epoch: 0, createdAt, keys: [] };
}

function keyOf(fingerprint: string, addedAt: number, lastUsedAt = addedAt) {
  return { fingerprint, addedAt, lastUsedAt };
}

/** The error code an operation fails with, or "ok". */
async function outcomeOf(operation: Promise<unknown>): Promise<string> {
  return operation.then(
    () => "ok",
    (error: ChatError) => error.code,
  );
}

export function describeUserStoreContract(name: string, open: () => Promise<UserStoreFixture>): void {
  describe(`${name}: the account store contract`, () => {
    test("an account comes back as it was added, by its name in any case; an unknown one is undefined", async () => {
      await using fixture = await open();
      const { store } = fixture;
      const bob: UserRecord = { name: "Bob", hash: HASH, epoch: 3, createdAt: 1_700_000_000_000, keys: [keyOf(KEY_A, 5, 9), keyOf(KEY_B, 7)] };
      const keyOnly: UserRecord = { name: "carol", epoch: 0, createdAt: 2, keys: [keyOf(KEY_C, 2)] };
      await store.add(bob);
      await store.add(keyOnly);
      expect(await store.get("bob")).toEqual(bob);
      expect(await store.get("BOB")).toEqual(bob);
      expect(await store.get("carol")).toEqual(keyOnly);
      expect(await store.get("dave")).toBeUndefined();
    });

    test("a name is taken in any case: user_exists, and the first account stays", async () => {
      await using fixture = await open();
      await fixture.store.add(passwordAccount("alice"));
      expect(await outcomeOf(fixture.store.add({ ...passwordAccount("ALICE"), epoch: 7 }))).toBe("user_exists");
      expect(await fixture.store.get("alice")).toEqual(passwordAccount("alice"));
    });

    test("a key belongs to one account: adding or updating to another account's key is key_in_use and changes nothing", async () => {
      await using fixture = await open();
      const { store } = fixture;
      await store.add({ ...passwordAccount("alice"), keys: [keyOf(KEY_A, 1)] });
      await store.add(passwordAccount("bob"));
      expect(await outcomeOf(store.add({ ...passwordAccount("carol"), keys: [keyOf(KEY_A, 2)] }))).toBe("key_in_use");
      expect(await store.get("carol")).toBeUndefined();
      expect(await outcomeOf(store.update("bob", (current) => ({ ...current, keys: [keyOf(KEY_B, 3), keyOf(KEY_A, 3)] })))).toBe("key_in_use");
      expect(await store.get("bob")).toEqual(passwordAccount("bob"));
      // A key its account gives up is free for another.
      await store.update("alice", (current) => ({ ...current, keys: [] }));
      await store.update("bob", (current) => ({ ...current, keys: [keyOf(KEY_A, 4)] }));
      expect((await store.get("bob"))?.keys).toEqual([keyOf(KEY_A, 4)]);
      expect(await outcomeOf(store.update("alice", (current) => ({ ...current, keys: [keyOf(KEY_A, 5)] })))).toBe("key_in_use");
    });

    test("an update applies the change to the newest record and resolves with the result; a refusing change changes nothing", async () => {
      await using fixture = await open();
      const { store } = fixture;
      await store.add(passwordAccount("alice"));
      const changed = await store.update("ALICE", (current) => ({ ...current, hash: "$argon2id$new", epoch: current.epoch + 1 }));
      expect(changed).toEqual({ ...passwordAccount("alice"), hash: "$argon2id$new", epoch: 1 });
      expect(await store.get("alice")).toEqual(changed);
      const refusal = store.update("alice", () => {
        throw new ChatError("not_allowed", "No");
      });
      expect(await outcomeOf(refusal)).toBe("not_allowed");
      expect(await store.get("alice")).toEqual(changed);
      expect(await outcomeOf(store.update("nobody", (current) => current))).toBe("no_such_user");
    });

    test("the token secret is 32 bytes, the same from every handle and every time", async () => {
      await using fixture = await open();
      const secret = Buffer.from(await fixture.store.secret());
      expect(secret).toHaveLength(32);
      expect(Buffer.from(await fixture.store.secret())).toEqual(secret);
      expect(Buffer.from(await (await fixture.another()).secret())).toEqual(secret);
    });

    test("another handle sees the accounts added through the first at once", async () => {
      await using fixture = await open();
      const other = await fixture.another();
      expect(await other.get("alice")).toBeUndefined();
      await fixture.store.add(passwordAccount("alice"));
      expect(await other.get("alice")).toEqual(passwordAccount("alice"));
    });

    test("of two handles registering one name at once, exactly one wins", async () => {
      await using fixture = await open();
      const other = await fixture.another();
      const outcomes = await Promise.all([
        outcomeOf(fixture.store.add(passwordAccount("alice", 1))),
        outcomeOf(other.add(passwordAccount("Alice", 2))),
      ]);
      expect([...outcomes].sort()).toEqual(["ok", "user_exists"]);
      const stored = await (await fixture.another()).get("alice");
      expect(stored?.createdAt).toBe(outcomes[0] === "ok" ? 1 : 2);
    });

    test("updates racing on two handles lose nothing", async () => {
      await using fixture = await open();
      await fixture.store.add(passwordAccount("alice"));
      const other = await fixture.another();
      const bump = (store: UserStore) => store.update("alice", (current) => ({ ...current, epoch: current.epoch + 1 }));
      await Promise.all([fixture.store, other].flatMap((store) => Array.from({ length: RACING_UPDATES }, () => bump(store))));
      expect((await (await fixture.another()).get("alice"))?.epoch).toBe(2 * RACING_UPDATES);
    });

    test("of two handles binding one key to two accounts at once, exactly one wins", async () => {
      await using fixture = await open();
      await fixture.store.add(passwordAccount("alice"));
      await fixture.store.add(passwordAccount("bob"));
      const other = await fixture.another();
      const bind = (store: UserStore, user: string) => outcomeOf(store.update(user, (current) => ({ ...current, keys: [keyOf(KEY_A, 1)] })));
      const outcomes = await Promise.all([bind(fixture.store, "alice"), bind(other, "bob")]);
      expect(outcomes.sort()).toEqual(["key_in_use", "ok"]);
      const fresh = await fixture.another();
      const holders = (await Promise.all(["alice", "bob"].map((user) => fresh.get(user)))).filter((record) => record?.keys.length === 1);
      expect(holders).toHaveLength(1);
    });
  });
}
