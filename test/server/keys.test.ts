// Key login end to end over real TLS: the server asks every client for a certificate, demands
// none, and takes the fingerprint of the one the client proved it holds as the connection's key.
// Keys are bound to accounts (at registration, or later with key_add), listed, removed (which
// revokes the account's tokens), and one key never serves two accounts.

import { describe, expect, test } from "bun:test";
import { expiredIdentity, opensslIdentity, presenting, testIdentity } from "../helpers/certs.ts";
import type { TestClient } from "../helpers/client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import type { CertificatePair } from "../../src/tls/certificate.ts";
import { connect, errorFor, expectUsable, newUser } from "./support.ts";

function connectAs(server: TestServer, identity: CertificatePair, tls: Record<string, unknown> = {}): Promise<TestClient> {
  return connect(server, { tls: { ...presenting(identity), ...tls } });
}

async function registerByKey(client: TestClient, user: string, password?: string): Promise<void> {
  client.send(password === undefined ? { type: "register", user, key: true } : { type: "register", user, password, key: true });
  const reply = await client.nextOf(["registered", "error"]);
  if (reply.type === "error") throw new Error(`register ${user} by key failed: ${reply.code}`);
}

/** Logs in by key and returns the welcome (history read), or throws with the error code. */
async function loginByKey(client: TestClient, user: string) {
  client.send({ type: "login", user, key: true });
  const reply = await client.nextOf(["welcome", "error"]);
  if (reply.type === "error") throw new Error(reply.code);
  await client.next("history");
  return reply;
}

async function keysOf(client: TestClient): Promise<string[]> {
  client.send({ type: "keys" });
  return (await client.next("keys")).keys.map((key: { fingerprint: string }) => key.fingerprint);
}

describe("key-only accounts", () => {
  test("register with the connection's certificate, then log in with it on a new connection: no password anywhere", async () => {
    await using server = await startTestServer();
    const alice = await testIdentity("alice");
    await using first = await connectAs(server, alice);
    first.send({ type: "register", user: "alice", key: true });
    expect(await first.next("registered")).toEqual({ type: "registered", user: "alice" });

    await using second = await connectAs(server, alice);
    const welcome = await loginByKey(second, "Alice");
    expect(welcome.user).toBe("alice");
    expect(await keysOf(second)).toEqual([alice.fingerprint256]);
    const login = server.logs.find((entry) => entry.event === "login");
    expect(login?.fields).toMatchObject({ user: "alice", method: "key", key: alice.fingerprint256 });
    // No password opens a key-only account.
    await using other = await connect(server);
    expect(await errorFor(other, { type: "login", user: "alice", password: "any password at all" })).toBe("auth_failed");
  });

  test("keys lists the fingerprint with when it was added and last used", async () => {
    await using server = await startTestServer();
    const alice = await testIdentity("alice");
    const before = Date.now();
    await using client = await connectAs(server, alice);
    await registerByKey(client, "alice");
    await loginByKey(client, "alice");
    client.send({ type: "keys" });
    const [key] = (await client.next("keys")).keys;
    expect(key.fingerprint).toBe(alice.fingerprint256);
    expect(key.added).toBeGreaterThanOrEqual(before);
    expect(key.added).toBeLessThanOrEqual(Date.now());
    expect(key.last_used).toBe(key.added);
  });

  test("a first password set by the key session logs in; a session logged in otherwise cannot set one without the old", async () => {
    await using server = await startTestServer();
    const alice = await testIdentity("alice");
    await using keySession = await connectAs(server, alice);
    await registerByKey(keySession, "alice");
    const welcome = await loginByKey(keySession, "alice");

    // A resumed session holds a token, not the key: it may not set a password without the old one.
    await using resumed = await connect(server);
    resumed.send({ type: "resume", user: "alice", token: welcome.token });
    await resumed.next("welcome");
    expect(await errorFor(resumed, { type: "passwd", new: "first password" })).toBe("not_allowed");

    keySession.send({ type: "passwd", new: "first password" });
    const changed = await keySession.next("password_changed");
    await using byPassword = await connect(server);
    expect((await byPassword.login("alice", "first password")).user).toBe("alice");
    // The password change revoked the token the key login had issued, and issued a new one.
    await using stale = await connect(server);
    expect(await errorFor(stale, { type: "resume", user: "alice", token: welcome.token })).toBe("auth_failed");
    stale.send({ type: "resume", user: "alice", token: changed.token });
    expect((await stale.next("welcome")).user).toBe("alice");
    // From now on the old password is needed, even from the key session.
    expect(await errorFor(keySession, { type: "passwd", new: "second password" })).toBe("not_allowed");
  });
});

