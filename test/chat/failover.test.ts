// Several servers, against real ones over real TLS: the login takes the first that answers (a
// closed port is skipped, at once); a session that loses its server moves to the next, wrapping
// around, trying each once per round before backing off; a server that does not know the resume
// token gets the password or the key instead; and the message whose ack was lost with the old
// server is sent to the new one with its ref, so a node of a cluster stores it once. Two embedded
// servers share nothing, so where a cluster would share accounts the tests register on both.

import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { Backoff } from "../../src/client/backoff.ts";
import { ChatClient, type ChatClientOptions } from "../../src/client/chat-client.ts";
import { ConnectError } from "../../src/client/connection.ts";
import { chatOptions, closedPort, endpoint, loggedIn, logEvents, registerUsers, startChatClient, until, type EventLog } from "../helpers/chat-support.ts";
import { presenting, testIdentity } from "../helpers/certs.ts";
import { TestClient } from "../helpers/client.ts";
import { startRelay } from "../helpers/relay.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";

const ALICE = "alice-password";
const BOB = "bob-password!";

/** Alice's options on `servers`, in that order, reconnecting quickly. */
function across(first: TestServer, ports: number[], extra: Partial<ChatClientOptions> = {}): ChatClientOptions {
  return {
    ...chatOptions(first, "alice", ALICE),
    servers: ports.map((port) => endpoint(first, port)),
    reconnect: true,
    backoff: new Backoff({ baseMs: 20, maxMs: 40 }),
    ...extra,
  };
}

function waitForStatus(log: EventLog, text: string, from = 0): Promise<unknown> {
  return log.waitFor((e) => e.kind === "status" && e.text.startsWith(text), `a status "${text}…"`, 10_000, from);
}

const label = (port: number) => `127.0.0.1:${port}`;

/** The status lines from event `from` on. */
function statusesFrom(log: EventLog, from: number): string[] {
  return log.events.slice(from).flatMap((event) => (event.kind === "status" ? [event.text] : []));
}

/** The refs of the stored messages with `text`, read from the server's chat database. */
function storedRefs(server: TestServer, text: string): Array<string | null> {
  const db = new Database(server.chatDbPath, { readonly: true });
  try {
    return db.query<{ ref: string | null }, [string]>("SELECT ref FROM messages WHERE text = ? ORDER BY id").all(text).map((row) => row.ref);
  } finally {
    db.close();
  }
}

describe("logging in to the first server that answers", () => {
  test("a closed port first: the login goes to the second at once, and says where it went", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE });
    const down = closedPort();
    const started = Date.now();
    await using alice = await startChatClient(across(server, [down, server.port], { reconnect: false }));
    expect(alice.client.connected).toBe(true);
    expect(alice.client.server).toBe(label(server.port));
    // No backoff before the second server: a refused port costs a round trip, not a delay.
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(alice.log.statuses()).toEqual([expect.stringMatching(new RegExp(`^Cannot connect to ${label(down)}: .*; trying ${label(server.port)}$`))]);
    expect(logEvents(server, "login").map((e) => e.fields)).toEqual([expect.objectContaining({ user: "alice", method: "password" })]);
  });

  test("when none answers, one error names every server; a refused password ends the search at once", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE });
    const [first, second] = [closedPort(), closedPort()];
    const error = await ChatClient.start(across(server, [first, second], { reconnect: false })).then(
      (client) => client.stop().then(() => undefined),
      (error: unknown) => error,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).message).toMatch(new RegExp(`^Cannot connect to ${label(first)}: .*; Cannot connect to ${label(second)}: `));

    // The same account everywhere: the second server would refuse the password too.
    await using other = await startTestServer();
    const refused = await ChatClient.start(across(server, [server.port, other.port], { reconnect: false, password: "wrong password" })).then(
      (client) => client.stop().then(() => undefined),
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: "auth_failed" });
    expect(other.logs.filter((entry) => entry.event === "connect")).toEqual([]);
  });
});

