// A token bucket: a steady rate with a burst allowance, so pasting a few lines is fine but a
// sustained flood is not. Pure arithmetic over the times it is given, so the server can enforce
// the advertised rate and the client can pace itself under it with the same rule.

export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  /** Starts full; `now` and every later time are in milliseconds. */
  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until `take` can succeed; 0 when a token is there now. */
  msUntilToken(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSec);
  }

  private refill(now: number): void {
    const elapsed = now - this.updatedAt;
    if (elapsed <= 0) return;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSec) / 1000);
    this.updatedAt = now;
  }
}
