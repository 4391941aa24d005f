// Account operations behind the wire protocol: registration, password, key and token logins,
// password changes, and the keys (client certificate fingerprints) bound to an account. Unknown
// users and wrong passwords take the same path and the same time; a login by key hashes nothing.

import type { Accounts, LoginResult, NewCredentials } from "../core/session.ts";
import { ChatError } from "../protocol/errors.ts";
import type { KeyInfo } from "../protocol/frames.ts";
import { checkPassword, checkUsername, MAX_PASSWORD_BYTES, userKey, USERNAME_PATTERN } from "../protocol/validate.ts";
import { BoundedHasher, type PasswordHasher } from "./passwords.ts";
import { KEY_LAST_USED_RESOLUTION_MS, MAX_KEYS_PER_ACCOUNT, type ThrottlePolicy } from "../core/limits.ts";
import { LoginThrottle } from "./throttle.ts";
import { Slots } from "./slots.ts";
import { checkToken, issueToken, tokenRefusal } from "./tokens.ts";
import { userExistsError, type KeyRecord, type UserRecord, type UserStore } from "./store.ts";

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
  const throttle = new LoginThrottle(store.loginCounters(limits.throttle, policy.now));
  const accounts = new AccountService(store, hasher, throttle, policy);
  return { accounts, hasher };
}