describe("moving to another server", () => {
  test("the server is stopped: the session moves to the next, logs in by password where the token is unknown, and wraps around", async () => {
    await using dir = await tempDir();
    const files = { storePath: dir.file("a-users.json"), chatDbPath: dir.file("a-chat.db") };
    let a = await startTestServer(files);
    const aPort = a.port;
    await using b = await startTestServer();
    try {
      await registerUsers(a, { alice: ALICE, bob: BOB });
      await registerUsers(b, { alice: ALICE, bob: BOB });
      await using alice = await startChatClient(across(a, [a.port, b.port]));
      expect(alice.client.server).toBe(label(aPort));

      await a.stop();
      await waitForStatus(alice.log, `Reconnected to ${label(b.port)}`);
      expect(alice.client.server).toBe(label(b.port));
      // The next server first, not the one just lost.
      expect(alice.log.statuses()).toEqual([
        expect.stringMatching(/^Connection lost/),
        expect.stringMatching(/^Reconnecting in .* \(attempt 1\)$/),
        `Reconnected to ${label(b.port)}`,
      ]);
      // B has never issued alice's token: it refuses the resume, and the password logs her in.
      expect(logEvents(b, "login_failed").map((e) => e.fields)).toEqual([expect.objectContaining({ frame: "resume", code: "auth_failed" })]);
      expect(logEvents(b, "login").filter((e) => e.fields.user === "alice").map((e) => e.fields.method)).toEqual(["password"]);
      await using bob = await loggedIn(b, "bob", BOB);
      alice.client.send({ type: "say", text: "now on b" });
      expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "now on b" });

      // Both down: each round tries every server once, the one after B (A, wrapping) first, then backs off.
      const from = alice.log.events.length;
      await b.stop();
      const since = () => statusesFrom(alice.log, from);
      await until(() => since().filter((text) => text.startsWith("Reconnecting in")).length >= 2, "two rounds");
      expect(since().slice(0, 5)).toEqual([
        expect.stringMatching(/^Connection lost/),
        expect.stringMatching(/^Reconnecting in .* \(attempt 1\)$/),
        expect.stringMatching(new RegExp(`^Reconnect failed: Cannot connect to ${label(aPort)}`)),
        // B may still be shutting down, and say so.
        expect.stringMatching(new RegExp(`^Reconnect failed: .*${label(b.port)}`)),
        expect.stringMatching(/^Reconnecting in .* \(attempt 2\)$/),
      ]);

      const back = alice.log.events.length;
      a = await startTestServer({ ...files, port: aPort });
      await waitForStatus(alice.log, `Reconnected to ${label(aPort)}`, back);
      expect(alice.client.connected).toBe(true);
      expect(logEvents(a, "login").map((e) => e.fields)).toEqual([expect.objectContaining({ user: "alice", method: "password" })]);
    } finally {
      await a.stop();
    }
  }, 30_000);

  test("a session that logs in by key logs in by key where its resume token is unknown", async () => {
    const identity = await testIdentity("failover-alice");
    await using a = await startTestServer();
    await using b = await startTestServer();
    for (const server of [a, b]) {
      await using client = await TestClient.connect({ port: server.port, ca: server.certificate.certPem, tls: presenting(identity) });
      client.send({ type: "register", user: "alice", key: true });
      await client.next("registered");
    }
    await using alice = await startChatClient(
      across(a, [a.port, b.port], { password: undefined, identity: { certPem: identity.certPem, keyPem: identity.keyPem } }),
    );
    await a.stop();
    await waitForStatus(alice.log, `Reconnected to ${label(b.port)}`);
    expect(logEvents(b, "login").map((e) => e.fields)).toEqual([expect.objectContaining({ user: "alice", method: "key" })]);
  });

  test("the message whose ack was lost with a stopped server goes to the next with its ref, and is stored there once", async () => {
    await using a = await startTestServer();
    await using b = await startTestServer();
    await registerUsers(a, { alice: ALICE, bob: BOB });
    await registerUsers(b, { alice: ALICE, bob: BOB });
    // Alice reaches A through a relay that will lose A's answers.
    await using relay = await startRelay(a.port);
    await using alice = await startChatClient(across(a, [relay.port, b.port]));
    await using bobOnA = await loggedIn(a, "bob", BOB);

    relay.dropServerBytes();
    alice.client.send({ type: "say", text: "sent as a went down" });
    expect(await bobOnA.next("msg")).toMatchObject({ text: "sent as a went down" });
    const [ref] = storedRefs(a, "sent as a went down");
    expect(ref).toEqual(expect.any(String));
    await a.stop();

    const sent = await alice.log.waitFor((e) => e.kind === "sent", "the ack from b", 10_000);
    expect(alice.client.server).toBe(label(b.port));
    expect(sent).toMatchObject({ ack: { ref }, message: { text: "sent as a went down" } });
    expect(storedRefs(b, "sent as a went down")).toEqual([ref!]);
    await using bobOnB = await loggedIn(b, "bob", BOB);
    bobOnB.send({ type: "history", room: "#lobby" });
    expect((await bobOnB.next("history")).messages.map((m: { text: string }) => m.text)).toEqual(["sent as a went down"]);
  }, 30_000);

  test("nodes that share their state (one server behind two addresses): the resend is recognised, stored once, shown once", async () => {
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using relay = await startRelay(server.port);
    await using alice = await startChatClient(across(server, [relay.port, server.port]));
    await using bob = await loggedIn(server, "bob", BOB);

    relay.dropServerBytes();
    alice.client.send({ type: "say", text: "across nodes" });
    const stored = await bob.next("msg");
    relay.cutAndHeal();

    const sent = await alice.log.waitFor((e) => e.kind === "sent", "the ack of the resent message", 10_000);
    expect(alice.client.server).toBe(label(server.port));
    expect(sent).toMatchObject({ message: { id: stored.id, text: "across nodes" } });
    expect(storedRefs(server, "across nodes")).toHaveLength(1);
    expect(alice.log.shownTexts()).toEqual(["across nodes"]);
    // The same accounts: the token issued through the first address resumes at the second.
    expect(logEvents(server, "login").filter((e) => e.fields.user === "alice").map((e) => e.fields.method)).toEqual(["password", "token"]);
  }, 30_000);
});