describe("password and key", () => {
  test('register with a password and "key":true binds both, and either logs in', async () => {
    await using server = await startTestServer();
    const bob = await testIdentity("bob");
    await using client = await connectAs(server, bob);
    await registerByKey(client, "bob", "bob-password");
    await using byKey = await connectAs(server, bob);
    expect((await loginByKey(byKey, "bob")).user).toBe("bob");
    await using byPassword = await connect(server);
    expect((await byPassword.login("bob", "bob-password")).user).toBe("bob");
  });

  test("key_add on a running password session binds its certificate; a new connection then logs in by key", async () => {
    await using server = await startTestServer();
    const carol = await testIdentity("carol");
    await using session = await connectAs(server, carol);
    await session.register("carol", "carol-password");
    expect(await errorFor(session, { type: "key_add" })).toBe("not_authenticated");
    await session.login("carol", "carol-password");
    session.send({ type: "key_add" });
    expect(await session.next("key_added")).toEqual({ type: "key_added", fingerprint: carol.fingerprint256 });
    // Adding it again changes nothing.
    session.send({ type: "key_add" });
    await session.next("key_added");
    expect(await keysOf(session)).toEqual([carol.fingerprint256]);

    await using fresh = await connectAs(server, carol);
    expect((await loginByKey(fresh, "carol")).user).toBe("carol");
  });
});

describe("one key, one account", () => {
  test("a second account cannot claim a key: not at registration, not with key_add, and it does not log in as it", async () => {
    await using server = await startTestServer();
    const shared = await testIdentity("shared");
    await using alice = await connectAs(server, shared);
    await registerByKey(alice, "alice");

    await using mallory = await connectAs(server, shared);
    expect(await errorFor(mallory, { type: "register", user: "mallory", key: true })).toBe("key_in_use");
    expect(await errorFor(mallory, { type: "register", user: "mallory", password: "mallory-password", key: true })).toBe("key_in_use");
    await mallory.register("mallory", "mallory-password");
    expect(await errorFor(mallory, { type: "login", user: "mallory", key: true })).toBe("auth_failed");
    await mallory.login("mallory", "mallory-password");
    expect(await errorFor(mallory, { type: "key_add" })).toBe("key_in_use");
    expect(await keysOf(mallory)).toEqual([]);

    await using again = await connectAs(server, shared);
    expect((await loginByKey(again, "alice")).user).toBe("alice");
  });
});

describe("removing a key", () => {
  test("the removed key is refused, the account's tokens are revoked, and the reply's token resumes", async () => {
    await using server = await startTestServer();
    const laptop = await testIdentity("laptop");
    const phone = await testIdentity("phone");
    await using first = await connectAs(server, laptop);
    await registerByKey(first, "dave", "dave-password");
    const byLaptop = await loginByKey(first, "dave");
    await using second = await connectAs(server, phone);
    await second.login("dave", "dave-password");
    second.send({ type: "key_add" });
    await second.next("key_added");

    // Any case is the same key.
    second.send({ type: "key_remove", fingerprint: laptop.fingerprint256.toLowerCase() });
    const removed = await second.next("key_removed");
    expect(removed.fingerprint).toBe(laptop.fingerprint256);
    expect(await keysOf(second)).toEqual([phone.fingerprint256]);

    await using retry = await connectAs(server, laptop);
    expect(await errorFor(retry, { type: "login", user: "dave", key: true })).toBe("auth_failed");
    expect(await errorFor(retry, { type: "resume", user: "dave", token: byLaptop.token })).toBe("auth_failed");
    retry.send({ type: "resume", user: "dave", token: removed.token });
    expect((await retry.next("welcome")).user).toBe("dave");
    await using byPhone = await connectAs(server, phone);
    expect((await loginByKey(byPhone, "dave")).user).toBe("dave");
  });

  test("an unknown key is no_such_key, the last credential is not_allowed, a malformed fingerprint is bad_frame", async () => {
    await using server = await startTestServer();
    const erin = await testIdentity("erin");
    const other = await testIdentity("other");
    await using client = await connectAs(server, erin);
    await registerByKey(client, "erin");
    await loginByKey(client, "erin");
    expect(await errorFor(client, { type: "key_remove", fingerprint: other.fingerprint256 })).toBe("no_such_key");
    expect(await errorFor(client, { type: "key_remove", fingerprint: erin.fingerprint256 })).toBe("not_allowed");
    expect(await errorFor(client, { type: "key_remove", fingerprint: erin.fingerprint256.replaceAll(":", "") })).toBe("bad_frame");
    expect(await keysOf(client)).toEqual([erin.fingerprint256]);
    await expectUsable(client);
  });
});

