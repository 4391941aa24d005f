// Fuzzing the frame decoder: LineDecoder (src/protocol/lines.ts), then decodeLine and
// parseClientFrame (src/protocol/frames.ts) — pure functions, no server. A fixed seed makes every
// run see the same inputs (up to the time budget); a failure prints the seed, the iteration and
// the input so it can be replayed.
//
// Properties:
//  1. Only ChatError is ever thrown, with a code the stage may produce (too_long from the line
//     splitter, bad_frame from UTF-8 decoding and parsing).
//  2. The splitter never holds more than its limit.
//  3. Any chunking of a stream gives the same lines and the same error as a reference splitter
//     run over the whole stream at once.
//  4. Valid frames round-trip: encode → split arbitrarily → decode → parse equals the original.
//  5. parseClientFrame's output has a known type and exactly that type's fields, correctly typed.

import { describe, expect, test } from "bun:test";
import { MAX_LINE_BYTES } from "../../src/core/limits.ts";
import { ChatError, ERROR_CODES } from "../../src/protocol/errors.ts";
import { decodeLine, encodeFrame, parseClientFrame, type ClientFrame } from "../../src/protocol/frames.ts";
import { LineDecoder } from "../../src/protocol/lines.ts";
import { Rng } from "../helpers/hostile.ts";

const SEED = 0x5eed_1234;
/** A fixed count, not a time budget: the same inputs on a loaded machine as on an idle one. */
const INPUTS = 20_000;
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Generators

const ALPHABET = [
  ..."abcxyzABCXYZ0123456789_.-",
  ' ', '"', "\\", "/", "{", "}", "[", "]", ":", ",",
  "\n", "\r", "\t", "\u0000", "\u001b", "\u007f", "\u0085", "\u00e9", "\u00a0", "\u2028", "\u2029",
  "\u200b", "\ufeff", "\uffff", "\u0430", "€", "☃", "😀", "𝕏", "\ud800", "\udfff",
];

function randomString(rng: Rng, maxLength: number): string {
  const length = rng.int(0, maxLength);
  let out = "";
  for (let i = 0; i < length; i++) out += rng.pick(ALPHABET);
  return out;
}

function randomNumber(rng: Rng): number {
  const kind = rng.int(0, 6);
  if (kind === 0) return rng.int(0, 1000);
  if (kind === 1) return -rng.int(1, 2 ** 31);
  if (kind === 2) return rng.float() * 10 ** rng.int(-300, 300);
  if (kind === 3) return Number.MAX_SAFE_INTEGER + rng.int(0, 10);
  if (kind === 4) return Number.MAX_VALUE;
  if (kind === 5) return Number.MIN_VALUE;
  return (rng.float() - 0.5) * 1e6 || 1;
}

function randomFrame(rng: Rng): ClientFrame {
  const s = (max = 40) => randomString(rng, max);
  switch (rng.int(0, 10)) {
    case 0:
      return { type: "register", user: s(), password: s() };
    case 1:
      return { type: "login", user: s(), password: s() };
    case 2:
      return { type: "resume", user: s(), token: s(80) };
    case 3:
      return { type: "say", text: s(300) };
    case 4:
      return { type: "dm", to: s(), text: s(300) };
    case 5:
      return { type: "who" };
    case 6:
      return { type: "ping" };
    case 7:
      return rng.bool() ? { type: "ping", id: randomNumber(rng) } : { type: "ping", id: randomString(rng, 64).slice(0, 64) };
    case 8:
      return { type: "passwd", old: s(), new: s() };
    case 9:
      return rng.bool() ? { type: "login", user: s(), key: true } : { type: "key_remove", fingerprint: randomFingerprint(rng) };
    default:
      return { type: "quit" };
  }
}

/** 32 random bytes in upper-case colon hex, the form a fingerprint keeps once parsed. */
function randomFingerprint(rng: Rng): string {
  return Array.from({ length: 32 }, () => rng.int(0, 255).toString(16).padStart(2, "0").toUpperCase()).join(":");
}

const SPECIAL_BYTES = [0x0a, 0x0d, 0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xf8, 0xff];

