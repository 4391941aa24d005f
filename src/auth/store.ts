// The account store: the UserStore interface the account service uses (Redis implements it for a
// cluster, store/redis/accounts.ts), and JsonFileStore, which keeps it in one JSON file (store-format.ts) written atomically (temp file, fsync, rename, fsync
// of the directory) with mode 0600. Every write is a transaction under the lock file
// (store-lock.ts): re-read the file if someone else changed it, apply the changes queued since
// the last write (group commit), write, unlock.
// So a running server and `tlschat register --db` can share the file without losing a write,
// and the server sees accounts added behind its back. A corrupt or unreadable file stops
// start-up and is never overwritten.

import { readFileSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { writeFileAtomically } from "../files/atomic-write.ts";
import type { ThrottlePolicy } from "../core/limits.ts";
import { ChatError } from "../protocol/errors.ts";
import { userKey } from "../protocol/validate.ts";
import { MemoryThrottleCounters, type ThrottleCounters } from "./throttle.ts";
import { emptyContents, parse, serialise, StoreError, type StoreContents, type UserRecord } from "./store-format.ts";
import { STORE_LOCK_WAIT_MS, withLock } from "./store-lock.ts";

export { StoreError, type KeyRecord, type UserRecord } from "./store-format.ts";

/**
 * How long a record found in memory may be served without looking at the file again. Only
 * changes made by another process can be missed meanwhile, and an offline `register` only adds
 * accounts, which a miss picks up at once.
 */
export const STORE_REFRESH_MS = 1_000;

/**
 * Asynchronous throughout: a store in Redis answers over the network. Every write is atomic
 * against writers elsewhere (another process on the file, another node on Redis).
 */
export interface UserStore {
  /**
   * Key for resume tokens; lives in the store so tokens survive restarts and, in a cluster, a
   * token one node issued resumes on every other.
   */
  secret(): Promise<Uint8Array>;
  /** The record of `user` in any case, or undefined if there is no such account. */
  get(user: string): Promise<UserRecord | undefined>;
  /**
   * Resolves once the record is on disk; `user_exists` if the name is taken (any case),
   * `key_in_use` if one of its keys belongs to another account.
   */
  add(record: UserRecord): Promise<void>;
  /**
   * Applies `change` to the newest version of the user's record, under the lock, and resolves
   * with the result once it is on disk. `change` may throw a ChatError to refuse; `no_such_user`
   * if the account is gone, `key_in_use` if the result holds a key of another account.
   */
  update(user: string, change: (current: UserRecord) => UserRecord): Promise<UserRecord>;
  /** Where failed logins are counted: shared by everyone who serves this store's accounts. */
  loginCounters(policy: ThrottlePolicy, now: () => number): ThrottleCounters;
  close(): Promise<void>;
}

/** What identifies one version of the file: a rename gives a new inode, a rewrite a new mtime. */
type Stamp = string;

interface Loaded {
  contents: StoreContents;
  stamp: Stamp | undefined;
}

export interface StoreOptions {
  lockWaitMs?: number;
  /** Monotonic milliseconds, for STORE_REFRESH_MS; a wall clock set back would stall refreshes. */
  now?: () => number;
}

interface QueuedChange {
  change: (accounts: StagedAccounts) => unknown;
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

export class JsonFileStore implements UserStore {
  private queued: QueuedChange[] = [];
  /** The write loop, while one runs. */
  private writing: Promise<void> | undefined;
  private closed = false;
  private lookedAt: number;

  private constructor(
    readonly path: string,
    private contents: StoreContents,
    private stamp: Stamp | undefined,
    private readonly lockWaitMs: number,
    private readonly now: () => number,
  ) {
    this.lookedAt = now();
  }

  /** Opens the store at `path`, creating it (with a new token secret) if it does not exist. */
  static async open(path: string, options: StoreOptions = {}): Promise<JsonFileStore> {
    const absolute = resolve(path);
    await mkdir(dirname(absolute), { recursive: true, mode: 0o700 });
    const lockWaitMs = options.lockWaitMs ?? STORE_LOCK_WAIT_MS;
    let loaded = readIfPresent(absolute);
    if (!loaded) {
      // Create under the lock, so two processes starting at once agree on one secret.
      await withLock(absolute, lockWaitMs, async () => {
        loaded = readIfPresent(absolute);
        if (loaded) return;
        const contents = emptyContents();
        await writeFileAtomically(absolute, serialise(contents));
        loaded = { contents, stamp: stampOf(absolute) };
      });
    }
    return new JsonFileStore(absolute, loaded!.contents, loaded!.stamp, lockWaitMs, options.now ?? (() => performance.now()));
  }

  async secret(): Promise<Uint8Array> {
    return this.contents.secret;
  }

  get size(): number {
    return this.contents.users.size;
  }

  /**
   * Logins and resumes call this; it looks at the file on a miss and at most once per
   * STORE_REFRESH_MS on a hit, so it answers from memory (a resolved promise) almost always.
   */
  async get(user: string): Promise<UserRecord | undefined> {
    const key = userKey(user);
    if (!this.contents.users.has(key) || this.now() - this.lookedAt >= STORE_REFRESH_MS) this.refresh();
    return this.contents.users.get(key);
  }

  /** Every account as the file holds them now (for copying them elsewhere). */
  records(): UserRecord[] {
    this.refresh();
    return [...this.contents.users.values()];
  }

  /** One process serves a file store, so its failed logins are counted in that process's memory. */
  loginCounters(policy: ThrottlePolicy, now: () => number): ThrottleCounters {
    return new MemoryThrottleCounters(policy, now);
  }

  add(record: UserRecord): Promise<void> {
    return this.transact((accounts) => {
      const key = userKey(record.name);
      if (accounts.get(key)) throw userExistsError(record.name);
      accounts.put(key, record);
    });
  }

  update(user: string, change: (current: UserRecord) => UserRecord): Promise<UserRecord> {
    return this.transact((accounts) => {
      const key = userKey(user);
      const current = accounts.get(key);
      if (!current) throw noSuchUserError(user);
      const next = change(current);
      accounts.put(key, next);
      return next;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.writing;
  }

  /** Picks up a version of the file written by another process; keeps what it has if that version is unreadable. */
  private refresh(): void {
    this.lookedAt = this.now();
    const current = stampOf(this.path);
    if (current === this.stamp) return;
    try {
      const loaded = readIfPresent(this.path);
      if (loaded) this.contents = loaded.contents;
    } catch {
      // A corrupt file is refused by the next write; until then the last good view serves.
    }
    this.stamp = current;
  }

  /**
   * Queues one change to run under the lock against the newest file. Changes are group-committed:
   * those queued while a write is under way go into the next write together, so a burst (a
   * storm of first logins by key, each noting its key's use) costs a few writes, not one each.
   * Nothing is acknowledged before it is on disk. A change that throws fails alone (it must
   * throw before it puts anything), and the others in its write go ahead.
   */
  private transact<T>(change: (accounts: StagedAccounts) => T): Promise<T> {
    if (this.closed) return Promise.reject(new ChatError("store_unavailable", "The account store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.queued.push({ change, resolve: resolve as (result: unknown) => void, reject });
      this.writing ??= this.writeQueued();
    });
  }

  private async writeQueued(): Promise<void> {
    while (this.queued.length > 0) {
      const batch = this.queued.splice(0);
      const outcomes: Array<{ ok: true; result: unknown } | { ok: false; error: unknown }> = [];
      try {
        await withLock(this.path, this.lockWaitMs, async () => {
          // Always re-read under the lock: another writer may have changed the file, and a file
          // that has become unreadable must be refused, not overwritten.
          let loaded: Loaded | undefined;
          try {
            loaded = readIfPresent(this.path);
          } catch (error) {
            throw new ChatError("store_unavailable", `The account store is unreadable, so it was not changed (${(error as Error).message})`);
          }
          if (loaded) this.contents = loaded.contents;
          const users = new Map(this.contents.users);
          const accounts = new StagedAccounts(users);
          for (const { change } of batch) {
            try {
              outcomes.push({ ok: true, result: change(accounts) });
            } catch (error) {
              outcomes.push({ ok: false, error });
            }
          }
          if (outcomes.some((outcome) => outcome.ok)) {
            const next = { secret: this.contents.secret, users };
            await writeFileAtomically(this.path, serialise(next));
            this.contents = next;
            this.stamp = stampOf(this.path);
          }
          this.lookedAt = this.now();
        });
      } catch (error) {
        const failure = error instanceof ChatError ? error : unavailable(error);
        for (const { reject } of batch) reject(failure);
        continue;
      }
      batch.forEach(({ resolve, reject }, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) resolve(outcome.result);
        else reject(outcome.error instanceof ChatError ? outcome.error : unavailable(outcome.error));
      });
    }
    // Cleared in the same turn as the last check of the queue: a change queued by code the last
    // results resumed finds no loop running and starts one.
    this.writing = undefined;
  }
}

/**
 * The accounts one write changes, with an index of which account holds each key, so that
 * keeping a key to one account does not scan every account for every change.
 */
class StagedAccounts {
  private readonly keyOwners = new Map<string, string>();

  constructor(private readonly users: Map<string, UserRecord>) {
    for (const [name, record] of users) for (const key of record.keys) this.keyOwners.set(key.fingerprint, name);
  }

  get(name: string): UserRecord | undefined {
    return this.users.get(name);
  }

  /** Stores `record` under `name`; `key_in_use`, with nothing changed, if it holds another account's key. */
  put(name: string, record: UserRecord): void {
    const taken = record.keys.find((key) => (this.keyOwners.get(key.fingerprint) ?? name) !== name);
    if (taken) throw keyInUseError(taken.fingerprint);
    for (const key of this.users.get(name)?.keys ?? []) this.keyOwners.delete(key.fingerprint);
    for (const key of record.keys) this.keyOwners.set(key.fingerprint, name);
    this.users.set(name, record);
  }
}

// The refusals every UserStore words the same way.

export function userExistsError(name: string): ChatError {
  return new ChatError("user_exists", `${name} is already registered`);
}

export function noSuchUserError(name: string): ChatError {
  return new ChatError("no_such_user", `${name} is not registered`);
}

export function keyInUseError(fingerprint: string): ChatError {
  return new ChatError("key_in_use", `The key ${fingerprint} belongs to another account`);
}

function unavailable(error: unknown): ChatError {
  const reason = error instanceof Error ? error.message : String(error);
  return new ChatError("store_unavailable", `The account store could not be written (${reason})`);
}

function stampOf(path: string): Stamp | undefined {
  try {
    const stat = statSync(path, { bigint: true });
    return `${stat.ino}:${stat.size}:${stat.mtimeNs}`;
  } catch {
    return undefined;
  }
}

/** Reads and validates the file; undefined if it does not exist, a StoreError if it is unusable. */
function readIfPresent(path: string): Loaded | undefined {
  const stamp = stampOf(path);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new StoreError(`Cannot read the account store ${path}: ${(error as Error).message}`);
  }
  return { contents: parse(path, bytes), stamp };
}
