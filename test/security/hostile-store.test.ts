// Store faults: a corrupt file at start (refused, left byte-for-byte untouched), a server killed
// with SIGKILL in the middle of many registrations (every acknowledged one is on disk), and a
// store that cannot be written (store_unavailable, the server keeps serving, and recovers).

import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { JsonFileStore, StoreError } from "../../src/auth/store.ts";
import { testCertificate } from "../helpers/certs.ts";
import { withTimeout } from "../helpers/client.ts";
import { Bystanders, expectAftermath, expectStoreIntact, hostile, HostileClient } from "../helpers/hostile.ts";
import { startTestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const BUN = process.execPath;

const VALID = JSON.stringify(
  {
    format: "tlschat-users",
    version: 1,
    secret: "ab".repeat(32),
    users: [{ name: "alice", hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", epoch: 0, createdAt: 1 }],
  },
  null,
  2,
);

describe("corrupt store at start", () => {
  const corrupt: Array<[string, string | Uint8Array]> = [
    ["not JSON", "{not json"],
    ["truncated", VALID.slice(0, VALID.length / 2)],
    ["empty", ""],
    ["null", "null"],
    ["an array", "[]"],
    ["a string", '"tlschat-users"'],
    ["the wrong format", VALID.replace("tlschat-users", "other")],
    ["a short secret", VALID.replace("ab".repeat(32), "ab")],
    ["users not an array", VALID.replace(/"users": \[[\s\S]*\]/, '"users": {}')],
    ["a user with an invalid name", VALID.replace('"name": "alice"', '"name": "al ice"')],
    ["a look-alike name", VALID.replace('"name": "alice"', '"name": "\u0430lice"')],
    ["a user without a hash", VALID.replace(/"hash": "[^"]*",/, "")],
    ["a fractional epoch", VALID.replace('"epoch": 0', '"epoch": 0.5')],
    ["a duplicate user by case", VALID.replace(/"users": \[([\s\S]*)\]/, (_, user: string) => `"users": [${user}, ${user.replace("alice", "ALICE")}]`)],
    ["invalid UTF-8 in a name", new Uint8Array([...Buffer.from(VALID.split('"alice"')[0]!), 0x22, 0x61, 0xff, 0x22, ...Buffer.from(VALID.split('"alice"')[1]!)])],
    ["NUL bytes", "\u0000".repeat(64)],
    // Not valid UTF-8, so not JSON text: read leniently it would load as U+FFFD and the next
    // write would replace the original bytes for good.
    ["invalid UTF-8 in a hash", Buffer.concat([Buffer.from(VALID.split("c2FsdHNhbHQ")[0]!), Buffer.from([0xff, 0xfe]), Buffer.from(VALID.split("c2FsdHNhbHQ")[1]!)])],
  ];

  test.each(corrupt)("%s: JsonFileStore.open throws StoreError and leaves the file untouched", async (_, contents) => {
    await using dir = await tempDir();
    const path = dir.file("users.json");
    writeFileSync(path, contents);
    const before = readFileSync(path);
    let error: unknown;
    try {
      const store = await JsonFileStore.open(path);
      await store.close();
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain(path);
    expect(readFileSync(path).equals(before)).toBe(true);
    // Nothing left behind: no lock, no temp file; a second attempt fails the same way (not "in use").
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(existsSync(`${path}.${process.pid}.tmp`)).toBe(false);
    await expect(JsonFileStore.open(path)).rejects.toThrow(/corrupt/);
  });

  test("the valid control file opens", async () => {
    await using dir = await tempDir();
    const path = dir.file("users.json");
    writeFileSync(path, VALID);
    const store = await JsonFileStore.open(path);
    expect((await store.get("ALICE"))?.name).toBe("alice");
    await store.close();
  });
});

/** Starts `bun src/main.ts serve` on port 0 and returns the child and its port (from its log). */
async function spawnServer(dir: string): Promise<{ proc: ReturnType<typeof Bun.spawn>; port: number; stderr: () => string }> {
  const pair = await testCertificate("ec");
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  writeFileSync(cert, pair.certPem);
  writeFileSync(key, pair.keyPem, { mode: 0o600 });
  const proc = Bun.spawn(
    [BUN, join(ROOT, "src/main.ts"), "serve", "--host", "127.0.0.1", "--port", "0", "--cert", cert, "--key", key, "--db", join(dir, "users.json")],
    { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } },
  );
  let text = "";
  const port = await withTimeout(
    (async () => {
      const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`server exited before listening: ${text}`);
        text += decoder.decode(value, { stream: true });
        const match = /listening address=127\.0\.0\.1:(\d+)/.exec(text);
        if (match) {
          // Keep draining stderr so the child never blocks on a full pipe.
          void (async () => {
            for (;;) {
              const next = await reader.read().catch(() => ({ done: true, value: undefined }));
              if (next.done) return;
              text += decoder.decode(next.value, { stream: true });
            }
          })();
          return Number(match[1]);
        }
      }
    })(),
    10_000,
    "the child server's listening line",
  );
  return { proc, port, stderr: () => text };
}

describe("killed mid-write", () => {
  test("SIGKILL during a registration storm: the store parses, every acknowledged user is there, and writing works again", async () => {
    await using dir = await tempDir();
    const { proc, port } = await spawnServer(dir.path);
    const acked: string[] = [];
    const clients: HostileClient[] = [];
    try {
      const pair = await testCertificate("ec");
      for (let c = 0; c < 5; c++) clients.push(await HostileClient.connect({ port, ca: pair.certPem }));
      let killAt!: () => void;
      const enough = new Promise<void>((resolve) => (killAt = resolve));
      clients.forEach((client, c) => {
        // 12 registrations pipelined per connection: 60 in all, far more than are done when the kill comes.
        for (let i = 0; i < 12; i++) client.send({ type: "register", user: `k${c}x${i}`, password: `password-${c}-${i}` });
        void (async () => {
          for (;;) {
            const frame = await client.nextOf(["registered", "error"], 20_000).catch(() => undefined);
            if (!frame) return;
            if (frame.type === "registered") acked.push(frame.user);
            if (acked.length >= 15) killAt();
          }
        })();
      });
      await withTimeout(enough, 15_000, "15 acknowledged registrations");
      proc.kill("SIGKILL");
      await proc.exited;
    } finally {
      proc.kill("SIGKILL");
      for (const client of clients) client.terminate();
    }
    const ackedAtKill = [...acked];
    expect(ackedAtKill.length).toBeGreaterThanOrEqual(15);
    expect(ackedAtKill.length).toBeLessThan(60);
    const path = dir.file("users.json");
    const names = expectStoreIntact(path, ackedAtKill);
    const store = await JsonFileStore.open(path);
    try {
      for (const user of ackedAtKill) expect((await store.get(user))?.name).toBe(user);
      expect(store.size).toBe(names.length);
      // Writing works again: a lock the dead server may have left mid-write is taken over.
      await store.add({ name: "after-kill", hash: "$argon2id$x", epoch: 0, createdAt: 0, keys: [] });
    } finally {
      await store.close();
    }
    expect(existsSync(`${path}.lock`)).toBe(false);
  }, 30_000);
});

describe("store not writable", () => {
  test("registration and passwd get store_unavailable, the server keeps serving, and recovers when the obstacle goes", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    {
      await using client = await hostile(server);
      expect((await client.register("changer", "changer-password")).type).toBe("registered");
    }
    // writeAtomically writes `${path}.${pid}.tmp` first: a directory there makes every write fail,
    // even for root (chmod would not stop root).
    const obstacle = `${server.storePath}.${process.pid}.tmp`;
    const fileBefore = readFileSync(server.storePath);
    mkdirSync(obstacle);
    try {
      await bystanders.during(async () => {
        await using client = await hostile(server);
        const reply = await client.register("newbie", "newbie-password");
        expect(reply).toMatchObject({ type: "error", code: "store_unavailable" });
        // Not half-registered: the name is free and cannot log in.
        expect((await client.login("newbie", "newbie-password")).code).toBe("auth_failed");
        // passwd cannot be stored either; the old password keeps working.
        await using changer = await hostile(server);
        expect((await changer.login("changer", "changer-password")).type).toBe("welcome");
        changer.send({ type: "passwd", old: "changer-password", new: "changer-new-password" });
        expect(await changer.nextError()).toBe("store_unavailable");
        await using again = await hostile(server);
        expect((await again.login("changer", "changer-password")).type).toBe("welcome");
        await client.sync();
      });
      expect(readFileSync(server.storePath).equals(fileBefore)).toBe(true);
    } finally {
      rmSync(obstacle, { recursive: true, force: true });
    }
    // Obstacle gone: the same name registers, passwd works, the store has everyone.
    await using client = await hostile(server);
    expect((await client.register("newbie", "newbie-password")).type).toBe("registered");
    await using changer = await hostile(server);
    expect((await changer.login("changer", "changer-password")).type).toBe("welcome");
    changer.send({ type: "passwd", old: "changer-password", new: "changer-new-password" });
    expect((await changer.next("password_changed")).token).toBeString();
    await bystanders.exchange(5);
    await expectAftermath(server, bystanders, ["changer", "newbie"]);
  });
});
