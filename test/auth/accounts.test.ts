// AccountService: registration reserves the name before the slow hash, logins of unknown users
// cost a dummy hash and get the wrong-password answer, the throttle refuses before any hashing,
// each address has a few checks in flight at most, and tokens stop working when the epoch moves.
// Keys: registration and login by key cost no hashing, failures count against the address only,
// a key belongs to one account, and the last credential of an account cannot be removed.
// A fake hasher stands in for argon2id; the throttle and the store file are the real ones.

import { describe, expect, test } from "bun:test";
import { AccountService } from "../../src/auth/accounts.ts";
import type { PasswordHasher } from "../../src/auth/passwords.ts";
import { JsonFileStore } from "../../src/auth/store.ts";
import { LoginThrottle, MemoryThrottleCounters } from "../../src/auth/throttle.ts";
import { issueToken } from "../../src/auth/tokens.ts";
import { KEY_LAST_USED_RESOLUTION_MS, MAX_KEYS_PER_ACCOUNT } from "../../src/core/limits.ts";
import type { ChatError } from "../../src/protocol/errors.ts";
import { withTimeout } from "../helpers/client.ts";
import { tempDir } from "../helpers/tmp.ts";

const FREE_FAILURES = 2;
const BACKOFF_BASE_MS = 1_000;
const TOKEN_TTL_MS = 60_000;
/** How long a test waits for what takes a few microtasks, so a broken limit fails fast. */
const WAIT_MS = 1_000;
const ADDRESS = "192.0.2.1";

const passwordOf = (user: string) => `${user}-password`;
const fakeHash = (password: string) => `fake:${password}`;

/** A stand-in for argon2id: "hashes" at once and records every password it was asked about. */
class FakeHasher implements PasswordHasher {
  readonly hashed: string[] = [];
  readonly verified: string[] = [];
  readonly dummyVerified: string[] = [];
  /** While set, verifications wait for it, so a test can hold checks in flight. */
  hold: Promise<void> | undefined;
  private readonly verifiedWaiters: Array<{ count: number; resolve: () => void }> = [];

  async hash(password: string): Promise<string> {
    this.hashed.push(password);
    return fakeHash(password);
  }

  async verify(password: string, phc: string): Promise<boolean> {
    this.verified.push(password);
    for (const waiter of this.verifiedWaiters) if (this.verified.length >= waiter.count) waiter.resolve();
    await this.hold;
    return phc === fakeHash(password);
  }

  async verifyDummy(password: string): Promise<false> {
    this.dummyVerified.push(password);
    return false;
  }

  /** Resolves once `count` real verifications have started. */
  untilVerified(count: number): Promise<void> {
    const started = new Promise<void>((resolve) => {
      if (this.verified.length >= count) resolve();
      else this.verifiedWaiters.push({ count, resolve });
    });
    return withTimeout(started, WAIT_MS, `${count} verifications to start`);
  }
}

async function accountsOnDisk(maxLoginsPerAddress = 4) {
  const dir = await tempDir();
  const store = await JsonFileStore.open(dir.file("users.json"));
  const hasher = new FakeHasher();
  const clock = { now: 1_000_000 };
  const now = () => clock.now;
  const throttle = new LoginThrottle(
    new MemoryThrottleCounters(
      { freeFailures: FREE_FAILURES, baseDelayMs: BACKOFF_BASE_MS, maxDelayMs: 8 * BACKOFF_BASE_MS, windowMs: 60 * BACKOFF_BASE_MS, maxEntries: 100 },
      now,
    ),
  );
  const accounts = new AccountService(store, hasher, throttle, { tokenTtlMs: TOKEN_TTL_MS, maxLoginsPerAddress, now });
  return {
    accounts,
    hasher,
    store,
    clock,
    async register(...users: string[]) {
      for (const user of users) await accounts.register(user, { password: passwordOf(user) });
    },
    async [Symbol.asyncDispose]() {
      await store.close();
      await dir[Symbol.asyncDispose]();
    },
  };
}

/** How an operation ended: undefined if it succeeded, else its error. */
async function settle(operation: Promise<unknown> | (() => unknown)): Promise<ChatError | undefined> {
  try {
    await (typeof operation === "function" ? operation() : operation);
    return undefined;
  } catch (error) {
    return error as ChatError;
  }
}

