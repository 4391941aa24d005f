// `tlschat register --redis` as a user runs it: the account lands in the cluster's Redis through
// the same checks and hashing as a server's, so a node logs it in; a taken name, a weak password
// and a bad URL are refused; an unreachable Redis is one line and exit 1 within a few seconds,
// and the URL's password is never printed.

import { describe, expect, test } from "bun:test";
import { createAccountService } from "../../src/auth/accounts.ts";
import { defaultLimits } from "../../src/core/limits.ts";
import { RedisUserStore } from "../../src/store/redis/accounts.ts";
import { spawnTlschat } from "../helpers/process.ts";
import { redisAvailable } from "../helpers/redis.ts";
import { redisForFile } from "../helpers/redis-fixture.ts";
import { tempDir } from "../helpers/tmp.ts";

const available = redisAvailable();
const redis = available ? redisForFile() : undefined;

/** How soon an unreachable Redis must be reported, start-up of the process included. */
const UNREACHABLE_REPORT_MS = 5_000;

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

async function register(args: string[], env: Record<string, string>) {
  await using dir = await tempDir();
  await using run = spawnTlschat(["register", ...args], { cwd: dir.path, env: { HOME: dir.path, ...env } });
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

describe.skipIf(!available)("register --redis", () => {
  test("writes an account a node then logs in; the same name again is user_exists; TLSCHAT_REDIS_URL works too", async () => {
    const link = await redis!.fresh();
    const url = redis!.server.url;
    const first = await register(["--redis", url, "carol"], { TLSCHAT_PASSWORD: "carol-password" });
    expect(first).toMatchObject({ code: 0, stderr: "" });
    expect(first.stdout.trim()).toBe(`Registered carol in Redis at ${url}`);

    const node = createAccountService(new RedisUserStore(link), defaultLimits(), { tokenTtlMs: 60_000, maxLoginsPerAddress: 4, now: Date.now });
    expect((await node.accounts.login("carol", "carol-password", "192.0.2.1")).user).toBe("carol");

    const taken = await register(["Carol"], { TLSCHAT_REDIS_URL: url, TLSCHAT_PASSWORD: "other-password" });
    expect(taken.code).toBe(1);
    expect(lines(taken.stderr)).toEqual([expect.stringContaining("user_exists")]);

    const fromEnv = await register(["dave"], { TLSCHAT_REDIS_URL: url, TLSCHAT_PASSWORD: "dave-password" });
    expect(fromEnv.code).toBe(0);
    expect((await node.accounts.login("dave", "dave-password", "192.0.2.1")).user).toBe("dave");
  });

  test("a weak password is refused before Redis is written", async () => {
    const link = await redis!.fresh();
    const weak = await register(["--redis", redis!.server.url, "erin"], { TLSCHAT_PASSWORD: "short" });
    expect(weak.code).toBe(1);
    expect(lines(weak.stderr)).toEqual([expect.stringContaining("weak_password")]);
    expect(await new RedisUserStore(link).get("erin")).toBeUndefined();
  });

  test("an unreachable Redis is one line naming it without its password, exit 1, within a few seconds", async () => {
    await redis!.fresh();
    await redis!.server.stop();
    try {
      const started = performance.now();
      const url = `redis://:hunter2@127.0.0.1:${redis!.server.port}`;
      const refused = await register(["--redis", url, "frank"], { TLSCHAT_PASSWORD: "frank-password" });
      expect(performance.now() - started).toBeLessThan(UNREACHABLE_REPORT_MS);
      expect(refused.code).toBe(1);
      expect(lines(refused.stderr)).toEqual([expect.stringMatching(/^tlschat: store_unavailable: Redis is unreachable .* at redis:\/\/127\.0\.0\.1:\d+$/)]);
      expect(refused.stderr).not.toContain("hunter2");
    } finally {
      await redis!.server.start();
    }
  });

  test("usage errors: not a Redis URL, --redis-ca without rediss://, --redis with --db", async () => {
    const url = redis!.server.url;
    for (const args of [
      ["--redis", "http://127.0.0.1:6379", "gina"],
      ["--redis", "not a url", "gina"],
      ["--redis", url, "--redis-ca", "ca.pem", "gina"],
      ["--redis", url, "--db", "users.json", "gina"],
    ]) {
      const refused = await register(args, { TLSCHAT_PASSWORD: "gina-password" });
      expect(refused.code).toBe(2);
      expect(lines(refused.stderr)).toHaveLength(1);
    }
  });
});
