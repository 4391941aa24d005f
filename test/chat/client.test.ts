// End-to-end tests of the client library against a real server over real TLS: how the server is
// verified (CA, pins with trust on first use), and the ChatClient session (relay, pacing to the
// advertised rate, reconnecting with a resume token, catching up after a dropped connection,
// keepalive pings). test/chat/catch-up.test.ts has acks, catch-up across restarts and the log.

import { describe, expect, test } from "bun:test";
import { readFile, stat } from "node:fs/promises";
import { Backoff } from "../../src/client/backoff.ts";
import { ChatClient } from "../../src/client/chat-client.ts";
import { ClientConnection, ConnectError, type Verification } from "../../src/client/connection.ts";
import { hostKey, KnownHosts } from "../../src/client/known-hosts.ts";
import { pinVerification, type PinPolicy } from "../../src/client/trust.ts";
import { testCertificate } from "../helpers/certs.ts";
import { withTimeout } from "../helpers/client.ts";
import { authLogs, chatOptions, closedPort, holdableVerification, idlingReconnects, loggedIn, logEvents, registerUsers, startChatClient, until } from "../helpers/chat-support.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";

const ALICE = "alice-password";
const BOB = "bob-password!";

function caVerification(server: TestServer): Verification {
  return { kind: "ca", ca: server.certificate.certPem };
}

/** Resolves with the ConnectError a connection attempt fails with (fails the test if it connects). */
async function connectFailure(promise: Promise<ClientConnection | ChatClient>): Promise<ConnectError> {
  let result: unknown;
  try {
    result = await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectError);
    return error as ConnectError;
  }
  if (result instanceof ClientConnection) await result.close();
  if (result instanceof ChatClient) await result.stop();
  throw new Error("expected the connection to be refused, but it succeeded");
}

/** Every connection the server accepted has closed again (so whatever the client sent was read). */
async function allDisconnected(server: TestServer): Promise<void> {
  await until(
    () => logEvents(server, "connect").length > 0 && logEvents(server, "disconnect").length === logEvents(server, "connect").length,
    "the server to see every connection close",
  );
}

describe("verification with a CA file", () => {
  test("the right CA and host name connect over TLS 1.3", async () => {
    await using server = await startTestServer();
    await using connection = await ClientConnection.connect({
      host: "127.0.0.1",
      port: server.port,
      serverName: "localhost",
      verification: caVerification(server),
    });
    expect(connection.isOpen).toBe(true);
    expect(connection.tlsVersion).toBe("TLSv1.3");
    expect(connection.peer.authorized).toBe(true);
    expect(connection.peer.fingerprint256).toBe(server.fingerprint256);
  });

  test("a host name the certificate does not cover is untrusted, and nothing is sent", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE });
    const error = await connectFailure(
      ChatClient.start(chatOptions(server, "alice", ALICE, { serverName: "wrong.example" })),
    );
    expect(error.kind).toBe("untrusted");
    await allDisconnected(server);
    expect(authLogs(server).filter((entry) => entry.event !== "register")).toEqual([]);
    expect(logEvents(server, "register")).toHaveLength(1); // only registerUsers' own
  });

  test("a port nobody listens on fails with connect_failed (and no stray rejection)", async () => {
    const port = closedPort();
    const error = await connectFailure(ClientConnection.connect({ host: "127.0.0.1", port, verification: { kind: "insecure" } }));
    expect(error.kind).toBe("connect_failed");
    expect(error.message).toContain(`127.0.0.1:${port}`);
    // An unhandled rejection from the attempt would be reported by the runner after the test's
    // last await; give pending callbacks one macrotask turn to run first.
    await new Promise((resolve) => setImmediate(resolve));
  });

  test("a certificate from another CA is untrusted, and nothing is sent", async () => {
    await using server = await startTestServer();
    const other = await testCertificate("ec", ["other.example"]);
    const error = await connectFailure(
      ChatClient.start(chatOptions(server, "alice", ALICE, { verification: { kind: "ca", ca: other.certPem } })),
    );
    expect(error.kind).toBe("untrusted");
    expect(error.message).toContain("not trusted");
    await allDisconnected(server);
    expect(authLogs(server)).toEqual([]);
  });
});