/** The error code an operation fails with, or "ok" if it succeeds. */
async function outcomeOf(operation: Promise<unknown> | (() => unknown)): Promise<string> {
  return (await settle(operation))?.code ?? "ok";
}

async function errorOf(operation: Promise<unknown> | (() => unknown)): Promise<ChatError> {
  const error = await settle(operation);
  if (!error) throw new Error("expected a refusal");
  return error;
}

describe("registration", () => {
  test("stores the hash, never the password, at epoch 0 with the creation time; the account then logs in", async () => {
    await using setup = await accountsOnDisk();
    expect(await setup.accounts.register("alice", { password: "alice-password" })).toBe("alice");
    expect(await setup.store.get("alice")).toEqual({ name: "alice", hash: fakeHash("alice-password"), epoch: 0, createdAt: setup.clock.now, keys: [] });
    expect((await setup.accounts.login("alice", "alice-password", ADDRESS)).user).toBe("alice");
  });

  test("refuses a bad name or a weak password before any hashing", async () => {
    await using setup = await accountsOnDisk();
    expect(await outcomeOf(setup.accounts.register("not a name", { password: "long-enough-password" }))).toBe("invalid_user");
    expect(await outcomeOf(setup.accounts.register("alice", { password: "short" }))).toBe("weak_password");
    expect(setup.hasher.hashed).toEqual([]);
  });

  test("reserves the name before hashing: of two racing registrations (in any case) one wins, and the loser costs no hash", async () => {
    await using setup = await accountsOnDisk();
    const racing = [setup.accounts.register("alice", { password: "first-password" }), setup.accounts.register("ALICE", { password: "second-password" })];
    expect(await Promise.all(racing.map(outcomeOf))).toEqual(["ok", "user_exists"]);
    expect(setup.hasher.hashed).toEqual(["first-password"]);
    expect((await setup.store.get("alice"))?.hash).toBe(fakeHash("first-password"));
  });

  test("a name registered earlier is refused", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    expect(await outcomeOf(setup.accounts.register("Alice", { password: "other-password" }))).toBe("user_exists");
  });
});

describe("password login", () => {
  test("the right password, in a name of any case, gets the name as registered and a token that resumes", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    const login = await setup.accounts.login("ALICE", passwordOf("alice"), ADDRESS);
    expect(login.user).toBe("alice");
    expect((await setup.accounts.resume("alice", login.token)).user).toBe("alice");
  });

  test("an unknown user costs a dummy hash and gets the same answer as a wrong password", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    const unknown = await errorOf(setup.accounts.login("nobody", "nobody-password", ADDRESS));
    const invalidName = await errorOf(setup.accounts.login("not a name", "some-password", ADDRESS));
    const wrong = await errorOf(setup.accounts.login("alice", "wrong-password", ADDRESS));
    expect(setup.hasher.dummyVerified).toEqual(["nobody-password", "some-password"]);
    expect(setup.hasher.verified).toEqual(["wrong-password"]);
    for (const refusal of [unknown, invalidName]) {
      expect({ code: refusal.code, message: refusal.message }).toEqual({ code: wrong.code, message: wrong.message });
    }
    expect(wrong.code).toBe("auth_failed");
  });

  test("past the free failures the throttle refuses at once, without hashing, even the right password", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    for (let failure = 0; failure <= FREE_FAILURES; failure++) {
      expect(await outcomeOf(setup.accounts.login("alice", "wrong-password", ADDRESS))).toBe("auth_failed");
    }
    const checksBefore = setup.hasher.verified.length;
    expect(await outcomeOf(setup.accounts.login("alice", passwordOf("alice"), ADDRESS))).toBe("throttled");
    expect(setup.hasher.verified).toHaveLength(checksBefore);

    setup.clock.now += BACKOFF_BASE_MS;
    expect((await setup.accounts.login("alice", passwordOf("alice"), ADDRESS)).user).toBe("alice");
  });

  test("one address has at most maxLoginsPerAddress checks in flight; the next waits its turn, another address does not", async () => {
    await using setup = await accountsOnDisk(1);
    await setup.register("alice", "bob", "carol");
    let release!: () => void;
    setup.hasher.hold = new Promise<void>((resolve) => (release = resolve));
    const logins = [
      setup.accounts.login("alice", passwordOf("alice"), ADDRESS),
      setup.accounts.login("bob", passwordOf("bob"), ADDRESS),
      setup.accounts.login("carol", passwordOf("carol"), "198.51.100.7"),
    ];
    await setup.hasher.untilVerified(2);
    expect(setup.hasher.verified).toEqual([passwordOf("alice"), passwordOf("carol")]);

    release();
    expect((await Promise.all(logins)).map((login) => login.user)).toEqual(["alice", "bob", "carol"]);
    expect(setup.hasher.verified).toEqual([passwordOf("alice"), passwordOf("carol"), passwordOf("bob")]);
  });

  test("a login whose connection went while it waited for its turn is dropped without hashing", async () => {
    await using setup = await accountsOnDisk(1);
    await setup.register("alice", "bob");
    let release!: () => void;
    setup.hasher.hold = new Promise<void>((resolve) => (release = resolve));
    const first = setup.accounts.login("alice", passwordOf("alice"), ADDRESS);
    const gone = new AbortController();
    const waiting = setup.accounts.login("bob", passwordOf("bob"), ADDRESS, gone.signal);
    await setup.hasher.untilVerified(1);
    gone.abort();
    release();
    expect((await first).user).toBe("alice");
    expect(await outcomeOf(waiting)).toBe("timeout");
    expect(setup.hasher.verified).toEqual([passwordOf("alice")]);
  });
});

