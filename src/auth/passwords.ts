// Password hashing with argon2id as a PHC string. Hashes run on Bun's worker threads, and a
// bounded number at a time, so a login storm cannot starve message relaying of CPU and a flood
// of logins is refused (`server_busy`) instead of queueing without bound.

import { Slots } from "./slots.ts";

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
  private readonly slots: Slots;
  private dummyHash: Promise<string> | undefined;

  constructor(maxConcurrent: number, maxQueued: number) {
    this.slots = new Slots(maxConcurrent, maxQueued);
  }

  hash(password: string, signal?: AbortSignal): Promise<string> {
    return this.slots.run(
      () => Bun.password.hash(password, { algorithm: "argon2id", memoryCost: ARGON2_MEMORY_KIB, timeCost: ARGON2_TIME_COST }),
      signal,
    );
  }

  verify(password: string, phc: string, signal?: AbortSignal): Promise<boolean> {
    return this.slots.run(() => Bun.password.verify(password, phc), signal);
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
}
