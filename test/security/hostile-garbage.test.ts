// Hostile input on one connection: random bytes, invalid UTF-8, JSON that is not a frame, deep
// nesting, extreme numbers, prototype keys, wrong shapes, byte-at-a-time frames and over-long
// lines. Each attack runs while two bystanders chat; afterwards the bystanders got every message,
// a newcomer can register and log in, and the store file is intact.

import { describe, expect, test } from "bun:test";
import { MAX_LINE_BYTES } from "../../src/core/limits.ts";
import { Bystanders, expectAftermath, hostile, Rng, until, type HostileClient } from "../helpers/hostile.ts";
import type { ServerLimits } from "../../src/core/limits.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const encoder = new TextEncoder();
// Parsing limits are what is under test here, not the message rate: give every frame a token.
const GENEROUS_RATE = { messageRatePerSec: 10_000, messageBurst: 10_000 };

/**
 * Runs `attack` against a fresh server while two bystanders chat, then checks the aftermath:
 * every bystander message arrived, a newcomer can log in, the store holds `users` and the rest.
 */
async function underAttack(
  attack: (server: TestServer, bystanders: Bystanders) => Promise<void>,
  { limits = GENEROUS_RATE, users = [] as string[] }: { limits?: Partial<ServerLimits>; users?: string[] } = {},
): Promise<void> {
  await using server = await startTestServer({ limits });
  await using bystanders = await Bystanders.start(server);
  await bystanders.during(() => attack(server, bystanders));
  await expectAftermath(server, bystanders, users);
}

/** An attacker logged in as `user` (registered on the spot). */
async function loggedIn(server: TestServer, user = "mallory"): Promise<HostileClient> {
  const client = await hostile(server);
  expect((await client.register(user, `${user}-password`)).type).toBe("registered");
  expect((await client.login(user, `${user}-password`)).type).toBe("welcome");
  return client;
}

/** Sends each line (a newline is added) and expects the error code for each, in turn. */
async function expectCodes(client: HostileClient, lines: Array<string | Uint8Array>, code: string): Promise<void> {
  for (const line of lines) {
    client.write(typeof line === "string" ? line + "\n" : new Uint8Array([...line, 0x0a]));
    const reply = await client.nextOf(["error", "pong", "welcome", "registered"]);
    expect({ line: String(line).slice(0, 80), reply: reply.type === "error" ? reply.code : reply.type }).toEqual({
      line: String(line).slice(0, 80),
      reply: code,
    });
  }
}

async function expectUsable(client: HostileClient): Promise<void> {
  await client.sync();
  expect(client.frames.filter((frame) => frame.type === "error")).toEqual([]);
  expect(client.isClosed).toBe(false);
}

