// The account store of a cluster (UserStore on Redis): every node reads and writes the same
// accounts, key index, resume-token secret and failed-login counts, so an account registered on
// one node, a password changed on another and a token issued by a third hold everywhere. The
// rules about accounts stay in auth/accounts.ts; this file knows the layout and makes each write
// atomic against every other node.
//
// Layout (names in keys.ts):
//   tlschat:account:<userKey>  hash, one per account
//     name       the name as registered (userKey is its lower-case form)
//     hash       the argon2id PHC string, as the file store keeps it (absent: logs in by key only)
//     epoch      decimal; resume tokens carry it
//     createdAt  ms since 1970
//     version    decimal, bumped by every write: what an update compares before it writes
//     key:<FP>   one field per key, "<addedAt> <lastUsedAt>" in ms; FP is the key's upper-case
//                colon-hex SHA-256; keys are listed oldest first
//   tlschat:key-owners         hash, FP -> userKey of the one account holding that key
//   tlschat:token-secret       string, the secret as 64 hex digits (32 bytes), set once (SET NX)
//   tlschat:throttle:...       failed-login counts (throttle.ts)

import type { ThrottlePolicy } from "../../core/limits.ts";
import { ChatError } from "../../protocol/errors.ts";
import { userKey } from "../../protocol/validate.ts";
import { keyInUseError, noSuchUserError, userExistsError, type KeyRecord, type UserRecord, type UserStore } from "../../auth/store.ts";
import { newSecret, parseUserRecord, SECRET_PATTERN } from "../../auth/store-format.ts";
import type { ThrottleCounters } from "../../auth/throttle.ts";
import { RedisScript, type RedisConnection } from "./connection.ts";
import { keys } from "./keys.ts";
import { RedisThrottleCounters } from "./throttle.ts";

/**
 * Reads and writes an update makes while other nodes keep changing the same account in between.
 * This node runs its own updates of an account one at a time, so only other nodes compete: a few
 * attempts are plenty, and giving up beats spinning under a pathological race.
 */
const MAX_UPDATE_ATTEMPTS = 10;
/**
 * Before attempt n + 1 an update waits a random time up to this × 2^n ms (at most the cap): two
 * nodes retrying in step would otherwise meet again and again, the same one losing each time.
 */
const UPDATE_RETRY_BASE_MS = 1;
const UPDATE_RETRY_MAX_MS = 100;
const KEY_FIELD_PREFIX = "key:";
/** The version a write expects when it creates the account. */
const NEW_ACCOUNT = "";

/**
 * Writes a whole account and its key index in one step, if the account is at the expected
 * version (or absent, for a new one) and none of its keys belongs to another account.
 * KEYS: the account hash, the key owners. ARGV: the expected version (NEW_ACCOUNT: must not
 * exist), the account's userKey, then the record's fields and values in pairs.
 * Returns ok, conflict (read again), user_exists, no_such_user, or "key_in_use <FP>".
 */
const WRITE = new RedisScript(`
local account, owners = KEYS[1], KEYS[2]
local expected, owner = ARGV[1], ARGV[2]
local prefix = '${KEY_FIELD_PREFIX}'
local function fingerprint_of(field)
  if string.sub(field, 1, #prefix) == prefix then return string.sub(field, #prefix + 1) end
end
local version = redis.call('HGET', account, 'version')
if expected == '${NEW_ACCOUNT}' then
  if version then return 'user_exists' end
elseif not version then
  return 'no_such_user'
elseif version ~= expected then
  return 'conflict'
end
local fingerprints = {}
for i = 3, #ARGV, 2 do
  local fingerprint = fingerprint_of(ARGV[i])
  if fingerprint then
    local holder = redis.call('HGET', owners, fingerprint)
    if holder and holder ~= owner then return 'key_in_use ' .. fingerprint end
    fingerprints[#fingerprints + 1] = fingerprint
  end
end
for _, field in ipairs(redis.call('HKEYS', account)) do
  local fingerprint = fingerprint_of(field)
  if fingerprint and redis.call('HGET', owners, fingerprint) == owner then redis.call('HDEL', owners, fingerprint) end
end
redis.call('DEL', account)
redis.call('HSET', account, 'version', (tonumber(version) or 0) + 1, unpack(ARGV, 3))
for _, fingerprint in ipairs(fingerprints) do redis.call('HSET', owners, fingerprint, owner) end
return 'ok'
`);

interface Stored {
  record: UserRecord;
  version: string;
}

export class RedisUserStore implements UserStore {
  private secretRead: Promise<Uint8Array> | undefined;
  /** The end of the last update queued per account: this node's updates of one account run in turn. */
  private readonly updating = new Map<string, Promise<void>>();
  private closed = false;

  /** `connection` is the node's Redis link; whoever opened it closes it, after this store. */
  constructor(private readonly connection: RedisConnection) {}

  /**
   * The cluster's token secret: the first node (or import) to ask creates it, everyone after
   * reads it. It never changes afterwards, so it is read once per node.
   */
  secret(): Promise<Uint8Array> {
    this.secretRead ??= this.secretOnce(newSecret()).catch((error: unknown) => {
      this.secretRead = undefined; // Redis was away: ask again next time.
      throw error;
    });
    return this.secretRead;
  }

  /**
   * Offers another store's secret, so tokens it issued keep working; resolves false if Redis
   * already had a different one, which it keeps (the cluster's own tokens must not break).
   */
  async adoptSecret(secret: Uint8Array): Promise<boolean> {
    return Buffer.from(await this.secretOnce(secret)).equals(secret);
  }

