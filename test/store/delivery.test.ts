// The delivery contract run against one server's presence and fanout (in memory, synchronous) and
// against a cluster node's (through a real redis-server's pub/sub).

import { describe, expect, test } from "bun:test";
import { LocalDirectory } from "../../src/core/directory.ts";
import { LocalFanout } from "../../src/core/fanout.ts";
import { MemoryMessageLog } from "../../src/core/message-log.ts";
import { openCluster, type ClusterLog } from "../../src/store/redis/cluster.ts";
import type { ClusterFanout } from "../../src/store/redis/fanout.ts";
import { RedisMessageLog } from "../../src/store/redis/message-log.ts";
import { FakePeer } from "../helpers/fake-peer.ts";
import { until } from "../helpers/chat-support.ts";
import { redisAvailable } from "../helpers/redis.ts";
import { redisForFile } from "../helpers/redis-fixture.ts";
import { describeDeliveryContract } from "./delivery-contract.ts";

const quiet: ClusterLog = { info() {}, warn() {}, error() {} };

describeDeliveryContract("LocalDirectory and LocalFanout", async () => {
  const directory = new LocalDirectory();
  const log = new MemoryMessageLog({ perConversation: 100, perConversationBytes: 1 << 20 });
  return {
    directory,
    fanout: new LocalFanout(directory, log.lastId()),
    log,
    ready: async () => {},
    until: async (condition, what) => {
      if (!condition()) throw new Error(`not delivered at once: ${what}`);
    },
    [Symbol.asyncDispose]: async () => {},
  };
});

if (redisAvailable()) {
  const redis = redisForFile();
  describeDeliveryContract("ClusterDirectory and ClusterFanout", async () => {
    const cluster = await openCluster({ connection: await redis.fresh(), displayName: "test", log: quiet, refWindowMs: 60_000 });
    const fanout = cluster.delivery.fanout as ClusterFanout;
    return {
      directory: cluster.delivery.directory,
      fanout,
      log: cluster.messageLog,
      ready: () => fanout.following(),
      until: (condition, what) => until(condition, what),
      [Symbol.asyncDispose]: async () => {
        await cluster.delivery.close();
        await cluster.messageLog.close();
        await cluster.rooms.close();
        cluster.close();
      },
    };
  });

  describe("ClusterFanout subscriptions", () => {
    test("a room followed and left at once leaves no subscription behind; one still followed keeps its own", async () => {
      const cluster = await openCluster({ connection: await redis.fresh(), displayName: "test", log: quiet, refWindowMs: 60_000 });
      try {
        const fanout = cluster.delivery.fanout as ClusterFanout;
        const [brief, staying] = [new FakePeer(), new FakePeer()];
        fanout.attach("#brief", brief);
        fanout.detach("#brief", brief);
        fanout.attach("#stays", staying);
        await fanout.following();
        const subscribed = redis.server.cli("PUBSUB", "CHANNELS", "tlschat:to-room:*").split("\n").filter((line) => line !== "");
        expect(subscribed).toEqual(["tlschat:to-room:#stays"]);
      } finally {
        await cluster.delivery.close();
        cluster.close();
      }
    });
  });

  describe("ClusterFanout when pub/sub drops messages", () => {
    test("what was published while its subscription was down is read from the log: each message once, in order", async () => {
      const link = await redis.fresh();
      const cluster = await openCluster({ connection: link, displayName: "test", log: quiet, refWindowMs: 60_000 });
      const other = await RedisMessageLog.open(await redis.connect(), "other-node", { refWindowMs: 60_000 });
      try {
        const fanout = cluster.delivery.fanout as ClusterFanout;
        const member = new FakePeer();
        cluster.delivery.directory.add("bob", member);
        fanout.attach("#a", member);
        await fanout.following();
        const resubscribed = new Promise<void>((resolve) => link.onReconnected(resolve));
        // Redis drops the node's subscriber connection; the node reconnects after a short delay.
        redis.server.cli("CLIENT", "KILL", "TYPE", "pubsub");
        const ids: number[] = [];
        for (let i = 0; i < 20; i++) ids.push((await other.append({ room: { key: "#a", name: "#a" }, from: "alice", text: `m${i}`, ts: i })).id);
        await resubscribed;
        await until(() => member.of("msg").length >= ids.length, "every message");
        expect(member.of("msg").map((frame) => frame.id)).toEqual(ids);
      } finally {
        await other.close();
        await cluster.delivery.close();
        cluster.close();
      }
    });
  });
}
