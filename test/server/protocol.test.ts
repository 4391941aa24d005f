// Wire-level rules end to end: what an anonymous connection may do, malformed frames, text rules,
// the 16 KiB line limit, and frames arriving in arbitrary pieces.

import { describe, expect, test } from "bun:test";
import { startTestServer } from "../helpers/server.ts";
import { closedWithin, connect, errorFor, expectUsable, newUser, turn } from "./support.ts";

const MAX_LINE_BYTES = 16 * 1024;

describe("before login", () => {
  test.each([
    ["say", { type: "say", text: "hi" }],
    ["who", { type: "who" }],
    ["dm", { type: "dm", to: "alice", text: "hi" }],
    ["passwd", { type: "passwd", old: "old-password", new: "new-password" }],
  ])("%s is not_authenticated and the connection stays", async (_, frame) => {
    await using server = await startTestServer();
    await using listener = (await newUser(server, "alice")).client;
    await using client = await connect(server);
    expect(await errorFor(client, frame)).toBe("not_authenticated");
    await expectUsable(client);
    await listener.sync();
    expect(listener.take("msg")).toEqual([]);
    expect(listener.take("dm")).toEqual([]);
  });

  test("ping is answered with pong echoing the id, or with no id when none was sent", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    client.send({ type: "ping", id: 42 });
    expect(await client.next("pong")).toEqual({ type: "pong", id: 42 });
    client.send({ type: "ping", id: "abc" });
    expect(await client.next("pong")).toEqual({ type: "pong", id: "abc" });
    client.send({ type: "ping" });
    expect(await client.next("pong")).toEqual({ type: "pong" });
    expect(client.take("error")).toEqual([]);
  });

  test("quit is answered with bye and the connection closes", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    client.send({ type: "quit" });
    expect(await client.next("bye")).toEqual({ type: "bye" });
    await closedWithin(client);
  });
});

describe("malformed frames are bad_frame and the connection stays", () => {
  test.each([
    ["an unknown type", '{"type":"shout","text":"hi"}\n'],
    ["invalid JSON", "{not json\n"],
    ["a JSON array", '["say","hi"]\n'],
    ["a JSON string", '"say"\n'],
    ["JSON null", "null\n"],
    ["a number", "42\n"],
    ["a missing type", '{"text":"hi"}\n'],
    ["a numeric type", '{"type":7}\n'],
    ["a missing field", '{"type":"login","user":"alice"}\n'],
    ["a wrong-typed field", '{"type":"login","user":"alice","password":12345678}\n'],
    ["a null field", '{"type":"register","user":null,"password":"good-password"}\n'],
    ["an over-long ping id", `{"type":"ping","id":"${"x".repeat(65)}"}\n`],
    ["an object ping id", '{"type":"ping","id":{}}\n'],
    ["an empty line", "\n"],
  ])("%s", async (_, line) => {
    await using server = await startTestServer();
    await using client = await connect(server);
    expect(await errorFor(client, line)).toBe("bad_frame");
    await expectUsable(client);
  });

  test("a wrong-typed field after login", async () => {
    await using server = await startTestServer();
    await using client = (await newUser(server, "alice")).client;
    expect(await errorFor(client, { type: "say", text: ["hi"] })).toBe("bad_frame");
    expect(await errorFor(client, { type: "dm", to: 5, text: "hi" })).toBe("bad_frame");
    await expectUsable(client);
  });

  test("invalid UTF-8 bytes", async () => {
    await using server = await startTestServer();
    await using client = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    const prefix = new TextEncoder().encode('{"type":"say","text":"');
    const suffix = new TextEncoder().encode('"}\n');
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80] /* a UTF-16 surrogate */, [0xc0, 0xaf] /* overlong "/" */]) {
      client.sendRaw(new Uint8Array([...prefix, ...bad, ...suffix]));
      expect(await client.nextError()).toBe("bad_frame");
    }
    await expectUsable(client);
    await bob.sync();
    expect(bob.take("msg")).toEqual([]);
  });
});