describe("a client without a certificate", () => {
  test("registers and logs in by password as before; key frames get auth_failed or no_such_key", async () => {
    await using server = await startTestServer();
    const { client } = await newUser(server, "frank");
    await using frank = client;
    expect(await errorFor(frank, { type: "key_add" })).toBe("no_such_key");
    expect(await keysOf(frank)).toEqual([]);
    await using anonymous = await connect(server);
    expect(await errorFor(anonymous, { type: "login", user: "frank", key: true })).toBe("auth_failed");
    expect(await errorFor(anonymous, { type: "register", user: "gina", key: true })).toBe("no_such_key");
    await expectUsable(anonymous);
  });
});

describe("certificates that cannot be a key", () => {
  test("a certificate whose private key the client does not hold cannot even be offered: nothing reaches the server", async () => {
    await using server = await startTestServer();
    const alice = await testIdentity("alice");
    const stranger = await testIdentity("stranger");
    await using owner = await connectAs(server, alice);
    await registerByKey(owner, "alice");
    await expect(connect(server, { tls: { cert: alice.certPem, key: stranger.keyPem } })).rejects.toThrow(/KEY_VALUES_MISMATCH|key values mismatch/i);
    expect(server.logs.filter((entry) => entry.event === "login")).toEqual([]);
  });

  test("an expired certificate is still its key: validity dates are ignored", async () => {
    await using server = await startTestServer();
    const expired = await expiredIdentity();
    await using client = await connectAs(server, expired);
    await registerByKey(client, "old");
    await using again = await connectAs(server, expired);
    expect((await loginByKey(again, "old")).user).toBe("old");
  });

  test("RSA-512 fails the TLS 1.3 handshake cleanly, and the server goes on", async () => {
    await using server = await startTestServer();
    const weak = await opensslIdentity("rsa:512");
    await expect(connectAs(server, weak)).rejects.toThrow();
    await using bystander = await connect(server);
    await expectUsable(bystander);
  });

  test.each([512, 1024])("RSA-%i over TLS 1.2 connects without a key: login by key is auth_failed, key frames no_such_key", async (bits) => {
    await using server = await startTestServer({ tls: { minVersion: "1.2" } });
    const weak = await opensslIdentity(`rsa:${bits}`);
    await using client = await connectAs(server, weak, { maxVersion: 771 });
    expect(client.tlsVersion).toBe("TLSv1.2");
    expect(await errorFor(client, { type: "register", user: "weak", key: true })).toBe("no_such_key");
    expect(await errorFor(client, { type: "login", user: "weak", key: true })).toBe("auth_failed");
    await client.register("weak", "weak-password");
    await client.login("weak", "weak-password");
    expect(await errorFor(client, { type: "key_add" })).toBe("no_such_key");
  });

  test.each(["rsa:2048", "ed25519"])("a %s certificate is a key like an ECDSA one", async (newkey) => {
    await using server = await startTestServer();
    const identity = await opensslIdentity(newkey);
    await using client = await connectAs(server, identity);
    await registerByKey(client, "strong");
    await using again = await connectAs(server, identity);
    expect((await loginByKey(again, "strong")).user).toBe("strong");
  });
});
