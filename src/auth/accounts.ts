// Account operations behind the wire protocol: registration, password and token logins, and
// password changes. Unknown users and wrong passwords take the same path and the same time.

import type { Accounts, LoginResult } from "../core/session.ts";
import { ChatError } from "../protocol/errors.ts";
import { checkPassword, checkUsername, MAX_PASSWORD_BYTES, userKey, USERNAME_PATTERN } from "../protocol/validate.ts";
import { BoundedHasher, type PasswordHasher } from "./passwords.ts";
import type { ThrottlePolicy } from "../core/limits.ts";
import { LoginThrottle } from "./throttle.ts";
import { Slots } from "./slots.ts";
import { checkToken, issueToken, tokenRefusal } from "./tokens.ts";
import type { UserStore } from "./store.ts";

export interface AccountPolicy {
  tokenTtlMs: number;
  /** Password checks running at once for one client address. */
  maxLoginsPerAddress: number;
  now: () => number;
}

/** The server's limits on password checking: the hasher's sizes and the failed-login throttle. */
export interface LoginLimits {
  maxConcurrentHashes: number;
  maxQueuedHashes: number;
  throttle: ThrottlePolicy;
}

/**
 * The one way to build the account service, so an account created by the server and one created
 * offline in its store file go through the same checks, hashing and name reservation. The hasher
 * comes back too, for the server to warm up.
 */
export function createAccountService(store: UserStore, limits: LoginLimits, policy: AccountPolicy): { accounts: AccountService; hasher: BoundedHasher } {
  const hasher = new BoundedHasher(limits.maxConcurrentHashes, limits.maxQueuedHashes);
  const accounts = new AccountService(store, hasher, new LoginThrottle(limits.throttle, policy.now), policy);
  return { accounts, hasher };
}

const AUTH_FAILED = "Wrong username or password";
/** Longest string used as a throttle key for a name that is not even valid. */
const MAX_THROTTLE_KEY_CHARS = 64;

export class AccountService implements Accounts {
  private readonly registering = new Set<string>();
  private readonly loginsInFlight = new Map<string, Slots>();

  constructor(
    private readonly store: UserStore,
    private readonly hasher: PasswordHasher,
    private readonly throttle: LoginThrottle,
    private readonly policy: AccountPolicy,
  ) {}

  async register(user: string, password: string, signal?: AbortSignal): Promise<string> {
    checkUsername(user);
    checkPassword(password);
    const key = userKey(user);
    // The name is reserved before the slow hash, so of two racing registrations exactly one wins.
    if (this.store.get(user) || this.registering.has(key)) {
      throw new ChatError("user_exists", `${user} is already registered`);
    }
    this.registering.add(key);
    try {
      const hash = await this.hasher.hash(password, signal);
      await this.store.add({ name: user, hash, epoch: 0, createdAt: this.policy.now() });
      return user;
    } finally {
      this.registering.delete(key);
    }
  }

  async login(user: string, password: string, address: string, signal?: AbortSignal): Promise<LoginResult> {
    const throttleKey = userKey(user).slice(0, MAX_THROTTLE_KEY_CHARS);
    const record = USERNAME_PATTERN.test(user) ? this.store.get(user) : undefined;
    const matches = await this.verifyUnderThrottle(address, throttleKey, password, record?.hash);
    if (!record || !matches) throw new ChatError("auth_failed", AUTH_FAILED);
    return { user: record.name, token: this.tokenFor(record.name, record.epoch) };
  }

  resume(user: string, token: string): LoginResult {
    const record = USERNAME_PATTERN.test(user) ? this.store.get(user) : undefined;
    if (!record) throw tokenRefusal();
    checkToken(this.store.secret, record.name, record.epoch, token, this.policy.now());
    return { user: record.name, token: this.tokenFor(record.name, record.epoch) };
  }

  async changePassword(user: string, oldPassword: string, newPassword: string, address: string, signal?: AbortSignal): Promise<string> {
    checkPassword(newPassword);
    const record = this.store.get(user);
    if (!record || !(await this.verifyUnderThrottle(address, userKey(user), oldPassword, record.hash, signal))) {
      throw new ChatError("auth_failed", "The old password is wrong");
    }
    const hash = await this.hasher.hash(newPassword, signal);
    const current = this.store.get(user) ?? record;
    const epoch = current.epoch + 1;
    await this.store.update({ ...current, hash, epoch });
    return this.tokenFor(current.name, epoch);
  }

  private tokenFor(user: string, epoch: number): string {
    return issueToken(this.store.secret, user, epoch, this.policy.now() + this.policy.tokenTtlMs);
  }

  /**
   * Verifies a password under the throttle; without a stored hash (unknown user) it burns the
   * same time on a dummy hash, so the answer's timing does not tell whether the user exists.
   */
  private async verifyUnderThrottle(address: string, throttleKey: string, password: string, hash: string | undefined, signal?: AbortSignal): Promise<boolean> {
    // A throttled attempt is refused at once, without queueing for a slot.
    this.throttle.check(address, throttleKey);
    return this.inAddressSlot(
      address,
      async () => {
        this.throttle.begin(address, throttleKey);
        let matches: boolean;
        try {
          matches = hash === undefined ? await this.hasher.verifyDummy(password, signal) : await this.verify(password, hash, signal);
        } catch (error) {
          this.throttle.finish(address, throttleKey, "unchecked");
          throw error;
        }
        this.throttle.finish(address, throttleKey, matches ? "right" : "wrong");
        return matches;
      },
      signal,
    );
  }

  /**
   * Runs `work` once fewer than `maxLoginsPerAddress` checks run for this address. People behind
   * one NAT logging in together just wait a moment; an attacker cannot have more guesses in
   * flight than the address throttle has seen fail.
   */
  private async inAddressSlot<T>(address: string, work: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    let slots = this.loginsInFlight.get(address);
    if (!slots) {
      slots = new Slots(this.policy.maxLoginsPerAddress);
      this.loginsInFlight.set(address, slots);
    }
    try {
      return await slots.run(work, signal);
    } finally {
      if (slots.idle) this.loginsInFlight.delete(address);
    }
  }

  private async verify(password: string, hash: string, signal?: AbortSignal): Promise<boolean> {
    // Passwords longer than any that can be registered cannot match; skip the work they'd cost.
    if (password.length > MAX_PASSWORD_BYTES) return false;
    try {
      return await this.hasher.verify(password, hash, signal);
    } catch (error) {
      if (error instanceof ChatError) throw error;
      return false; // An unreadable hash in the store: nobody can log in with it.
    }
  }
}
