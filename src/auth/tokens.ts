// Resume tokens: an HMAC-SHA256 over the user, an expiry and the user's epoch, keyed by a server
// secret kept in the store. They verify in microseconds and survive a restart, so a reconnect
// storm costs no password hashing; bumping the epoch (on `passwd`) revokes every older token.

import { hmac } from "@noble/hashes/hmac.js";
import { timingSafeEqual } from "node:crypto";
import { sha256 } from "@noble/hashes/sha2.js";
import { ChatError } from "../protocol/errors.ts";
import { userKey } from "../protocol/validate.ts";

const TOKEN_VERSION = "v1";
const encoder = new TextEncoder();

function mac(secret: Uint8Array, user: string, expiresAt: number, epoch: number): Uint8Array {
  return hmac(sha256, secret, encoder.encode(`tlschat-resume\0${userKey(user)}\0${expiresAt}\0${epoch}`));
}

export function issueToken(secret: Uint8Array, user: string, epoch: number, expiresAt: number): string {
  return `${TOKEN_VERSION}.${expiresAt}.${epoch}.${Buffer.from(mac(secret, user, expiresAt, epoch)).toString("base64url")}`;
}

/**
 * The one answer to every unusable token, for an unknown user too: a refusal does not tell which
 * check failed or whether the account exists.
 */
export function tokenRefusal(): ChatError {
  return new ChatError("auth_failed", "Resume token is invalid or expired; log in with the password");
}

/** Throws `auth_failed` unless the token was issued for this user and epoch and has not expired. */
export function checkToken(secret: Uint8Array, user: string, epoch: number, token: string, now: number): void {
  const parts = token.split(".");
  if (parts.length !== 4 || parts[0] !== TOKEN_VERSION) throw tokenRefusal();
  const expiresAt = Number(parts[1]);
  const tokenEpoch = Number(parts[2]);
  if (!Number.isSafeInteger(expiresAt) || !Number.isSafeInteger(tokenEpoch)) throw tokenRefusal();
  // Compare the encoded form: decoding would accept several spellings of the same MAC.
  const presented = encoder.encode(parts[3]!);
  const expected = encoder.encode(Buffer.from(mac(secret, user, expiresAt, tokenEpoch)).toString("base64url"));
  // timingSafeEqual throws on unequal lengths; the length of a MAC is no secret.
  const macMatches = presented.length === expected.length && timingSafeEqual(presented, expected);
  if (!macMatches || tokenEpoch !== epoch || expiresAt <= now) throw tokenRefusal();
}
