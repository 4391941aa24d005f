// The compiled binary in a real terminal (tmux, 80×24): messages arriving while the user types are
// printed above the input line without disturbing it (also when the input wraps), the typed line
// is sent intact, hostile text is shown visibly instead of driving the terminal, rooms are
// switched with commands and keys while the prompt shows the current room and unread counts, the
// message log's commands show older pages, search results and refusals, a session with several
// servers moves to the next when its server stops, and with an identity a user registers and
// chats without ever typing a password.

import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { loggedIn, logEvents, registerUsers, writeCa } from "../helpers/chat-support.ts";
import { TestClient } from "../helpers/client.ts";
import { startHostileServer } from "../helpers/hostile-server.ts";
import { startTestServer, type TestServerOptions } from "../helpers/server.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";
import { TmuxSession } from "../helpers/tmux.ts";
import { requireTool } from "../helpers/tools.ts";

const ROOT = resolve(import.meta.dir, "../..");
const BINARY = join(ROOT, "dist/tlschat");
const ALICE = "alice-password";
const BOB = "bob-password!";
const TIME = String.raw`\[\d\d:\d\d\]`;

function newestSourceMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const haveTmux = requireTool({ name: "tmux", debianPackage: "tmux", what: "terminal tests" });

beforeAll(() => {
  if (!haveTmux) return;
  const stale =
    !existsSync(BINARY) ||
    statSync(BINARY).mtimeMs < Math.max(newestSourceMtime(join(ROOT, "src")), statSync(join(ROOT, "build.sh")).mtimeMs);
  if (!stale) return;
  const build = Bun.spawnSync(["./build.sh"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`./build.sh failed (${build.exitCode}): ${build.stderr.toString()}`);
}, 120_000);

let sessions: TmuxSession[] = [];
afterEach(() => {
  for (const session of sessions) session.kill();
  sessions = [];
});

/** Runs the binary with `args` in a fresh 80×24 terminal, with a clean environment plus `env`. */
function inTerminal(dir: TempDir, args: string, env: Record<string, string> = {}): TmuxSession {
  const all = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    TERM: "screen",
    HOME: dir.path,
    XDG_CONFIG_HOME: dir.file("config"),
    NO_COLOR: "1",
    ...env,
  };
  const assignments = Object.entries(all).map(([name, value]) => `${name}='${value.replaceAll("'", "'\\''")}'`);
  const session = TmuxSession.start(`env -i ${assignments.join(" ")} '${BINARY}' ${args}`);
  sessions.push(session);
  return session;
}

