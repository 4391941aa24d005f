// The account store's file format: versioned JSON holding the token secret and the user records,
// and its validation. Knows bytes and records only; reading, writing and locking the file are
// store.ts's and store-lock.ts's.

import { randomBytes } from "node:crypto";
import { USERNAME_PATTERN, userKey } from "../protocol/validate.ts";

const STORE_FORMAT = "tlschat-users";
const STORE_VERSION = 1;
const SECRET_BYTES = 32;
const SECRET_PATTERN = new RegExp(`^[0-9a-f]{${SECRET_BYTES * 2}}$`);

export interface UserRecord {
  name: string;
  /** argon2id PHC string. */
  hash: string;
  /** Bumped by a password change; resume tokens carry it, so older ones stop working. */
  epoch: number;
  createdAt: number;
}

/** The store file cannot be used (unreadable, corrupt, locked): start-up stops, and the operator sees the message as it is. */
export class StoreError extends Error {
  override name = "StoreError";
}

export interface StoreContents {
  secret: Uint8Array;
  /** Keyed by userKey, so names differing only in case are one account. */
  users: Map<string, UserRecord>;
}

interface StoreFile {
  format: typeof STORE_FORMAT;
  version: typeof STORE_VERSION;
  secret: string;
  users: UserRecord[];
}

/** A new store: no users and a fresh token secret. */
export function emptyContents(): StoreContents {
  return { secret: randomBytes(SECRET_BYTES), users: new Map() };
}

export function serialise(contents: StoreContents): string {
  const file: StoreFile = {
    format: STORE_FORMAT,
    version: STORE_VERSION,
    secret: Buffer.from(contents.secret).toString("hex"),
    users: [...contents.users.values()],
  };
  return JSON.stringify(file, null, 2) + "\n";
}

/** Validates the whole file; a StoreError naming `path` and the first problem if it is not a store. */
export function parse(path: string, bytes: Uint8Array): StoreContents {
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
  if (typeof file.secret !== "string" || !SECRET_PATTERN.test(file.secret)) throw corrupt("bad secret");
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
