// Content rules shared by both ends: what a username, a password and a message text may be.
// The server enforces them; the client checks them too so a typo fails before a round trip.

import { ChatError } from "./errors.ts";

export const USERNAME_PATTERN = /^[A-Za-z0-9_.-]{1,32}$/;

/** Case-insensitive identity of a username: "Alice" and "alice" are one account. */
export function userKey(user: string): string {
  return user.toLowerCase();
}

export function checkUsername(user: string): string {
  if (!USERNAME_PATTERN.test(user)) {
    throw new ChatError("invalid_user", "Usernames are 1-32 characters of letters, digits, '_', '.' and '-'");
  }
  return user;
}

/** Password length bounds, in UTF-8 bytes. */
export const MIN_PASSWORD_BYTES = 8;
export const MAX_PASSWORD_BYTES = 1024;

const encoder = new TextEncoder();

export function checkPassword(password: string): string {
  const bytes = encoder.encode(password).length;
  if (bytes < MIN_PASSWORD_BYTES || bytes > MAX_PASSWORD_BYTES) {
    throw new ChatError("weak_password", `Passwords are ${MIN_PASSWORD_BYTES} to ${MAX_PASSWORD_BYTES} bytes long`);
  }
  return password;
}

const SHA256_BYTES = 32;
/** A certificate's SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it (any case here). */
export const FINGERPRINT_PATTERN = new RegExp(`^[0-9A-F]{2}(?::[0-9A-F]{2}){${SHA256_BYTES - 1}}$`, "i");

/** The canonical (upper-case) form of a fingerprint sent by a peer; anything else is a `bad_frame`. */
export function checkFingerprint(fingerprint: string): string {
  if (!FINGERPRINT_PATTERN.test(fingerprint)) {
    throw new ChatError("bad_frame", "A fingerprint is a SHA-256 digest in colon hex, like AB:CD:…");
  }
  return fingerprint.toUpperCase();
}

// C0 controls, DEL and C1 controls: none of them belongs in a chat line, and all of them can
// drive a terminal.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

export function checkText(text: string, maxChars: number): string {
  if (text.length === 0) throw new ChatError("invalid_text", "Text is empty");
  // Count code points only when UTF-16 length could exceed the limit.
  if (text.length > maxChars && [...text].length > maxChars) {
    throw new ChatError("invalid_text", `Text is longer than ${maxChars} characters`);
  }
  if (CONTROL_CHARACTERS.test(text)) throw new ChatError("invalid_text", "Text contains control characters");
  return text;
}

/** The room every account starts in, and where a `say` without a room goes. */
export const LOBBY = "#lobby";

export const ROOM_NAME_PATTERN = /^#[A-Za-z0-9_-]{1,32}$/;

/** Case-insensitive identity of a room: "#Rust" and "#rust" are one room, shown as created. */
export function roomKey(room: string): string {
  return room.toLowerCase();
}

export function checkRoomName(room: string): string {
  if (!ROOM_NAME_PATTERN.test(room)) {
    throw new ChatError("invalid_room", "Room names are '#' and 1-32 letters, digits, '_' or '-'");
  }
  return room;
}

/** A room topic: like a message text but may be empty (which clears it). */
export function checkTopic(topic: string, maxChars: number): string {
  return topic.length === 0 ? topic : checkText(topic, maxChars);
}