describe("trust on first use (pinVerification + KnownHosts)", () => {
  const notices: string[] = [];
  async function policy(path: string, hostPort: string, extra: Partial<PinPolicy> = {}): Promise<Verification> {
    return pinVerification({
      knownHosts: await KnownHosts.load(path),
      hostPort,
      trustNew: false,
      notify: (message) => notices.push(message),
      ...extra,
    });
  }
  const connectTo = (server: TestServer, verification: Verification) =>
    ClientConnection.connect({ host: "127.0.0.1", port: server.port, verification });

  test("first use pins (0600 file), later uses match, a changed certificate is refused", async () => {
    await using dir = await tempDir();
    const path = dir.file("config/tlschat/known_hosts");
    await using server = await startTestServer();
    const key = hostKey("localhost", server.port);

    notices.length = 0;
    const first = await connectTo(server, await policy(path, key, { trustNew: true }));
    await first.close();
    expect(await readFile(path, "utf8")).toBe(`${key} ${server.fingerprint256}\n`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(notices.join("\n")).toContain(`Pinned ${key}`);

    // Second use: no trustNew, no confirm; the pin alone lets it through.
    const second = await connectTo(server, await policy(path, key));
    expect(second.peer.fingerprint256).toBe(server.fingerprint256);
    await second.close();

    // Same host key, different certificate: an impostor (or a re-keyed server).
    const otherCert = await testCertificate("ec", ["localhost", "127.0.0.1", "x.example"]);
    await using impostor = await startTestServer({ tls: { cert: otherCert.certPem, key: otherCert.keyPem } });
    expect(impostor.fingerprint256).not.toBe(server.fingerprint256);
    const error = await connectFailure(
      ChatClient.start({
        servers: [{ host: "127.0.0.1", port: impostor.port, verification: await policy(path, key, { trustNew: true }) }],
        user: "alice",
        password: ALICE,
        reconnect: false,
      }),
    );
    expect(error.kind).toBe("untrusted");
    expect(error.message).toContain(server.fingerprint256);
    expect(error.message).toContain(impostor.fingerprint256);
    expect(error.message).toContain(path);
    // The pin is kept, and the impostor heard nothing.
    expect(await readFile(path, "utf8")).toBe(`${key} ${server.fingerprint256}\n`);
    await allDisconnected(impostor);
    expect(authLogs(impostor)).toEqual([]);
  });

  test("a server restarted on the same port with a new certificate is refused", async () => {
    await using dir = await tempDir();
    const path = dir.file("known_hosts");
    const first = await startTestServer();
    const port = first.port;
    const key = hostKey("localhost", port);
    try {
      await (await connectTo(first, await policy(path, key, { trustNew: true }))).close();
    } finally {
      await first.stop();
    }
    const otherCert = await testCertificate("ec", ["localhost", "127.0.0.1", "x.example"]);
    await using second = await startTestServer({ port, tls: { cert: otherCert.certPem, key: otherCert.keyPem } });
    expect(second.port).toBe(port);
    const error = await connectFailure(connectTo(second, await policy(path, key)));
    expect(error.kind).toBe("untrusted");
    expect(error.message).toContain("HAS CHANGED");
    expect(error.message).toContain(first.fingerprint256);
    expect(error.message).toContain(second.fingerprint256);
  });

  test("an unknown server is refused without trustNew or a confirmation, and nothing is pinned", async () => {
    await using dir = await tempDir();
    const path = dir.file("known_hosts");
    await using server = await startTestServer();
    const key = hostKey("localhost", server.port);
    const error = await connectFailure(connectTo(server, await policy(path, key)));
    expect(error.kind).toBe("untrusted");
    expect(error.message).toContain("--fingerprint");
    expect(error.message).toContain(server.fingerprint256);
    expect(await Bun.file(path).exists()).toBe(false);

    // A confirmation that says no: refused, nothing pinned; one that says yes: pinned.
    const asked: string[] = [];
    const refused = await connectFailure(
      connectTo(server, await policy(path, key, { confirm: async (hostPort, fp) => (asked.push(`${hostPort} ${fp}`), false) })),
    );
    expect(refused.kind).toBe("untrusted");
    expect(asked).toEqual([`${key} ${server.fingerprint256}`]);
    expect(await Bun.file(path).exists()).toBe(false);
    await (await connectTo(server, await policy(path, key, { confirm: async () => true }))).close();
    expect(await readFile(path, "utf8")).toBe(`${key} ${server.fingerprint256}\n`);
  });

  test("an expected fingerprint pins when it matches and refuses when it does not", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    const key = hostKey("localhost", server.port);

    const wrongPath = dir.file("wrong_hosts");
    const wrong = "AB:".repeat(31) + "AB";
    const error = await connectFailure(connectTo(server, await policy(wrongPath, key, { expected: [wrong] })));
    expect(error.kind).toBe("untrusted");
    expect(error.message).toContain(wrong);
    expect(error.message).toContain(server.fingerprint256);
    expect(await Bun.file(wrongPath).exists()).toBe(false);

    // Given without colons and in lower case: still the same fingerprint.
    const path = dir.file("known_hosts");
    const expected = server.fingerprint256.replaceAll(":", "").toLowerCase();
    await (await connectTo(server, await policy(path, key, { expected: [expected] }))).close();
    expect(await readFile(path, "utf8")).toBe(`${key} ${server.fingerprint256}\n`);
  });
});

