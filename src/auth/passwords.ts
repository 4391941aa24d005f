// Password hashing with argon2id as a PHC string. Hashes run on Bun's worker threads, and a
// bounded number at a time, so a login storm cannot starve message relaying of CPU and a flood
// of logins is refused (`server_busy`) instead of queueing without bound.

import { ChatError } from "../protocol/errors.ts";

/**
 * OWASP's first recommended argon2id setting (19 MiB, 2 passes, 1 lane): about 35 ms on this
 * machine's cores. Stored hashes carry their own parameters, so raising these later still
 * verifies old hashes.
 */
export const ARGON2_MEMORY_KIB = 19_456;
export const ARGON2_TIME_COST = 2;

/**
 * Each call may pass the requester's AbortSignal: work still queued when its connection has gone
 * is dropped instead of burning ~35 ms of CPU for nobody.
 */
export interface PasswordHasher {
  hash(password: string, signal?: AbortSignal): Promise<string>;
  verify(password: string, phc: string, signal?: AbortSignal): Promise<boolean>;
  /** Burns the same time as a real verification, for logins of users that do not exist. */
  verifyDummy(password: string, signal?: AbortSignal): Promise<false>;
}

export class BoundedHasher implements PasswordHasher {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private dummyHash: Promise<string> | undefined;

  constructor(
    private readonly maxConcurrent: number,
    private readonly maxQueued: number,
  ) {}

  hash(password: string, signal?: AbortSignal): Promise<string> {
    return this.limited(
      () => Bun.password.hash(password, { algorithm: "argon2id", memoryCost: ARGON2_MEMORY_KIB, timeCost: ARGON2_TIME_COST }),
      signal,
    );
  }

  verify(password: string, phc: string, signal?: AbortSignal): Promise<boolean> {
    return this.limited(() => Bun.password.verify(password, phc), signal);
  }

  async verifyDummy(password: string, signal?: AbortSignal): Promise<false> {
    await this.verify(password, await this.warmUp(), signal);
    return false;
  }

  /** Computes the dummy hash ahead of the first unknown-user login, off the start-up path. */
  warmUp(): Promise<string> {
    this.dummyHash ??= this.hash(crypto.randomUUID()).catch((error: unknown) => {
      this.dummyHash = undefined; // Try again at the next unknown-user login.
      throw error;
    });
    return this.dummyHash;
  }

  private async limited<T>(work: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        throw new ChatError("server_busy", "Too many logins in progress; try again shortly");
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running += 1;
    }
    try {
      if (signal?.aborted) throw new ChatError("timeout", "The connection closed before its turn came");
      return await work();
    } finally {
      // Hand the slot straight to the next waiter so `running` never dips and lets a newcomer jump the queue.
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}