function randomBytes(rng: Rng, maxLength: number): Uint8Array {
  const length = rng.int(0, maxLength);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = rng.bool(0.3) ? rng.pick(SPECIAL_BYTES) : rng.int(0, 255);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Bit flips, truncation, duplication, deletion and insertion of \n, \r, NUL and high bytes. */
function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let bytes = input;
  const rounds = rng.int(1, 4);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(0, bytes.length);
    switch (rng.int(0, 6)) {
      case 0: {
        if (bytes.length === 0) break;
        const copy = bytes.slice();
        const i = Math.min(at, copy.length - 1);
        copy[i] = copy[i]! ^ (1 << rng.int(0, 7));
        bytes = copy;
        break;
      }
      case 1:
        bytes = bytes.slice(0, at);
        break;
      case 2: {
        const end = rng.int(at, bytes.length);
        bytes = concat([bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end)]);
        break;
      }
      case 3: {
        const end = rng.int(at, Math.min(bytes.length, at + 8));
        bytes = concat([bytes.subarray(0, at), bytes.subarray(end)]);
        break;
      }
      case 4:
        bytes = concat([bytes.subarray(0, at), new Uint8Array([rng.pick([0x0a, 0x0d, 0x00])]), bytes.subarray(at)]);
        break;
      case 5:
        bytes = concat([bytes.subarray(0, at), new Uint8Array([rng.int(0x80, 0xff)]), bytes.subarray(at)]);
        break;
      default:
        bytes = concat([bytes.subarray(0, at), encoder.encode(rng.pick(['"', "\\", "{", "}", "[", "]", ",", ":", "\\u0000", '"__proto__":{}', "1e400"])), bytes.subarray(at)]);
    }
  }
  return bytes;
}

