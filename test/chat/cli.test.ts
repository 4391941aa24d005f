// The `register` and `chat` commands run in-process through run(args, io) against a real server:
// exit codes, what reaches stdout/stderr, and how the server is trusted (CA, pins, --insecure).

import { beforeAll, describe, expect, test } from "bun:test";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { run } from "../../src/cli/program.ts";
import { TestClient, withTimeout } from "../helpers/client.ts";
import { authLogs, clearTlschatEnv, cli, envFor, fedIO, loggedIn, logEvents, outputLines, registerUsers, until, writeCa } from "../helpers/chat-support.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";

const ALICE = "alice-password";
const BOB = "bob-password!";

beforeAll(clearTlschatEnv);

function knownHostsOf(dir: TempDir): string {
  return dir.file("config/tlschat/known_hosts");
}

describe("register", () => {
  test("over the network: created once, then user_exists; weak password and bad name refused", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    const ca = await writeCa(dir, server);
    const target = `alice@localhost:${server.port}`;

    const first = await cli(["register", target, "--ca", ca], fedIO(envFor(dir), "correct horse battery\n", true));
    expect(first).toMatchObject({ code: 0, stderr: "" });
    expect(first.stdout).toContain("Registered alice");
    await using client = await loggedIn(server, "alice", "correct horse battery");

    const again = await cli(["register", target, "--ca", ca], fedIO(envFor(dir), "another password\n", true));
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("user_exists");
    expect(again.stdout).toBe("");

    const weak = await cli(["register", `bob@localhost:${server.port}`, "--ca", ca], fedIO(envFor(dir), "short\n", true));
    expect(weak.code).toBe(1);
    expect(weak.stderr).toContain("weak_password");

    const badName = await cli(["register", `bad name!@localhost:${server.port}`, "--ca", ca], fedIO(envFor(dir), "correct horse battery\n", true));
    expect(badName.code).toBe(2);
    expect(outputLines(badName.stderr)).toHaveLength(1);
    // Only alice's registration reached the server.
    expect(logEvents(server, "register").map((e) => e.fields.user)).toEqual(["alice"]);
  });

  test("--db writes a store with or without a server running on it, and the server logs the new user in", async () => {
    await using dir = await tempDir();
    const store = dir.file("data/users.json");
    const offline = await cli(["register", "--db", store, "carol"], fedIO(envFor(dir, "carol-password")));
    expect(offline).toMatchObject({ code: 0, stderr: "" });
    expect(offline.stdout).toContain("Registered carol");

    await using server = await startTestServer({ storePath: store });
    await using carol = await loggedIn(server, "carol", "carol-password");
    expect(logEvents(server, "login").map((e) => e.fields)).toEqual([expect.objectContaining({ user: "carol", method: "password" })]);

    const whileRunning = await cli(["register", "--db", store, "dave"], fedIO(envFor(dir, "dave-password")));
    expect(whileRunning).toMatchObject({ code: 0, stderr: "" });
    await using dave = await loggedIn(server, "dave", "dave-password");
    expect(dave.isClosed).toBe(false);

    const taken = await cli(["register", "--db", store, "Dave"], fedIO(envFor(dir, "other-password")));
    expect(taken.code).toBe(1);
    expect(outputLines(taken.stderr)).toHaveLength(1);
    expect(taken.stderr).toContain("user_exists");
  });
});

