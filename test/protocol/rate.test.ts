// TokenBucket, the one rate rule both ends use: the server to refuse a flood, the client to pace
// itself under the rate the server advertised.

import { describe, expect, test } from "bun:test";
import { TokenBucket } from "../../src/protocol/rate.ts";

describe("TokenBucket", () => {
  test("starts full: a burst goes through at once, the next take fails", () => {
    const bucket = new TokenBucket(10, 3, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([true, true, true]);
    expect(bucket.take(0)).toBe(false);
  });

  test("refills at the rate, never past the burst", () => {
    const bucket = new TokenBucket(10, 2, 0);
    bucket.take(0);
    bucket.take(0);
    expect(bucket.take(99)).toBe(false);
    expect(bucket.take(100)).toBe(true);
    // A long quiet spell refills only up to the burst.
    const takes = [0, 1, 2].map(() => bucket.take(60_000));
    expect(takes).toEqual([true, true, false]);
  });

  test("a time earlier than the last one neither adds nor removes tokens", () => {
    const bucket = new TokenBucket(10, 1, 1_000);
    expect(bucket.take(1_000)).toBe(true);
    expect(bucket.take(500)).toBe(false);
    expect(bucket.take(1_100)).toBe(true);
  });

  test("msUntilToken says how long until take succeeds", () => {
    const bucket = new TokenBucket(4, 1, 0);
    expect(bucket.msUntilToken(0)).toBe(0);
    bucket.take(0);
    expect(bucket.msUntilToken(0)).toBe(250);
    expect(bucket.msUntilToken(100)).toBe(150);
    expect(bucket.take(249)).toBe(false);
    expect(bucket.take(250)).toBe(true);
  });

  test("msUntilToken rounds up, so waiting that long is always enough", () => {
    const bucket = new TokenBucket(3, 1, 0);
    bucket.take(0);
    const wait = bucket.msUntilToken(0);
    expect(wait).toBe(334);
    expect(bucket.take(wait)).toBe(true);
  });
});
