// Error codes shared by the server, the client and the wire: the code in a ChatError is the
// code that travels in an `error` frame, so both ends agree on what went wrong.

export const ERROR_CODES = [
  "bad_frame",
  "invalid_text",
  "too_long",
  "auth_failed",
  "user_exists",
  "invalid_user",
  "weak_password",
  "not_authenticated",
  "already_authenticated",
  "rate_limited",
  "no_such_user",
  "throttled",
  "server_full",
  "server_busy",
  "registration_closed",
  "store_unavailable",
  "timeout",
  "slow_consumer",
  "shutting_down",
  "internal_error",
  "invalid_room",
  "no_such_room",
  "not_in_room",
  "not_allowed",
  "room_banned",
  "banned",
  "muted",
  "too_many_rooms",
  "no_such_key",
  "key_in_use",
  "no_such_message",
  "not_supported",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && KNOWN_CODES.has(value);
}

export class ChatError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ChatError";
  }
}
