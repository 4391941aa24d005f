import { describe, expect, test } from "bun:test";
import { ChatError } from "../../src/protocol/errors.ts";
import { LineDecoder } from "../../src/protocol/lines.ts";

const encoder = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function collect(decoder: LineDecoder, ...chunks: string[]): string[] {
  const lines: string[] = [];
  for (const chunk of chunks) decoder.push(encoder.encode(chunk), (line) => void lines.push(text(line)));
  return lines;
}

describe("LineDecoder", () => {
  test("splits lines and strips one trailing CR", () => {
    expect(collect(new LineDecoder(100), "a\nbb\r\n\nccc")).toEqual(["a", "bb", ""]);
  });

  test("joins a line split across chunks, at every byte boundary", () => {
    const stream = '{"type":"say","text":"héllo"}\n{"type":"who"}\n';
    const bytes = encoder.encode(stream);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new LineDecoder(100);
      const lines: string[] = [];
      decoder.push(bytes.subarray(0, cut), (line) => void lines.push(text(line)));
      decoder.push(bytes.subarray(cut), (line) => void lines.push(text(line)));
      expect(lines).toEqual(['{"type":"say","text":"héllo"}', '{"type":"who"}']);
    }
  });

  test("a line of exactly the limit passes; one byte more is too_long", () => {
    expect(collect(new LineDecoder(5), "12345\n")).toEqual(["12345"]);
    expect(() => collect(new LineDecoder(5), "123456\n")).toThrow(ChatError);
  });

  test("refuses an over-long partial line before buffering it", () => {
    const decoder = new LineDecoder(8);
    collect(decoder, "1234");
    expect(decoder.bufferedBytes).toBe(4);
    try {
      collect(decoder, "56789");
      throw new Error("expected too_long");
    } catch (error) {
      expect((error as ChatError).code).toBe("too_long");
    }
    expect(decoder.bufferedBytes).toBe(4);
  });

  test("stops delivering lines when the callback returns false", () => {
    const decoder = new LineDecoder(100);
    const lines: string[] = [];
    decoder.push(encoder.encode("a\nb\nc\n"), (line) => {
      lines.push(text(line));
      return lines.length < 2;
    });
    expect(lines).toEqual(["a", "b"]);
  });

  test("keeps its own copy of a partial line when the caller reuses its buffer", () => {
    const decoder = new LineDecoder(100);
    const buffer = encoder.encode("abc");
    const lines: string[] = [];
    decoder.push(buffer, () => {});
    buffer.set(encoder.encode("xyz"));
    decoder.push(encoder.encode("d\n"), (line) => void lines.push(text(line)));
    expect(lines).toEqual(["abcd"]);
  });
});
