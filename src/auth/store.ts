// The account store: a versioned JSON file, written atomically (temp file, fsync, rename, fsync
// of the directory) with mode 0600. Every write is a transaction under a lock file naming the
// writing process: re-read the file if someone else changed it, apply the change, write, unlock.
// So a running server and `tlschat register --db` can share the file without losing a write,
// and the server sees accounts added behind its back. A corrupt or unreadable file stops
// start-up and is never overwritten.

import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { writeFileAtomically } from "../files/atomic-write.ts";
import { ChatError } from "../protocol/errors.ts";
import { USERNAME_PATTERN, userKey } from "../protocol/validate.ts";

export const STORE_FORMAT = "tlschat-users";
export const STORE_VERSION = 1;
const SECRET_BYTES = 32;
/** How long a writer waits for another process's write lock before giving up. */
export const STORE_LOCK_WAIT_MS = 5_000;
const LOCK_RETRY_MS = 10;

export interface UserRecord {
  name: string;
  /** argon2id PHC string. */
  hash: string;
  /** Bumped by a password change; resume tokens carry it, so older ones stop working. */
  epoch: number;
  createdAt: number;
}

export interface UserStore {
  /** Key for resume tokens; lives in the store so tokens survive restarts. */
  readonly secret: Uint8Array;
  get(user: string): UserRecord | undefined;
  /** Resolves once the record is on disk; `user_exists` if the name is taken (any case). */
  add(record: UserRecord): Promise<void>;
  /** Replaces an existing record and resolves once it is on disk. */
  update(record: UserRecord): Promise<void>;
  readonly size: number;
  close(): Promise<void>;
}

/** Start-up problems with the store file: printed to the operator as they are. */
export class StoreError extends Error {
  override name = "StoreError";
}

interface StoreFile {
  format: typeof STORE_FORMAT;
  version: typeof STORE_VERSION;
  secret: string;
  users: UserRecord[];
}

interface Contents {
  secret: Uint8Array;
  users: Map<string, UserRecord>;
}

/** What identifies one version of the file: a rename gives a new inode, a rewrite a new mtime. */
type Stamp = string;

export interface StoreOptions {
  lockWaitMs?: number;
}

