// `register` and `chat` with an identity, run in-process against a real server: the identity in
// the config directory is presented by default, a registration without a password source binds
// only the key, chat then logs in by key with nothing to type, --identity / TLSCHAT_IDENTITY pick
// another one, --no-identity none, and a TLS 1.2-only server is refused unless the user accepts
// that TLS 1.2 shows the certificate.

import { beforeAll, describe, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { run } from "../../src/cli/program.ts";
import { TestClient } from "../helpers/client.ts";
import { clearTlschatEnv, fedIO, logEvents, registerUsers, writeCa } from "../helpers/chat-support.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";

// commander reads option defaults from process.env; each test sets what it needs.
beforeAll(clearTlschatEnv);

/** A user's home: config directory (identity, known_hosts) inside a temp dir, and no password unless given. */
function home(dir: TempDir, password?: string): Record<string, string | undefined> {
  return { HOME: dir.path, XDG_CONFIG_HOME: dir.file("config"), TLSCHAT_PASSWORD: password };
}

/** Runs the CLI with `stdin` (then EOF) and this home. */
async function tlschat(dir: TempDir, args: string[], stdin = "", password?: string) {
  const io = fedIO(home(dir, password), stdin, true);
  const code = await run(args, io.io);
  return { code, stdout: io.stdout(), stderr: io.stderr() };
}

async function makeIdentity(dir: TempDir, ...extra: string[]): Promise<string> {
  const made = await tlschat(dir, ["gencert", "--identity", ...extra]);
  expect(made.code).toBe(0);
  return /SHA256 Fingerprint=(\S+)/.exec(made.stdout)![1]!;
}

async function serverAndCa(dir: TempDir, options: Parameters<typeof startTestServer>[0] = {}): Promise<{ server: TestServer; ca: string }> {
  const server = await startTestServer(options);
  return { server, ca: await writeCa(dir, server) };
}

describe("register and chat with the default identity", () => {
  test("an empty stdin registers a key-only account; chat then logs in by key and sends, with no password anywhere", async () => {
    await using dir = await tempDir();
    const { server, ca } = await serverAndCa(dir);
    await using _ = server;
    const fingerprint = await makeIdentity(dir);

    const registered = await tlschat(dir, ["register", `alice@localhost:${server.port}`, "--ca", ca]);
    expect(registered).toMatchObject({ code: 0, stderr: "" });
    expect(registered.stdout).toBe(`Registered alice on localhost:${server.port} with the key ${fingerprint}\n`);

    await using bob = await TestClient.connect({ port: server.port, ca: server.certificate.certPem });
    await registerUsers(server, { bob: "bob-password" });
    await bob.login("bob", "bob-password");
    const sent = await tlschat(dir, ["chat", `alice@localhost:${server.port}`, "--ca", ca, "--send", "signed in by key"]);
    expect(sent).toMatchObject({ code: 0, stderr: "" });
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "signed in by key" });
    expect(logEvents(server, "login").find((entry) => entry.fields.user === "alice")?.fields).toMatchObject({ method: "key", key: fingerprint });
  });

  test("a piped password registers both; --no-identity then logs in with the password, the identity with the key", async () => {
    await using dir = await tempDir();
    const { server, ca } = await serverAndCa(dir);
    await using _ = server;
    const fingerprint = await makeIdentity(dir);
    const registered = await tlschat(dir, ["register", `carol@localhost:${server.port}`, "--ca", ca], "carol-password\n");
    expect(registered.stdout).toBe(`Registered carol on localhost:${server.port} with the key ${fingerprint} and a password\n`);

    expect((await tlschat(dir, ["chat", `carol@localhost:${server.port}`, "--ca", ca, "--no-identity", "--send", "by password"], "", "carol-password")).code).toBe(0);
    expect((await tlschat(dir, ["chat", `carol@localhost:${server.port}`, "--ca", ca, "--send", "by key"])).code).toBe(0);
    expect(logEvents(server, "login").map((entry) => entry.fields.method)).toEqual(["password", "key"]);
    // --no-identity with no password to give is the old rule: a script must name one.
    const none = await tlschat(dir, ["chat", `carol@localhost:${server.port}`, "--ca", ca, "--no-identity", "--send", "x"]);
    expect(none.code).toBe(2);
  });

  test("with an identity, a given password logs in by password (the identity is still presented)", async () => {
    await using dir = await tempDir();
    const { server, ca } = await serverAndCa(dir);
    await using _ = server;
    await makeIdentity(dir);
    await tlschat(dir, ["register", `dave@localhost:${server.port}`, "--ca", ca], "dave-password\n");
    expect((await tlschat(dir, ["chat", `dave@localhost:${server.port}`, "--ca", ca, "--send", "x"], "", "dave-password")).code).toBe(0);
    expect(logEvents(server, "login").map((entry) => entry.fields.method)).toEqual(["password"]);
  });

  test("a key the server refuses fails a script with auth_failed, asking nothing", async () => {
    await using dir = await tempDir();
    const { server, ca } = await serverAndCa(dir);
    await using _ = server;
    await makeIdentity(dir);
    await registerUsers(server, { erin: "erin-password" });
    const refused = await tlschat(dir, ["chat", `erin@localhost:${server.port}`, "--ca", ca, "--send", "x"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toStartWith("tlschat: auth_failed: ");
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("in a script, /key add, /keys and /key remove (fingerprint in any spelling) answer as JSON", async () => {
    await using dir = await tempDir();
    const { server, ca } = await serverAndCa(dir);
    await using _ = server;
    await registerUsers(server, { frank: "frank-password" });
    const fingerprint = await makeIdentity(dir);
    const script = await tlschat(
      dir,
      ["chat", `frank@localhost:${server.port}`, "--ca", ca, "--json", "--no-history"],
      `/key add\n/keys\n/key remove ${fingerprint.toLowerCase().replaceAll(":", "")}\n/keys\n`,
      "frank-password",
    );
    expect(script.code).toBe(0);
    const frames = script.stdout.trim().split("\n").map((line) => JSON.parse(line));
    expect(frames.map((frame) => frame.type)).toEqual(["key_added", "keys", "key_removed", "keys"]);
    expect(frames[1].keys.map((key: { fingerprint: string }) => key.fingerprint)).toEqual([fingerprint]);
    expect(frames[2].fingerprint).toBe(fingerprint);
    expect(frames[3].keys).toEqual([]);
  });
});

describe("choosing the identity", () => {
  test("--identity FILE and TLSCHAT_IDENTITY present another identity than the default", async () => {
    await using dir = await tempDir();
    const { server, ca } = await serverAndCa(dir);
    await using _ = server;
    const elsewhere = dir.file("elsewhere");
    const other = await makeIdentity(dir, "--out", elsewhere);
    await makeIdentity(dir);
    const path = `${elsewhere}/identity.pem`;
    expect((await tlschat(dir, ["register", `gina@localhost:${server.port}`, "--ca", ca, "--identity", path])).stdout).toContain(other);
    expect((await tlschat(dir, ["chat", `gina@localhost:${server.port}`, "--ca", ca, "--identity", path, "--send", "x"])).code).toBe(0);
    // The default identity is not gina's key.
    expect((await tlschat(dir, ["chat", `gina@localhost:${server.port}`, "--ca", ca, "--send", "x"])).code).toBe(1);
    process.env.TLSCHAT_IDENTITY = path;
    try {
      expect((await tlschat(dir, ["chat", `gina@localhost:${server.port}`, "--ca", ca, "--send", "x"])).code).toBe(0);
    } finally {
      delete process.env.TLSCHAT_IDENTITY;
    }
  });

  test("a named identity that is missing or broken fails with one line and connects nowhere", async () => {
    await using dir = await tempDir();
    const { server, ca } = await serverAndCa(dir);
    await using _ = server;
    await writeFile(dir.file("broken.pem"), "not a certificate");
    for (const [file, says] of [[dir.file("absent.pem"), "gencert --identity"], [dir.file("broken.pem"), "no usable certificate"]] as const) {
      const result = await tlschat(dir, ["chat", `gina@localhost:${server.port}`, "--ca", ca, "--identity", file, "--send", "x"], "", "some-password");
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(says);
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(logEvents(server, "connect")).toEqual([]);
  });
});

describe("a server that only speaks TLS 1.2", () => {
  test("refuses to present the identity, in one line naming --identity-over-tls12; with it, register and chat work", async () => {
    await using dir = await tempDir();
    const { server, ca } = await serverAndCa(dir, { tls: { minVersion: "1.2", maxVersion: "1.2" } });
    await using _ = server;
    await makeIdentity(dir);
    const target = `hank@localhost:${server.port}`;
    for (const args of [["register", target, "--ca", ca], ["chat", target, "--ca", ca, "--send", "x"]]) {
      const refused = await tlschat(dir, args, "", "hank-password");
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim().split("\n")).toHaveLength(1);
      expect(refused.stderr).toContain("--identity-over-tls12");
    }
    expect(logEvents(server, "register")).toEqual([]);

    expect((await tlschat(dir, ["register", target, "--ca", ca, "--identity-over-tls12"])).code).toBe(0);
    expect((await tlschat(dir, ["chat", target, "--ca", ca, "--identity-over-tls12", "--send", "x"])).code).toBe(0);
    expect(logEvents(server, "login").map((entry) => entry.fields.method)).toEqual(["key"]);
  });
});