describe("text rules", () => {
  test.each([
    ["empty", ""],
    ["BEL", "ding\u0007"],
    ["an ANSI escape", "\u001b[2Jcleared"],
    ["C1 NEL", "a\u0085b"],
    ["DEL", "a\u007fb"],
    ["a newline", "two\nlines"],
    ["a carriage return", "over\rwrite"],
    ["a tab", "a\tb"],
    ["NUL", "a\u0000b"],
    ["CSI (C1)", "a\u009bb"],
  ])("say with %s is invalid_text and is not relayed", async (_, text) => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    expect(await errorFor(alice, { type: "say", text })).toBe("invalid_text");
    expect(await errorFor(alice, { type: "dm", to: "bob", text })).toBe("invalid_text");
    await expectUsable(alice);
    await bob.sync();
    expect(bob.take("msg")).toEqual([]);
    expect(bob.take("dm")).toEqual([]);
  });

  test("4096 characters are relayed, 4097 are invalid_text", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    const longest = "a".repeat(4096);
    alice.send({ type: "say", text: longest });
    expect((await bob.next("msg")).text).toBe(longest);
    expect(await errorFor(alice, { type: "say", text: longest + "b" })).toBe("invalid_text");
    expect(await errorFor(alice, { type: "dm", to: "bob", text: longest + "b" })).toBe("invalid_text");
    await bob.sync();
    expect(bob.take("msg")).toEqual([]);
  });

  test("an emoji counts as one character", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    // 4000 emoji: 8000 UTF-16 units, 16000 bytes, but 4000 characters; the line stays under 16 KiB.
    const emoji = "😀".repeat(4000);
    alice.send({ type: "say", text: emoji });
    expect((await bob.next("msg")).text).toBe(emoji);
    // 4000 emoji + 97 letters = 4097 characters.
    expect(await errorFor(alice, { type: "say", text: emoji + "a".repeat(97) })).toBe("invalid_text");
    // 4000 emoji + 96 letters = 4096 characters.
    alice.send({ type: "say", text: emoji + "a".repeat(96) });
    expect((await bob.next("msg")).text).toBe(emoji + "a".repeat(96));
  });

  test("non-ASCII text, combining marks and right-to-left letters are relayed unchanged", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    const text = "héllo wörld — ñ e\u0301 שלום 你好 👩‍👩‍👧";
    alice.send({ type: "say", text });
    expect((await bob.next("msg")).text).toBe(text);
  });
});

describe("line limit", () => {
  /** A say frame whose line (newline excluded) is exactly `bytes` long. */
  function sayLine(bytes: number): string {
    const overhead = '{"type":"say","text":""}'.length;
    const line = JSON.stringify({ type: "say", text: "a".repeat(bytes - overhead) });
    expect(line.length).toBe(bytes);
    return line + "\n";
  }

  test("a line of exactly 16384 bytes is read (invalid_text, not too_long) and the connection stays", async () => {
    await using server = await startTestServer();
    await using client = (await newUser(server, "alice")).client;
    expect(await errorFor(client, sayLine(MAX_LINE_BYTES))).toBe("invalid_text");
    await expectUsable(client);
  });

  test("a line of exactly 16384 bytes before login is read too (not_authenticated)", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    expect(await errorFor(client, sayLine(MAX_LINE_BYTES))).toBe("not_authenticated");
    await expectUsable(client);
  });

  test("a line of 16385 bytes is too_long and the connection closes", async () => {
    await using server = await startTestServer();
    await using client = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    expect(await errorFor(client, sayLine(MAX_LINE_BYTES + 1))).toBe("too_long");
    await closedWithin(client);
    await expectUsable(bob);
    expect(bob.take("msg")).toEqual([]);
  });

  test("a 16385-byte line written together with a valid frame after it closes before the valid frame", async () => {
    await using server = await startTestServer();
    await using client = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    client.sendRaw(sayLine(MAX_LINE_BYTES + 1) + JSON.stringify({ type: "say", text: "sneaky" }) + "\n");
    expect(await client.nextError()).toBe("too_long");
    await closedWithin(client);
    await bob.sync();
    expect(bob.take("msg")).toEqual([]);
  });

  test("a 1 MiB line without a newline is too_long and closes; the server keeps serving others", async () => {
    await using server = await startTestServer();
    await using bob = (await newUser(server, "bob")).client;
    await using carol = (await newUser(server, "carol")).client;
    await using client = await connect(server);
    const chunk = "x".repeat(16 * 1024);
    for (let sent = 0; sent < 1024 * 1024 && !client.isClosed; sent += chunk.length) {
      if (client.sendRaw(chunk) < chunk.length) break; // the server stopped reading: enough
      await turn();
    }
    expect(await client.nextError()).toBe("too_long");
    await closedWithin(client);

    bob.send({ type: "say", text: "still up?" });
    expect((await carol.next("msg")).text).toBe("still up?");
    await expectUsable(bob);
  });

  test("a frame written one byte at a time (one TLS record per byte) still works", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    const bytes = new TextEncoder().encode(JSON.stringify({ type: "say", text: "slow é 😀 ok" }) + "\n");
    for (const byte of bytes) {
      expect(alice.sendRaw(new Uint8Array([byte]))).toBe(1);
      await turn();
    }
    expect((await bob.next("msg")).text).toBe("slow é 😀 ok");
  });

  test("CRLF line endings are accepted", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    alice.sendRaw(JSON.stringify({ type: "say", text: "windows" }) + "\r\n");
    expect((await bob.next("msg")).text).toBe("windows");
  });

  test("several frames in one write are all handled, in order", async () => {
    await using server = await startTestServer();
    await using alice = (await newUser(server, "alice")).client;
    await using bob = (await newUser(server, "bob")).client;
    alice.sendRaw(["a", "b", "c"].map((text) => JSON.stringify({ type: "say", text }) + "\n").join(""));
    for (const text of ["a", "b", "c"]) expect((await bob.next("msg")).text).toBe(text);
  });
});