/** Random split points; sometimes one byte per chunk, sometimes the whole stream at once. */
function chunk(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const mode = rng.int(0, 9);
  if (mode === 0) return [bytes];
  if (mode === 1 && bytes.length <= 4096) return Array.from(bytes, (byte) => new Uint8Array([byte]));
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const maxChunk = rng.pick([2, 8, 64, 1024, 20_000]);
  while (offset < bytes.length) {
    const size = rng.int(0, maxChunk); // empty chunks too
    chunks.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

// ---------------------------------------------------------------------------------------------
// Runners

interface Split {
  lines: string[]; // hex, to compare cheaply
  error: string | undefined;
  buffered: number | undefined;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** What splitting `stream` must give: lines with a trailing CR removed, up to the first over-long line. */
function referenceSplit(stream: Uint8Array, max: number): Split {
  const lines: string[] = [];
  let start = 0;
  for (;;) {
    const newline = stream.indexOf(0x0a, start);
    if (newline === -1) {
      const rest = stream.length - start;
      return rest > max ? { lines, error: "too_long", buffered: undefined } : { lines, error: undefined, buffered: rest };
    }
    if (newline - start > max) return { lines, error: "too_long", buffered: undefined };
    let line = stream.subarray(start, newline);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    lines.push(hex(line));
    start = newline + 1;
  }
}

class PropertyFailure extends Error {}

/** Feeds chunks as the server does: stop at the first error (the connection closes). */
function decoderSplit(chunks: Uint8Array[], max: number, onLine?: (line: Uint8Array) => void): Split {
  const decoder = new LineDecoder(max);
  const lines: string[] = [];
  for (const part of chunks) {
    try {
      decoder.push(part, (line) => {
        lines.push(hex(line));
        onLine?.(line);
      });
    } catch (error) {
      if (error instanceof PropertyFailure) throw error;
      if (!(error instanceof ChatError) || error.code !== "too_long") {
        throw new PropertyFailure(`LineDecoder threw ${describeError(error)}`);
      }
      return { lines, error: error.code, buffered: undefined };
    }
    if (decoder.bufferedBytes > max) throw new PropertyFailure(`LineDecoder holds ${decoder.bufferedBytes} bytes, limit ${max}`);
  }
  return { lines, error: undefined, buffered: decoder.bufferedBytes };
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}${error instanceof ChatError ? `(${error.code})` : ""}: ${error.message}` : String(error);
}

type FieldKind = "string" | "string?" | "count?" | "id?" | "since?" | "boolean" | "true?" | "scope?" | "id" | "fingerprint";

const MODERATION_FIELDS: Record<string, FieldKind> = { user: "string", room: "string?", scope: "scope?", reason: "string?", seconds: "count?" };

const FIELDS: Record<ClientFrame["type"], Record<string, FieldKind>> = {
  register: { user: "string", password: "string?", key: "true?" },
  login: { user: "string", password: "string?", key: "true?", since: "since?" },
  resume: { user: "string", token: "string", since: "since?" },
  say: { text: "string", room: "string?", ref: "string?" },
  dm: { to: "string", text: "string", ref: "string?" },
  history: { room: "string?", with: "string?", before: "id?", after: "id?", limit: "count?" },
  delete: { id: "count?" },
  search: { query: "string", room: "string?", limit: "count?" },
  join: { room: "string" },
  part: { room: "string" },
  rooms: { after: "string?", limit: "count?" },
  who: { room: "string?" },
  topic: { room: "string", topic: "string" },
  mode: { room: "string", invite_only: "boolean" },
  kick: MODERATION_FIELDS,
  ban: MODERATION_FIELDS,
  unban: MODERATION_FIELDS,
  mute: MODERATION_FIELDS,
  unmute: MODERATION_FIELDS,
  op: MODERATION_FIELDS,
  deop: MODERATION_FIELDS,
  invite: MODERATION_FIELDS,
  ping: { id: "id" },
  passwd: { old: "string?", new: "string" },
  key_add: {},
  keys: {},
  key_remove: { fingerprint: "fingerprint" },
  quit: {},
};

/** Property 5, checked independently of the parser's own code. */
function checkShape(frame: ClientFrame): void {
  if (Object.getPrototypeOf(frame) !== Object.prototype) throw new PropertyFailure("parsed frame has an odd prototype");
  const fields = FIELDS[frame.type as ClientFrame["type"]];
  if (!Object.hasOwn(FIELDS, frame.type) || !fields) throw new PropertyFailure(`unknown type ${JSON.stringify(frame.type)}`);
  const record = frame as unknown as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== "type" && !Object.hasOwn(fields, key)) throw new PropertyFailure(`unexpected field ${key} in ${frame.type}`);
  }
  for (const [name, kind] of Object.entries(fields)) {
    const value = record[name];
    const present = Object.hasOwn(record, name);
    if (kind === "string" && typeof value !== "string") throw new PropertyFailure(`${frame.type}.${name} is ${typeof value}`);
    if (kind === "boolean" && typeof value !== "boolean") throw new PropertyFailure(`${frame.type}.${name} is ${typeof value}`);
    if (kind === "string?" && present && typeof value !== "string") throw new PropertyFailure(`${frame.type}.${name} is ${typeof value}`);
    if (kind === "true?" && present && value !== true) throw new PropertyFailure(`${frame.type}.${name} is ${String(value)}`);
    if (kind === "fingerprint" && !(typeof value === "string" && /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/.test(value))) {
      throw new PropertyFailure(`${frame.type}.${name} is not an upper-case fingerprint: ${String(value)}`);
    }
    if (kind === "scope?" && present && value !== "server") throw new PropertyFailure(`${frame.type}.${name} is ${String(value)}`);
    if (kind === "since?" && present && !(Number.isSafeInteger(value) || (typeof value === "object" && value !== null && !Array.isArray(value)))) {
      throw new PropertyFailure(`${frame.type}.${name} is ${String(value)}`);
    }
    if ((kind === "count?" || kind === "id?") && present && !(Number.isSafeInteger(value) && (value as number) >= 1)) {
      throw new PropertyFailure(`${frame.type}.${name} is ${String(value)}`);
    }
    if (kind === "id" && Object.hasOwn(record, name)) {
      const ok = (typeof value === "number" && Number.isFinite(value)) || (typeof value === "string" && value.length <= 64);
      if (!ok) throw new PropertyFailure(`ping id ${String(value)} is not allowed`);
    }
  }
}

/** Properties 1 and 5 for one line: returns the parsed frame or the error code. */
function parseLine(line: Uint8Array): ClientFrame | string {
  let text: string;
  try {
    text = decodeLine(line);
  } catch (error) {
    if (error instanceof ChatError && error.code === "bad_frame") return error.code;
    throw new PropertyFailure(`decodeLine threw ${describeError(error)}`);
  }
  let frame: ClientFrame;
  try {
    frame = parseClientFrame(text);
  } catch (error) {
    if (error instanceof ChatError && error.code === "bad_frame" && (ERROR_CODES as readonly string[]).includes(error.code)) return error.code;
    throw new PropertyFailure(`parseClientFrame threw ${describeError(error)}`);
  }
  checkShape(frame);
  return frame;
}

// ---------------------------------------------------------------------------------------------

describe("fuzz: frame decoder", () => {
  test(`random, mutated and valid streams (seed ${SEED.toString(16)}, ${INPUTS} inputs)`, () => {
    const rng = new Rng(SEED);
    const failures: string[] = [];
    const stats = { inputs: 0, lines: 0, frames: 0, badFrames: 0, tooLong: 0, roundTrips: 0 };
    let iteration = 0;
    for (; iteration < INPUTS && failures.length < 5; iteration++) {
      // Mostly a small limit, so too_long is common; sometimes the real one with big streams.
      const real = rng.bool(0.05);
      const max = real ? MAX_LINE_BYTES : rng.int(0, 300);
      const kind = rng.int(0, 3);
      let stream: Uint8Array;
      let expected: ClientFrame[] | undefined;
      if (kind === 0) {
        stream = randomBytes(rng, real ? 40_000 : 600);
      } else if (kind === 1) {
        stream = concat(Array.from({ length: rng.int(1, 4) }, () => mutate(rng, encoder.encode(encodeFrame(randomFrame(rng))))));
      } else if (kind === 2) {
        // Valid frames only, under the real limit: property 4.
        expected = Array.from({ length: rng.int(1, 5) }, () => randomFrame(rng));
        stream = encoder.encode(expected.map((frame) => (rng.bool(0.2) ? encodeFrame(frame).replace(/\n$/, "\r\n") : encodeFrame(frame))).join(""));
      } else {
        // A mix: valid frames, garbage, long runs without a newline.
        const parts: Uint8Array[] = [];
        for (let i = rng.int(1, 6); i > 0; i--) {
          const pick = rng.int(0, 3);
          if (pick === 0) parts.push(encoder.encode(encodeFrame(randomFrame(rng))));
          else if (pick === 1) parts.push(randomBytes(rng, 200));
          else if (pick === 2) parts.push(new Uint8Array(rng.int(0, real ? MAX_LINE_BYTES + 10 : 400)).fill(rng.pick([0x61, 0x0d, 0x00, 0xff])));
          else parts.push(mutate(rng, encoder.encode(encodeFrame(randomFrame(rng)))));
        }
        stream = concat(parts);
      }
      const limit = expected ? MAX_LINE_BYTES : max;
      stats.inputs += 1;
      try {
        const reference = referenceSplit(stream, limit);
        const parsed: Array<ClientFrame | string> = [];
        const first = decoderSplit(chunk(rng, stream), limit, (line) => parsed.push(parseLine(line)));
        const second = decoderSplit(chunk(rng, stream), limit);
        if (JSON.stringify(first) !== JSON.stringify(reference)) throw new PropertyFailure("chunked split differs from the reference split");
        if (JSON.stringify(second) !== JSON.stringify(reference)) throw new PropertyFailure("two chunkings disagree");
        stats.lines += first.lines.length;
        if (first.error) stats.tooLong += 1;
        for (const outcome of parsed) {
          if (typeof outcome === "string") stats.badFrames += 1;
          else stats.frames += 1;
        }
        if (expected) {
          // Property 4: exactly the frames that were encoded, in order, and nothing left over.
          if (first.error || first.buffered !== 0) throw new PropertyFailure("valid frames left an error or a partial line");
          expect(parsed).toEqual(expected);
          stats.roundTrips += expected.length;
        }
      } catch (error) {
        const shown = stream.length > 200 ? `${hex(stream.subarray(0, 200))}… (${stream.length} bytes)` : hex(stream);
        failures.push(`seed ${SEED.toString(16)} iteration ${iteration} (limit ${limit}): ${describeError(error)}\n  input: ${shown}`);
      }
    }
    expect(failures).toEqual([]);
    expect(stats.inputs).toBe(INPUTS);
    // The generators reach every outcome.
    expect(stats.frames).toBeGreaterThan(1_000);
    expect(stats.badFrames).toBeGreaterThan(1_000);
    expect(stats.tooLong).toBeGreaterThan(1_000);
    expect(stats.roundTrips).toBeGreaterThan(1_000);
  }, 30_000);

  test("a line exactly at the limit is read whatever the chunking; one byte more is too_long at once", () => {
    const rng = new Rng(SEED + 1);
    for (let i = 0; i < 200; i++) {
      const at = new Uint8Array(MAX_LINE_BYTES).fill(0x61);
      const over = new Uint8Array(MAX_LINE_BYTES + 1).fill(0x61);
      const fits = decoderSplit(chunk(rng, concat([at, new Uint8Array([0x0a])])), MAX_LINE_BYTES);
      expect(fits.error).toBeUndefined();
      expect(fits.lines).toHaveLength(1);
      // Without any newline: too_long as soon as the 16,385th byte arrives, nothing buffered past the limit.
      const tooLong = decoderSplit(chunk(rng, over), MAX_LINE_BYTES);
      expect(tooLong.error).toBe("too_long");
      // A CR counts as part of the line until the newline comes.
      const withCr = decoderSplit(chunk(rng, concat([at, new Uint8Array([0x0d, 0x0a])])), MAX_LINE_BYTES);
      expect(withCr.error).toBe("too_long");
    }
  });
});
