// The Redis room registry against a real redis-server: the Rooms contract, then what a cluster
// needs from it with two nodes on one Redis: changes reach the other node in the same order,
// races between nodes leave one room and one membership, a node that missed publications or fell
// behind the trimmed stream converges, a node opened later (or while changes go on) loads the
// same state, the other nodes' membership changes are reported, and a Redis that is away changes
// nothing.

import { describe, expect, test } from "bun:test";
import { MemoryRooms } from "../../src/core/rooms.ts";
import { RedisConnection, type StateChange } from "../../src/store/redis/connection.ts";
import { keys } from "../../src/store/redis/keys.ts";
import { RedisRooms, type RemoteRoomChange } from "../../src/store/redis/rooms.ts";
import { withTimeout } from "../helpers/client.ts";
import { redisAvailable, startRedis, type TestRedis } from "../helpers/redis.ts";
import { describeRoomsContract, EVERY_CHANGE, populate, snapshot, USERS } from "./rooms-contract.ts";

const available = redisAvailable();

/** Long enough for a reconnect (its backoff reaches 1 s) on a busy machine. */
const SYNC_TIMEOUT_MS = 8_000;

interface Node extends AsyncDisposable {
  connection: RedisConnection;
  rooms: RedisRooms;
  /** What the node's remote-change listener heard. */
  heard: RemoteRoomChange[];
}