/** Starts `tlschat chat` for `user` in a terminal, with the password in the environment. */
function startChat(dir: TempDir, user: string, password: string, port: number, ca: string): TmuxSession {
  return inTerminal(dir, `chat ${user}@localhost:${port} --ca '${ca}'`, { TLSCHAT_PASSWORD: password });
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
const messageRow = (from: string, text: string) => new RegExp(`^${TIME} ${escape(from)}: ${escape(text)}$`);
const indexOf = (rows: string[], pattern: RegExp) => rows.findIndex((row) => pattern.test(row));

/**
 * A server with alice and bob, bob logged in (raw client) and done with `beforeAlice`, and
 * alice's chat at its prompt.
 */
async function aliceAndBob(dir: TempDir, options: TestServerOptions = {}, beforeAlice: (bob: TestClient) => Promise<void> = async () => {}) {
  const server = await startTestServer(options);
  const ca = await writeCa(dir, server);
  await registerUsers(server, { alice: ALICE, bob: BOB });
  const bob = await loggedIn(server, "bob", BOB);
  await beforeAlice(bob);
  const term = startChat(dir, "alice", ALICE, server.port, ca);
  await term.waitFor((rows) => rows.at(-1) === "alice #lobby>", "the prompt", 10_000);
  await bob.next("online");
  return {
    server,
    bob,
    term,
    async [Symbol.asyncDispose]() {
      await bob.close();
      await server.stop();
    },
  };
}

describe.skipIf(!haveTmux)("chat in a terminal (compiled binary under tmux)", () => {
  test("messages arrive above a half-typed line, which stays intact and is sent whole", async () => {
    await using dir = await tempDir();
    await using chat = await aliceAndBob(dir);
    const { server, bob, term } = chat;
    expect(term.content()[0]).toMatch(new RegExp(`^-- Connected to localhost:${server.port} \\(TLSv1\\.3 .*\\) as alice\\.`));

    term.type("partial line typed");
    await term.waitFor((rows) => rows.at(-1) === "alice #lobby> partial line typed", "the typed text");
    for (const text of ["msg one", "msg two", "msg three"]) bob.send({ type: "say", text });
    let rows = await term.waitFor((r) => indexOf(r, messageRow("bob", "msg three")) >= 0 && r.at(-1) === "alice #lobby> partial line typed", "bob's three messages and the redrawn input");
    expect(rows.at(-1)).toBe("alice #lobby> partial line typed");
    const positions = ["msg one", "msg two", "msg three"].map((text) => indexOf(rows, messageRow("bob", text)));
    expect(positions).toEqual([rows.length - 4, rows.length - 3, rows.length - 2]);
    expect(rows.filter((row) => row.includes("partial line typed"))).toHaveLength(1);

    term.press("Enter");
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "partial line typed" });
    rows = await term.waitFor((r) => r.at(-1) === "alice #lobby>" && indexOf(r, messageRow("alice", "partial line typed")) >= 0, "alice's echo");

    // Ctrl-D on an empty line quits cleanly.
    term.press("C-d");
    expect(await term.exited()).toBe(0);
    expect((await bob.next("offline")).user).toBe("alice");
  }, 20_000);

  test("a typed line longer than the terminal is wide stays intact while messages arrive", async () => {
    await using dir = await tempDir();
    await using chat = await aliceAndBob(dir);
    const { bob, term } = chat;
    bob.send({ type: "say", text: "earlier" });
    await term.waitFor((r) => indexOf(r, messageRow("bob", "earlier")) >= 0, "the first message");

    const long = Array.from({ length: 11 }, (_, i) => `${i}123456789`.slice(0, 10)).join("") + " end of the long line";
    const shown = `alice #lobby> ${long}`;
    expect(shown.length).toBeGreaterThan(80);
    const wrapped = [shown.slice(0, 80), shown.slice(80)];
    term.type(long);
    await term.waitFor((r) => r.at(-1) === wrapped[1] && r.at(-2) === wrapped[0], "the wrapped input");
    for (const text of ["wrap one", "wrap two", "wrap three"]) bob.send({ type: "say", text });
    // Messages and the prompt redraw are separate writes: wait for the screen to settle on both.
    const rows = await term.waitFor(
      (r) => ["wrap one", "wrap two", "wrap three"].every((text) => indexOf(r, messageRow("bob", text)) >= 0) && r.at(-1) === wrapped[1],
      "three messages while the input is wrapped, and the input redrawn",
    );
    expect(rows.slice(-2)).toEqual(wrapped);
    const positions = ["earlier", "wrap one", "wrap two", "wrap three"].map((text) => indexOf(rows, messageRow("bob", text)));
    expect(positions).toEqual([rows.length - 6, rows.length - 5, rows.length - 4, rows.length - 3]);
    expect(rows.slice(0, -2).filter((row) => row.includes("end of the long line"))).toEqual([]);

    term.press("Enter");
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: long });
  }, 20_000);

  test("a bidi override from another user is shown as a marker; an escape never gets through", async () => {
    await using dir = await tempDir();
    await using chat = await aliceAndBob(dir);
    const { bob, term } = chat;
    bob.send({ type: "say", text: "first line" });
    term.type("typing");
    bob.send({ type: "say", text: "evil \u202ereversed" });
    const rows = await term.waitFor((r) => indexOf(r, messageRow("bob", "evil <U+202E>reversed")) >= 0 && r.at(-1) === "alice #lobby> typing", "the bidi message and the redrawn input");
    expect(rows.at(-1)).toBe("alice #lobby> typing");
    // The server refuses control characters, so bob cannot clear alice's screen.
    bob.send({ type: "say", text: "\u001b[2Jcleared?" });
    expect(await bob.nextError()).toBe("invalid_text");
    bob.send({ type: "say", text: "last line" });
    const after = await term.waitFor((r) => indexOf(r, messageRow("bob", "last line")) >= 0 && r.at(-1) === "alice #lobby> typing", "the next message and the redrawn input");
    expect(indexOf(after, messageRow("bob", "first line"))).toBeGreaterThan(0);
    expect(after.some((row) => row.includes("cleared?"))).toBe(false);
    expect(after.at(-1)).toBe("alice #lobby> typing");
  }, 20_000);

  test("a hostile server's escape sequences and controls are shown, not obeyed", async () => {
    await using dir = await tempDir();
    await using hostile = await startHostileServer();
    const caPath = dir.file("ca.pem");
    await Bun.write(caPath, hostile.certPem);

    const term = startChat(dir, "alice", ALICE, hostile.port, caPath);
    await term.waitFor((rows) => rows.at(-1) === "alice #lobby>", "the prompt", 10_000);
    expect(await hostile.loggedIn).toBe("alice");
    const ts = Date.now();
    hostile.send({ type: "msg", id: 1, room: "#lobby", from: "mallory", text: "before the attack", ts });
    await term.waitFor((rows) => indexOf(rows, messageRow("mallory", "before the attack")) >= 0, "the first message");
    term.type("still typing");
    await term.waitFor((rows) => rows.at(-1) === "alice #lobby> still typing", "the typed text");

    hostile.send({ type: "msg", id: 2, room: "#lobby", from: "mallory", text: "\u001b[2J\u001b[Hgotcha \u202eevil\u0007 \u009b31m", ts });
    hostile.send({ type: "msg", id: 3, room: "#lobby", from: "mal\u001b[31mlory", text: "fake name", ts });
    hostile.send({ type: "msg", id: 4, room: "#lo\u001b[2Jbby", from: "mallory", text: "odd room", ts });
    // A newer server's frame type is ignored, and its error code is shown, not trusted.
    hostile.send({ type: "from_the_future", text: "\u001b[2J" });
    hostile.send({ type: "error", code: "new_\u001b[31mcode", message: "from a newer server" });
    hostile.send({ type: "dm", id: 5, from: "mallory", to: "alice", text: "dm \u001b]0;title\u0007 \r\nspoofed: line", ts });
    const rows = await term.waitFor((r) => r.some((row) => row.includes("spoofed")) && r.at(-1) === "alice #lobby> still typing", "the hostile frames and the redrawn input");

    expect(indexOf(rows, messageRow("mallory", "before the attack"))).toBeGreaterThan(0);
    expect(indexOf(rows, messageRow("mallory", "^[[2J^[[Hgotcha <U+202E>evil^G <U+009B>31m"))).toBeGreaterThan(0);
    expect(indexOf(rows, messageRow("mal<U+001B><U+005B>31mlory", "fake name"))).toBeGreaterThan(0);
    expect(indexOf(rows, messageRow("#lo<U+001B><U+005B>2Jbby mallory", "odd room"))).toBeGreaterThan(0);
    expect(rows).toContain("! new_^[[31mcode: from a newer server");
    expect(rows).toContainEqual(expect.stringMatching(new RegExp(`^${TIME} \\[dm\\] mallory → you: ${escape("dm ^[]0;title^G ^M^Jspoofed: line")}$`)));
    expect(rows.at(-1)).toBe("alice #lobby> still typing");
    expect(rows.filter((row) => row.startsWith("spoofed"))).toEqual([]);
  }, 30_000);

  test("rooms: /join switches the prompt, other rooms' lines carry their name and count as unread until switched to", async () => {
    await using dir = await tempDir();
    await using chat = await aliceAndBob(dir);
    const { bob, term } = chat;
    bob.send({ type: "join", room: "#rust" });
    await bob.next("joined");

    term.type("/join #rust");
    term.press("Enter");
    await term.waitFor((r) => r.at(-1) === "alice #rust>" && r.some((row) => /^\[\d\d:\d\d\] \* You are in #rust$/.test(row)), "the prompt in #rust");
    expect(await bob.next("join")).toMatchObject({ room: "#rust", user: "alice" });

    bob.send({ type: "say", room: "#lobby", text: "lobby one" });
    bob.send({ type: "say", room: "#lobby", text: "lobby two" });
    let rows = await term.waitFor((r) => r.at(-1) === "alice #rust [#lobby 2]>", "two unread in #lobby");
    expect(indexOf(rows, messageRow("#lobby bob", "lobby one"))).toBeGreaterThan(0);
    expect(indexOf(rows, messageRow("#lobby bob", "lobby two"))).toBeGreaterThan(0);

    term.type("hello rust");
    term.press("Enter");
    expect(await bob.next("msg")).toMatchObject({ room: "#rust", from: "alice", text: "hello rust" });
    bob.send({ type: "say", room: "#rust", text: "in the current room" });
    rows = await term.waitFor((r) => indexOf(r, messageRow("bob", "in the current room")) >= 0, "a line from the current room, without its name");
    expect(rows.at(-1)).toBe("alice #rust [#lobby 2]>");

    // Alt-1 is the first room joined; switching there clears its count.
    term.press("M-1");
    await term.waitFor((r) => r.at(-1) === "alice #lobby>", "Alt-1 to switch to #lobby");
    bob.send({ type: "say", room: "#rust", text: "while away" });
    rows = await term.waitFor((r) => r.at(-1) === "alice #lobby [#rust 1]>", "one unread in #rust");
    expect(indexOf(rows, messageRow("#rust bob", "while away"))).toBeGreaterThan(0);
    term.press("C-n");
    await term.waitFor((r) => r.at(-1) === "alice #rust>", "Ctrl-N to the next room");
    term.press("C-p");
    await term.waitFor((r) => r.at(-1) === "alice #lobby>", "Ctrl-P back");
    term.type("/switch rust");
    term.press("Enter");
    await term.waitFor((r) => r.at(-1) === "alice #rust>", "/switch");

    // A half-typed line survives a switch, and is sent to the room switched to.
    term.type("for the lobby");
    term.press("M-1");
    await term.waitFor((r) => r.at(-1) === "alice #lobby> for the lobby", "the typed text after Alt-1");
    term.press("Enter");
    expect(await bob.next("msg")).toMatchObject({ room: "#lobby", text: "for the lobby" });

    term.type("/part #rust");
    term.press("Enter");
    await term.waitFor((r) => r.some((row) => /\* You left #rust$/.test(row)), "the part");
    expect(await bob.next("leave")).toMatchObject({ room: "#rust", user: "alice" });
    await term.waitFor((r) => r.at(-1) === "alice #lobby>", "the prompt back in #lobby");
  }, 30_000);

  test("rooms: an operator's commands reach the room, and a refusal is shown with its code", async () => {
    await using dir = await tempDir();
    await using chat = await aliceAndBob(dir);
    const { bob, term } = chat;

    term.type("/topic nobody may set this");
    term.press("Enter");
    await term.waitFor((r) => r.includes("! not_allowed: You are not an operator of #lobby"), "the refusal");

    term.type("/join #mods");
    term.press("Enter");
    await term.waitFor((r) => r.at(-1) === "alice #mods>", "the new room");
    bob.send({ type: "join", room: "#mods" });
    await bob.next("joined");
    await term.waitFor((r) => r.some((row) => row.endsWith("* bob joined #mods")), "bob's join");

    term.type("/topic Moderators only");
    term.press("Enter");
    expect(await bob.next("topic")).toMatchObject({ room: "#mods", topic: "Moderators only", by: "alice" });
    await term.waitFor((r) => r.some((row) => row.endsWith("* alice set the topic of #mods: Moderators only")), "the topic");

    term.type("/ban bob 10m spam");
    term.press("Enter");
    expect(await bob.next("moderation")).toMatchObject({ action: "ban", room: "#mods", user: "bob", by: "alice", seconds: 600, reason: "spam" });
    expect(await bob.next("parted")).toEqual({ type: "parted", room: "#mods" });
    await term.waitFor((r) => r.some((row) => row.endsWith("* alice banned bob from #mods for 10m (spam)")), "the ban notice");

    bob.send({ type: "join", room: "#mods" });
    expect(await bob.nextError()).toBe("room_banned");
  }, 30_000);

  test("the message log: /history pages back, /search shows ids and days, a refused line shows its text", async () => {
    await using dir = await tempDir();
    await using chat = await aliceAndBob(dir, { limits: { historySize: 2 } }, async (bob) => {
      for (const text of ["older one", "older two", "recent one", "recent two"]) bob.send({ type: "say", text, ref: text });
      for (let i = 0; i < 4; i++) await bob.next("ack");
    });
    const { term } = chat;
    let rows = await term.waitFor((r) => indexOf(r, messageRow("bob", "recent two")) >= 0, "the recent history");
    expect(indexOf(rows, messageRow("bob", "older two"))).toBe(-1);

    term.type("/history");
    term.press("Enter");
    rows = await term.waitFor((r) => indexOf(r, messageRow("bob", "older two")) >= 0, "the older page");
    const heading = rows.indexOf("-- Older messages in #lobby:");
    expect(heading).toBeGreaterThan(indexOf(rows, messageRow("bob", "recent two")));
    expect([indexOf(rows, messageRow("bob", "older one")), indexOf(rows, messageRow("bob", "older two"))]).toEqual([heading + 1, heading + 2]);
    term.type("/history");
    term.press("Enter");
    await term.waitFor((r) => r.includes("-- No older messages in #lobby"), "the end of the history");

    term.type("/search two");
    term.press("Enter");
    rows = await term.waitFor((r) => r.some((row) => row.startsWith('-- Search "two"')), "the search results");
    const results = rows.slice(rows.indexOf('-- Search "two": 2 messages, newest first') + 1).slice(0, 2);
    const result = (text: string) => expect.stringMatching(new RegExp(String.raw`^id \d+ \d{4}-\d\d-\d\d ${TIME} #lobby bob: ${text}$`));
    expect(results).toEqual([result("recent two"), result("older two")]);

    term.type("/msg nobody are you there?");
    term.press("Enter");
    await term.waitFor((r) => r.includes("! no_such_user: There is no account nobody (not sent to nobody: are you there?)"), "the refusal with its text");
    expect(term.content().at(-1)).toBe("alice #lobby>");
  }, 30_000);

  test("several servers: the screen names the one connected to, and when it stops, the next one", async () => {
    await using dir = await tempDir();
    await using a = await startTestServer();
    await using b = await startTestServer();
    const ca = await writeCa(dir, a); // Test servers share one certificate.
    for (const server of [a, b]) await registerUsers(server, { alice: ALICE, bob: BOB });
    const servers = `127.0.0.1:${a.port},127.0.0.1:${b.port}`;
    const term = inTerminal(dir, `chat alice --server ${servers} --ca '${ca}'`, { TLSCHAT_PASSWORD: ALICE });
    const rows = await term.waitFor((r) => r.at(-1) === "alice #lobby>", "the prompt", 10_000);
    expect(rows[0]).toMatch(new RegExp(`^-- Connected to 127\\.0\\.0\\.1:${a.port} \\(TLSv1\\.3 .*\\) as alice\\.`));

    await a.stop();
    await term.waitFor((r) => r.includes(`-- Reconnected to 127.0.0.1:${b.port}`) && r.at(-1) === "alice #lobby>", "the move to b", 10_000);
    await using bob = await loggedIn(b, "bob", BOB);
    term.type("hello b");
    term.press("Enter");
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "hello b" });
    term.press("C-d");
    expect(await term.exited()).toBe(0);
  }, 30_000);
});

