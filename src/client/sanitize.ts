// Makes text from the network safe to print: nothing received may drive the terminal or reorder
// what the user sees, yet every hidden character stays visible so tampering is noticed.
//
// Scheme: C0 controls and DEL use caret notation as `cat -v` does (ESC → "^[", CR → "^M",
// NUL → "^@", DEL → "^?"); C1 controls, bidi controls and the Unicode line/paragraph separators
// become "<U+XXXX>". Escape sequences need no parser: once their ESC (or 8-bit CSI) is replaced,
// what follows is printable text like "^[[2J", which the terminal shows instead of obeying.

import { ROOM_NAME_PATTERN, USERNAME_PATTERN } from "../protocol/validate.ts";

// C0, DEL, C1; ALM (U+061C); LRM/RLM (U+200E-200F); line/paragraph separators, which some
// renderers break lines on (U+2028-2029); embeddings and overrides (U+202A-202E); isolates
// (U+2066-2069).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;
const UNSAFE_ALL = new RegExp(UNSAFE.source, "g");

const DEL = 0x7f;

function codePointMarker(codePoint: number): string {
  return `<U+${codePoint.toString(16).toUpperCase().padStart(4, "0")}>`;
}

function visible(char: string): string {
  const code = char.charCodeAt(0);
  if (code < 0x20) return "^" + String.fromCharCode(code + 0x40);
  if (code === DEL) return "^?";
  return codePointMarker(code);
}

/** Returns `text` with every control, escape and bidi character replaced by a visible marker. */
export function sanitize(text: string): string {
  // Almost every message is clean: test once and hand back the same string without copying.
  if (!UNSAFE.test(text)) return text;
  return text.replace(UNSAFE_ALL, visible);
}

const MAX_NAME_CODE_POINTS = 32;
const NAME_CHARACTER = /^[A-Za-z0-9_.-]$/;
/** "#" and 32 characters. */
const MAX_ROOM_NAME_CODE_POINTS = 33;
const ROOM_NAME_CHARACTER = /^[#A-Za-z0-9_-]$/;

/**
 * Returns a valid username unchanged. Anything else a server claims is a name is shown with each
 * character outside [A-Za-z0-9_.-] as "<U+XXXX>", cut after 32 characters with "…", and "<empty>"
 * when empty: every such rendering contains "<" or "…", so it can never pass for a real user
 * (a Cyrillic "аlice" shows as "<U+0430>lice").
 */
export function sanitizeName(name: string): string {
  return USERNAME_PATTERN.test(name) ? name : marked(name, NAME_CHARACTER, MAX_NAME_CODE_POINTS);
}

/** Returns a valid room name unchanged, and marks anything else as sanitizeName does. */
export function sanitizeRoomName(room: string): string {
  return ROOM_NAME_PATTERN.test(room) ? room : marked(room, ROOM_NAME_CHARACTER, MAX_ROOM_NAME_CODE_POINTS);
}

function marked(name: string, allowed: RegExp, maxCodePoints: number): string {
  if (name.length === 0) return "<empty>";
  let out = "";
  let count = 0;
  for (const char of name) {
    if (count === maxCodePoints) return out + "…";
    out += allowed.test(char) ? char : codePointMarker(char.codePointAt(0)!);
    count++;
  }
  return out;
}
