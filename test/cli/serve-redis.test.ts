// `tlschat serve --redis` as an operator runs it: an unreachable Redis is one line and a failed
// start, the log says what an ack survives under Redis's AOF settings, the import options need
// --redis, and an embedded server's accounts, rooms and history move into the cluster once, with
// their ids, so a node serves them.

import { describe, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { TestClient, type Frame } from "../helpers/client.ts";
import { testCertificate } from "../helpers/certs.ts";
import { spawnTlschat } from "../helpers/process.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";
import { startTestServer } from "../helpers/server.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";

const available = redisAvailable();
const LISTENING = /listening address=127\.0\.0\.1:(\d+)/;

async function certificateIn(dir: TempDir): Promise<string> {
  const certificate = await testCertificate();
  await writeFile(dir.file("cert.pem"), certificate.certPem);
  await writeFile(dir.file("key.pem"), certificate.keyPem);
  return certificate.certPem;
}

const NODE_ARGS = ["serve", "--host", "127.0.0.1", "--port", "0", "--cert", "cert.pem", "--key", "key.pem"];

describe("serve --redis, refused", () => {
  test("an import without --redis is one line and exit 1, before anything starts", async () => {
    await using dir = await tempDir();
    await certificateIn(dir);
    await using server = spawnTlschat([...NODE_ARGS, "--import-db", "users.json"], { cwd: dir.path });
    expect(await server.exited).toBe(1);
    expect(server.stderr().trim()).toBe("tlschat: --import-db needs --redis: it copies into a cluster's Redis");
  });
});

describe("serve --redis with an embedded store's option", () => {
  test("is one line and exit 1: the option would mean nothing to a cluster node", async () => {
    await using dir = await tempDir();
    await certificateIn(dir);
    for (const [option, value] of [["--chat-db", "chat.db"], ["--fsync", "always"]]) {
      await using server = spawnTlschat([...NODE_ARGS, "--redis", "redis://127.0.0.1:1", option!, value!], { cwd: dir.path });
      expect(await server.exited).toBe(1);
      expect(server.stderr().trim()).toBe(`tlschat: ${option} is for the embedded stores; a node with --redis keeps everything in Redis`);
    }
  });
});

describe.skipIf(!available)("serve --redis", () => {
  test("an unreachable Redis is one line naming it (not its password), and the server does not start", async () => {
    await using redis = await startRedis();
    await redis.stop();
    await using dir = await tempDir();
    await certificateIn(dir);
    const url = `redis://user:secret-pw@127.0.0.1:${redis.port}`;
    await using server = spawnTlschat([...NODE_ARGS, "--redis", url], { cwd: dir.path });
    expect(await server.exited).toBe(1);
    const lines = server.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`store_unavailable`);
    expect(lines[0]).toContain(`127.0.0.1:${redis.port}`);
    expect(server.stderr()).not.toContain("secret-pw");
  });

  test("the log says what an ack survives: loudly when Redis keeps no append-only file", async () => {
    await using dir = await tempDir();
    await certificateIn(dir);
    await using bare = await startRedis();
    await using loose = spawnTlschat([...NODE_ARGS, "--redis", bare.url], { cwd: dir.path });
    expect((await loose.waitForLine(/.*redis_durability.*/))[0]).toMatch(/ ERROR redis_durability appendonly=no acks="?NOT durable/);
    await using always = await startRedis({ appendfsync: "always" });
    await using safe = spawnTlschat([...NODE_ARGS, "--redis", always.url], { cwd: dir.path });
    expect((await safe.waitForLine(/.*redis_durability.*/))[0]).toMatch(/ INFO +redis_durability appendfsync=always/);
  });

  test("--import-db and --import-chat move an embedded server's accounts, rooms and history in, ids kept", async () => {
    await using dir = await tempDir();
    const ca = await certificateIn(dir);
    // An embedded server with an account, a room with a topic, and some history, on files in dir.
    const embedded = await startTestServer({ storePath: dir.file("users.json"), chatDbPath: dir.file("chat.db") });
    const ids: number[] = [];
    {
      await using alice = await TestClient.connect({ port: embedded.port, ca: embedded.certificate.certPem });
      await alice.register("alice", "alice password 1");
      await alice.login("alice", "alice password 1");
      alice.send({ type: "join", room: "#rust" });
      await alice.next("joined");
      alice.send({ type: "topic", room: "#rust", topic: "borrowing" });
      await alice.next("topic");
      for (const text of ["one", "two", "three"]) {
        alice.send({ type: "say", room: "#rust", text, ref: text });
        ids.push((await alice.next("ack")).id);
      }
    }
    // Stopped first: the files are copied in as they are at rest.
    await embedded.stop();

    await using redis = await startRedis({ appendfsync: "always" });
    await using node = spawnTlschat([...NODE_ARGS, "--redis", redis.url, "--import-db", "users.json", "--import-chat", "chat.db"], { cwd: dir.path });
    const port = Number((await node.waitForLine(LISTENING, 15_000))[1]);
    expect(node.stderr()).toMatch(/accounts_imported from=users.json imported=1 skipped=0/);
    expect(node.stderr()).toMatch(/chat_imported from=chat.db rooms=2 messages=3/);

    await using alice = await TestClient.connect({ port, ca });
    alice.send({ type: "login", user: "alice", password: "alice password 1", since: { "#rust": ids[0]! } });
    const welcome = await alice.nextOf(["welcome", "error"]);
    expect(welcome).toMatchObject({ type: "welcome", user: "alice" });
    expect(welcome.rooms.sort()).toEqual(["#lobby", "#rust"]);
    const histories: Frame[] = [await alice.next("history"), await alice.next("history")];
    const rust = histories.find((frame) => frame.room === "#rust")!;
    expect(rust.messages.map((message: Frame) => [message.id, message.text])).toEqual([
      [ids[1], "two"],
      [ids[2], "three"],
    ]);
    alice.send({ type: "say", room: "#rust", text: "four", ref: "four" });
    expect((await alice.next("ack")).id).toBeGreaterThan(ids[2]!);
    alice.send({ type: "rooms" });
    const rooms = await alice.next("rooms");
    expect(rooms.rooms.find((room: Frame) => room.room === "#rust")?.topic).toBe("borrowing");
  });
});
