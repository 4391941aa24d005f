// The account store's file format: versioned JSON holding the token secret and the user records,
// the numbered migrations that bring an older file up to date, and its validation. Knows bytes
// and records only; reading, writing and locking the file are store.ts's and store-lock.ts's.

import { randomBytes } from "node:crypto";
import { FINGERPRINT_PATTERN, USERNAME_PATTERN, userKey } from "../protocol/validate.ts";

const STORE_FORMAT = "tlschat-users";
/** The version this tlschat writes; it reads every version from 1 up to this one. */
export const STORE_VERSION = 2;
const SECRET_BYTES = 32;
/** The token secret as text: lower-case hex, in the file and in Redis alike. */
export const SECRET_PATTERN = new RegExp(`^[0-9a-f]{${SECRET_BYTES * 2}}$`);

/** A client certificate bound to an account: the account's key. */
export interface KeyRecord {
  /** SHA-256 of the certificate, upper-case colon hex; bound to one account at most. */
  fingerprint: string;
  addedAt: number;
  /** Moved forward by a login with the key, at most once per KEY_LAST_USED_RESOLUTION_MS. */
  lastUsedAt: number;
}

export interface UserRecord {
  name: string;
  /** argon2id PHC string; absent when the account's only credentials are keys. */
  hash?: string;
  /** Bumped by a password change or a key removal; resume tokens carry it, so older ones stop working. */
  epoch: number;
  createdAt: number;
  keys: KeyRecord[];
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
  version: number;
  secret: string;
  users: UserRecord[];
}

/** A fresh resume-token secret. */
export function newSecret(): Uint8Array {
  return randomBytes(SECRET_BYTES);
}

/** A new store: no users and a fresh token secret. */
export function emptyContents(): StoreContents {
  return { secret: newSecret(), users: new Map() };
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

type Migration = (users: unknown[]) => unknown[];

/**
 * MIGRATIONS[n] turns the users of a version-n file into those of version n + 1. A file is
 * migrated in memory when it is read and written at STORE_VERSION by the next change, so an
 * older tlschat cannot read it afterwards.
 */
const MIGRATIONS: Record<number, Migration> = {
  // 2 adds key fingerprints: every account of version 1 has a password and no keys.
  1: (users) => users.map((user) => (typeof user === "object" && user !== null ? { ...user, keys: [] } : user)),
};

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
  const version: unknown = file.version;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1) throw corrupt(`unsupported version ${JSON.stringify(version)}`);
  if (version > STORE_VERSION) {
    throw new StoreError(`The account store ${path} was written by a newer tlschat (format version ${version}; this one reads up to ${STORE_VERSION}); it was left untouched`);
  }
  if (typeof file.secret !== "string" || !SECRET_PATTERN.test(file.secret)) throw corrupt("bad secret");
  if (!Array.isArray(file.users)) throw corrupt('"users" is not an array');
  let entries: unknown[] = file.users;
  for (let from = version; from < STORE_VERSION; from++) entries = MIGRATIONS[from]!(entries);
  const users = new Map<string, UserRecord>();
  const keyOwners = new Map<string, string>();
  for (const entry of entries) {
    const record = parseUserRecord(entry);
    if (!record) throw corrupt("a user entry is malformed");
    const key = userKey(record.name);
    if (users.has(key)) throw corrupt(`${record.name} appears twice`);
    for (const { fingerprint } of record.keys) {
      const owner = keyOwners.get(fingerprint);
      if (owner !== undefined) throw corrupt(`the key ${fingerprint} belongs to both ${owner} and ${record.name}`);
      keyOwners.set(fingerprint, record.name);
    }
    users.set(key, record);
  }
  return { secret: Buffer.from(file.secret, "hex"), users };
}

/**
 * The record in `entry`, copied field by field; undefined if any field is wrong or it has no
 * credential at all. Every store reads its records through this, so they all accept the same.
 */
export function parseUserRecord(entry: unknown): UserRecord | undefined {
  const record = entry as Partial<UserRecord> | null;
  if (
    typeof record !== "object" ||
    record === null ||
    typeof record.name !== "string" ||
    !USERNAME_PATTERN.test(record.name) ||
    (record.hash !== undefined && typeof record.hash !== "string") ||
    !Number.isSafeInteger(record.epoch) ||
    !Number.isSafeInteger(record.createdAt) ||
    !Array.isArray(record.keys)
  ) {
    return undefined;
  }
  const keys: KeyRecord[] = [];
  for (const key of record.keys as Array<Partial<KeyRecord> | null>) {
    if (
      typeof key !== "object" ||
      key === null ||
      typeof key.fingerprint !== "string" ||
      !FINGERPRINT_PATTERN.test(key.fingerprint) ||
      key.fingerprint !== key.fingerprint.toUpperCase() ||
      !Number.isSafeInteger(key.addedAt) ||
      !Number.isSafeInteger(key.lastUsedAt)
    ) {
      return undefined;
    }
    keys.push({ fingerprint: key.fingerprint, addedAt: key.addedAt!, lastUsedAt: key.lastUsedAt! });
  }
  if (record.hash === undefined && keys.length === 0) return undefined;
  const credentials = record.hash === undefined ? {} : { hash: record.hash };
  return { name: record.name, ...credentials, epoch: record.epoch!, createdAt: record.createdAt!, keys };
}