/** A node on its own connection; `wrap` may stand between the registry and the connection. */
async function openNode(url: string, wrap: (connection: RedisConnection) => RedisConnection = (connection) => connection): Promise<Node> {
  const connection = new RedisConnection({ url });
  try {
    await connection.open();
    const rooms = await RedisRooms.open(wrap(connection));
    const heard: RemoteRoomChange[] = [];
    rooms.onRemoteChange((change) => heard.push(change));
    return {
      connection,
      rooms,
      heard,
      [Symbol.asyncDispose]: async () => {
        await rooms.close();
        connection.close();
      },
    };
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** The connection, but the first read of the change sequence answers only after `meanwhile` ran. */
function afterFirstSequenceRead(connection: RedisConnection, meanwhile: () => Promise<void>): RedisConnection {
  let done = false;
  const send = async (command: string, args: Array<string | number>) => {
    const reply = await connection.send(command, args);
    if (!done && command === "GET" && args[0] === keys.roomSequence) {
      done = true;
      await meanwhile();
    }
    return reply;
  };
  return new Proxy(connection, {
    get: (target, property) => {
      if (property === "send") return send;
      const value: unknown = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function synced(node: Node, what = "the node to apply every change"): Promise<void> {
  return withTimeout(node.rooms.synced(), SYNC_TIMEOUT_MS, what);
}

function nextState(connection: RedisConnection, wanted: StateChange["state"]): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve) => connection.onStateChange((change) => change.state === wanted && resolve())),
    SYNC_TIMEOUT_MS,
    `the Redis link ${wanted}`,
  );
}

// A node can be cut off from Redis on its own, and let back in, through an ACL user of its own.
const CUT_USER = "node-b";
const CUT_PASSWORD = "node-b-password";

function cuttableUrl(redis: TestRedis): string {
  redis.cli("ACL", "SETUSER", CUT_USER, "on", `>${CUT_PASSWORD}`, "~*", "&*", "+@all");
  return `redis://${CUT_USER}:${CUT_PASSWORD}@127.0.0.1:${redis.port}`;
}

/** Cuts the node off (its links drop and cannot come back) until `letBackIn`. */
async function cutOff(redis: TestRedis, node: Node): Promise<void> {
  const down = nextState(node.connection, "down");
  redis.cli("ACL", "SETUSER", CUT_USER, "off");
  redis.cli("CLIENT", "KILL", "USER", CUT_USER);
  await down;
}

async function letBackIn(redis: TestRedis, node: Node): Promise<void> {
  const up = nextState(node.connection, "up");
  redis.cli("ACL", "SETUSER", CUT_USER, "on");
  await up;
}

if (available) {
  describeRoomsContract("RedisRooms", async () => {
    const redis = await startRedis();
    const node = await openNode(redis.url);
    return {
      rooms: node.rooms,
      [Symbol.asyncDispose]: async () => {
        await node[Symbol.asyncDispose]();
        await redis[Symbol.asyncDispose]();
      },
    };
  });
}

describe.skipIf(!available)("RedisRooms on two nodes", () => {
  test("a change on one node is applied on the other, and a change made there is seen right after await", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    await populate(a.rooms);
    await synced(b);
    expect(snapshot(b.rooms, USERS)).toEqual(snapshot(a.rooms, USERS));
    expect(b.rooms.appliedSequence).toBe(a.rooms.appliedSequence);

    await b.rooms.setTopic("#rust", "from b");
    expect(b.rooms.get("#rust")!.topic).toBe("from b");
    await synced(a);
    expect(a.rooms.get("#rust")!.topic).toBe("from b");
  });

  test("the state matches a registry in memory given the same changes", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    const memory = new MemoryRooms();
    await populate(memory);
    await populate(a.rooms);
    await synced(b);
    expect(snapshot(a.rooms, USERS)).toEqual(snapshot(memory, USERS));
    expect(snapshot(b.rooms, USERS)).toEqual(snapshot(memory, USERS));
  });

  test("both nodes creating the same room at once make one room, the first creator's, on both", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    const [fromA, fromB] = await Promise.all([a.rooms.create("#Race", "alice", 1_000), b.rooms.create("#race", "bob", 2_000)]);

    expect(fromA.key).toBe("#race");
    expect({ name: fromB.name, by: fromB.createdBy, at: fromB.createdAt }).toEqual({ name: fromA.name, by: fromA.createdBy, at: fromA.createdAt });
    await synced(a);
    await synced(b);
    for (const node of [a, b]) {
      expect(node.rooms.count).toBe(1);
      expect(node.rooms.createdBy("alice") + node.rooms.createdBy("bob")).toBe(1);
    }
    expect(snapshot(b.rooms, ["alice", "bob"])).toEqual(snapshot(a.rooms, ["alice", "bob"]));
    expect(redis.cli("SMEMBERS", keys.roomIndex).trim()).toBe("#race");
  });

  test("both nodes joining the same user at once leave one membership, and joins keep one order on both", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    await a.rooms.create("#r", "alice", 0);
    await synced(b);

    await Promise.all([a.rooms.addMember("#r", "alice"), b.rooms.addMember("#r", "Alice")]);
    const users = ["u1", "u2", "u3", "u4", "u5", "u6"];
    await Promise.all(users.map((user, i) => (i % 2 === 0 ? a : b).rooms.addMember("#r", user)));
    await synced(a);
    await synced(b);

    for (const node of [a, b]) {
      expect(node.rooms.get("#r")!.members.size).toBe(1 + users.length);
      expect(node.rooms.roomsOf("alice").map((room) => room.key)).toEqual(["#r"]);
    }
    expect([...b.rooms.get("#r")!.members.keys()]).toEqual([...a.rooms.get("#r")!.members.keys()]);
    expect(redis.cli("HLEN", keys.room("#r", "members")).trim()).toBe(String(1 + users.length));
  });

  test("both nodes sweeping at once remove each expired room once, and neither keeps it", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    const expired = ["#e1", "#e2", "#e3", "#e4"];
    for (const room of ["#lobby", ...expired]) await a.rooms.create(room, "alice", 0);
    await a.rooms.create("#busy", "alice", 0);
    await a.rooms.addMember("#busy", "bob");
    await synced(b);

    const [fromA, fromB] = await Promise.all([a.rooms.removeEmpty(1_000, "#lobby"), b.rooms.removeEmpty(1_000, "#lobby")]);
    expect([...fromA, ...fromB].sort()).toEqual(expired);
    await synced(a);
    await synced(b);
    for (const node of [a, b]) expect([...node.rooms.list(undefined)].map((room) => room.key)).toEqual(["#busy", "#lobby"]);
    expect(redis.cli("EXISTS", keys.room("#e1", "meta")).trim()).toBe("0");
  });

  test("a change about a room another node removed rejects with no_such_room, and the room is gone here too", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    await a.rooms.create("#old", "alice", 0);
    await synced(b);
    await a.rooms.removeEmpty(1_000, "#lobby");

    await expect(b.rooms.setTopic("#old", "too late")).rejects.toMatchObject({ name: "ChatError", code: "no_such_room" });
    expect(b.rooms.get("#old")).toBeUndefined();
  });

  test("a node whose subscriber connection is killed reads what it missed from the stream", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    await a.rooms.create("#r", "alice", 0);
    await synced(b);

    expect(Number(redis.cli("CLIENT", "KILL", "TYPE", "pubsub"))).toBeGreaterThanOrEqual(2);
    await a.rooms.addMember("#r", "alice");
    await a.rooms.setTopic("#r", "while b was resubscribing");
    await synced(b);
    expect(snapshot(b.rooms, ["alice"])).toEqual(snapshot(a.rooms, ["alice"]));
  });

  test("a node cut off from Redis hears nothing, then catches up from the stream once back", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(cuttableUrl(redis));
    await a.rooms.create("#r", "alice", 0);
    await synced(b);
    const before = b.rooms.appliedSequence;

    await cutOff(redis, b);
    await a.rooms.addMember("#r", "alice");
    await a.rooms.setOp("#r", "alice", true);
    expect(b.rooms.appliedSequence).toBe(before);
    expect(b.rooms.get("#r")!.members.size).toBe(0);

    await letBackIn(redis, b);
    await synced(b);
    expect(snapshot(b.rooms, ["alice"])).toEqual(snapshot(a.rooms, ["alice"]));
    expect(b.heard).toEqual([{ kind: "member", room: "#r", user: "alice", member: true }]);
  });

  test("a node behind the trimmed stream reloads the state, and reports what changed", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(cuttableUrl(redis));
    await a.rooms.create("#gone", "alice", 0);
    await a.rooms.create("#r", "alice", 0);
    await a.rooms.addMember("#r", "bob");
    await synced(b);
    b.heard.length = 0;

    await cutOff(redis, b);
    await a.rooms.removeEmpty(1_000, "#lobby");
    await a.rooms.addMember("#r", "alice");
    await a.rooms.removeMember("#r", "bob", 5_000);
    await a.rooms.create("#new", "carol", 6_000);
    // Keeps only the last change: what b has not applied is gone from the stream.
    redis.cli("XTRIM", keys.roomChanges, "MAXLEN", "1");

    await letBackIn(redis, b);
    await synced(b);
    expect(snapshot(b.rooms, USERS)).toEqual(snapshot(a.rooms, USERS));
    expect(b.heard).toEqual(
      expect.arrayContaining([
        { kind: "removed", room: "#gone" },
        { kind: "member", room: "#r", user: "bob", member: false },
        { kind: "member", room: "#r", user: "alice", member: true },
      ]),
    );
    expect(b.heard).toHaveLength(3);
  });

  test("a node opened after the changes loads them", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await populate(a.rooms);
    await using b = await openNode(redis.url);
    expect(snapshot(b.rooms, USERS)).toEqual(snapshot(a.rooms, USERS));
    expect(b.rooms.appliedSequence).toBe(a.rooms.appliedSequence);
  });

  test("a node that loads while changes go on ends with the same state, join order included", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await populate(a.rooms);
    const meanwhile = async () => {
      // alice leaves and comes back after carol and bob, then dave joins after her: a load that
      // read the rooms now and applied these changes again on top would put dave before alice.
      await a.rooms.removeMember("#rust", "alice", 1_000);
      await a.rooms.addMember("#rust", "alice");
      await a.rooms.addMember("#rust", "dave");
      await a.rooms.setOp("#rust", "alice", true);
      await a.rooms.setTopic("#rust", "changed while b loaded");
      await a.rooms.lift("ban", "#rust", "eve");
      // A room removed and made again under the same name, with a new member.
      expect(await a.rooms.removeEmpty(1_000, "#lobby")).toEqual(["#empty", "#never-joined"]);
      await a.rooms.create("#empty", "carol", 2_000);
      await a.rooms.addMember("#empty", "carol");
      await a.rooms.welcomeUser("erin", "#lobby", 2_000);
      await a.rooms.removeMember("#lobby", "carol", 2_500);
      await a.rooms.addMember("#lobby", "carol");
      await a.rooms.unbanServerWide("ghost");
    };
    // Right after b read the sequence it loads from, before it reads any room.
    await using b = await openNode(redis.url, (connection) => afterFirstSequenceRead(connection, meanwhile));
    await synced(b);
    const users = [...USERS, "dave", "erin"];
    expect(snapshot(b.rooms, users)).toEqual(snapshot(a.rooms, users));
    expect([...b.rooms.get("#rust")!.members.keys()]).toEqual(["carol", "bob", "alice", "dave"]);
  });

  test("other nodes' membership changes and removals are reported; a node's own are not", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    await a.rooms.create("#r", "alice", 0);
    await a.rooms.addMember("#r", "Alice");
    await a.rooms.setTopic("#r", "not a membership");
    await synced(b);
    expect(b.heard).toEqual([{ kind: "member", room: "#r", user: "alice", member: true }]);

    await b.rooms.addMember("#r", "bob");
    await a.rooms.removeMember("#r", "alice", 1_000);
    await b.rooms.removeMember("#r", "bob", 2_000);
    // The sweep picks its candidates from memory: a has to know that #r is empty.
    await synced(a);
    expect(await a.rooms.removeEmpty(3_000, "#lobby")).toEqual(["#r"]);
    await synced(b);
    expect(b.heard).toEqual([
      { kind: "member", room: "#r", user: "alice", member: true },
      { kind: "member", room: "#r", user: "alice", member: false },
      { kind: "removed", room: "#r" },
    ]);
    expect(a.heard).toEqual([
      { kind: "member", room: "#r", user: "bob", member: true },
      { kind: "member", room: "#r", user: "bob", member: false },
    ]);
  });

  test("while Redis is stopped every change rejects with store_unavailable and changes nothing here", async () => {
    await using redis = await startRedis();
    await using a = await openNode(redis.url);
    await populate(a.rooms);
    const before = snapshot(a.rooms, [...USERS, "dave"]);
    const down = nextState(a.connection, "down");
    await redis.stop();
    await down;

    for (const [name, change] of EVERY_CHANGE) {
      const error = await change(a.rooms).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect({ name, error }).toMatchObject({ name, error: { name: "ChatError", code: "store_unavailable" } });
    }
    expect(snapshot(a.rooms, [...USERS, "dave"])).toEqual(before);
  });

  test("with AOF, a restarted Redis keeps the rooms, and the nodes go on in order", async () => {
    await using redis = await startRedis({ appendfsync: "always" });
    await using a = await openNode(redis.url);
    await using b = await openNode(redis.url);
    await populate(a.rooms);
    await synced(b);

    const up = Promise.all([nextState(a.connection, "up"), nextState(b.connection, "up")]);
    await redis.stop();
    await redis.start();
    await up;
    await a.rooms.setTopic("#rust", "after the restart");
    await synced(b);
    expect(snapshot(b.rooms, USERS)).toEqual(snapshot(a.rooms, USERS));
    await using c = await openNode(redis.url);
    expect(snapshot(c.rooms, USERS)).toEqual(snapshot(a.rooms, USERS));
  });
});
