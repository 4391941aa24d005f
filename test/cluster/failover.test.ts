// Cluster nodes as real `tlschat serve --redis` processes: a node killed with SIGKILL, its
// clients moving to another node with `resume` and `since` and losing or repeating nothing, its
// users going offline for everyone, and Redis itself killed with SIGKILL (append-only file with
// fsync always) and restarted, after which a node started afresh serves every acked message.

import { afterEach, describe, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { ChatClient } from "../../src/client/chat-client.ts";
import { EventLog } from "../helpers/chat-support.ts";
import { TestClient, type Frame } from "../helpers/client.ts";
import { testCertificate } from "../helpers/certs.ts";
import { spawnTlschat, type RunningProcess } from "../helpers/process.ts";
import { redisAvailable, startRedis, type TestRedis } from "../helpers/redis.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";

const available = redisAvailable();
const LISTENING = /listening address=127\.0\.0\.1:(\d+)/;
/** The bound on a killed node's clients being back on another one. */
const FAILOVER_BOUND_MS = 5_000;
const cleanups: Array<AsyncDisposable> = [];

afterEach(async () => {
  for (const item of cleanups.splice(0).reverse()) await item[Symbol.asyncDispose]();
});

interface Node {
  process: RunningProcess;
  port: number;
}

interface Setup {
  redis: TestRedis;
  dir: TempDir;
  ca: string;
  node(): Promise<Node>;
}

async function setup(): Promise<Setup> {
  const redis = await startRedis({ appendfsync: "always" });
  cleanups.push(redis);
  const dir = await tempDir();
  cleanups.push(dir);
  const certificate = await testCertificate();
  await writeFile(dir.file("cert.pem"), certificate.certPem);
  await writeFile(dir.file("key.pem"), certificate.keyPem);
  return {
    redis,
    dir,
    ca: certificate.certPem,
    async node() {
      const process = spawnTlschat(["serve", "--redis", redis.url, "--host", "127.0.0.1", "--port", "0", "--cert", "cert.pem", "--key", "key.pem"], { cwd: dir.path });
      cleanups.push(process);
      const port = Number((await process.waitForLine(LISTENING, 15_000))[1]);
      return { process, port };
    },
  };
}

async function connect(ca: string, node: Node): Promise<TestClient> {
  const client = await TestClient.connect({ port: node.port, ca });
  cleanups.push(client);
  return client;
}

async function login(ca: string, node: Node, user: string, register = false): Promise<{ client: TestClient; welcome: Frame }> {
  const client = await connect(ca, node);
  if (register) await client.register(user, `${user} password 1`);
  client.send({ type: "login", user, password: `${user} password 1` });
  const welcome = await client.nextOf(["welcome", "error"], 10_000);
  if (welcome.type === "error") throw new Error(`login ${user}: ${welcome.code}`);
  await client.next("history", 10_000);
  return { client, welcome };
}

async function say(sender: TestClient, text: string): Promise<number> {
  sender.send({ type: "say", room: "#lobby", text, ref: text });
  const reply = await sender.nextOf(["ack", "error"], 10_000);
  if (reply.type === "error") throw new Error(`say ${text}: ${reply.code}`);
  return reply.id;
}

describe.skipIf(!available)("cluster failover with real processes", () => {
  test("a node killed with SIGKILL: its client resumes on another node and misses and repeats nothing", async () => {
    const cluster = await setup();
    const [a, b] = [await cluster.node(), await cluster.node()];
    const { client: alice, welcome } = await login(cluster.ca, a, "alice", true);
    const { client: bob } = await login(cluster.ca, b, "bob", true);
    let lastSeen = 0;
    for (const text of ["one", "two"]) {
      await say(bob, text);
      lastSeen = (await alice.next("msg", 10_000)).id;
    }
    a.process.proc.kill("SIGKILL");
    await a.process.exited;
    const killedAt = performance.now();
    // Said while alice is between nodes: she must get these from catch-up, once.
    const missed = [await say(bob, "three"), await say(bob, "four")];
    const moved = await connect(cluster.ca, b);
    moved.send({ type: "resume", user: "alice", token: welcome.token, since: lastSeen });
    expect((await moved.nextOf(["welcome", "error"], 10_000)).type).toBe("welcome");
    const history = await moved.next("history", 10_000);
    expect(performance.now() - killedAt).toBeLessThan(FAILOVER_BOUND_MS);
    expect(history.messages.map((message: Frame) => message.id)).toEqual(missed);
    const live = await say(bob, "five");
    expect((await moved.next("msg", 10_000)).id).toBe(live);
    await moved.sync();
    expect(moved.take("msg")).toEqual([]);
  });

  test("the chat client on a node killed with SIGKILL is back on the other within 5 s: nothing missed, nothing twice, its unacked line stored once", async () => {
    const cluster = await setup();
    const [a, b] = [await cluster.node(), await cluster.node()];
    await login(cluster.ca, b, "alice", true);
    const { client: bob } = await login(cluster.ca, b, "bob", true);
    const log = new EventLog();
    const verification = { kind: "ca" as const, ca: cluster.ca };
    // The client's own reconnect policy (its default backoff): what a user gets.
    const alice = await ChatClient.start(
      {
        servers: [a, b].map((node) => ({ host: "127.0.0.1", port: node.port, verification })),
        serverName: "localhost",
        user: "alice",
        password: "alice password 1",
        reconnect: true,
      },
      log.listener,
    );
    cleanups.push({ [Symbol.asyncDispose]: () => alice.stop() });
    expect(alice.server).toBe(`127.0.0.1:${a.port}`);
    await say(bob, "before");
    await log.frame("msg", (frame) => frame.text === "before", 10_000);
    a.process.proc.kill("SIGKILL");
    const killedAt = performance.now();
    // Said while alice is between nodes: catch-up brings them, once each.
    for (const text of ["while away 1", "while away 2"]) await say(bob, text);
    // Typed while disconnected: sent once the client is back, with its ref, stored once.
    alice.send({ type: "say", room: "#lobby", text: "typed while away" });
    await log.waitFor((event) => event.kind === "status" && event.text.startsWith("Reconnected"), "the reconnect", FAILOVER_BOUND_MS);
    expect(performance.now() - killedAt).toBeLessThan(FAILOVER_BOUND_MS);
    expect(alice.server).toBe(`127.0.0.1:${b.port}`);
    await log.stored("typed while away", 10_000);
    expect((await bob.next("msg", 10_000)).text).toBe("typed while away");
    await say(bob, "after");
    await log.frame("msg", (frame) => frame.text === "after", 10_000);
    expect(log.shownTexts()).toEqual(["before", "while away 1", "while away 2", "typed while away", "after"]);
    await bob.sync();
    expect(bob.take("msg")).toEqual([]);
  });

  test("the users of a node killed with SIGKILL go offline for everyone within a few seconds", async () => {
    const cluster = await setup();
    const [a, b] = [await cluster.node(), await cluster.node()];
    await login(cluster.ca, a, "carol", true);
    const { client: bob } = await login(cluster.ca, b, "bob", true);
    bob.send({ type: "who" });
    expect((await bob.next("who")).users).toContain("carol");
    a.process.proc.kill("SIGKILL");
    const killedAt = performance.now();
    expect((await bob.next("offline", FAILOVER_BOUND_MS + 2_000)).user).toBe("carol");
    expect(performance.now() - killedAt).toBeLessThan(FAILOVER_BOUND_MS);
    bob.send({ type: "who" });
    expect((await bob.next("who")).users).toEqual(["bob"]);
  });

  test("Redis killed with SIGKILL and restarted: the nodes recover and a node started afterwards serves every acked message", async () => {
    const cluster = await setup();
    const a = await cluster.node();
    const { client: alice } = await login(cluster.ca, a, "alice", true);
    const acked: number[] = [];
    for (let i = 0; i < 20; i++) acked.push(await say(alice, `m${i}`));
    await cluster.redis.kill("SIGKILL");
    await cluster.redis.start();
    await a.process.waitForLine(/redis_up/, 15_000);
    acked.push(await say(alice, "after the crash"));
    const c = await cluster.node();
    const { client: reader } = await login(cluster.ca, c, "reader", true);
    reader.send({ type: "history", room: "#lobby", limit: 100 });
    const history = await reader.next("history", 10_000);
    expect(history.messages.map((message: Frame) => message.id)).toEqual(acked);
  });
});
