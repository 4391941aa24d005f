import { describe, expect, test } from "bun:test";
import { Backoff, DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_MAX_MS } from "../../src/client/backoff.ts";

const ALMOST_ONE = 1 - Number.EPSILON;

function delays(backoff: Backoff, count: number): number[] {
  return Array.from({ length: count }, () => backoff.next());
}

describe("Backoff", () => {
  test("starts at 1 s and caps at 30 s by default", () => {
    expect(DEFAULT_BACKOFF_BASE_MS).toBe(1_000);
    expect(DEFAULT_BACKOFF_MAX_MS).toBe(30_000);
    expect(delays(new Backoff({ random: () => ALMOST_ONE }), 8)).toEqual([
      999, 1_999, 3_999, 7_999, 15_999, 29_999, 29_999, 29_999,
    ]);
  });

  test("never waits less than half the current ceiling (random() = 0)", () => {
    expect(delays(new Backoff({ random: () => 0 }), 7)).toEqual([500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
  });

  test("with Math.random, every delay lies within [ceiling / 2, ceiling)", () => {
    const backoff = new Backoff();
    for (let attempt = 0; attempt < 200; attempt++) {
      const ceiling = Math.min(30_000, 1_000 * 2 ** attempt);
      const delay = backoff.next();
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThan(ceiling);
    }
  });

  test("stays at the cap after so many attempts that 2^n overflows", () => {
    const backoff = new Backoff({ random: () => 0.5 });
    for (let i = 0; i < 2_000; i++) backoff.next();
    expect(backoff.next()).toBe(22_500);
  });

  test("honours custom base and cap", () => {
    expect(delays(new Backoff({ baseMs: 100, maxMs: 350, random: () => 0 }), 4)).toEqual([50, 100, 175, 175]);
  });

  test("counts attempts and starts over after reset", () => {
    const backoff = new Backoff({ random: () => 0 });
    expect(backoff.attempts).toBe(0);
    delays(backoff, 5);
    expect(backoff.attempts).toBe(5);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.next()).toBe(500);
    expect(backoff.attempts).toBe(1);
  });

  test("rejects a base that is not positive or a cap below the base", () => {
    expect(() => new Backoff({ baseMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ baseMs: Number.NaN })).toThrow(RangeError);
    expect(() => new Backoff({ baseMs: 1_000, maxMs: 999 })).toThrow(RangeError);
    expect(() => new Backoff({ maxMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});
