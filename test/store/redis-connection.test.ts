// The node's Redis link against a real redis-server: commands fail fast with store_unavailable
// while Redis is away, the link comes back by itself, subscriptions are made again, scripts are
// loaded again after a restart, and a Redis that stops answering counts as down.

import { afterEach, describe, expect, test } from "bun:test";
import { ChatError } from "../../src/protocol/errors.ts";
import { RedisConnection, RedisScript, type StateChange } from "../../src/store/redis/connection.ts";
import { testCertificate } from "../helpers/certs.ts";
import { withTimeout } from "../helpers/client.ts";
import { redisAvailable, startRedis } from "../helpers/redis.ts";

const available = redisAvailable();
const opened: RedisConnection[] = [];

afterEach(() => {
  for (const connection of opened.splice(0)) connection.close();
});

function connect(url: string, commandTimeoutMs?: number): RedisConnection {
  const connection = new RedisConnection({ url, commandTimeoutMs });
  opened.push(connection);
  return connection;
}

function nextState(connection: RedisConnection, wanted: StateChange["state"]): Promise<StateChange> {
  return withTimeout(
    new Promise<StateChange>((resolve) => connection.onStateChange((change) => change.state === wanted && resolve(change))),
    10_000,
    `Redis link ${wanted}`,
  );
}

async function expectUnavailable(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(ChatError);
  expect((error as ChatError).code).toBe("store_unavailable");
}

describe.skipIf(!available)("Redis link", () => {
  test("rediss:// is verified: with the server's CA it works, without it the link refuses to open", async () => {
    const certificate = await testCertificate();
    await using redis = await startRedis({ tls: { certPem: certificate.certPem, keyPem: certificate.keyPem } });
    const verified = new RedisConnection({ url: redis.url, ca: certificate.certPem });
    opened.push(verified);
    await verified.open();
    expect(await verified.send("PING", [])).toBe("PONG");
    await expectUnavailable(connect(redis.url).open());
  });

  test("refuses to open when nothing listens", async () => {
    await using redis = await startRedis();
    await redis.stop();
    await expectUnavailable(connect(redis.url).open());
  });

  test("fails commands at once while Redis is down and recovers by itself", async () => {
    await using redis = await startRedis();
    const connection = connect(redis.url);
    await connection.open();
    expect(await connection.send("SET", ["k", "v"])).toBe("OK");
    const down = nextState(connection, "down");
    await redis.stop();
    expect((await down).reason).toBeString();
    const started = performance.now();
    await expectUnavailable(connection.send("GET", ["k"]));
    expect(performance.now() - started).toBeLessThan(500);
    const up = nextState(connection, "up");
    await redis.start();
    await up;
    expect(await connection.send("PING", [])).toBe("PONG");
  });

  test("subscribes again after a restart, then tells, and hears what is published", async () => {
    await using redis = await startRedis();
    const connection = connect(redis.url);
    await connection.open();
    const heard: string[] = [];
    let resubscribed = 0;
    connection.onReconnected(() => resubscribed++);
    await connection.subscribe("news", (message) => heard.push(message));
    await connection.send("PUBLISH", ["news", "before"]);
    const up = nextState(connection, "up");
    await redis.stop();
    await redis.start();
    await up;
    await withTimeout(
      (async () => {
        while (resubscribed === 0) await new Promise((resolve) => setImmediate(resolve));
      })(),
      5_000,
      "resubscribed",
    );
    await connection.send("PUBLISH", ["news", "after"]);
    await withTimeout(
      (async () => {
        while (heard.length < 2) await new Promise((resolve) => setImmediate(resolve));
      })(),
      5_000,
      "the message after the restart",
    );
    expect(heard).toEqual(["before", "after"]);
  });

  test("a lost command connection alone also counts as a return: its listeners run once commands are answered again", async () => {
    await using redis = await startRedis();
    const connection = connect(redis.url);
    await connection.open();
    await connection.subscribe("news", () => {});
    const answers: unknown[] = [];
    connection.onReconnected(() => void connection.send("PING", []).then((reply) => answers.push(reply), (error: Error) => answers.push(error.message)));
    const down = nextState(connection, "down");
    const up = nextState(connection, "up");
    // The subscriber is in subscribe mode: only the command connection is a normal client.
    expect(redis.cli("CLIENT", "KILL", "TYPE", "normal").trim()).toBe("1");
    await down;
    await up;
    await withTimeout(
      (async () => {
        while (answers.length === 0) await new Promise((resolve) => setImmediate(resolve));
      })(),
      5_000,
      "the listener's command",
    );
    expect(answers).toEqual(["PONG"]);
  });

  test("runs a script by hash and loads it again after a restart", async () => {
    await using redis = await startRedis();
    const connection = connect(redis.url);
    await connection.open();
    const script = new RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    expect(await connection.run(script, ["counter"], [2])).toBe(2);
    expect(await connection.run(script, ["counter"], [3])).toBe(5);
    const up = nextState(connection, "up");
    await redis.stop();
    await redis.start();
    await up;
    expect(await connection.run(script, ["counter"], [1])).toBe(1);
  });

  test("a burst of calls of a new script loads it once, not once per call", async () => {
    await using redis = await startRedis();
    const connection = connect(redis.url);
    await connection.open();
    const script = new RedisScript("return redis.call('INCR', KEYS[1])");
    const results = await Promise.all(Array.from({ length: 200 }, () => connection.run(script, ["burst"], [])));
    expect(results.sort((x, y) => Number(x) - Number(y)).at(-1)).toBe(200);
    const stats = redis.cli("INFO", "commandstats");
    expect(stats).toMatch(/cmdstat_script\|load:calls=1,/);
    expect(stats).not.toContain("cmdstat_eval:");
  });

  test("counts a Redis that stops answering as down, within the command deadline", async () => {
    await using redis = await startRedis();
    const connection = connect(redis.url, 300);
    await connection.open();
    const down = nextState(connection, "down");
    redis.pause();
    try {
      await expectUnavailable(connection.send("PING", []));
      expect((await down).reason).toContain("no answer");
    } finally {
      redis.resume();
    }
  });
});
