// What the chat database promises when things go wrong: every acked message survives a SIGKILL
// of `serve`, ids keep rising across restarts, a full disk refuses new messages (no ack) while
// the server goes on serving, and a corrupt chat.db stops start-up, untouched.

import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { JsonFileStore } from "../../src/auth/store.ts";
import { MAX_HISTORY_PAGE } from "../../src/protocol/frames.ts";
import { startServer } from "../../src/server/server.ts";
import { openChatDatabase } from "../../src/store/sqlite/database.ts";
import { SqliteMessageLog } from "../../src/store/sqlite/message-log.ts";
import { SqliteRooms } from "../../src/store/sqlite/rooms.ts";
import { testCertificate } from "../helpers/certs.ts";
import { TestClient, withTimeout, type Frame } from "../helpers/client.ts";
import { fillDisk } from "../helpers/full-disk.ts";
import { spawnTlschat, type RunningProcess } from "../helpers/process.ts";
import { startTestServer, type TestServerOptions } from "../helpers/server.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";
import { answerTo, ask, idsOf, sayAcked } from "./history-support.ts";
import { newUser } from "./support.ts";

const LISTENING = /listening address=127\.0\.0\.1:(\d+)/;
const PASSWORD = "pw-alice-secret";

/** A message text the test can tell apart and check after the restart. */
const textOf = (i: number) => `durable ${i}`;

/** Every message of a room, oldest first, paging back with `before` until `more` is false. */
async function wholeHistory(client: TestClient, room: string): Promise<Frame[]> {
  const messages: Frame[] = [];
  for (let before: number | undefined, more = true; more; ) {
    const page = await ask(client, before === undefined ? { type: "history", room, limit: MAX_HISTORY_PAGE } : { type: "history", room, before, limit: MAX_HISTORY_PAGE });
    messages.unshift(...page.messages);
    more = page.more;
    before = messages[0]?.id;
  }
  return messages;
}

interface Serve {
  process: RunningProcess;
  port: number;
}

/** `tlschat serve` as a child process on the test's files, with no limit on how fast one connection sends. */
async function serve(dir: TempDir): Promise<Serve> {
  const args = ["serve", "--host", "127.0.0.1", "--port", "0", "--cert", dir.file("cert.pem"), "--key", dir.file("key.pem")];
  args.push("--db", dir.file("users.json"), "--chat-db", dir.file("chat.db"), "--msg-rate", "100000", "--msg-burst", "100000");
  const process = spawnTlschat(args, { cwd: dir.path });
  return { process, port: Number((await process.waitForLine(LISTENING))[1]) };
}

describe("a server killed with SIGKILL", () => {
  test("every message acked before the kill is in the history after a restart on the same chat.db, and ids go on rising", async () => {
    // The client keeps this many messages unacked, so the kill always finds some on their way.
    const IN_FLIGHT = 1_000;
    const CHUNK = 250;
    const ACKS_BEFORE_KILL = 1_100;
    await using dir = await tempDir();
    const pair = await testCertificate("ec");
    writeFileSync(dir.file("cert.pem"), pair.certPem);
    writeFileSync(dir.file("key.pem"), pair.keyPem, { mode: 0o600 });

    const acked = new Map<number, string>();
    let sent = 0;
    {
      const first = await serve(dir);
      await using _child = first.process;
      await using alice = await TestClient.connect({ port: first.port, ca: pair.certPem });
      await alice.register("alice", PASSWORD);
      await alice.login("alice", PASSWORD);
      const sendChunk = () => {
        alice.sendRaw(Array.from({ length: CHUNK }, (_, i) => JSON.stringify({ type: "say", text: textOf(sent + i), ref: `k${sent + i}` }) + "\n").join(""));
        sent += CHUNK;
      };
      const record = (ack: Frame) => acked.set(ack.id, textOf(Number(ack.ref.slice(1))));
      while (sent < IN_FLIGHT) sendChunk();
      while (acked.size < ACKS_BEFORE_KILL) {
        record(await alice.next("ack", 15_000));
        if (sent - acked.size < IN_FLIGHT) sendChunk();
      }
      // A chunk written right before the kill: a server fast enough to have acked all the rest
      // cannot have read, stored and acked all of these as well.
      sendChunk();
      first.process.proc.kill("SIGKILL");
      await first.process.exited;
      // Acks already on their way when the kill came were sent after their commit too.
      for (const ack of alice.take("ack")) record(ack);
    }
    expect(acked.size).toBeLessThan(sent);

    const second = await serve(dir);
    await using _child = second.process;
    await using alice = await TestClient.connect({ port: second.port, ca: pair.certPem });
    await alice.login("alice", PASSWORD);
    const history = await wholeHistory(alice, "#lobby");
    const stored = new Map(history.map((message) => [message.id as number, message.text as string]));
    for (const [id, text] of acked) expect([id, stored.get(id)]).toEqual([id, text]);
    const ids = history.map((message) => message.id as number);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);

    const after = await sayAcked(alice, "after the restart");
    expect(after.id).toBeGreaterThan(Math.max(...ids));
  }, 60_000);
});

