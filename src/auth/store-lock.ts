// The account store's lock file, `<store>.lock`, naming the process that holds it: how a server
// and an offline `register` take turns writing one store. Knows nothing of what the store holds.

import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { StoreError } from "./store-format.ts";

/** How long a writer waits for another process's write lock before giving up. */
export const STORE_LOCK_WAIT_MS = 5_000;
/** Pause between attempts to take a lock another process holds. */
const LOCK_RETRY_MS = 10;

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
export async function withLock<T>(storePath: string, waitMs: number, work: () => Promise<T>): Promise<T> {
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
    return await work();
  } finally {
    try {
      unlinkSync(lockPath);
    } catch {
      // Already gone: nothing to release.
    }
  }
}