describe("garbage", () => {
  test("random bytes (seed 0xC0FFEE), 40 lines of up to 4 KiB: each is bad_frame and the connection stays", async () => {
    await underAttack(async (server) => {
      const rng = new Rng(0xc0ffee);
      await using attacker = await hostile(server);
      const lines = Array.from({ length: 40 }, () => rng.bytes(rng.int(1, 4096)).map((byte) => (byte === 0x0a ? 0x20 : byte)));
      await expectCodes(attacker, lines, "bad_frame");
      await expectUsable(attacker);
    });
  });

  test("a 256 KiB blast of random bytes with newlines (seed 7) at default rate limits: only bad_frame/rate_limited/too_long, then closed", async () => {
    await underAttack(async (server) => {
      const rng = new Rng(7);
      await using attacker = await hostile(server);
      attacker.write(rng.bytes(256 * 1024));
      await attacker.waitClosed(5_000);
      const codes = attacker.frames.map((frame) => (frame.type === "error" ? frame.code : frame.type));
      expect(new Set(codes).size).toBeGreaterThan(0);
      for (const code of codes) expect(["bad_frame", "rate_limited", "too_long"]).toContain(code);
      // The frame allowance is spent on bad_frame replies, then maxRateViolations (20) rate_limited
      // errors in a row, and the last of them closes the connection.
      const limited = codes.filter((code) => code === "rate_limited").length;
      expect(limited).toBeGreaterThanOrEqual(20);
      expect(codes.slice(-20)).toEqual(Array(20).fill("rate_limited"));
      expect(codes.filter((code) => code === "bad_frame").length).toBeGreaterThanOrEqual(30);
      expect(codes).not.toContain("too_long");
    }, { limits: {} });
  });

  test("invalid UTF-8 in say and ping frames is bad_frame and nothing is relayed", async () => {
    await underAttack(async (server, bystanders) => {
      await using attacker = await loggedIn(server);
      const sequences = [
        [0xff],
        [0xfe, 0xff],
        [0x80], // lone continuation byte
        [0xc0, 0xaf], // overlong "/"
        [0xe0, 0x80, 0xaf], // overlong, 3 bytes
        [0xf0, 0x80, 0x80, 0xaf], // overlong, 4 bytes
        [0xed, 0xa0, 0x80], // UTF-16 surrogate
        [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
        [0xe2, 0x82], // truncated euro sign
        [0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
      ];
      const lines: Uint8Array[] = [];
      for (const bad of sequences) {
        lines.push(new Uint8Array([...encoder.encode('{"type":"say","text":"x'), ...bad, ...encoder.encode('"}')]));
        lines.push(new Uint8Array([...encoder.encode('{"type":"ping","id":"'), ...bad, ...encoder.encode('"}')]));
        lines.push(new Uint8Array([...bad, ...encoder.encode('{"type":"ping"}')]));
      }
      // A truncated sequence right before the newline.
      lines.push(new Uint8Array([...encoder.encode('{"type":"ping"}'), 0xe2]));
      await expectCodes(attacker, lines, "bad_frame");
      await expectUsable(attacker);
      await bystanders.receiver.sync();
      expect(bystanders.receiver.received.filter((frame) => frame.type === "msg" && frame.from === "mallory")).toEqual([]);
    }, { users: ["mallory"] });
  });

  test("JSON that is not an object ([], 1, \"x\", null, true, {}, {\"type\":null}) is bad_frame", async () => {
    await underAttack(async (server) => {
      await using attacker = await hostile(server);
      await expectCodes(
        attacker,
        ["[]", "1", '"x"', "null", "true", "false", "{}", '{"type":null}', '{"type":[]}', '{"type":{}}', "[{\"type\":\"ping\"}]", " ", "\r", "\u00a0{}"],
        "bad_frame",
      );
      await expectUsable(attacker);
    });
  });

  test("deeply nested JSON (10,000 levels of [ in one line under 16 KiB) is bad_frame, not a crash", async () => {
    await underAttack(async (server) => {
      await using attacker = await hostile(server);
      const lines = [
        "[".repeat(10_000),
        "[".repeat(8_000) + "]".repeat(8_000),
        '{"a":'.repeat(3_000),
        '{"type":"ping","id":' + "[".repeat(7_000) + "]".repeat(7_000) + "}",
        '{"type":"login","user":' + '{"a":'.repeat(2_500) + "0" + "}".repeat(2_500) + ',"password":"whatever-pw"}',
      ];
      for (const line of lines) expect(encoder.encode(line).length).toBeLessThanOrEqual(MAX_LINE_BYTES);
      await expectCodes(attacker, lines, "bad_frame");
      // Deep nesting in an ignored field is parsed and ignored: the frame still works.
      const deepIgnored = '{"type":"ping","x":' + '{"a":'.repeat(2_500) + "0" + "}".repeat(2_500) + ',"id":"deep"}';
      expect(encoder.encode(deepIgnored).length).toBeLessThanOrEqual(MAX_LINE_BYTES);
      attacker.write(deepIgnored + "\n");
      expect(await attacker.next("pong")).toEqual({ type: "pong", id: "deep" });
      await expectUsable(attacker);
    });
  });

  test("huge numbers: 1e400 and a 400-digit literal are bad_frame, 123456789012345678901234567890 is a number id", async () => {
    await underAttack(async (server) => {
      await using attacker = await hostile(server);
      await expectCodes(
        attacker,
        [
          '{"type":"ping","id":1e400}',
          '{"type":"ping","id":-1e400}',
          `{"type":"ping","id":1${"0".repeat(400)}}`,
          '{"type":"ping","id":NaN}',
          '{"type":"ping","id":Infinity}',
          '{"type":"ping","id":0x10}',
          '{"type":"login","user":1e400,"password":"whatever-pw"}',
        ],
        "bad_frame",
      );
      attacker.write('{"type":"ping","id":123456789012345678901234567890}\n');
      expect(await attacker.next("pong")).toEqual({ type: "pong", id: 123456789012345678901234567890 });
      attacker.write('{"type":"ping","id":1e-400}\n');
      expect(await attacker.next("pong")).toEqual({ type: "pong", id: 0 });
      attacker.write('{"type":"ping","id":"1e400"}\n');
      expect(await attacker.next("pong")).toEqual({ type: "pong", id: "1e400" });
      await expectUsable(attacker);
    });
  });

  test("__proto__ / constructor / prototype keys and types: bad_frame, no prototype pollution", async () => {
    await underAttack(async (server) => {
      await using attacker = await hostile(server);
      await expectCodes(
        attacker,
        [
          '{"type":"login","__proto__":{"user":"x","password":"xxxxxxxxxx"}}',
          '{"type":"login","constructor":{"prototype":{"user":"x","password":"xxxxxxxxxx"}}}',
          '{"type":"register","user":"eve","__proto__":{"password":"xxxxxxxxxx"}}',
          '{"__proto__":{"type":"ping"}}',
          '{"type":"__proto__"}',
          '{"type":"constructor"}',
          '{"type":"prototype"}',
          '{"type":"toString"}',
          '{"type":"hasOwnProperty"}',
          '{"type":"valueOf"}',
          '{"type":"__defineGetter__"}',
          '{"type":"handlers"}',
          '{"type":"say","__proto__":{"text":"hi"}}',
        ],
        "bad_frame",
      );
      // An inherited-looking id is not an own field: the pong has no id.
      attacker.write('{"type":"ping","__proto__":{"id":"polluted"}}\n');
      expect(await attacker.next("pong")).toEqual({ type: "pong" });
      await expectUsable(attacker);
      // The server runs in this process: nothing leaked onto Object.prototype.
      const probe = {} as Record<string, unknown>;
      for (const key of ["user", "password", "text", "id", "type", "a"]) expect(probe[key]).toBeUndefined();
      expect(Object.keys(Object.prototype)).toEqual([]);
    });
  });

  test("missing and wrongly typed fields are bad_frame, before and after login", async () => {
    await underAttack(async (server, bystanders) => {
      await using attacker = await loggedIn(server);
      await expectCodes(
        attacker,
        [
          '{"type":"login"}',
          '{"type":"login","user":"mallory"}',
          '{"type":"login","user":1,"password":"mallory-password"}',
          '{"type":"login","user":"mallory","password":["mallory-password"]}',
          '{"type":"register","user":null,"password":"whatever-pw"}',
          '{"type":"resume","user":"mallory","token":42}',
          '{"type":"say"}',
          '{"type":"say","text":["hi"]}',
          '{"type":"say","text":{"toString":"hi"}}',
          '{"type":"say","text":true}',
          '{"type":"dm","to":"bysend1"}',
          '{"type":"dm","to":["bysend1"],"text":"hi"}',
          '{"type":"passwd","old":"mallory-password"}',
          '{"type":"passwd","old":1,"new":2}',
          '{"type":"ping","id":{}}',
          '{"type":"ping","id":[1]}',
          '{"type":"ping","id":null}',
          '{"type":"ping","id":true}',
          `{"type":"ping","id":"${"x".repeat(65)}"}`,
          '{"type":5}',
          '{"type":"SAY","text":"hi"}',
          '{"type":" say","text":"hi"}',
        ],
        "bad_frame",
      );
      await expectUsable(attacker);
      await bystanders.receiver.sync();
      expect(bystanders.receiver.received.filter((frame) => frame.type === "msg" && frame.from === "mallory")).toEqual([]);
    }, { users: ["mallory"] });
  });

  test("register, login and a multi-byte say, each byte its own write: parsed correctly and relayed intact", async () => {
    await underAttack(async (server, bystanders) => {
      const text = "héllo ☃ 😀 שלום \\ \" end";
      await using attacker = await hostile(server);
      const stream = encoder.encode(
        JSON.stringify({ type: "register", user: "trickle", password: "trickle-password" }) +
          "\n" +
          JSON.stringify({ type: "login", user: "trickle", password: "trickle-password" }) +
          "\r\n" +
          JSON.stringify({ type: "say", text }) +
          "\n",
      );
      for (const byte of stream) {
        attacker.write(new Uint8Array([byte]));
        // Pacing, not synchronisation: let the event loop run so each byte is its own TLS record and read.
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect((await attacker.next("registered")).user).toBe("trickle");
      expect((await attacker.next("welcome")).user).toBe("trickle");
      await expectUsable(attacker);
      // The trickled say reached the receiver exactly once, byte for byte.
      const seen = bystanders.receiver.received.filter((frame) => frame.type === "msg" && frame.from === "trickle");
      expect(seen.map((frame) => frame.text)).toEqual([text]);
    }, { users: ["trickle"] });
  });

  test("a line of 16385 bytes is too_long and closes; 16384 is read; the server keeps serving", async () => {
    await underAttack(async (server) => {
      const frame = (size: number) => {
        const head = '{"type":"ping","id":"fits","pad":"';
        const tail = '"}';
        return head + "a".repeat(size - head.length - tail.length) + tail;
      };
      await using fits = await hostile(server);
      fits.write(frame(MAX_LINE_BYTES) + "\n");
      expect(await fits.next("pong")).toEqual({ type: "pong", id: "fits" });
      await expectUsable(fits);

      await using over = await hostile(server);
      over.write(frame(MAX_LINE_BYTES + 1) + "\n" + '{"type":"ping","id":"after"}\n');
      expect(await over.nextError()).toBe("too_long");
      await over.waitClosed(2_000);
      expect(over.frames.filter((f) => f.type === "pong")).toEqual([]);
    });
  });

  test("4 MiB without a newline: too_long, then closed; the rest of the flood goes nowhere", async () => {
    await underAttack(async (server) => {
      const before = server.connectionCount;
      await using attacker = await hostile(server);
      const chunk = new Uint8Array(16 * 1024).fill(0x61);
      for (let i = 0; i < 256; i++) attacker.write(chunk);
      expect(await attacker.nextError()).toBe("too_long");
      await attacker.waitClosed(2_000);
      expect(attacker.frames).toEqual([]);
      await until(() => server.connectionCount === before, "the attacker's connection to be gone");
    });
  });
});
