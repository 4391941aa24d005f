// Ban and mute durations as people type and read them: a whole number with one unit, "30s",
// "10m", "2h" or "7d", turned into the protocol's seconds and back.

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
type Unit = keyof typeof UNIT_SECONDS;
const DURATION = /^(\d{1,9})([smhd])$/;

/** Seconds for "90s", "10m", "2h", "7d"; undefined when `text` is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * UNIT_SECONDS[match[2] as Unit];
}

/** The largest unit that measures `seconds` exactly: 5400 → "90m", 86400 → "1d". */
export function formatDuration(seconds: number): string {
  for (const unit of ["d", "h", "m"] as const) {
    if (seconds >= UNIT_SECONDS[unit] && seconds % UNIT_SECONDS[unit] === 0) return `${seconds / UNIT_SECONDS[unit]}${unit}`;
  }
  return `${seconds}s`;
}
