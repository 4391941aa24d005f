// The account store: a versioned JSON file, written atomically (temp file, fsync, rename, fsync
// of the directory) with mode 0600, writes serialised and coalesced. The file is guarded by a
// lock file naming the owning process, so a server and `register --db` never both write it.
// A corrupt or unreadable file stops start-up and is never overwritten.

import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { chmod, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ChatError } from "../protocol/errors.ts";
import { USERNAME_PATTERN, userKey } from "../protocol/validate.ts";

export const STORE_FORMAT = "tlschat-users";
export const STORE_VERSION = 1;
const SECRET_BYTES = 32;

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

const locksHeldHere = new Set<string>();

export class JsonFileStore implements UserStore {
  private writing: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private closed = false;

  private constructor(
    readonly path: string,
    readonly secret: Uint8Array,
    private readonly users: Map<string, UserRecord>,
    private readonly lockPath: string,
  ) {}

  /** Opens (creating if missing) the store at `path` and takes its lock. */
  static async open(path: string): Promise<JsonFileStore> {
    const absolute = resolve(path);
    await mkdir(dirname(absolute), { recursive: true, mode: 0o700 });
    const lockPath = `${absolute}.lock`;
    takeLock(lockPath, absolute);
    try {
      const loaded = await load(absolute);
      const store = new JsonFileStore(absolute, loaded.secret, loaded.users, lockPath);
      if (loaded.created) await store.persist();
      return store;
    } catch (error) {
      releaseLock(lockPath);
      throw error;
    }
  }

  get size(): number {
    return this.users.size;
  }

  get(user: string): UserRecord | undefined {
    return this.users.get(userKey(user));
  }

  async add(record: UserRecord): Promise<void> {
    const key = userKey(record.name);
    if (this.users.has(key)) throw new ChatError("user_exists", `${record.name} is already registered`);
    this.users.set(key, record);
    try {
      await this.persist();
    } catch (error) {
      // Never acknowledge what is not on disk: forget the record, report the store as down.
      if (this.users.get(key) === record) this.users.delete(key);
      throw unavailable(error);
    }
  }

  async update(record: UserRecord): Promise<void> {
    const key = userKey(record.name);
    const previous = this.users.get(key);
    if (!previous) throw new ChatError("no_such_user", `${record.name} is not registered`);
    this.users.set(key, record);
    try {
      await this.persist();
    } catch (error) {
      if (this.users.get(key) === record) this.users.set(key, previous);
      throw unavailable(error);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.writing, this.queued]);
    releaseLock(this.lockPath);
  }

  /**
   * Writes the current state. Concurrent callers share writes: while one is in progress at
   * most one more is queued, and it captures every change made before it starts.
   */
  private persist(): Promise<void> {
    if (this.closed) return Promise.reject(new Error("store is closed"));
    if (this.queued) return this.queued;
    if (!this.writing) return this.startWrite();
    const queued = this.writing
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.startWrite();
      });
    this.queued = queued;
    return queued;
  }

  private startWrite(): Promise<void> {
    const write = writeAtomically(this.path, this.serialise()).finally(() => {
      if (this.writing === write) this.writing = undefined;
    });
    this.writing = write;
    return write;
  }

  private serialise(): string {
    const file: StoreFile = {
      format: STORE_FORMAT,
      version: STORE_VERSION,
      secret: Buffer.from(this.secret).toString("hex"),
      users: [...this.users.values()],
    };
    return JSON.stringify(file, null, 2) + "\n";
  }
}

function unavailable(error: unknown): ChatError {
  const reason = error instanceof Error ? error.message : String(error);
  return new ChatError("store_unavailable", `The account store could not be written (${reason})`);
}

async function writeAtomically(path: string, contents: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  const file = await open(temp, "w", 0o600);
  try {
    await file.writeFile(contents);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    // A pre-existing temp file keeps its old mode; make sure it is private before it goes live.
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  const directory = await open(dirname(path), "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

async function load(path: string): Promise<{ secret: Uint8Array; users: Map<string, UserRecord>; created: boolean }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return { secret: randomBytes(SECRET_BYTES), users: new Map(), created: true };
    }
    throw new StoreError(`Cannot read the account store ${path}: ${(error as Error).message}`);
  }
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
  return { secret: Buffer.from(file.secret, "hex"), users, created: false };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function takeLock(lockPath: string, storePath: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      locksHeldHere.add(lockPath);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new StoreError(`Cannot lock the account store ${storePath}: ${(error as Error).message}`);
      }
    }
    let owner: number;
    try {
      owner = Number.parseInt(readFileSync(lockPath, "utf8"), 10);
    } catch {
      continue; // Released between our attempt and this read: try again.
    }
    const heldByLiveProcess =
      Number.isSafeInteger(owner) && owner > 0 && (owner === process.pid ? locksHeldHere.has(lockPath) : isAlive(owner));
    if (heldByLiveProcess) {
      throw new StoreError(
        `The account store ${storePath} is in use by process ${owner} (a running tlschat server?); ` +
          `register over the network, or stop that process first`,
      );
    }
    // The owner died without cleaning up (SIGKILL, power loss): the lock is stale.
    unlinkSync(lockPath);
  }
  throw new StoreError(`Cannot lock the account store ${storePath}: another process keeps taking the lock`);
}

function releaseLock(lockPath: string): void {
  if (!locksHeldHere.delete(lockPath)) return;
  try {
    unlinkSync(lockPath);
  } catch {
    // Already gone: nothing to release.
  }
}