describe("resume", () => {
  test("a valid token yields the account and a fresh token that resumes too", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    const { token } = await setup.accounts.login("alice", passwordOf("alice"), ADDRESS);
    setup.clock.now += 1;
    const resumed = await setup.accounts.resume("Alice", token);
    expect(resumed.user).toBe("alice");
    expect(resumed.token).not.toBe(token);
    expect((await setup.accounts.resume("alice", resumed.token)).user).toBe("alice");
  });

  test("a token issued for another epoch is refused, and an unknown user gets the same refusal", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    const otherEpoch = issueToken(await setup.store.secret(), "alice", 1, setup.clock.now + TOKEN_TTL_MS);
    const refused = await errorOf(() => setup.accounts.resume("alice", otherEpoch));
    expect(refused.code).toBe("auth_failed");
    const unknown = await errorOf(setup.accounts.resume("nobody", issueToken(await setup.store.secret(), "nobody", 0, setup.clock.now + TOKEN_TTL_MS)));
    expect({ code: unknown.code, message: unknown.message }).toEqual({ code: refused.code, message: refused.message });
  });
});

describe("password change", () => {
  test("bumps the epoch: earlier tokens are refused, the returned one resumes, and only the new password logs in", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    const before = await setup.accounts.login("alice", passwordOf("alice"), ADDRESS);
    const token = await setup.accounts.changePassword("alice", passwordOf("alice"), "alice-new-password", ADDRESS);
    expect(await setup.store.get("alice")).toMatchObject({ hash: fakeHash("alice-new-password"), epoch: 1 });
    expect(await outcomeOf(() => setup.accounts.resume("alice", before.token))).toBe("auth_failed");
    expect((await setup.accounts.resume("alice", token)).user).toBe("alice");
    expect(await outcomeOf(setup.accounts.login("alice", passwordOf("alice"), ADDRESS))).toBe("auth_failed");
    expect((await setup.accounts.login("alice", "alice-new-password", ADDRESS)).user).toBe("alice");
  });

  test("a weak new password is refused before the old one is checked", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    expect(await outcomeOf(setup.accounts.changePassword("alice", passwordOf("alice"), "short", ADDRESS))).toBe("weak_password");
    expect(setup.hasher.verified).toEqual([]);
  });

  test("a wrong old password is refused and counts as a failed login", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    for (let failure = 0; failure <= FREE_FAILURES; failure++) {
      const refused = await errorOf(setup.accounts.changePassword("alice", "wrong-password", "alice-new-password", ADDRESS));
      expect(refused.code).toBe("auth_failed");
    }
    expect(await outcomeOf(setup.accounts.changePassword("alice", passwordOf("alice"), "alice-new-password", ADDRESS))).toBe("throttled");
    expect((await setup.store.get("alice"))?.epoch).toBe(0);
  });
});

const KEY = `${"A1:".repeat(31)}A1`;
const OTHER_KEY = `${"B2:".repeat(31)}B2`;

