// One real redis-server for a whole test file (starting one per test would cost more than the
// tests), emptied before each test that asks for a link, with every link closed after its test.
// Call it at the top level of a test file, after checking redisAvailable().

import { afterAll, afterEach, beforeAll } from "bun:test";
import { RedisConnection } from "../../src/store/redis/connection.ts";
import { startRedis, type TestRedis } from "./redis.ts";

export interface RedisForFile {
  /** The server, once the file's tests run. */
  readonly server: TestRedis;
  /** Empties Redis and opens a link to it (one per simulated node). */
  fresh(): Promise<RedisConnection>;
  /** Another link to the same data, for a second node. */
  connect(): Promise<RedisConnection>;
}

export function redisForFile(): RedisForFile {
  let server: TestRedis | undefined;
  const links: RedisConnection[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterEach(() => {
    for (const link of links.splice(0)) link.close();
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });
  const running = () => {
    if (!server) throw new Error("redis-server is not running: call redisForFile() at the top level of the file");
    return server;
  };
  const connect = async () => {
    const link = new RedisConnection({ url: running().url });
    links.push(link);
    await link.open();
    return link;
  };
  return {
    get server() {
      return running();
    },
    async fresh() {
      const link = await connect();
      await link.send("FLUSHALL", []);
      return link;
    },
    connect,
  };
}
