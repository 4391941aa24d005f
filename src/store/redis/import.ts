// Moving an embedded server's accounts into a cluster: every account of the JSON store is copied
// into Redis as it is (same PHC hash, epoch, keys and times), and so is the token secret, so
// passwords, keys and the resume tokens clients hold keep working. Safe to run again: what Redis
// already has is left alone and reported, never overwritten.

import { ChatError } from "../../protocol/errors.ts";
import type { JsonFileStore } from "../../auth/store.ts";
import type { RedisUserStore } from "./accounts.ts";

export interface AccountImport {
  /** Names of the accounts copied. */
  imported: string[];
  /** Accounts left out: the name is taken in Redis, or one of its keys belongs to an account there. */
  skipped: Array<{ name: string; reason: "user_exists" | "key_in_use" }>;
  /**
   * Whether Redis now has the file's token secret. False when it already had its own, which it
   * keeps: then resume tokens issued by the embedded server are refused and their clients log in
   * again with a password or key.
   */
  secretCopied: boolean;
}

export async function importAccounts(from: JsonFileStore, to: RedisUserStore): Promise<AccountImport> {
  const secretCopied = await to.adoptSecret(await from.secret());
  const result: AccountImport = { imported: [], skipped: [], secretCopied };
  // One at a time: an import runs once, and a burst of thousands of scripts in flight would only
  // press on the command deadline of a link other work shares.
  for (const record of from.records()) {
    try {
      await to.add(record);
      result.imported.push(record.name);
    } catch (error) {
      if (!(error instanceof ChatError) || (error.code !== "user_exists" && error.code !== "key_in_use")) throw error;
      result.skipped.push({ name: record.name, reason: error.code });
    }
  }
  return result;
}