describe("chat in scripts", () => {
  let dir: TempDir;
  let server: TestServer;
  let ca: string;

  async function withServer<T>(body: () => Promise<T>, options: Parameters<typeof startTestServer>[0] = {}): Promise<T> {
    await using d = await tempDir();
    await using s = await startTestServer(options);
    dir = d;
    server = s;
    ca = await writeCa(d, s);
    await registerUsers(s, { alice: ALICE, bob: BOB });
    return await body();
  }

  test("stdin lines are sent; received messages and dms are printed; EOF exits 0", () =>
    withServer(async () => {
      const bobIO = fedIO(envFor(dir, BOB));
      const bobRun = run(["chat", `bob@localhost:${server.port}`, "--ca", ca], bobIO.io);
      await until(() => logEvents(server, "login").some((e) => e.fields.user === "bob"), "bob to log in");

      const alice = await cli(
        ["chat", `alice@localhost:${server.port}`, "--ca", ca],
        fedIO(envFor(dir, ALICE), "hello bob\n/msg bob psst\n", true),
      );
      expect(alice).toMatchObject({ code: 0, stderr: "" });
      await bobIO.waitForStdout("[dm] alice -> bob: psst");
      expect(outputLines(bobIO.stdout())).toEqual(["alice: hello bob", "[dm] alice -> bob: psst"]);

      bobIO.stdin.end();
      expect(await bobRun).toBe(0);
      expect(bobIO.stderr()).toBe("");
      await until(() => logEvents(server, "disconnect").filter((e) => e.fields.reason === "quit").length === 2, "both to quit");
    }));

  test("/quit ends a script as EOF would: lines after it are not sent, exit 0", () =>
    withServer(async () => {
      await using bob = await loggedIn(server, "bob", BOB);
      const aliceIO = fedIO(envFor(dir, ALICE), "before\n/quit\nafter\n");
      // stdin stays open: only /quit can end the run.
      const alice = await withTimeout(cli(["chat", `alice@localhost:${server.port}`, "--ca", ca], aliceIO), 5_000, "the script to quit");
      expect(alice).toMatchObject({ code: 0, stderr: "" });
      // The server relays in order, so anything sent before alice left arrives before she goes offline.
      expect((await bob.next("offline")).user).toBe("alice");
      expect(bob.take("msg").map((frame) => frame.text)).toEqual(["before"]);
      aliceIO.stdin.end();
    }));

  test("/reply in a script answers the last direct message received", () =>
    withServer(async () => {
      await using bob = await loggedIn(server, "bob", BOB);
      const aliceIO = fedIO(envFor(dir, ALICE));
      const aliceRun = run(["chat", `alice@localhost:${server.port}`, "--ca", ca], aliceIO.io);
      await bob.next("online");
      bob.send({ type: "dm", to: "alice", text: "are you a bot?" });
      await aliceIO.waitForStdout("[dm] bob -> alice: are you a bot?");
      aliceIO.stdin.end("/reply yes\n");
      expect(await bob.next("dm")).toMatchObject({ from: "alice", to: "bob", text: "yes" });
      expect(await aliceRun).toBe(0);
      expect(aliceIO.stderr()).toBe("");
    }));

  test("--json prints every received frame as one JSON line", () =>
    withServer(async () => {
      await using alice = await loggedIn(server, "alice", ALICE);
      alice.send({ type: "say", text: "from history" });
      await alice.sync();

      const bobIO = fedIO(envFor(dir, BOB));
      const bobRun = run(["chat", `bob@localhost:${server.port}`, "--ca", ca, "--json"], bobIO.io);
      await alice.next("online");
      alice.send({ type: "say", text: "live \u202e text" });
      alice.send({ type: "dm", to: "bob", text: "private" });
      await bobIO.waitForStdout('"private"');
      bobIO.stdin.end();
      expect(await bobRun).toBe(0);

      const frames = outputLines(bobIO.stdout()).map((line) => JSON.parse(line));
      // JSON output is not sanitised for a terminal: it carries the text exactly.
      expect(frames).toContainEqual(expect.objectContaining({ type: "msg", from: "alice", text: "live \u202e text" }));
      expect(frames).toContainEqual(expect.objectContaining({ type: "dm", from: "alice", to: "bob", text: "private" }));
      expect(frames).toContainEqual({
        type: "history",
        room: "#lobby",
        more: false,
        messages: [expect.objectContaining({ room: "#lobby", from: "alice", text: "from history" })],
      });
    }));

  test("--json also prints the acks of what the script sent, search results and deleted notices", () =>
    withServer(async () => {
      const aliceIO = fedIO(envFor(dir, ALICE));
      const aliceRun = run(["chat", `alice@localhost:${server.port}`, "--ca", ca, "--json"], aliceIO.io);
      const frames = () => outputLines(aliceIO.stdout()).map((line) => JSON.parse(line));
      aliceIO.stdin.write("deploy finished\n");
      await aliceIO.waitForStdout('"type":"ack"');
      const ack = frames().find((frame) => frame.type === "ack");
      expect(ack).toEqual({ type: "ack", ref: expect.any(String), id: expect.any(Number), ts: expect.any(Number) });

      aliceIO.stdin.write('/search deploy "finished\n');
      await aliceIO.waitForStdout('"type":"search"');
      expect(frames().find((frame) => frame.type === "search")).toEqual({
        type: "search",
        query: 'deploy "finished',
        more: false,
        messages: [expect.objectContaining({ id: ack.id, from: "alice", text: "deploy finished" })],
      });

      aliceIO.stdin.end(`/delete ${ack.id}\n`);
      expect(await aliceRun).toBe(0);
      expect(frames()).toContainEqual({ type: "deleted", room: "#lobby", id: ack.id, by: "alice" });
      expect(aliceIO.stderr()).toBe("");
      // The script's own message is not printed as received: only its ack.
      expect(frames().filter((frame) => frame.type === "msg")).toEqual([]);
    }));

  test("a dm to an account that is offline is accepted; one to no such account is refused", () =>
    withServer(async () => {
      const offline = await cli(["chat", `alice@localhost:${server.port}`, "--ca", ca], fedIO(envFor(dir, ALICE), "/msg bob see you tomorrow\n", true));
      expect(offline).toMatchObject({ code: 0, stderr: "" });
      const nobody = await cli(["chat", `alice@localhost:${server.port}`, "--ca", ca], fedIO(envFor(dir, ALICE), "/msg carol hi\n", true));
      expect(nobody.code).toBe(1);
      expect(nobody.stderr).toBe("tlschat: server refused: no_such_user: There is no account carol\n");
      // Bob was offline: the dm waited for him.
      const bob = await cli(["chat", `bob@localhost:${server.port}`, "--ca", ca], fedIO(envFor(dir, BOB), "", true));
      expect(bob).toMatchObject({ code: 0, stdout: "[dm] alice -> bob: see you tomorrow\n" });
    }));

  test("the recent history is printed on login, and not with --no-history", () =>
    withServer(async () => {
      await using alice = await loggedIn(server, "alice", ALICE);
      alice.send({ type: "say", text: "earlier" });
      await alice.sync();
      const withHistory = await cli(["chat", `bob@localhost:${server.port}`, "--ca", ca], fedIO(envFor(dir, BOB), "", true));
      expect(withHistory).toMatchObject({ code: 0, stdout: "alice: earlier\n" });
      const without = await cli(["chat", `bob@localhost:${server.port}`, "--ca", ca, "--no-history"], fedIO(envFor(dir, BOB), "", true));
      expect(without).toMatchObject({ code: 0, stdout: "" });
    }));

  test("--send delivers one message; a control character is refused with invalid_text", () =>
    withServer(async () => {
      await using bob = await loggedIn(server, "bob", BOB);
      const sent = await cli(["chat", `alice@localhost:${server.port}`, "--ca", ca, "--send", "build finished"], fedIO(envFor(dir, ALICE)));
      expect(sent).toMatchObject({ code: 0, stderr: "" });
      expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "build finished" });

      const refused = await cli(["chat", `alice@localhost:${server.port}`, "--ca", ca, "--send", "ding \u0007"], fedIO(envFor(dir, ALICE)));
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("invalid_text");
      await bob.sync();
      expect(bob.take("msg")).toEqual([]);
    }));

  test("a wrong password fails with auth_failed; a closed port fails with one line", () =>
    withServer(async () => {
      const wrong = await cli(["chat", `alice@localhost:${server.port}`, "--ca", ca, "--send", "x"], fedIO(envFor(dir, "not-the-password")));
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain("auth_failed");
      expect(outputLines(wrong.stderr)).toHaveLength(1);

      // A port nothing listens on: take one, then free it.
      const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      const closedPort = listener.port;
      listener.stop(true);
      const down = await cli(["chat", `alice@localhost:${closedPort}`, "--ca", ca, "--send", "x"], fedIO(envFor(dir, ALICE)));
      expect(down.code).toBe(1);
      expect(outputLines(down.stderr)).toHaveLength(1);
      expect(down.stderr).toStartWith("tlschat: ");
      expect(down.stderr).toContain(String(closedPort));
    }));
});