export class JsonFileStore implements UserStore {
  private transactions: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly path: string,
    private contents: Contents,
    private stamp: Stamp | undefined,
    private readonly lockWaitMs: number,
  ) {}

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
        const contents: Contents = { secret: randomBytes(SECRET_BYTES), users: new Map() };
        await writeFileAtomically(absolute, serialise(contents));
        loaded = { contents, stamp: stampOf(absolute) };
      });
    }
    return new JsonFileStore(absolute, loaded!.contents, loaded!.stamp, lockWaitMs);
  }

  get secret(): Uint8Array {
    return this.contents.secret;
  }

  get size(): number {
    return this.contents.users.size;
  }

  get(user: string): UserRecord | undefined {
    this.refresh();
    return this.contents.users.get(userKey(user));
  }

  add(record: UserRecord): Promise<void> {
    return this.transact((users) => {
      const key = userKey(record.name);
      if (users.has(key)) throw new ChatError("user_exists", `${record.name} is already registered`);
      users.set(key, record);
    });
  }

  update(record: UserRecord): Promise<void> {
    return this.transact((users) => {
      const key = userKey(record.name);
      if (!users.has(key)) throw new ChatError("no_such_user", `${record.name} is not registered`);
      users.set(key, record);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.transactions.catch(() => undefined);
  }

  /** Picks up a version of the file written by another process; keeps what it has if that version is unreadable. */
  private refresh(): void {
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
   * Runs one change under the lock against the newest file, then writes it. Transactions of
   * this store run one at a time; nothing is acknowledged before it is on disk.
   */
  private transact(change: (users: Map<string, UserRecord>) => void): Promise<void> {
    if (this.closed) return Promise.reject(new ChatError("store_unavailable", "The account store is closed"));
    const run = async () => {
      await withLock(this.path, this.lockWaitMs, async () => {
        // Always re-read under the lock: another writer may have changed the file, and a file
        // that has become unreadable must be refused, not overwritten.
        let loaded: { contents: Contents; stamp: Stamp | undefined } | undefined;
        try {
          loaded = readIfPresent(this.path);
        } catch (error) {
          throw new ChatError("store_unavailable", `The account store is unreadable, so it was not changed (${(error as Error).message})`);
        }
        if (loaded) this.contents = loaded.contents;
        const users = new Map(this.contents.users);
        change(users);
        const next = { secret: this.contents.secret, users };
        await writeFileAtomically(this.path, serialise(next));
        this.contents = next;
        this.stamp = stampOf(this.path);
      });
    };
    const result = this.transactions.then(run, run);
    this.transactions = result.catch(() => undefined);
    return result.catch((error: unknown) => {
      if (error instanceof ChatError) throw error;
      throw unavailable(error);
    });
  }
}

function unavailable(error: unknown): ChatError {
  const reason = error instanceof Error ? error.message : String(error);
  return new ChatError("store_unavailable", `The account store could not be written (${reason})`);
}

function serialise(contents: Contents): string {
  const file: StoreFile = {
    format: STORE_FORMAT,
    version: STORE_VERSION,
    secret: Buffer.from(contents.secret).toString("hex"),
    users: [...contents.users.values()],
  };
  return JSON.stringify(file, null, 2) + "\n";
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
function readIfPresent(path: string): { contents: Contents; stamp: Stamp | undefined } | undefined {
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

function parse(path: string, bytes: Uint8Array): Contents {
  const corrupt = (why: string) =>
    new StoreError(`The account store ${path} is corrupt (${why}); it was left untouched — restore it from a backup or move it away`);
  let parsed: unknown;
  try {
    // Fatal decoding: a lenient one would turn bad bytes into U+FFFD and the next write would
    // make that loss permanent.
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw corrupt("not valid UTF-8 JSON");
  }
  if (typeof parsed !== "object" || parsed === null) throw corrupt("not a JSON object");
  const file = parsed as Partial<StoreFile>;
  if (file.format !== STORE_FORMAT) throw corrupt(`"format" is not "${STORE_FORMAT}"`);
  if (file.version !== STORE_VERSION) throw corrupt(`unsupported version ${JSON.stringify(file.version)}`);
  if (typeof file.secret !== "string" || !/^[0-9a-f]{64}$/.test(file.secret)) throw corrupt("bad secret");
  if (!Array.isArray(file.users)) throw corrupt('"users" is not an array');
  const users = new Map<string, UserRecord>();
  for (const entry of file.users as unknown[]) {
    const record = entry as Partial<UserRecord> | null;
    if (
      typeof record !== "object" ||
      record === null ||
      typeof record.name !== "string" ||
      !USERNAME_PATTERN.test(record.name) ||
      typeof record.hash !== "string" ||
      !Number.isSafeInteger(record.epoch) ||
      !Number.isSafeInteger(record.createdAt)
    ) {
      throw corrupt("a user entry is malformed");
    }
    const key = userKey(record.name);
    if (users.has(key)) throw corrupt(`${record.name} appears twice`);
    users.set(key, { name: record.name, hash: record.hash, epoch: record.epoch!, createdAt: record.createdAt! });
  }
  return { secret: Buffer.from(file.secret, "hex"), users };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `work` holding `<store>.lock`. A lock whose owner has died (SIGKILL, power loss) is taken
 * over; one held by a live process is waited for, up to `waitMs`.
 */
async function withLock(storePath: string, waitMs: number, work: () => Promise<void>): Promise<void> {
  const lockPath = `${storePath}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lockPath, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new StoreError(`Cannot lock the account store ${storePath}: ${(error as Error).message}`);
      }
    }
    let owner = Number.NaN;
    try {
      owner = Number.parseInt(readFileSync(lockPath, "utf8"), 10);
    } catch {
      continue; // Released between our attempt and this read: try again.
    }
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && !isAlive(owner)) {
      unlinkSync(lockPath);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new StoreError(`The account store ${storePath} stayed locked by process ${owner} for ${waitMs} ms`);
    }
    await Bun.sleep(LOCK_RETRY_MS);
  }
  try {
    await work();
  } finally {
    try {
      unlinkSync(lockPath);
    } catch {
      // Already gone: nothing to release.
    }
  }
}
