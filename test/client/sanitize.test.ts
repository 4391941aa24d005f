import { describe, expect, test } from "bun:test";
import { sanitize, sanitizeName, sanitizeRoomName } from "../../src/client/sanitize.ts";

// Everything a terminal or renderer could act on: C0, DEL, C1, bidi marks, embeddings, overrides
// and isolates, line and paragraph separators.
const DANGEROUS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

const hostile: [name: string, input: string, marker: string][] = [
  ["clear screen", "\x1b[2Jgone", "^[[2J"],
  ["cursor moves", "\x1b[10;20H\x1b[1A\x1b[Kx", "^[[10;20H^[[1A^[[K"],
  ["OSC 52 clipboard write", "\x1b]52;c;cm0gLXJmIH4=\x07", "^[]52;c;cm0gLXJmIH4=^G"],
  ["OSC 8 hyperlink", "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "^[]8;;https://evil.example^[\\click"],
  ["title set", "\x1b]0;pwned\x07", "^[]0;pwned^G"],
  ["DCS", "\x1bPq#0;2;0;0;0\x1b\\", "^[Pq#0;2;0;0;0^[\\"],
  ["8-bit CSI", "\u009b2J", "<U+009B>2J"],
  ["8-bit OSC and ST", "\u009d0;title\u009c", "<U+009D>0;title<U+009C>"],
  ["NUL", "a\u0000b", "a^@b"],
  ["backspace overwrite", "abc\b\b\bXYZ", "abc^H^H^HXYZ"],
  ["CR overwrite", "safe text\rEVIL", "safe text^MEVIL"],
  ["newline and tab", "line1\nline2\tx", "line1^Jline2^Ix"],
  ["DEL", "ab\u007fc", "ab^?c"],
  ["Trojan Source override", "access = \u202euser\u202c", "access = <U+202E>user<U+202C>"],
  ["bidi embeddings", "\u202aa\u202bb", "<U+202A>a<U+202B>b"],
  ["bidi isolates", "\u2066x\u2067y\u2068z\u2069", "<U+2066>x<U+2067>y<U+2068>z<U+2069>"],
  ["direction marks", "a\u200eb\u200fc\u061cd", "a<U+200E>b<U+200F>c<U+061C>d"],
  ["line separator", "a\u2028b\u2029c", "a<U+2028>b<U+2029>c"],
];

describe("sanitize", () => {
  for (const [name, input, marker] of hostile) {
    test(`neutralises ${name} and shows a visible marker`, () => {
      const out = sanitize(input);
      expect(out).not.toMatch(DANGEROUS);
      expect(out).toContain(marker);
    });
  }

  test("uses caret notation for every C0 control and DEL", () => {
    let all = "";
    for (let code = 0; code < 0x20; code++) all += String.fromCharCode(code);
    expect(sanitize(all + "\x7f")).toBe("^@^A^B^C^D^E^F^G^H^I^J^K^L^M^N^O^P^Q^R^S^T^U^V^W^X^Y^Z^[^\\^]^^^_^?");
  });

  test("shows every C1 control as <U+XXXX>", () => {
    for (let code = 0x80; code <= 0x9f; code++) {
      const hex = code.toString(16).toUpperCase().padStart(4, "0");
      expect(sanitize(String.fromCharCode(code))).toBe(`<U+${hex}>`);
    }
  });

  test("is idempotent", () => {
    for (const [, input] of hostile) expect(sanitize(sanitize(input))).toBe(sanitize(input));
  });

  const ordinary = [
    "",
    "hello, world",
    "ASCII punctuation !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "héllo café naïve",
    "e\u0301 combining acute",
    "日本語のテキスト 中文 한국어",
    "emoji 😀 👩‍👩‍👧 🏳️‍🌈 👍🏽",
    "Arabic مرحبا and Hebrew שלום without controls",
    "zero width joiner\u200dand non-joiner\u200c stay",
  ];
  for (const text of ordinary) {
    test(`passes ${JSON.stringify(text).slice(0, 30)} unchanged`, () => {
      expect(sanitize(text)).toBe(text);
    });
  }
});

describe("sanitizeName", () => {
  test("returns valid usernames unchanged", () => {
    for (const name of ["alice", "Bob_2", "a.b-c", "x".repeat(32)]) expect(sanitizeName(name)).toBe(name);
  });

  test("marks every character outside the username alphabet", () => {
    expect(sanitizeName("\u0430lice")).toBe("<U+0430>lice");
    expect(sanitizeName("bob\x1b[2J")).toBe("bob<U+001B><U+005B>2J");
    expect(sanitizeName("ad\u202emin")).toBe("ad<U+202E>min");
    expect(sanitizeName("a b")).toBe("a<U+0020>b");
    expect(sanitizeName("😀")).toBe("<U+1F600>");
  });

  test("cuts long names and marks empty ones so neither passes for a real user", () => {
    expect(sanitizeName("a".repeat(40))).toBe("a".repeat(32) + "…");
    expect(sanitizeName("")).toBe("<empty>");
  });

  test("never returns control or bidi characters", () => {
    expect(sanitizeName("\u0000\u009b\u2066\u007f")).not.toMatch(DANGEROUS);
  });
});

describe("sanitizeRoomName", () => {
  test("returns valid room names unchanged", () => {
    for (const room of ["#lobby", "#Rust_2", "#a-b", "#" + "x".repeat(32)]) expect(sanitizeRoomName(room)).toBe(room);
  });

  test("marks every character outside the room alphabet, and cuts long or empty names", () => {
    expect(sanitizeRoomName("#r\u202eoom")).toBe("#r<U+202E>oom");
    expect(sanitizeRoomName("#a.b")).toBe("#a<U+002E>b");
    expect(sanitizeRoomName("#" + "a".repeat(40))).toBe("#" + "a".repeat(32) + "…");
    expect(sanitizeRoomName("")).toBe("<empty>");
    expect(sanitizeRoomName("#\u0000\u009b\u2066")).not.toMatch(DANGEROUS);
  });
});

test("sanitize returns clean ASCII text quickly", () => {
  const line = "The quick brown fox jumps over the lazy dog. ".repeat(10);
  const start = performance.now();
  for (let i = 0; i < 100_000; i++) sanitize(line);
  // Generous bound: this is a regression guard against a per-character loop, not a benchmark.
  expect(performance.now() - start).toBeLessThan(1_000);
});
