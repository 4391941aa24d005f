// `chat` and `register` with several servers, run in-process through run(args, io) against real
// servers: --server wins over USER@HOST, a closed port first costs one stderr line and the next
// server is used, a registration refused by a server is final, a certificate pinned for one of
// the servers is trusted for the others, and with none reachable one line names them all.

import { beforeAll, describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { run } from "../../src/cli/program.ts";
import { clearTlschatEnv, cli, closedPort, envFor, fedIO, loggedIn, logEvents, outputLines, registerUsers, writeCa } from "../helpers/chat-support.ts";
import { startTestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";

const ALICE = "alice-password";
const BOB = "bob-password!";

beforeAll(clearTlschatEnv);

const label = (port: number) => `127.0.0.1:${port}`;

describe("several servers on the command line", () => {
  test("chat: --server wins over USER@HOST; a closed port first is one line on stderr, and the second server is used", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    const ca = await writeCa(dir, server);
    await registerUsers(server, { alice: ALICE, bob: BOB });
    await using bob = await loggedIn(server, "bob", BOB);
    const down = closedPort();

    const sent = await cli(
      ["chat", `alice@localhost:${down}`, "--server", `${label(down)},${label(server.port)}`, "--ca", ca, "--send", "via the second"],
      fedIO(envFor(dir, ALICE), "", true),
    );
    expect(sent.code).toBe(0);
    expect(outputLines(sent.stderr)).toEqual([expect.stringMatching(new RegExp(`^Cannot connect to ${label(down)}: .*; trying ${label(server.port)}$`))]);
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "via the second" });
  });

  test("register: the first server that can be reached is asked, and its refusal is final", async () => {
    await using dir = await tempDir();
    await using first = await startTestServer();
    await using second = await startTestServer();
    const ca = await writeCa(dir, first);
    const down = closedPort();

    const registered = await cli(["register", "alice", "--server", `${label(down)},${label(first.port)}`, "--ca", ca], fedIO(envFor(dir), `${ALICE}\n`, true));
    expect(registered.code).toBe(0);
    expect(registered.stdout).toBe(`Registered alice on ${label(first.port)}\n`);
    expect(outputLines(registered.stderr)).toEqual([expect.stringMatching(new RegExp(`^Cannot connect to ${label(down)}: .*; trying ${label(first.port)}$`))]);

    // In a cluster every node would say the same: the second server is not asked.
    const again = await cli(["register", "alice", "--server", `${label(first.port)},${label(second.port)}`, "--ca", ca], fedIO(envFor(dir), `${ALICE}\n`, true));
    expect(again.code).toBe(1);
    expect(outputLines(again.stderr)).toEqual([expect.stringContaining("user_exists")]);
    expect(logEvents(second, "connect")).toEqual([]);
  });

  test("trust on first use: each server is pinned under its own host:port, trusted when it presents the certificate pinned for another", async () => {
    await using dir = await tempDir();
    // Test servers share one certificate, as the nodes of a cluster made with gencert --san would.
    await using a = await startTestServer();
    await using b = await startTestServer();
    await registerUsers(a, { alice: ALICE });
    await registerUsers(b, { alice: ALICE });
    const knownHosts = dir.file("config/tlschat/known_hosts");

    const first = await cli(["chat", "alice", "--server", label(a.port), "--trust-new", "--send", "hi"], fedIO(envFor(dir, ALICE), "", true));
    expect(first.code).toBe(0);
    const second = await cli(["chat", "alice", "--server", `${label(b.port)},${label(a.port)}`, "--send", "hi"], fedIO(envFor(dir, ALICE), "", true));
    expect(second.code).toBe(0);
    expect(second.stderr).toBe(`Pinned ${label(b.port)} as ${b.fingerprint256} in ${knownHosts} (the certificate pinned for ${label(a.port)})\n`);
    expect(await readFile(knownHosts, "utf8")).toBe(`${label(a.port)} ${a.fingerprint256}\n${label(b.port)} ${b.fingerprint256}\n`);
    expect(logEvents(b, "login").map((e) => e.fields.user)).toEqual(["alice"]);
  });

  test("with no server reachable, chat fails with one line naming each", async () => {
    await using dir = await tempDir();
    const [first, second] = [closedPort(), closedPort()];
    const io = fedIO(envFor(dir, ALICE), "", true);
    const code = await run(["chat", "alice", "--server", `${label(first)},${label(second)}`, "--insecure"], io.io);
    expect(code).toBe(1);
    expect(outputLines(io.stderr()).at(-1)).toMatch(new RegExp(`^tlschat: Cannot connect to ${label(first)}: .*; Cannot connect to ${label(second)}: `));
  });
});
