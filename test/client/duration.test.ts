// Ban and mute durations: typed with one unit, shown in the largest unit that fits exactly.

import { describe, expect, test } from "bun:test";
import { formatDuration, parseDuration } from "../../src/client/duration.ts";

describe("parseDuration", () => {
  test("reads a whole number with a unit of seconds, minutes, hours or days", () => {
    expect(parseDuration("30s")).toBe(30);
    expect(parseDuration("10m")).toBe(600);
    expect(parseDuration("2h")).toBe(7200);
    expect(parseDuration("7d")).toBe(604_800);
  });

  test("anything else is not a duration", () => {
    for (const text of ["10", "m", "1.5h", "10 m", "-5m", "10M", "1w", "", "10mm"]) expect(parseDuration(text)).toBeUndefined();
  });
});

describe("formatDuration", () => {
  test("uses the largest unit that measures the duration exactly", () => {
    expect(formatDuration(45)).toBe("45s");
    expect(formatDuration(90)).toBe("90s");
    expect(formatDuration(5400)).toBe("90m");
    expect(formatDuration(7200)).toBe("2h");
    expect(formatDuration(86_400)).toBe("1d");
  });

  test("reads back what it writes", () => {
    for (const seconds of [1, 59, 61, 3600, 90_000, 315_360_000]) expect(parseDuration(formatDuration(seconds))).toBe(seconds);
  });
});
