// Several nodes on one real redis-server, in this process: what one node accepts reaches the
// others exactly once and in order, dms and presence cross nodes, a token from one node works on
// another, a guesser cannot spread attempts over nodes, and Redis going away and coming back
// loses no acknowledged message.

import { afterEach, describe, expect, test } from "bun:test";
import { until } from "../helpers/chat-support.ts";
import { HEARTBEAT_INTERVAL_MS, NODE_TIMEOUT_MS } from "../../src/store/redis/directory.ts";
import { TestClient, type Frame } from "../helpers/client.ts";
import { redisAvailable, startRedis, type TestRedis } from "../helpers/redis.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const available = redisAvailable();
/** The outage test waits out two node timeouts on purpose: what it checks is what happens meanwhile. */
const OUTAGE_TEST_TIMEOUT_MS = 40_000;
const running: Array<AsyncDisposable> = [];

afterEach(async () => {
  for (const item of running.splice(0).reverse()) await item[Symbol.asyncDispose]();
});

async function redis(options: Parameters<typeof startRedis>[0] = {}): Promise<TestRedis> {
  const started = await startRedis(options);
  running.push(started);
  return started;
}

async function node(redisServer: TestRedis, limits: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const server = await startTestServer({ redisUrl: redisServer.url, ...limits });
  running.push(server);
  return server;
}

async function client(server: TestServer): Promise<TestClient> {
  const connected = await TestClient.connect({ port: server.port, ca: server.certificate.certPem });
  running.push(connected);
  return connected;
}

async function registered(server: TestServer, user: string): Promise<TestClient> {
  const connected = await client(server);
  await connected.register(user, `${user} password 1`);
  return connected;
}

async function loggedIn(server: TestServer, user: string, since?: unknown): Promise<{ client: TestClient; welcome: Frame }> {
  const connected = await client(server);
  connected.send({ type: "login", user, password: `${user} password 1`, ...(since === undefined ? {} : { since }) });
  const welcome = await connected.nextOf(["welcome", "error"]);
  if (welcome.type === "error") throw new Error(`login ${user}: ${welcome.code} ${welcome.message}`);
  await connected.next("history");
  // The login is over once its dm catch-up is: a round trip is answered only after it.
  await connected.sync();
  return { client: connected, welcome };
}

/** One node per user on the Redis, each user registered and logged in on theirs (in that order). */
async function usersOnNodes<Users extends string[]>(
  shared: TestRedis,
  ...users: Users
): Promise<{ nodes: { [K in keyof Users]: TestServer }; clients: { [K in keyof Users]: TestClient } }> {
  const nodes: TestServer[] = [];
  for (const user of users) {
    const server = await node(shared);
    await registered(server, user);
    nodes.push(server);
  }
  const clients: TestClient[] = [];
  for (const [index, user] of users.entries()) clients.push((await loggedIn(nodes[index]!, user)).client);
  return { nodes: nodes as { [K in keyof Users]: TestServer }, clients: clients as { [K in keyof Users]: TestClient } };
}

/** Sends and awaits the ack: the message is durable once this returns. */
async function say(sender: TestClient, text: string, ref: string, room = "#lobby"): Promise<number> {
  sender.send({ type: "say", room, text, ref });
  const reply = await sender.nextOf(["ack", "error"], 10_000);
  if (reply.type === "error") throw new Error(`say ${text}: ${reply.code} ${reply.message}`);
  expect(reply.ref).toBe(ref);
  return reply.id;
}

async function messages(receiver: TestClient, count: number): Promise<Frame[]> {
  const got: Frame[] = [];
  while (got.length < count) got.push(await receiver.next("msg", 10_000));
  return got;
}

