import { describe, expect, test } from "bun:test";
import { BoundedHasher } from "../../src/auth/passwords.ts";
import { ChatError } from "../../src/protocol/errors.ts";

describe("BoundedHasher", () => {
  test("hashes as argon2id PHC strings that verify", async () => {
    const hasher = new BoundedHasher(1, 10);
    const hash = await hasher.hash("correct horse");
    expect(hash).toStartWith("$argon2id$v=19$m=19456,t=2,p=1$");
    expect(await hasher.verify("correct horse", hash)).toBe(true);
    expect(await hasher.verify("wrong horse", hash)).toBe(false);
    expect(await hasher.verifyDummy("anything")).toBe(false);
  });

  test("refuses work beyond the queue with server_busy instead of queueing without bound", async () => {
    const hasher = new BoundedHasher(1, 2);
    const attempts = Array.from({ length: 6 }, () => hasher.hash("password").then(() => "ok", (error: ChatError) => error.code));
    const outcomes = await Promise.all(attempts);
    expect(outcomes.filter((outcome) => outcome === "ok")).toHaveLength(3);
    expect(outcomes.filter((outcome) => outcome === "server_busy")).toHaveLength(3);
  });

  test("work whose connection has gone is dropped from the queue, not computed", async () => {
    const hasher = new BoundedHasher(1, 10);
    const running = hasher.hash("first password");
    const gone = new AbortController();
    const queued = hasher.hash("second password", gone.signal);
    gone.abort();
    expect(await queued.catch((error: ChatError) => error.code)).toBe("timeout");
    expect(await hasher.verify("first password", await running)).toBe(true);
  });

  test("hashing does not block the event loop", async () => {
    const hasher = new BoundedHasher(2, 10);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    // Two rounds of two ~35 ms hashes: a ticker only gets to run many times if the hashing
    // happens off this thread (a blocking hash would allow a tick or two between rounds).
    await Promise.all(Array.from({ length: 4 }, () => hasher.hash("password")));
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(10);
  });
});
