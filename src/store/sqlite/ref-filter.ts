// The refs that left the in-memory ref cache while still within the retry window, as Bloom
// filters: one per minute of send time, so whole minutes are dropped once the window has passed
// them. "Not there" is certain and saves the database lookup; "maybe" (a real retry, or about
// one in 28 lookups when 20,000 refs a second fill a minute's filter) asks the database. Without
// it, a server past the cache's size (100,000 refs within the window, about 170 refs a second
// sustained) looked up every new ref in SQLite.

/** Send time one filter covers. */
export const REF_FILTER_SLICE_MS = 60_000;
/** Bits per filter: 1 MiB each, allocated only for minutes in which refs were evicted. */
const FILTER_BITS = 8 * 1024 * 1024;
/** Bit positions per ref: near the best false-positive rate at 4–10 bits per ref. */
const HASHES = 4;

export class RefFilter {
  /** By minute of send time (ts / REF_FILTER_SLICE_MS); a window holds a handful. */
  private readonly slices = new Map<number, Uint32Array>();

  add(key: string, ts: number): void {
    const slice = Math.floor(ts / REF_FILTER_SLICE_MS);
    let bits = this.slices.get(slice);
    if (!bits) this.slices.set(slice, (bits = new Uint32Array(FILTER_BITS / 32)));
    const h1 = hash(key);
    const h2 = step(h1);
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + i * h2) % FILTER_BITS;
      bits[bit >>> 5]! |= 1 << (bit & 31);
    }
  }

  /** Whether a ref sent at `since` or later may be in the filter; forgets minutes before `since`. */
  mightHold(key: string, since: number): boolean {
    if (this.slices.size === 0) return false;
    const first = Math.floor(since / REF_FILTER_SLICE_MS);
    const h1 = hash(key);
    const h2 = step(h1);
    let found = false;
    for (const [slice, bits] of this.slices) {
      if (slice < first) {
        this.slices.delete(slice);
        continue;
      }
      let all = true;
      for (let i = 0; i < HASHES && all; i++) {
        const bit = (h1 + i * h2) % FILTER_BITS;
        all = (bits[bit >>> 5]! & (1 << (bit & 31))) !== 0;
      }
      found ||= all;
    }
    return found;
  }
}

function hash(key: string): number {
  return Bun.hash.murmur32v3(key, 0) >>> 0;
}

/**
 * The double-hashing step, mixed from the hash itself (murmur3's finaliser) rather than a second
 * pass over the key: keys with equal hashes, 1 in 2^32, share all their bits anyway. Odd, so the
 * positions of one key differ.
 */
function step(h1: number): number {
  let h = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) | 1) >>> 0;
}
