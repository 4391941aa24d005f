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

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, phc: string): Promise<boolean>;
  /** Burns the same time as a real verification, for logins of users that do not exist. */
  verifyDummy(password: string): Promise<false>;
}

export class BoundedHasher implements PasswordHasher {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private dummyHash: Promise<string> | undefined;

  constructor(
    private readonly maxConcurrent: number,
    private readonly maxQueued: number,
  ) {}

  hash(password: string): Promise<string> {
    return this.limited(() =>
      Bun.password.hash(password, { algorithm: "argon2id", memoryCost: ARGON2_MEMORY_KIB, timeCost: ARGON2_TIME_COST }),
    );
  }

  verify(password: string, phc: string): Promise<boolean> {
    return this.limited(() => Bun.password.verify(password, phc));
  }

  async verifyDummy(password: string): Promise<false> {
    this.dummyHash ??= this.hash(crypto.randomUUID());
    await this.verify(password, await this.dummyHash);
    return false;
  }

  /** Computes the dummy hash ahead of the first unknown-user login, off the start-up path. */
  warmUp(): void {
    this.dummyHash ??= this.hash(crypto.randomUUID());
  }

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        throw new ChatError("server_busy", "Too many logins in progress; try again shortly");
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running += 1;
    }
    try {
      return await work();
    } finally {
      // Hand the slot straight to the next waiter so `running` never dips and lets a newcomer jump the queue.
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}