describe("ids across restarts", () => {
  test("a restarted server goes on above every id it gave, even after the newest message was deleted", async () => {
    await using dir = await tempDir();
    const options: TestServerOptions = { storePath: dir.file("users.json"), chatDbPath: dir.file("chat.db") };
    let kept: Frame;
    let deleted: Frame;
    {
      await using before = await startTestServer(options);
      const alice = await newUser(before, "alice");
      kept = await sayAcked(alice.client, "kept");
      deleted = await sayAcked(alice.client, "deleted");
      alice.client.send({ type: "delete", id: deleted.id });
      await alice.client.next("deleted");
    }
    await using after = await startTestServer(options);
    const alice = await TestClient.connect({ port: after.port, ca: after.certificate.certPem });
    await alice.login("alice", PASSWORD);
    expect(idsOf(await ask(alice, { type: "history", room: "#lobby" }))).toEqual([kept.id]);
    expect((await sayAcked(alice, "after")).id).toBeGreaterThan(deleted.id);
  });
});

describe("a full disk", () => {
  /** Longer than a database page, so storing it needs a page the full database cannot have. */
  const PAGE_FILLING_TEXT = "x".repeat(4_096);

  test("say and dm answer store_unavailable with their ref and no ack, retries too; the server goes on and stores again once there is room", async () => {
    await using dir = await tempDir();
    const certificate = await testCertificate("ec");
    const db = await openChatDatabase(dir.file("chat.db"));
    // The server's own connection to the chat database, so its page limit is the server's.
    await using server = await startServer({
      host: "127.0.0.1",
      port: 0,
      tls: { cert: certificate.certPem, key: certificate.keyPem, minVersion: "1.3", maxVersion: "1.3" },
      store: await JsonFileStore.open(dir.file("users.json")),
      rooms: SqliteRooms.load(db),
      messageLog: new SqliteMessageLog(db),
    });
    const user = async (name: string) => {
      const client = await TestClient.connect({ port: server.port, ca: certificate.certPem });
      await client.register(name, `pw-${name}-secret`);
      await client.login(name, `pw-${name}-secret`);
      return client;
    };
    await using alice = await user("alice");
    await using bob = await user("bob");
    const before = await sayAcked(alice, "before the disk filled");
    expect((await bob.next("msg")).id).toBe(before.id);

    fillDisk(db);
    alice.send({ type: "say", text: PAGE_FILLING_TEXT, ref: "full-1" });
    expect(await answerTo(alice, "full-1")).toMatchObject({ type: "error", code: "store_unavailable" });
    // The same ref twice in one write: the retry waits for the first copy's commit and fails with it.
    alice.sendRaw([1, 2].map(() => JSON.stringify({ type: "say", text: PAGE_FILLING_TEXT, ref: "full-2" }) + "\n").join(""));
    expect(await answerTo(alice, "full-2")).toMatchObject({ type: "error", code: "store_unavailable" });
    expect(await answerTo(alice, "full-2")).toMatchObject({ type: "error", code: "store_unavailable" });
    alice.send({ type: "dm", to: "bob", text: PAGE_FILLING_TEXT, ref: "full-dm" });
    expect(await answerTo(alice, "full-dm")).toMatchObject({ type: "error", code: "store_unavailable" });

    // Still serving: queries answer, and nothing refused reached anyone.
    expect(idsOf(await ask(bob, { type: "history", room: "#lobby" }))).toEqual([before.id]);
    await alice.sync();
    await bob.sync();
    expect(alice.take("ack")).toEqual([]);
    expect(bob.take("msg")).toEqual([]);
    expect(bob.take("dm")).toEqual([]);

    db.exec("PRAGMA max_page_count = 1073741823");
    const after = await sayAcked(alice, PAGE_FILLING_TEXT);
    expect(after.id).toBeGreaterThan(before.id);
    expect((await bob.next("msg")).id).toBe(after.id);
    expect(idsOf(await ask(bob, { type: "history", room: "#lobby" }))).toEqual([before.id, after.id]);
  });
});

describe("a corrupt chat.db", () => {
  /** A real chat database with rooms and messages, checkpointed into the one file. */
  async function realDatabase(path: string): Promise<Buffer> {
    const db = await openChatDatabase(path);
    const rooms = SqliteRooms.load(db);
    await rooms.create("#lobby", "", 1);
    const log = new SqliteMessageLog(db);
    await Promise.all(Array.from({ length: 500 }, (_, i) => log.append({ room: { key: "#lobby", name: "#lobby" }, from: "alice", text: textOf(i).repeat(20), ts: i })));
    await log.close();
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    db.close();
    return readFileSync(path);
  }

  const damages: Array<[string, (good: Buffer) => Buffer]> = [
    ["not a database at all", () => Buffer.from("users.json copied here by mistake\n".repeat(100))],
    ["cut short", (good) => good.subarray(0, Math.floor(good.length / 2))],
    ["a garbled header", (good) => Buffer.concat([Buffer.from("not the header!!"), good.subarray(16)])],
  ];

  test.each(damages)("%s: serve stops with one line naming the file, exit 1, and the file is left as it was", async (_, damage) => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    const bytes = damage(await realDatabase(path));
    writeFileSync(path, bytes);
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0", "--chat-db", path], { cwd: dir.path });
    expect(await withTimeout(server.exited, 10_000, "serve to exit")).toBe(1);
    const lines = server.stderr().trim().split("\n").filter((line) => !line.includes("certificate_generated"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(path);
    expect(lines[0]).toContain("left as it is");
    expect(server.stderr()).not.toContain("listening");
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  test("the same database undamaged starts (the control)", async () => {
    await using dir = await tempDir();
    const path = dir.file("chat.db");
    await realDatabase(path);
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0", "--chat-db", path], { cwd: dir.path });
    await server.waitForLine(LISTENING);
    const reader = new Database(path, { readonly: true });
    try {
      expect(reader.query<{ count: number }, []>("SELECT COUNT(*) AS count FROM messages").get()!.count).toBe(500);
    } finally {
      reader.close();
    }
  });
});
