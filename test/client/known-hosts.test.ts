import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  checkPin,
  hostKey,
  KnownHosts,
  knownHostsPath,
  normalizeFingerprint,
} from "../../src/client/known-hosts.ts";

const FP_A = Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, "0").toUpperCase()).join(":");
const FP_B = Array.from({ length: 32 }, () => "AB").join(":");

const tempDirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "tlschat-known-hosts-"));
  tempDirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(tempDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe("knownHostsPath", () => {
  test("prefers $XDG_CONFIG_HOME", () => {
    expect(knownHostsPath({ XDG_CONFIG_HOME: "/x/config", HOME: "/home/u" })).toBe("/x/config/tlschat/known_hosts");
  });

  test("falls back to $HOME/.config", () => {
    expect(knownHostsPath({ HOME: "/home/u" })).toBe("/home/u/.config/tlschat/known_hosts");
  });

  test("ignores an empty or relative $XDG_CONFIG_HOME, as the XDG spec requires", () => {
    expect(knownHostsPath({ XDG_CONFIG_HOME: "", HOME: "/home/u" })).toBe("/home/u/.config/tlschat/known_hosts");
    expect(knownHostsPath({ XDG_CONFIG_HOME: "rel", HOME: "/home/u" })).toBe("/home/u/.config/tlschat/known_hosts");
  });

  test("throws when neither variable is usable", () => {
    expect(() => knownHostsPath({})).toThrow("HOME");
  });
});

describe("hostKey", () => {
  test("joins a lowercased host name and the port", () => {
    expect(hostKey("Chat.Example.COM", 7443)).toBe("chat.example.com:7443");
    expect(hostKey("127.0.0.1", 1)).toBe("127.0.0.1:1");
  });

  test("brackets IPv6 addresses, given bare or bracketed", () => {
    expect(hostKey("::1", 7443)).toBe("[::1]:7443");
    expect(hostKey("[::1]", 7443)).toBe("[::1]:7443");
    expect(hostKey("FE80::1", 7443)).toBe("[fe80::1]:7443");
  });

  test("rejects ports outside 1-65535", () => {
    for (const port of [0, 65536, 1.5, Number.NaN]) expect(() => hostKey("h", port)).toThrow(RangeError);
  });
});

describe("normalizeFingerprint", () => {
  test("accepts colon hex, plain hex and a SHA256: prefix in any case", () => {
    const plain = FP_A.replaceAll(":", "");
    for (const input of [FP_A, FP_A.toLowerCase(), plain, plain.toLowerCase(), `SHA256:${FP_A}`, ` sha256:${plain} `]) {
      expect(normalizeFingerprint(input)).toBe(FP_A);
    }
  });

  test("throws on anything that is not 32 bytes of hex", () => {
    const bad = [
      "",
      FP_A.slice(0, -3),
      FP_A + ":00",
      FP_A.replace("00", "0G"),
      FP_A.replace(":", ""),
      "SHA1:" + FP_A,
      "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
    ];
    for (const input of bad) expect(() => normalizeFingerprint(input)).toThrow("32 bytes");
  });
});

describe("KnownHosts", () => {
  test("a missing file is an empty store", async () => {
    const store = await KnownHosts.load(join(await tempDir(), "nope", "known_hosts"));
    expect(store.lookup("h:1")).toBeUndefined();
    expect(store.ignoredLines).toEqual([]);
  });

  test("add then lookup round-trips, in memory and through the file", async () => {
    const path = join(await tempDir(), "tlschat", "known_hosts");
    const store = await KnownHosts.load(path);
    await store.add("chat.example.com:7443", FP_A.toLowerCase());
    await store.add("[::1]:7443", FP_B);
    expect(store.lookup("chat.example.com:7443")).toBe(FP_A);
    const reloaded = await KnownHosts.load(path);
    expect(reloaded.lookup("chat.example.com:7443")).toBe(FP_A);
    expect(reloaded.lookup("[::1]:7443")).toBe(FP_B);
    expect(reloaded.lookup("CHAT.example.com:7443")).toBe(FP_A);
    expect(await readFile(path, "utf8")).toBe(`chat.example.com:7443 ${FP_A}\n[::1]:7443 ${FP_B}\n`);
  });

  test("creates the directory 0700 and the file 0600, leaving no temporary files", async () => {
    const dir = join(await tempDir(), "tlschat");
    const path = join(dir, "known_hosts");
    const store = await KnownHosts.load(path);
    await store.add("h:1", FP_A);
    await store.add("h:2", FP_B);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(["known_hosts"]);
  });

  test("add replaces an earlier pin for the same host in place", async () => {
    const path = join(await tempDir(), "known_hosts");
    await writeFile(path, `# mine\na:1 ${FP_A}\nb:1 ${FP_A}\nA:1 ${FP_A}\n`);
    const store = await KnownHosts.load(path);
    await store.add("a:1", FP_B);
    expect(store.lookup("a:1")).toBe(FP_B);
    expect(await readFile(path, "utf8")).toBe(`# mine\na:1 ${FP_B}\nb:1 ${FP_A}\n`);
  });

  test("comments, blank lines and corrupt lines are kept verbatim; corrupt ones are reported", async () => {
    const path = join(await tempDir(), "known_hosts");
    const original = [
      "# pinned by hand",
      "",
      "  # indented comment",
      "garbage",
      `x:1 ${FP_A} extra-field`,
      "y:1 not-a-fingerprint",
      `z:1 ${FP_A}`,
    ];
    await writeFile(path, original.join("\r\n") + "\r\n");
    const store = await KnownHosts.load(path);
    expect(store.ignoredLines).toEqual([4, 5, 6]);
    expect(store.lookup("x:1")).toBeUndefined();
    expect(store.lookup("y:1")).toBeUndefined();
    expect(store.lookup("z:1")).toBe(FP_A);
    await store.add("w:1", FP_B);
    expect(await readFile(path, "utf8")).toBe([...original, `w:1 ${FP_B}`].join("\n") + "\n");
  });

  test("the first pin wins when a host appears twice", async () => {
    const path = join(await tempDir(), "known_hosts");
    await writeFile(path, `a:1 ${FP_A}\na:1 ${FP_B}\n`);
    expect((await KnownHosts.load(path)).lookup("a:1")).toBe(FP_A);
  });

  test("add keeps pins another client wrote after this store was loaded", async () => {
    const path = join(await tempDir(), "known_hosts");
    const first = await KnownHosts.load(path);
    const second = await KnownHosts.load(path);
    await first.add("a:1", FP_A);
    await second.add("b:1", FP_B);
    const reloaded = await KnownHosts.load(path);
    expect(reloaded.lookup("a:1")).toBe(FP_A);
    expect(reloaded.lookup("b:1")).toBe(FP_B);
  });

  test("add refuses host keys that would corrupt the file and malformed fingerprints", async () => {
    const store = await KnownHosts.load(join(await tempDir(), "known_hosts"));
    for (const bad of ["", "a b:1", "a:1\nevil:1", "#a:1"]) {
      await expect(store.add(bad, FP_A)).rejects.toThrow("Invalid host key");
    }
    await expect(store.add("a:1", "AA:BB")).rejects.toThrow("32 bytes");
  });
});

describe("checkPin", () => {
  const store = { lookup: (hostPort: string) => (hostPort === "[::1]:7443" ? FP_A : undefined) };

  test("matches the pinned fingerprint in any accepted spelling", () => {
    expect(checkPin(store, "[::1]:7443", FP_A.toLowerCase().replaceAll(":", ""))).toEqual({ status: "match" });
  });

  test("reports an unknown host", () => {
    expect(checkPin(store, "other:7443", FP_A)).toEqual({ status: "unknown" });
  });

  test("reports a mismatch with both fingerprints", () => {
    expect(checkPin(store, hostKey("::1", 7443), FP_B.toLowerCase())).toEqual({
      status: "mismatch",
      pinned: FP_A,
      presented: FP_B,
    });
  });

  test("throws on a malformed presented fingerprint rather than treating it as unknown", () => {
    expect(() => checkPin(store, "other:7443", "nonsense")).toThrow("32 bytes");
  });
});
