// Trust-on-first-use certificate pins, one "host:port FINGERPRINT" line per server as in SSH's
// known_hosts; it stores and compares pins and leaves deciding what to trust to its caller.

import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomically } from "../files/atomic-write.ts";
import { configDir } from "./config-dir.ts";

/** $XDG_CONFIG_HOME/tlschat/known_hosts, else $HOME/.config/tlschat/known_hosts. */
export function knownHostsPath(env: { XDG_CONFIG_HOME?: string; HOME?: string }): string {
  return join(configDir(env), "known_hosts");
}

/** The key a pin is stored under: host lowercased, IPv6 addresses in brackets ("[::1]:7443"). */
export function hostKey(host: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`Invalid port ${port}`);
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const lower = bare.toLowerCase();
  return lower.includes(":") ? `[${lower}]:${port}` : `${lower}:${port}`;
}

const SHA256_BYTES = 32;
const COLON_HEX = new RegExp(`^[0-9a-f]{2}(?::[0-9a-f]{2}){${SHA256_BYTES - 1}}$`, "i");
const PLAIN_HEX = new RegExp(`^[0-9a-f]{${SHA256_BYTES * 2}}$`, "i");

/**
 * Canonical form of a SHA-256 certificate fingerprint, "AA:BB:…" (what Bun's `fingerprint256`
 * and `openssl x509 -fingerprint -sha256` print). Accepts hex with or without colons, any case,
 * optionally prefixed "SHA256:"; throws on anything that is not exactly 32 bytes of hex.
 */
export function normalizeFingerprint(s: string): string {
  const hex = s.trim().replace(/^sha256:/i, "");
  if (COLON_HEX.test(hex)) return hex.toUpperCase();
  if (PLAIN_HEX.test(hex)) return hex.toUpperCase().match(/../g)!.join(":");
  throw new Error("A fingerprint must be a SHA-256 digest: 32 bytes of hex, like AA:BB:…");
}

type PinLine = { kind: "pin"; key: string; fingerprint: string; text: string };
type Line =
  | PinLine
  | { kind: "comment"; text: string }
  | { kind: "invalid"; text: string };

function parseLine(text: string): Line {
  const trimmed = text.trim();
  if (trimmed === "" || trimmed.startsWith("#")) return { kind: "comment", text };
  const fields = trimmed.split(/\s+/);
  if (fields.length !== 2) return { kind: "invalid", text };
  const [hostPort = "", fingerprint = ""] = fields;
  try {
    return { kind: "pin", key: hostPort.toLowerCase(), fingerprint: normalizeFingerprint(fingerprint), text };
  } catch {
    return { kind: "invalid", text };
  }
}

function isPinFor(line: Line, key: string): line is PinLine {
  return line.kind === "pin" && line.key === key;
}

async function readLines(path: string): Promise<Line[]> {
  let content: string;
  try {
    content = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const texts = content.split(/\r?\n/);
  if (texts.at(-1) === "") texts.pop();
  return texts.map(parseLine);
}

/**
 * The pins in one known_hosts file. Comments, blank lines and lines it cannot parse are kept
 * verbatim when the file is rewritten; unparseable ones are listed in `ignoredLines` so the
 * caller can warn. When a host appears twice the first line wins.
 */
export class KnownHosts {
  private constructor(
    readonly path: string,
    private lines: Line[],
  ) {}

  /** Reads the file; a missing file is an empty store. */
  static async load(path: string): Promise<KnownHosts> {
    return new KnownHosts(path, await readLines(path));
  }

  /** 1-based numbers of lines that are neither pins, comments nor blank. */
  get ignoredLines(): number[] {
    const numbers: number[] = [];
    this.lines.forEach((line, index) => {
      if (line.kind === "invalid") numbers.push(index + 1);
    });
    return numbers;
  }

  /** The pinned fingerprint ("AA:BB:…") for a `hostKey`, if any. */
  lookup(hostPort: string): string | undefined {
    const key = hostPort.toLowerCase();
    return this.lines.find((line) => isPinFor(line, key))?.fingerprint;
  }

  /** Pins `fingerprint` for `hostPort`, replacing any earlier pin for it. */
  async add(hostPort: string, fingerprint: string): Promise<void> {
    if (!/^[^\s#]+$/.test(hostPort)) throw new Error(`Invalid host key "${hostPort}"`);
    const key = hostPort.toLowerCase();
    const normalized = normalizeFingerprint(fingerprint);
    const pin: PinLine = { kind: "pin", key, fingerprint: normalized, text: `${hostPort} ${normalized}` };
    await this.update((lines) => {
      const first = lines.findIndex((line) => isPinFor(line, key));
      if (first === -1) return [...lines, pin];
      return lines.flatMap<Line>((line, index) => (index === first ? [pin] : isPinFor(line, key) ? [] : [line]));
    });
  }

  // Re-reads the file before changing it so that pins another client added meanwhile survive.
  private async update(change: (lines: Line[]) => Line[]): Promise<void> {
    const lines = change(await readLines(this.path));
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    await writeFileAtomically(this.path, lines.map((line) => line.text + "\n").join(""));
    this.lines = lines;
  }
}

export type PinCheck =
  | { status: "match" }
  | { status: "unknown" }
  | { status: "mismatch"; pinned: string; presented: string };

/** Compares the fingerprint a server presented with the pin for `hostPort`. */
export function checkPin(store: Pick<KnownHosts, "lookup">, hostPort: string, fingerprint: string): PinCheck {
  const presented = normalizeFingerprint(fingerprint);
  const pinned = store.lookup(hostPort);
  if (pinned === undefined) return { status: "unknown" };
  return pinned === presented ? { status: "match" } : { status: "mismatch", pinned, presented };
}