  async get(user: string): Promise<UserRecord | undefined> {
    return (await this.read(user))?.record;
  }

  async add(record: UserRecord): Promise<void> {
    this.refuseIfClosed();
    await this.write(userKey(record.name), record, NEW_ACCOUNT);
  }

  update(user: string, change: (current: UserRecord) => UserRecord): Promise<UserRecord> {
    this.refuseIfClosed();
    const key = userKey(user);
    const result = (this.updating.get(key) ?? Promise.resolve()).then(() => this.updateNow(user, change));
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.updating.set(key, settled);
    void settled.then(() => {
      if (this.updating.get(key) === settled) this.updating.delete(key);
    });
    return result;
  }

  /** Counted in Redis, so every node sees every failure. Redis's clock times the blocks, not `now`. */
  loginCounters(policy: ThrottlePolicy): ThrottleCounters {
    return new RedisThrottleCounters(this.connection, policy);
  }

  /** Refuses further writes and waits for the updates under way. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.updating.values());
  }

  private async updateNow(user: string, change: (current: UserRecord) => UserRecord): Promise<UserRecord> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(user);
      if (!current) throw noSuchUserError(user);
      const next = change(current.record);
      if ((await this.write(userKey(user), next, current.version)) === "ok") return next;
      if (attempt === MAX_UPDATE_ATTEMPTS) throw new ChatError("server_busy", `The account ${user} kept being changed elsewhere; try again`);
      await Bun.sleep(Math.random() * Math.min(UPDATE_RETRY_MAX_MS, UPDATE_RETRY_BASE_MS * 2 ** attempt));
    }
  }

  private async read(user: string): Promise<Stored | undefined> {
    const fields = (await this.connection.send("HGETALL", [keys.account(userKey(user))])) as Record<string, string>;
    // A missing key reads as an empty hash; every written account has a version.
    if (fields.version === undefined) return undefined;
    const record = parseUserRecord({
      name: fields.name,
      hash: fields.hash,
      epoch: integer(fields.epoch),
      createdAt: integer(fields.createdAt),
      keys: keysOf(fields),
    });
    if (!record || userKey(record.name) !== userKey(user)) {
      throw new ChatError("store_unavailable", `The account ${user} in Redis is malformed; nobody can log in to it until it is repaired`);
    }
    return { record, version: fields.version };
  }

  /** Resolves "conflict" if the account is no longer at `expected`; refusals are thrown. */
  private async write(key: string, record: UserRecord, expected: string): Promise<"ok" | "conflict"> {
    const reply = String(await this.connection.run(WRITE, [keys.account(key), keys.keyOwners], [expected, key, ...fieldsOf(record)]));
    switch (reply) {
      case "ok":
      case "conflict":
        return reply;
      case "user_exists":
        throw userExistsError(record.name);
      case "no_such_user":
        throw noSuchUserError(record.name);
    }
    const [code, fingerprint] = reply.split(" ");
    if (code === "key_in_use" && fingerprint !== undefined) throw keyInUseError(fingerprint);
    throw new Error(`Unexpected answer from the account write script: ${reply}`);
  }

  /** Sets the secret to `candidate` unless Redis has one; resolves with the one Redis keeps. */
  private async secretOnce(candidate: Uint8Array): Promise<Uint8Array> {
    const existing = await this.connection.send("SET", [keys.tokenSecret, Buffer.from(candidate).toString("hex"), "NX", "GET"]);
    if (existing === null) return candidate;
    if (typeof existing !== "string" || !SECRET_PATTERN.test(existing)) {
      throw new ChatError("store_unavailable", `${keys.tokenSecret} in Redis is not a token secret; repair or delete it`);
    }
    return Buffer.from(existing, "hex");
  }

  private refuseIfClosed(): void {
    if (this.closed) throw new ChatError("store_unavailable", "The account store is closed");
  }
}

/** The hash fields of a record, as field-value pairs; the version is the script's to set. */
function fieldsOf(record: UserRecord): string[] {
  const fields = ["name", record.name, "epoch", String(record.epoch), "createdAt", String(record.createdAt)];
  if (record.hash !== undefined) fields.push("hash", record.hash);
  for (const key of record.keys) fields.push(`${KEY_FIELD_PREFIX}${key.fingerprint}`, `${key.addedAt} ${key.lastUsedAt}`);
  return fields;
}

/** The keys held in `key:` fields, oldest first; a malformed one becomes NaN times, which validation refuses. */
function keysOf(fields: Record<string, string>): KeyRecord[] {
  const found: KeyRecord[] = [];
  for (const [field, value] of Object.entries(fields)) {
    if (!field.startsWith(KEY_FIELD_PREFIX)) continue;
    const [addedAt, lastUsedAt] = /^(\d+) (\d+)$/.exec(value)?.slice(1).map(Number) ?? [Number.NaN, Number.NaN];
    found.push({ fingerprint: field.slice(KEY_FIELD_PREFIX.length), addedAt: addedAt!, lastUsedAt: lastUsedAt! });
  }
  return found.sort((a, b) => a.addedAt - b.addedAt || (a.fingerprint < b.fingerprint ? -1 : 1));
}

/** A decimal integer field; anything else becomes NaN, which validation refuses. */
function integer(text: string | undefined): number {
  return text !== undefined && /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
}
