// Replaces a private file so that a crash or a concurrent reader sees the old contents or the
// new, never half of either: write a temp file (0600), fsync, rename over, fsync the directory.

import { chmod, open, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";

export async function writeFileAtomically(path: string, contents: string): Promise<void> {
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
