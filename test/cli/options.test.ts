// cli/options.ts parsers that `serve` options share: sizes with binary units.

import { describe, expect, test } from "bun:test";
import { byteSize } from "../../src/cli/options.ts";

describe("byteSize", () => {
  test("takes bytes, or K/M/G with an optional iB/B, in binary units", () => {
    expect(byteSize("65536")).toBe(65_536);
    expect(byteSize("1K")).toBe(1024);
    expect(byteSize("1KiB")).toBe(1024);
    expect(byteSize("512m")).toBe(512 * 1024 ** 2);
    expect(byteSize("2GB")).toBe(2 * 1024 ** 3);
  });

  test("refuses zero, fractions, negative numbers and unknown units", () => {
    for (const bad of ["0", "1.5G", "-1", "5T", "lots", ""]) expect(() => byteSize(bad)).toThrow("expected a size");
  });
});
