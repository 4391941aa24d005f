// cli/options.ts parsers that `serve` options share: sizes with binary units, HOST:PORT addresses.

import { describe, expect, test } from "bun:test";
import { byteSize, formatHostPort, hostPort } from "../../src/cli/options.ts";

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

describe("hostPort", () => {
  test("takes HOST:PORT with a name, an IPv4 address or an IPv6 address in brackets; port 0 is allowed", () => {
    expect(hostPort("127.0.0.1:9464")).toEqual({ host: "127.0.0.1", port: 9464 });
    expect(hostPort("localhost:0")).toEqual({ host: "localhost", port: 0 });
    expect(hostPort("0.0.0.0:65535")).toEqual({ host: "0.0.0.0", port: 65535 });
    expect(hostPort("[::1]:9464")).toEqual({ host: "::1", port: 9464 });
    expect(hostPort("[::]:80")).toEqual({ host: "::", port: 80 });
  });

  test("refuses a missing host or port, a bad port, bare IPv6 and anything around the address", () => {
    for (const bad of ["", "9464", ":9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1", "::1:9464", "[::1]", "[nope]:80", " 127.0.0.1:9464", "host:1 ", "a b:1", "http://127.0.0.1:9464"]) {
      expect(() => hostPort(bad)).toThrow("expected HOST:PORT");
    }
  });

  test("formatHostPort writes IPv6 in brackets, so it reads back", () => {
    for (const text of ["127.0.0.1:9464", "[::1]:9464", "localhost:0"]) expect(formatHostPort(hostPort(text))).toBe(text);
  });
});
