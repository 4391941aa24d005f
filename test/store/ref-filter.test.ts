// store/sqlite/ref-filter.ts: a ref added is always reported (no false negatives) while its minute
// is within the window, false positives stay rare, and minutes before the window are forgotten.

import { describe, expect, test } from "bun:test";
import { REF_FILTER_SLICE_MS, RefFilter } from "../../src/store/sqlite/ref-filter.ts";

/** The start of a minute, so that T0 + k minutes starts minute k. */
const T0 = Math.floor(1_700_000_000_000 / REF_FILTER_SLICE_MS) * REF_FILTER_SLICE_MS;

describe("RefFilter", () => {
  test("every ref added is held; refs never added rarely seem to be", () => {
    const filter = new RefFilter();
    for (let i = 0; i < 50_000; i++) filter.add(`alice\nref-${i}`, T0 + i);
    for (let i = 0; i < 50_000; i++) expect(filter.mightHold(`alice\nref-${i}`, T0)).toBe(true);
    let falsePositives = 0;
    for (let i = 0; i < 50_000; i++) if (filter.mightHold(`bob\nref-${i}`, T0)) falsePositives += 1;
    expect(falsePositives).toBeLessThan(50);
  });

  test("filled with a minute at 20,000 refs a second, about 1 lookup in 28 is a false positive, as four hashes into 8 Mi bits should give", () => {
    const filter = new RefFilter();
    const refs = 20_000 * 60;
    for (let i = 0; i < refs; i++) filter.add(`u${i % 10}\nr${i}`, T0 + (i % REF_FILTER_SLICE_MS));
    const lookups = 100_000;
    let falsePositives = 0;
    for (let i = 0; i < lookups; i++) if (filter.mightHold(`u${i % 10}\nnew-${i}`, T0)) falsePositives += 1;
    // (1 - e^(-4 * refs / 2^23))^4 = 0.0357; hashes that were not independent enough would show
    // up as a higher rate.
    expect(falsePositives / lookups).toBeGreaterThan(0.03);
    expect(falsePositives / lookups).toBeLessThan(0.042);
  });

  test("minutes wholly before `since` are forgotten; the minute `since` falls in is kept", () => {
    const filter = new RefFilter();
    filter.add("alice\nold", T0);
    filter.add("alice\nnew", T0 + 2 * REF_FILTER_SLICE_MS);
    expect(filter.mightHold("alice\nold", T0)).toBe(true);
    expect(filter.mightHold("alice\nold", T0 + REF_FILTER_SLICE_MS)).toBe(false);
    // Forgotten for good, even when asked about an earlier time again.
    expect(filter.mightHold("alice\nold", T0)).toBe(false);
    expect(filter.mightHold("alice\nnew", T0 + 2 * REF_FILTER_SLICE_MS + REF_FILTER_SLICE_MS - 1)).toBe(true);
  });
});