describe.skipIf(!available)("a cluster of nodes on one Redis", () => {
  test("a room message on one node reaches the members on the others exactly once, in id order", async () => {
    const shared = await redis();
    const {
      clients: [alice, bob, carol],
    } = await usersOnNodes(shared, "alice", "bob", "carol");
    const perSender = 20;
    const sent = await Promise.all([
      (async () => {
        const ids: number[] = [];
        for (let i = 0; i < perSender; i++) ids.push(await say(alice, `a${i}`, `a${i}`));
        return ids;
      })(),
      (async () => {
        const ids: number[] = [];
        for (let i = 0; i < perSender; i++) ids.push(await say(bob, `b${i}`, `b${i}`));
        return ids;
      })(),
    ]);
    const allIds = [...sent[0], ...sent[1]].sort((x, y) => x - y);
    const atCarol = await messages(carol, perSender * 2);
    expect(atCarol.map((frame) => frame.id)).toEqual(allIds);
    const atBob = await messages(bob, perSender);
    expect(atBob.map((frame) => frame.text)).toEqual(Array.from({ length: perSender }, (_, i) => `a${i}`));
    const atAlice = await messages(alice, perSender);
    expect(atAlice.map((frame) => frame.text)).toEqual(Array.from({ length: perSender }, (_, i) => `b${i}`));
    // Nothing more: the sender's own copy is its ack, and nobody hears anything twice.
    await carol.sync();
    expect(carol.take("msg")).toEqual([]);
    await alice.sync();
    expect(alice.take("msg")).toEqual([]);
  });

  test("bursts of says, appended in batches and published as batch payloads, reach the others exactly once, in id order, and not their senders", async () => {
    const SAYS = 60;
    const shared = await redis();
    const limits = { limits: { messageBurst: SAYS, messageRatePerSec: SAYS } };
    const nodes = [await node(shared, limits), await node(shared, limits), await node(shared, limits)];
    for (const [i, user] of ["alice", "bob", "carol"].entries()) await registered(nodes[i]!, user);
    const [alice, bob, carol] = [(await loggedIn(nodes[0]!, "alice")).client, (await loggedIn(nodes[1]!, "bob")).client, (await loggedIn(nodes[2]!, "carol")).client];
    shared.cli("CONFIG", "RESETSTAT");
    // Written at once, so each node reads many says in one turn and appends them together.
    for (let i = 0; i < SAYS; i++) {
      alice.send({ type: "say", room: "#lobby", text: `a${i}`, ref: `a${i}` });
      bob.send({ type: "say", room: "#lobby", text: `b${i}`, ref: `b${i}` });
    }
    const acks = async (sender: TestClient, prefix: string) => {
      const ids: number[] = [];
      for (let i = 0; i < SAYS; i++) {
        const ack = await sender.next("ack", 10_000);
        expect(ack.ref).toBe(`${prefix}${i}`);
        ids.push(ack.id);
      }
      return ids;
    };
    const [fromAlice, fromBob] = [await acks(alice, "a"), await acks(bob, "b")];
    const scriptCalls = Number(/cmdstat_evalsha:calls=(\d+),/.exec(shared.cli("INFO", "commandstats"))?.[1] ?? 0);
    expect(scriptCalls).toBeLessThan(SAYS);
    expect((await messages(carol, SAYS * 2)).map((frame) => frame.id)).toEqual([...fromAlice, ...fromBob].sort((x, y) => x - y));
    expect((await messages(bob, SAYS)).map((frame) => frame.text)).toEqual(Array.from({ length: SAYS }, (_, i) => `a${i}`));
    expect((await messages(alice, SAYS)).map((frame) => frame.text)).toEqual(Array.from({ length: SAYS }, (_, i) => `b${i}`));
    for (const receiver of [alice, bob, carol]) {
      await receiver.sync();
      expect(receiver.take("msg")).toEqual([]);
    }
  });

  test("a room created on one node is joined from another, and its members hear each other", async () => {
    const shared = await redis();
    const {
      nodes: [a, b],
      clients: [alice, bob],
    } = await usersOnNodes(shared, "alice", "bob");
    alice.send({ type: "join", room: "#rust" });
    expect((await alice.next("joined")).room).toBe("#rust");
    bob.send({ type: "join", room: "#rust" });
    const joined = await bob.next("joined");
    expect(joined.members).toEqual(["alice", "bob"]);
    expect((await alice.next("join")).user).toBe("bob");
    await say(bob, "hello rust", "r1", "#rust");
    const heard = await alice.next("msg");
    expect([heard.room, heard.from, heard.text]).toEqual(["#rust", "bob", "hello rust"]);
  });

  test("dms cross nodes, and one to a user offline everywhere waits for their login on a third node", async () => {
    const shared = await redis();
    const [a, b, c] = [await node(shared), await node(shared), await node(shared)];
    await registered(a, "alice");
    await registered(b, "bob");
    await registered(c, "carol");
    const alice = (await loggedIn(a, "alice")).client;
    const bob = (await loggedIn(b, "bob")).client;
    alice.send({ type: "dm", to: "bob", text: "psst", ref: "d1" });
    await alice.next("ack");
    const dm = await bob.next("dm");
    expect([dm.from, dm.to, dm.text]).toEqual(["alice", "bob", "psst"]);
    bob.send({ type: "dm", to: "carol", text: "for later", ref: "d2" });
    const ack = await bob.next("ack");
    const carol = (await loggedIn(c, "carol")).client;
    const missed = await carol.next("dm");
    expect([missed.id, missed.from, missed.text]).toEqual([ack.id, "bob", "for later"]);
  });

  test("presence crosses nodes: online, who, and offline", async () => {
    const shared = await redis();
    const [a, b] = [await node(shared), await node(shared)];
    await registered(a, "alice");
    await registered(b, "bob");
    const alice = (await loggedIn(a, "alice")).client;
    const { client: bob, welcome } = await loggedIn(b, "bob");
    expect(welcome.online).toContain("alice");
    expect((await alice.next("online")).user).toBe("bob");
    alice.send({ type: "who" });
    expect((await alice.next("who")).users.sort()).toEqual(["alice", "bob"]);
    await bob.close();
    expect((await alice.next("offline")).user).toBe("bob");
  });

  test("after an outage longer than a node's timeout, a node back first does not report a slower one's users as gone", async () => {
    const shared = await redis();
    // Each node logs in as its own Redis user, so the test decides when each one gets back.
    for (const user of ["node-a", "node-b"]) shared.cli("ACL", "SETUSER", user, "on", `>${user}-pw`, "~*", "&*", "+@all");
    const as = (user: string) => `redis://${user}:${user}-pw@127.0.0.1:${shared.port}`;
    const [a, b] = [await node(shared, { redisUrl: as("node-a") }), await node(shared, { redisUrl: as("node-b") })];
    await registered(a, "alice");
    await registered(b, "bob");
    const alice = (await loggedIn(a, "alice")).client;
    await loggedIn(b, "bob");
    const cutOff = (user: string) => {
      shared.cli("ACL", "SETUSER", user, "off");
      shared.cli("CLIENT", "KILL", "USER", user);
    };
    cutOff("node-a");
    cutOff("node-b");
    // Both heartbeats in Redis grow older than the timeout.
    await Bun.sleep(NODE_TIMEOUT_MS + HEARTBEAT_INTERVAL_MS);
    shared.cli("ACL", "SETUSER", "node-a", "on");
    await until(() => a.logs.some((entry) => entry.event === "redis_up"), "node A back", 10_000);
    // Node B takes a heartbeat longer (and up to a reconnect delay more), within a timeout of A's return.
    await Bun.sleep(HEARTBEAT_INTERVAL_MS);
    shared.cli("ACL", "SETUSER", "node-b", "on");
    await until(() => b.logs.some((entry) => entry.event === "redis_up"), "node B back", 10_000);
    // Past the time A waits after its return before it judges the others, and a beat more.
    await Bun.sleep(NODE_TIMEOUT_MS + HEARTBEAT_INTERVAL_MS);
    alice.send({ type: "who" });
    expect((await alice.next("who")).users.sort()).toEqual(["alice", "bob"]);
    expect(alice.take("offline")).toEqual([]);
  }, OUTAGE_TEST_TIMEOUT_MS);

  test("a login with since marks on a node that has served nobody yet gets exactly what followed the marks", async () => {
    const shared = await redis();
    const {
      clients: [alice],
    } = await usersOnNodes(shared, "alice");
    // Started before the messages: all it knows of the ids is what it read at its start.
    const idle = await node(shared);
    const ids: number[] = [];
    for (let i = 1; i <= 5; i++) ids.push(await say(alice, `m${i}`, `m${i}`));
    alice.send({ type: "dm", to: "alice", text: "note to self", ref: "d1" });
    const dmId = (await alice.next("ack")).id;
    await say(alice, "m6", "m6");
    const moved = await client(idle);
    moved.send({ type: "login", user: "alice", password: "alice password 1", since: { "#lobby": ids[2], "@dm": dmId - 1 } });
    await moved.next("welcome");
    const history = await moved.next("history");
    expect(history.messages.map((message: Frame) => message.text)).toEqual(["m4", "m5", "m6"]);
    expect((await moved.next("dm")).id).toBe(dmId);
  });

  test("a ref stored through one node and retried on another after a mute is acked as it was, not refused", async () => {
    const shared = await redis();
    const {
      nodes: [a, b],
      clients: [alice, bob],
    } = await usersOnNodes(shared, "alice", "bob");
    bob.send({ type: "join", room: "#ops" });
    await bob.next("joined");
    alice.send({ type: "join", room: "#ops" });
    await alice.next("joined");
    const first = await say(alice, "said once", "r1", "#ops");
    bob.send({ type: "mute", room: "#ops", user: "alice" });
    await alice.nextOf(["moderation"]);
    // Her ack was lost with node A, say; she resends on node B.
    const again = await client(b);
    again.send({ type: "login", user: "alice", password: "alice password 1" });
    await again.next("welcome");
    again.send({ type: "say", room: "#ops", text: "said once", ref: "r1" });
    expect(await again.nextOf(["ack", "error"])).toMatchObject({ type: "ack", ref: "r1", id: first });
    again.send({ type: "say", room: "#ops", text: "new words", ref: "r2" });
    expect((await again.nextOf(["ack", "error"])).code).toBe("muted");
    void a;
  });

  test("a server-wide ban made while a node was cut off from Redis closes the user's connections there once it is back", async () => {
    const shared = await redis();
    shared.cli("ACL", "SETUSER", "node-b", "on", ">node-b-pw", "~*", "&*", "+@all");
    const a = await node(shared, { admins: ["admin"] });
    const b = await node(shared, { redisUrl: `redis://node-b:node-b-pw@127.0.0.1:${shared.port}` });
    await registered(a, "admin");
    await registered(b, "mallory");
    const admin = (await loggedIn(a, "admin")).client;
    const mallory = (await loggedIn(b, "mallory")).client;
    shared.cli("ACL", "SETUSER", "node-b", "off");
    shared.cli("CLIENT", "KILL", "USER", "node-b");
    await until(() => b.logs.some((entry) => entry.event === "redis_down"), "node B cut off", 10_000);
    admin.send({ type: "ban", scope: "server", user: "mallory" });
    await admin.next("moderation");
    expect(mallory.isClosed).toBe(false);
    shared.cli("ACL", "SETUSER", "node-b", "on");
    expect(await mallory.nextError(10_000)).toBe("banned");
    await mallory.closed;
  });

  test("search in cluster mode is not_supported, never an empty result", async () => {
    const shared = await redis();
    const a = await node(shared);
    await registered(a, "alice");
    const alice = (await loggedIn(a, "alice")).client;
    await say(alice, "findable words", "s1");
    alice.send({ type: "search", query: "findable" });
    expect((await alice.nextOf(["search", "error"])).code).toBe("not_supported");
  });

  test("a resume token from one node logs in on another", async () => {
    const shared = await redis();
    const [a, b] = [await node(shared), await node(shared)];
    await registered(a, "alice");
    const { welcome } = await loggedIn(a, "alice");
    const resumed = await client(b);
    resumed.send({ type: "resume", user: "alice", token: welcome.token });
    expect((await resumed.nextOf(["welcome", "error"])).type).toBe("welcome");
    // A node that stops leaves Redis on purpose: that is not Redis going down.
    await a.stop();
    expect(a.logs.map((entry) => entry.event)).not.toContain("redis_down");
  });

  test("failed logins on one node throttle the account on the other", async () => {
    const shared = await redis();
    const [a, b] = [await node(shared), await node(shared)];
    await registered(a, "alice");
    let code: string | undefined;
    for (let attempt = 0; attempt < 50 && code !== "throttled"; attempt++) {
      const guesser = await client(attempt % 2 === 0 ? a : b);
      guesser.send({ type: "login", user: "alice", password: `wrong guess ${attempt}` });
      code = (await guesser.next("error", 10_000)).code;
      await guesser.close();
    }
    expect(code).toBe("throttled");
    // Both nodes now refuse, the right password too, until the throttle passes.
    for (const server of [a, b]) {
      const tried = await client(server);
      tried.send({ type: "login", user: "alice", password: "alice password 1" });
      expect((await tried.next("error")).code).toBe("throttled");
    }
  });

  test("while Redis is down messages and logins get store_unavailable; after it returns nothing acked is lost", async () => {
    const shared = await redis({ appendfsync: "always" });
    const {
      nodes: [a, b],
      clients: [alice, bob],
    } = await usersOnNodes(shared, "alice", "bob");
    const before = await say(alice, "before", "m1");
    expect((await bob.next("msg")).id).toBe(before);
    await shared.stop();
    alice.send({ type: "say", room: "#lobby", text: "during", ref: "m2" });
    const refused = await alice.next("error", 10_000);
    expect(refused.code).toBe("store_unavailable");
    // A new login is refused the same way, and the connections already there stay.
    const newcomer = await client(b);
    newcomer.send({ type: "login", user: "bob", password: "bob password 1" });
    expect((await newcomer.next("error", 10_000)).code).toBe("store_unavailable");
    expect(alice.isClosed || bob.isClosed).toBe(false);
    await shared.start();
    // The nodes recover by themselves.
    for (const server of [a, b]) await until(() => server.logs.some((entry) => entry.event === "redis_up"), "redis_up", 10_000);
    const after = await say(alice, "after", "m3");
    // Logged once per change of state, not once per failed command.
    for (const server of [a, b]) expect(server.logs.filter((entry) => entry.event === "redis_down")).toHaveLength(1);
    expect(after).toBeGreaterThan(before);
    expect((await bob.next("msg", 10_000)).text).toBe("after");
    alice.send({ type: "history", room: "#lobby" });
    const history = await alice.next("history");
    expect(history.messages.map((message: Frame) => message.text)).toEqual(["before", "after"]);
  });
});