describe("keys", () => {
  test("a key-only account is registered without hashing and logs in with its key only", async () => {
    await using setup = await accountsOnDisk();
    expect(await setup.accounts.register("alice", { key: KEY })).toBe("alice");
    expect(setup.hasher.hashed).toEqual([]);
    expect(await setup.store.get("alice")).toEqual({ name: "alice", epoch: 0, createdAt: setup.clock.now, keys: [{ fingerprint: KEY, addedAt: setup.clock.now, lastUsedAt: setup.clock.now }] });
    const login = await setup.accounts.loginWithKey("ALICE", KEY, ADDRESS);
    expect(login.user).toBe("alice");
    expect((await setup.accounts.resume("alice", login.token)).user).toBe("alice");
    // No password opens it: the attempt costs the same dummy hash as an unknown user.
    expect(await outcomeOf(setup.accounts.login("alice", "any-password", ADDRESS))).toBe("auth_failed");
    expect(setup.hasher.dummyVerified).toEqual(["any-password"]);
  });

  test("a password and a key registered together both log in", async () => {
    await using setup = await accountsOnDisk();
    await setup.accounts.register("alice", { password: passwordOf("alice"), key: KEY });
    expect((await setup.accounts.login("alice", passwordOf("alice"), ADDRESS)).user).toBe("alice");
    expect((await setup.accounts.loginWithKey("alice", KEY, ADDRESS)).user).toBe("alice");
  });

  test("another account's key, an unknown key, an unknown user and no certificate all get auth_failed without hashing", async () => {
    await using setup = await accountsOnDisk();
    await setup.accounts.register("alice", { key: KEY });
    await setup.accounts.register("bob", { key: OTHER_KEY });
    const attempts = [["alice", OTHER_KEY], ["alice", `${"C3:".repeat(31)}C3`], ["nobody", KEY], ["not a name", KEY], ["alice", undefined]] as const;
    // One address each, so the throttle stays out of it.
    for (const [i, [user, key]] of attempts.entries()) {
      expect(await outcomeOf(setup.accounts.loginWithKey(user, key, `192.0.2.${10 + i}`))).toBe("auth_failed");
    }
    expect([...setup.hasher.hashed, ...setup.hasher.verified, ...setup.hasher.dummyVerified]).toEqual([]);
  });

  test("failed key logins count against the address, not the user: a throttled address waits, the user's key still works elsewhere", async () => {
    await using setup = await accountsOnDisk();
    await setup.accounts.register("alice", { key: KEY });
    for (let failure = 0; failure <= FREE_FAILURES; failure++) {
      expect(await outcomeOf(setup.accounts.loginWithKey("alice", OTHER_KEY, ADDRESS))).toBe("auth_failed");
    }
    expect(await outcomeOf(setup.accounts.loginWithKey("alice", KEY, ADDRESS))).toBe("throttled");
    expect((await setup.accounts.loginWithKey("alice", KEY, "198.51.100.7")).user).toBe("alice");
    setup.clock.now += BACKOFF_BASE_MS;
    expect((await setup.accounts.loginWithKey("alice", KEY, ADDRESS)).user).toBe("alice");
  });

  test("guessing at a user's password does not lock out the user's key", async () => {
    await using setup = await accountsOnDisk();
    await setup.accounts.register("alice", { password: passwordOf("alice"), key: KEY });
    for (let failure = 0; failure <= FREE_FAILURES; failure++) {
      await setup.accounts.login("alice", "wrong-password", "203.0.113.66").catch(() => undefined);
    }
    expect(await outcomeOf(setup.accounts.login("alice", passwordOf("alice"), ADDRESS))).toBe("throttled");
    expect((await setup.accounts.loginWithKey("alice", KEY, ADDRESS)).user).toBe("alice");
  });

  test(`last use is written when it is a day stale, not at every login`, async () => {
    await using setup = await accountsOnDisk();
    const added = setup.clock.now;
    await setup.accounts.register("alice", { key: KEY });
    setup.clock.now = added + KEY_LAST_USED_RESOLUTION_MS - 1;
    await setup.accounts.loginWithKey("alice", KEY, ADDRESS);
    expect(await setup.accounts.keys("alice")).toEqual([{ fingerprint: KEY, added, last_used: added }]);
    setup.clock.now = added + KEY_LAST_USED_RESOLUTION_MS;
    await setup.accounts.loginWithKey("alice", KEY, ADDRESS);
    expect(await setup.accounts.keys("alice")).toEqual([{ fingerprint: KEY, added, last_used: setup.clock.now }]);
  });

  test("addKey binds a second key, is a no-op for a key the account holds, and refuses another account's key", async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice", "bob");
    await setup.accounts.addKey("bob", OTHER_KEY);
    expect(await setup.accounts.addKey("alice", KEY)).toBe(KEY);
    expect(await setup.accounts.addKey("alice", KEY)).toBe(KEY);
    expect((await setup.accounts.keys("alice")).map((key) => key.fingerprint)).toEqual([KEY]);
    expect(await outcomeOf(setup.accounts.addKey("alice", OTHER_KEY))).toBe("key_in_use");
    expect(await outcomeOf(setup.accounts.register("carol", { password: passwordOf("carol"), key: KEY }))).toBe("key_in_use");
    expect(await setup.store.get("carol")).toBeUndefined();
  });

  test(`an account holds at most ${MAX_KEYS_PER_ACCOUNT} keys`, async () => {
    await using setup = await accountsOnDisk();
    await setup.register("alice");
    const keyNumber = (n: number) => Array.from({ length: 32 }, () => n.toString(16).padStart(2, "0").toUpperCase()).join(":");
    for (let n = 0; n < MAX_KEYS_PER_ACCOUNT; n++) await setup.accounts.addKey("alice", keyNumber(n));
    expect(await outcomeOf(setup.accounts.addKey("alice", keyNumber(MAX_KEYS_PER_ACCOUNT)))).toBe("not_allowed");
    expect(await setup.accounts.keys("alice")).toHaveLength(MAX_KEYS_PER_ACCOUNT);
  });

  test("removing a key revokes the account's tokens and returns one that resumes; the key no longer logs in", async () => {
    await using setup = await accountsOnDisk();
    await setup.accounts.register("alice", { password: passwordOf("alice"), key: KEY });
    const before = await setup.accounts.loginWithKey("alice", KEY, ADDRESS);
    const token = await setup.accounts.removeKey("alice", KEY);
    expect(await outcomeOf(() => setup.accounts.resume("alice", before.token))).toBe("auth_failed");
    expect((await setup.accounts.resume("alice", token)).user).toBe("alice");
    expect(await outcomeOf(setup.accounts.loginWithKey("alice", KEY, ADDRESS))).toBe("auth_failed");
    expect(await setup.accounts.keys("alice")).toEqual([]);
  });

  test("an unknown key is no_such_key; the last credential of an account is not_allowed; both change nothing", async () => {
    await using setup = await accountsOnDisk();
    await setup.accounts.register("alice", { key: KEY });
    expect(await outcomeOf(setup.accounts.removeKey("alice", OTHER_KEY))).toBe("no_such_key");
    expect(await outcomeOf(setup.accounts.removeKey("alice", KEY))).toBe("not_allowed");
    expect(await setup.store.get("alice")).toMatchObject({ epoch: 0, keys: [{ fingerprint: KEY }] });
    await setup.accounts.addKey("alice", OTHER_KEY);
    await setup.accounts.removeKey("alice", KEY);
    expect((await setup.accounts.keys("alice")).map((key) => key.fingerprint)).toEqual([OTHER_KEY]);
  });

  test("a key-only account sets a first password without an old one; after that the old one is needed", async () => {
    await using setup = await accountsOnDisk();
    await setup.accounts.register("alice", { key: KEY });
    const before = await setup.accounts.loginWithKey("alice", KEY, ADDRESS);
    const token = await setup.accounts.changePassword("alice", undefined, "first-password", ADDRESS);
    expect(await setup.store.get("alice")).toMatchObject({ hash: fakeHash("first-password"), epoch: 1 });
    expect(await outcomeOf(() => setup.accounts.resume("alice", before.token))).toBe("auth_failed");
    expect((await setup.accounts.resume("alice", token)).user).toBe("alice");
    expect((await setup.accounts.login("alice", "first-password", ADDRESS)).user).toBe("alice");
    expect(await outcomeOf(setup.accounts.changePassword("alice", undefined, "second-password", ADDRESS))).toBe("not_allowed");
    // With the last key gone the password is what remains.
    await setup.accounts.removeKey("alice", KEY);
    expect((await setup.accounts.login("alice", "first-password", ADDRESS)).user).toBe("alice");
  });
});