describe("chat: trusting the server", () => {
  test("unknown server without --trust-new is refused and nothing pinned; --trust-new pins; the pin is then used", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE });
    const target = `alice@localhost:${server.port}`;

    const refused = await cli(["chat", target, "--send", "hi"], fedIO(envFor(dir, ALICE)));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--fingerprint");
    expect(refused.stderr).toContain(server.fingerprint256);
    expect(await Bun.file(knownHostsOf(dir)).exists()).toBe(false);
    await until(() => logEvents(server, "disconnect").length === logEvents(server, "connect").length, "the refused connection to close");
    expect(authLogs(server).filter((e) => e.event !== "register")).toEqual([]);

    const pinned = await cli(["chat", target, "--trust-new", "--send", "hi"], fedIO(envFor(dir, ALICE)));
    expect(pinned.code).toBe(0);
    expect(pinned.stderr).toContain(`Pinned localhost:${server.port}`);
    expect(await readFile(knownHostsOf(dir), "utf8")).toBe(`localhost:${server.port} ${server.fingerprint256}\n`);

    const again = await cli(["chat", target, "--send", "hi again"], fedIO(envFor(dir, ALICE)));
    expect(again).toMatchObject({ code: 0, stderr: "" });
  });

  test("unreadable lines in known_hosts are reported on stderr, and the valid pin still works", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE });
    const path = knownHostsOf(dir);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, `# mine\nthis line is garbage\nlocalhost:${server.port} ${server.fingerprint256}\n`);
    const run = await cli(["chat", `alice@localhost:${server.port}`, "--send", "hi"], fedIO(envFor(dir, ALICE)));
    expect(run.code).toBe(0);
    expect(run.stderr).toBe(`warning: ignoring unreadable line(s) 2 of ${path}\n`);
  });

  test("a pin that does not match refuses the server with both fingerprints", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE });
    const stale = "12:".repeat(31) + "12";
    await Bun.write(knownHostsOf(dir), `localhost:${server.port} ${stale}\n`);
    const refused = await cli(["chat", `alice@localhost:${server.port}`, "--trust-new", "--send", "hi"], fedIO(envFor(dir, ALICE)));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(stale);
    expect(refused.stderr).toContain(server.fingerprint256);
    expect(refused.stderr).toContain(knownHostsOf(dir));
    expect(await readFile(knownHostsOf(dir), "utf8")).toBe(`localhost:${server.port} ${stale}\n`);
    expect(logEvents(server, "login")).toEqual([]);
  });

  test("--fingerprint accepts the right server and refuses with the wrong one", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE });
    await using bob = await TestClient.connect({ port: server.port, ca: server.certificate.certPem });
    await bob.register("bob", BOB);
    await bob.login("bob", BOB);
    const target = `alice@localhost:${server.port}`;

    const wrong = await cli(["chat", target, "--fingerprint", "AB".repeat(32), "--send", "x"], fedIO(envFor(dir, ALICE)));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(server.fingerprint256);

    const right = await cli(["chat", target, "--fingerprint", server.fingerprint256, "--send", "by fingerprint"], fedIO(envFor(dir, ALICE)));
    expect(right.code).toBe(0);
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "by fingerprint" });
    expect(await readFile(knownHostsOf(dir), "utf8")).toContain(server.fingerprint256);

    const bad = await cli(["chat", target, "--fingerprint", "not-hex", "--send", "x"], fedIO(envFor(dir, ALICE)));
    expect(bad.code).toBe(2);
  });

  test("--insecure connects without verifying and says so on stderr", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using bob = await loggedIn(server, "bob", BOB);
    const insecure = await cli(["chat", `alice@localhost:${server.port}`, "--insecure", "--send", "unverified"], fedIO(envFor(dir, ALICE)));
    expect(insecure.code).toBe(0);
    expect(outputLines(insecure.stderr).filter((line) => line.startsWith("WARNING"))).toHaveLength(1);
    expect(insecure.stderr).toContain("NOT verified");
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "unverified" });
    expect(await Bun.file(knownHostsOf(dir)).exists()).toBe(false);

    const both = await cli(["chat", `alice@localhost:${server.port}`, "--insecure", "--ca", "x.pem", "--send", "x"], fedIO(envFor(dir, ALICE)));
    expect(both.code).toBe(2);
  });
});

describe("register: password sources", () => {
  test("the register password can come from --password-file", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    const ca = await writeCa(dir, server);
    await writeFile(dir.file("pw"), "from a file 123\nignored\n");
    const result = await cli(["register", `erin@localhost:${server.port}`, "--ca", ca, "--password-file", dir.file("pw")], fedIO(envFor(dir)));
    expect(result.code).toBe(0);
    await using erin = await loggedIn(server, "erin", "from a file 123");
  });
});

describe("a script whose server goes away", () => {
  test("exits 1 at once, even while its stdin stays open with nothing to send", async () => {
    await using dir = await tempDir();
    const server = await startTestServer();
    await registerUsers(server, { alice: ALICE });
    const ca = await writeCa(dir, server);
    const io = fedIO(envFor(dir, ALICE));
    const running = cli(["chat", `alice@localhost:${server.port}`, "--ca", ca], io);
    await until(() => logEvents(server, "login").length === 1, "alice to log in");
    await server.stop();
    const result = await withTimeout(running, 5_000, "the script to exit");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("lost");
    io.stdin.end();
  }, 10_000);
});