const AUTH_FAILED = "Wrong username or password";
const KEY_REFUSED = "No such account, or this connection's certificate is not one of its keys";
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

  /** At least one of the credentials must be given; `key` is the connection's certificate fingerprint. */
  async register(user: string, credentials: NewCredentials, signal?: AbortSignal): Promise<string> {
    checkUsername(user);
    if (credentials.password !== undefined) checkPassword(credentials.password);
    const name = userKey(user);
    // The name is reserved before the store is asked and before the slow hash, so of two racing
    // registrations here exactly one costs a hash; the store's add settles races between processes.
    if (this.registering.has(name)) throw userExistsError(user);
    this.registering.add(name);
    try {
      if (await this.store.get(user)) throw userExistsError(user);
      const hash = credentials.password === undefined ? {} : { hash: await this.hasher.hash(credentials.password, signal) };
      const now = this.policy.now();
      const keys = credentials.key === undefined ? [] : [{ fingerprint: credentials.key, addedAt: now, lastUsedAt: now }];
      await this.store.add({ name: user, ...hash, epoch: 0, createdAt: now, keys });
      return user;
    } finally {
      this.registering.delete(name);
    }
  }

  async login(user: string, password: string, address: string, signal?: AbortSignal): Promise<LoginResult> {
    const throttleKey = userKey(user).slice(0, MAX_THROTTLE_KEY_CHARS);
    const record = await this.find(user);
    const matches = await this.verifyUnderThrottle(address, throttleKey, password, record?.hash, signal);
    if (!record || !matches) throw new ChatError("auth_failed", AUTH_FAILED);
    return { user: record.name, token: await this.tokenFor(record.name, record.epoch) };
  }

  /**
   * Logs in with the fingerprint of the certificate the connection proved it holds: no hashing,
   * and only a failure costs anything (a count against the address).
   */
  async loginWithKey(user: string, fingerprint: string | undefined, address: string): Promise<LoginResult> {
    await this.throttle.checkAddress(address);
    if (fingerprint === undefined) {
      await this.throttle.chargeAddress(address);
      throw new ChatError("auth_failed", "This connection presented no usable client certificate");
    }
    const record = await this.find(user);
    const key = record?.keys.find((candidate) => candidate.fingerprint === fingerprint);
    if (!record || !key) {
      await this.throttle.chargeAddress(address);
      throw new ChatError("auth_failed", KEY_REFUSED);
    }
    if (this.policy.now() - key.lastUsedAt >= KEY_LAST_USED_RESOLUTION_MS) await this.noteKeyUsed(record.name, fingerprint);
    return { user: record.name, token: await this.tokenFor(record.name, record.epoch) };
  }

  async resume(user: string, token: string): Promise<LoginResult> {
    const record = await this.find(user);
    if (!record) throw tokenRefusal();
    checkToken(await this.store.secret(), record.name, record.epoch, token, this.policy.now());
    return { user: record.name, token: await this.tokenFor(record.name, record.epoch) };
  }

  /**
   * Sets a new password and revokes the account's tokens, returning a fresh one. Without
   * `oldPassword` it only sets the first password of an account that has none (the session
   * checks that it was logged in by key).
   */
  async changePassword(user: string, oldPassword: string | undefined, newPassword: string, address: string, signal?: AbortSignal): Promise<string> {
    checkPassword(newPassword);
    const record = await this.store.get(user);
    if (oldPassword === undefined) {
      if (record?.hash !== undefined) throw hasPassword();
    } else if (!record || !(await this.verifyUnderThrottle(address, userKey(user), oldPassword, record.hash, signal))) {
      throw new ChatError("auth_failed", "The old password is wrong");
    }
    const hash = await this.hasher.hash(newPassword, signal);
    const changed = await this.store.update(user, (current) => {
      // Checked again under the lock: another session may have set the first password meanwhile.
      if (oldPassword === undefined && current.hash !== undefined) throw hasPassword();
      return { ...current, hash, epoch: current.epoch + 1 };
    });
    return this.tokenFor(changed.name, changed.epoch);
  }

  /** Binds a connection's certificate to the account; binding a key it already holds changes nothing. */
  async addKey(user: string, fingerprint: string): Promise<string> {
    await this.store.update(user, (current) => {
      if (current.keys.some((key) => key.fingerprint === fingerprint)) return current;
      if (current.keys.length >= MAX_KEYS_PER_ACCOUNT) {
        throw new ChatError("not_allowed", `An account holds at most ${MAX_KEYS_PER_ACCOUNT} keys; remove one first`);
      }
      const now = this.policy.now();
      return { ...current, keys: [...current.keys, { fingerprint, addedAt: now, lastUsedAt: now }] };
    });
    return fingerprint;
  }

  async keys(user: string): Promise<KeyInfo[]> {
    return ((await this.store.get(user))?.keys ?? []).map((key) => ({ fingerprint: key.fingerprint, added: key.addedAt, last_used: key.lastUsedAt }));
  }

  /** Unbinds a key and revokes the account's tokens, returning a fresh one; the last credential stays. */
  async removeKey(user: string, fingerprint: string): Promise<string> {
    const changed = await this.store.update(user, (current) => {
      const keys = current.keys.filter((key) => key.fingerprint !== fingerprint);
      if (keys.length === current.keys.length) throw new ChatError("no_such_key", `${fingerprint} is not a key of ${current.name}`);
      if (keys.length === 0 && current.hash === undefined) {
        throw new ChatError("not_allowed", "That is the account's last way to log in; set a password or add another key first");
      }
      return { ...current, keys, epoch: current.epoch + 1 };
    });
    return this.tokenFor(changed.name, changed.epoch);
  }

  /**
   * Records a login with the key. A failed write must not fail the login over bookkeeping: the
   * next login by this key tries again.
   */
  private async noteKeyUsed(user: string, fingerprint: string): Promise<void> {
    const now = this.policy.now();
    const touch = (key: KeyRecord) => (key.fingerprint === fingerprint ? { ...key, lastUsedAt: now } : key);
    await this.store.update(user, (current) => ({ ...current, keys: current.keys.map(touch) })).catch(() => undefined);
  }

  /** The account of a name that may not even be valid (nothing to look up then). */
  private async find(user: string): Promise<UserRecord | undefined> {
    return USERNAME_PATTERN.test(user) ? this.store.get(user) : undefined;
  }

  private async tokenFor(user: string, epoch: number): Promise<string> {
    return issueToken(await this.store.secret(), user, epoch, this.policy.now() + this.policy.tokenTtlMs);
  }

  /**
   * Verifies a password under the throttle; without a stored hash (unknown user) it burns the
   * same time on a dummy hash, so the answer's timing does not tell whether the user exists.
   */
  private async verifyUnderThrottle(address: string, throttleKey: string, password: string, hash: string | undefined, signal?: AbortSignal): Promise<boolean> {
    // A throttled attempt is refused at once, without queueing for a slot.
    await this.throttle.check(address, throttleKey);
    return this.inAddressSlot(
      address,
      async () => {
        await this.throttle.begin(address, throttleKey);
        let matches: boolean;
        try {
          matches = hash === undefined ? await this.hasher.verifyDummy(password, signal) : await this.verify(password, hash, signal);
        } catch (error) {
          // The refund is a courtesy to the user; what the caller must hear is why the check failed.
          await this.throttle.finish(address, throttleKey, "unchecked").catch(() => undefined);
          throw error;
        }
        await this.throttle.finish(address, throttleKey, matches ? "right" : "wrong");
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

function hasPassword(): ChatError {
  return new ChatError("not_allowed", "This account has a password: send the old one to change it");
}