/** Alice's empty input line, whatever else the prompt shows (the room, unread counts). */
const isAlicePrompt = (row: string | undefined) => row !== undefined && /^alice\b[^>]*>$/.test(row);

describe.skipIf(!haveTmux)("key login in a terminal (compiled binary under tmux)", () => {
  test("after gencert --identity and register, chat alice@host connects with no prompt at all", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    const target = `alice@localhost:${server.port}`;

    const gencert = inTerminal(dir, "gencert --identity");
    expect(await gencert.exited(10_000)).toBe(0);
    // On a terminal register offers a password as well; declining makes a key-only account.
    const register = inTerminal(dir, `register ${target} --trust-new`);
    await register.waitFor((rows) => rows.some((row) => row.startsWith("Set a password too")), "the password question", 10_000);
    register.type("n");
    register.press("Enter");
    expect(await register.exited(10_000)).toBe(0);
    expect(register.content().some((row) => row.startsWith(`Registered alice on localhost:${server.port} with the key `))).toBe(true);

    await using bob = await TestClient.connect({ port: server.port, ca: server.certificate.certPem });
    await registerUsers(server, { bob: BOB });
    await bob.login("bob", BOB);
    const term = inTerminal(dir, `chat ${target}`);
    const rows = await term.waitFor((r) => isAlicePrompt(r.at(-1)), "the prompt", 10_000);
    expect(rows[0]).toMatch(new RegExp(`^-- Connected to localhost:${server.port} \\(TLSv1\\.3 .*\\) as alice\\.`));
    expect(rows.filter((row) => /password|trust|\[y\/N\]/i.test(row))).toEqual([]);
    term.type("no password typed");
    term.press("Enter");
    expect(await bob.next("msg")).toMatchObject({ from: "alice", text: "no password typed" });
    expect(logEvents(server, "login").find((entry) => entry.fields.user === "alice")?.fields.method).toBe("key");
    term.press("C-d");
    expect(await term.exited()).toBe(0);
  }, 40_000);

  test("when the server refuses the key, chat asks for the password on the terminal and logs in with it", async () => {
    await using dir = await tempDir();
    await using server = await startTestServer();
    const ca = await writeCa(dir, server);
    await registerUsers(server, { alice: ALICE });
    expect(await inTerminal(dir, "gencert --identity").exited(10_000)).toBe(0);

    const term = inTerminal(dir, `chat alice@localhost:${server.port} --ca '${ca}'`);
    await term.waitFor((rows) => rows.at(-1) === "Password for alice:", "the password prompt", 10_000);
    expect(term.content()).toContain("The server refused this identity's key for alice");
    term.type(ALICE);
    term.press("Enter");
    await term.waitFor((rows) => isAlicePrompt(rows.at(-1)), "the prompt", 10_000);
    expect(logEvents(server, "login").map((entry) => entry.fields.method)).toEqual(["password"]);
    term.press("C-d");
    expect(await term.exited()).toBe(0);
  }, 40_000);
});