describe("ChatClient", () => {
  test("two clients exchange room messages and direct messages", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));
    await using bob = await startChatClient(chatOptions(server, "bob", BOB));
    expect(alice.client.connected).toBe(true);
    expect(alice.client.tlsSummary).toStartWith("TLSv1.3 ");
    expect(bob.client.online()).toEqual(["alice", "bob"]);
    await alice.log.frame("online", (frame) => frame.user === "bob");
    expect(alice.client.online()).toEqual(["alice", "bob"]);

    alice.client.send({ type: "say", text: "hello bob" });
    expect(await bob.log.frame("msg")).toMatchObject({ from: "alice", text: "hello bob" });
    bob.client.send({ type: "dm", to: "alice", text: "psst" });
    expect(await alice.log.frame("dm")).toMatchObject({ from: "bob", to: "alice", text: "psst" });
    bob.client.send({ type: "say", text: "hi alice" });
    expect(await alice.log.frame("msg")).toMatchObject({ from: "bob", text: "hi alice" });

    await bob.client.quit();
    await alice.log.frame("offline", (frame) => frame.user === "bob");
    expect(alice.client.online()).toEqual(["alice"]);
    expect(bob.client.isFinished).toBe(true);
    expect(await bob.client.finished).toBeUndefined();
    expect([...alice.log.frames("error"), ...bob.log.frames("error")]).toEqual([]);
  });

  test("logging in shows the room's recent history", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using bob = await loggedIn(server, "bob", BOB);
    bob.send({ type: "say", text: "said before alice came" });
    await bob.sync();
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));
    bob.send({ type: "say", text: "said live" });
    await alice.log.frame("msg", (f) => f.text === "said live");
    // The history frame arrives before the live message, so it must have been shown by now.
    expect(alice.log.frames("history")).toEqual([
      { type: "history", room: "#lobby", more: false, messages: [expect.objectContaining({ id: 1, from: "bob", text: "said before alice came" })] },
    ]);
    expect(alice.log.shownTexts()).toEqual(["said before alice came", "said live"]);
  });

  test("sending faster than the advertised rate is paced: nothing refused, all delivered in order", async () => {
    await using server = await startTestServer({ limits: { messageRatePerSec: 5, messageBurst: 5 } });
    await registerUsers(server, { alice: ALICE, bob: BOB, carol: "carol-password" });

    // Control: the same burst sent raw is refused, so the limit is real.
    await using carol = await loggedIn(server, "carol", "carol-password");
    for (let i = 0; i < 12; i++) carol.send({ type: "say", text: `raw ${i}` });
    expect(await carol.nextError()).toBe("rate_limited");

    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));
    await using bob = await startChatClient(chatOptions(server, "bob", BOB));
    const start = Date.now();
    const texts = Array.from({ length: 12 }, (_, i) => `paced ${i}`);
    for (const text of texts) alice.client.send({ type: "say", text });
    await until(() => bob.log.frames("msg").filter((f) => f.type === "msg" && f.from === "alice").length === 12, "12 messages at bob", 8_000);
    const received = bob.log.frames("msg").flatMap((f) => (f.type === "msg" && f.from === "alice" ? [f.text] : []));
    expect(received).toEqual(texts);
    // At 5/s with a burst of 5, 12 messages cannot all arrive in much under 1.4 s.
    expect(Date.now() - start).toBeGreaterThan(1_000);
    await alice.client.drained();
    // A round trip after the last message: any rate_limited error would have arrived by now.
    await alice.client.quit();
    expect(alice.log.frames("error")).toEqual([]);
  }, 15_000);

  test("reconnects after a server restart on the same port, resuming with its token", async () => {
    await using dir = await tempDir();
    const files = { storePath: dir.file("users.json"), chatDbPath: dir.file("chat.db") };
    const first = await startTestServer(files);
    const port = first.port;
    let second: TestServer | undefined;
    try {
      await registerUsers(first, { alice: ALICE, bob: BOB });
      await using alice = await startChatClient(
        chatOptions(first, "alice", ALICE, { reconnect: true, backoff: new Backoff({ baseMs: 50, maxMs: 200 }) }),
      );
      const bob1 = await loggedIn(first, "bob", BOB);
      bob1.send({ type: "say", text: "before 1" });
      bob1.send({ type: "say", text: "before 2" });
      await alice.log.frame("msg", (f) => f.text === "before 2");

      await first.stop();
      await alice.log.waitFor((e) => e.kind === "status" && e.text.startsWith("Connection lost"), "connection lost status");
      expect(alice.client.connected).toBe(false);
      // While nothing listens, attempts fail and the client keeps trying.
      await alice.log.waitFor((e) => e.kind === "status" && e.text.startsWith("Reconnect failed"), "a failed reconnect attempt");
      // Queued while disconnected: goes out after the next login.
      alice.client.send({ type: "say", text: "queued while down" });

      second = await startTestServer({ ...files, port });
      expect(second.port).toBe(port);
      await alice.log.waitFor((e) => e.kind === "status" && e.text.startsWith("Reconnected"), "reconnected status", 5_000);
      expect(alice.client.connected).toBe(true);
      const logins = logEvents(second, "login");
      expect(logins.map((entry) => entry.fields)).toEqual([expect.objectContaining({ user: "alice", method: "token" })]);
      expect(alice.client.online()).toEqual(["alice"]);
      expect(alice.log.statuses().some((text) => text.startsWith("Reconnecting in"))).toBe(true);

      const beforeJoin = alice.log.events.length;
      await using bob2 = await loggedIn(second, "bob", BOB);
      await alice.log.frame("online", (f) => f.user === "bob", 5_000, beforeJoin);
      expect(alice.client.online()).toEqual(["alice", "bob"]);
      // The message queued during the outage was sent once logged in again; the restarted
      // server's history had it before bob logged in again, after what he had said before.
      expect(bob2.received.find((f) => f.type === "history")?.messages.map((m: { text: string }) => m.text)).toEqual([
        "before 1",
        "before 2",
        "queued while down",
      ]);
      bob2.send({ type: "say", text: "after 1" });
      await alice.log.frame("msg", (f) => f.text === "after 1");
      alice.client.send({ type: "say", text: "after 2" });
      expect((await bob2.next("msg")).text).toBe("after 2");
      await alice.log.stored("after 2");
      expect(alice.log.shownTexts()).toEqual(["before 1", "before 2", "queued while down", "after 1", "after 2"]);
      expect(alice.client.isFinished).toBe(false);
      await bob1.close();
    } finally {
      await first.stop();
      await second?.stop();
    }
  });

  test("after a dropped connection, the catch-up shows only what was missed", async () => {
    // The server drops idle connections: with a short idle timeout and no pings from alice, her
    // connection is closed by the server while bob (who pings) stays. Her reconnect is held at
    // the certificate check until bob has sent a message she missed.
    await using server = await startTestServer({ limits: { idleTimeoutMs: 400 } });
    await registerUsers(server, { alice: ALICE, bob: BOB });
    const held = holdableVerification(server);
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE, { verification: held.verification, ...idlingReconnects() }));
    await using bob = await startChatClient(chatOptions(server, "bob", BOB, { pingIntervalMs: 100, pongTimeoutMs: 300 }));
    bob.client.send({ type: "say", text: "m1" });
    bob.client.send({ type: "say", text: "m2" });
    await alice.log.frame("msg", (f) => f.text === "m2");

    const release = held.hold();
    await alice.log.waitFor((e) => e.kind === "status" && e.text.startsWith("Connection lost"), "alice's connection to drop", 5_000);
    await until(
      () => logEvents(server, "disconnect").some((e) => e.fields.user === "alice" && e.fields.reason === "timeout"),
      "the server to log alice's idle timeout",
    );
    await until(() => held.checks >= 2, "alice's reconnect to reach the certificate check");
    bob.client.send({ type: "say", text: "m3 while alice was away" });
    // Acknowledged means stored: the catch-up will have it.
    await bob.log.stored("m3 while alice was away");
    const before = alice.log.events.length;
    release();
    await alice.log.waitFor((e) => e.kind === "status" && e.text.startsWith("Reconnected"), "alice's reconnect", 5_000, before);
    // A live message after the reconnect: the history frame, sent before it, has been handled.
    bob.client.send({ type: "say", text: "m4" });
    await alice.log.frame("msg", (f) => f.text === "m4", 5_000, before);

    // m1 and m2 were shown live before the drop; the catch-up after her mark adds only m3.
    expect(alice.log.shownTexts()).toEqual(["m1", "m2", "m3 while alice was away", "m4"]);
    expect(alice.log.events.filter((e) => e.kind === "history")).toEqual([
      {
        kind: "history",
        cause: "missed",
        frame: { type: "history", room: "#lobby", more: false, messages: [expect.objectContaining({ from: "bob", text: "m3 while alice was away" })] },
      },
    ]);
    expect(logEvents(server, "login").filter((e) => e.fields.user === "alice").map((e) => e.fields.method)).toEqual(["password", "token"]);
  });

  test("pings, at an interval derived from the advertised idle timeout, keep a session alive past it", async () => {
    await using server = await startTestServer({ limits: { idleTimeoutMs: 400 } });
    await registerUsers(server, { alice: ALICE, bob: BOB, idle: "idle-password" });
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE));

    // Control: a client told to ping only every minute is dropped for idling, twice over.
    for (let round = 0; round < 2; round++) {
      await using idle = await startChatClient(chatOptions(server, "idle", "idle-password", { pingIntervalMs: 60_000 }));
      const closed = await withTimeout(idle.client.finished, 5_000, "the idle client to be dropped");
      expect(closed).toBeInstanceOf(ConnectError);
      expect(idle.log.frames("error")).toEqual([expect.objectContaining({ code: "timeout" })]);
    }

    // Alice has been connected for more than two idle timeouts and still works.
    expect(alice.client.connected).toBe(true);
    expect(alice.log.events.filter((e) => e.kind !== "frame")).toEqual([]);
    expect(logEvents(server, "disconnect").filter((e) => e.fields.user === "alice")).toEqual([]);
    await using bob = await loggedIn(server, "bob", BOB);
    bob.send({ type: "say", text: "still there?" });
    expect(await alice.log.frame("msg", (f) => f.text === "still there?")).toMatchObject({ from: "bob" });
  });

  test("a password change is confirmed with a fresh token, the reconnect resumes with it, and the new password works", async () => {
    await using server = await startTestServer({ limits: { idleTimeoutMs: 300 } });
    await registerUsers(server, { alice: ALICE });
    await using alice = await startChatClient(chatOptions(server, "alice", ALICE, idlingReconnects()));
    alice.client.changePassword(ALICE, "a brand new password");
    await alice.log.frame("password_changed");
    // The idle timeout drops the connection (alice pings only every minute); the client comes
    // back by itself, resuming with the token password_changed carried.
    await alice.log.waitFor((e) => e.kind === "status" && e.text.startsWith("Reconnected"), "a reconnect", 5_000);
    expect(logEvents(server, "login").map((entry) => entry.fields.method)).toEqual(["password", "token"]);
    await using check = await loggedIn(server, "alice", "a brand new password");
    expect(check.isClosed).toBe(false);
  });
});
