// How the answers to the key commands read on screen: one line per key, with the dates a user
// needs to spot a stale one. Fingerprints come from the network, so they are sanitised here.

import type { ServerFrame } from "../protocol/frames.ts";
import { sanitize } from "./sanitize.ts";

type KeyFrame = Extract<ServerFrame, { type: "key_added" | "keys" | "key_removed" }>;

/** The calendar day of a timestamp in local time, as "last used" is only kept to the day. */
function isoDay(ts: number): string {
  const date = new Date(ts);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
}

export function keyLines(frame: KeyFrame): string[] {
  switch (frame.type) {
    case "key_added":
      return [`Key added: ${sanitize(frame.fingerprint)}`];
    case "key_removed":
      return [`Key removed: ${sanitize(frame.fingerprint)} (other sessions must log in again)`];
    case "keys":
      if (frame.keys.length === 0) return ["No keys: this account logs in by password only"];
      return [
        `Keys (${frame.keys.length}):`,
        ...frame.keys.map((key) => `  ${sanitize(key.fingerprint)}  added ${isoDay(key.added)}, last used ${isoDay(key.last_used)}`),
      ];
  }
}
