// build.sh and the compiled binary it makes: one file that runs the CLI on its own.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pkg from "../package.json";
import { withTimeout } from "./helpers/client.ts";

const ROOT = resolve(import.meta.dir, "..");
const BINARY = join(ROOT, "dist", "tlschat");

let tmp = "";
let build: Awaited<ReturnType<typeof exec>>;

async function exec(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd ?? ROOT,
    // A clean environment, so a TLSCHAT_* variable of whoever runs the tests cannot leak in.
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmp, ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: 110_000,
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "tlschat-build-"));
  build = await exec(["./build.sh"]);
}, 120_000);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("build.sh", () => {
  test("builds dist/tlschat and prints its path, size and version", () => {
    expect(build.stderr).toBe("");
    expect(build.code).toBe(0);
    expect(build.stdout.trim()).toMatch(
      new RegExp(`^dist/tlschat  \\d+(\\.\\d)? (MiB|KiB)  version ${pkg.version.replaceAll(".", "\\.")}$`),
    );
  });

  test("rejects a target name it does not know, in one line", async () => {
    const r = await exec(["./build.sh", "freebsd-x64"]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringContaining("cannot build freebsd-x64")]);
  });

  test("with TLSCHAT_RUNTIME_DIR, a missing runtime fails in one line naming the file", async () => {
    const runtimes = join(tmp, "runtimes");
    const r = await exec(["./build.sh", "linux-arm64"], { env: { TLSCHAT_RUNTIME_DIR: runtimes } });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `cannot build linux-arm64: ${runtimes}/bun-linux-arm64 does not exist (it must be Bun ${Bun.version} for linux-arm64)`,
    ]);
  });
});

describe("the compiled binary", () => {
  test("--version prints package.json's version", async () => {
    const r = await exec([BINARY, "--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  test("--help exits 0 and lists the commands", async () => {
    const r = await exec([BINARY, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: tlschat");
    for (const command of ["serve", "chat", "register", "gencert"]) expect(r.stdout).toContain(command);
  });

  test("gencert --out writes a certificate and a 0600 key", async () => {
    const out = join(tmp, "gencert-out");
    const r = await exec([BINARY, "gencert", "--out", out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect((await stat(join(out, "cert.pem"))).mode & 0o777).toBe(0o644);
    expect((await stat(join(out, "key.pem"))).mode & 0o777).toBe(0o600);
    expect(r.stdout).toMatch(/^SHA256 Fingerprint=([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
  });

  test("gencert takes its directory from TLSCHAT_CERT_DIR", async () => {
    const out = join(tmp, "from-env");
    const r = await exec([BINARY, "gencert"], { env: { TLSCHAT_CERT_DIR: out } });
    expect(r.code).toBe(0);
    expect(await Bun.file(join(out, "cert.pem")).exists()).toBe(true);
  });

  test("an unknown command exits 2 with one line on stderr", async () => {
    const r = await exec([BINARY, "frobnicate"]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain("frobnicate");
  });

  test("serve starts its checkpoint worker from inside the binary, and stops on SIGTERM", async () => {
    const cwd = join(tmp, "serve-cwd");
    await mkdir(cwd, { recursive: true });
    const proc = Bun.spawn([BINARY, "serve", "--host", "127.0.0.1", "--port", "0"], {
      cwd,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmp },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    let stderr = "";
    const decoder = new TextDecoder();
    const reader = proc.stderr.getReader();
    const listening = withTimeout(
      (async () => {
        while (!stderr.includes(" listening ")) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`serve ended before listening: ${stderr}`);
          stderr += decoder.decode(value, { stream: true });
        }
      })(),
      30_000,
      "serve listening",
    );
    try {
      await listening;
    } finally {
      proc.kill("SIGTERM");
    }
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) stderr += decoder.decode(chunk.value, { stream: true });
    expect(await proc.exited).toBe(0);
    // The worker's entry point is found in the binary: no fallback to checkpoints on the event loop.
    expect(stderr).not.toContain("checkpoints_inline");
    expect(stderr).toContain("stopped");
  });

  test("ignores .env and bunfig.toml in the directory it is started from", async () => {
    const cwd = join(tmp, "hostile-cwd");
    const elsewhere = join(tmp, "elsewhere");
    await Bun.write(join(cwd, "preload.ts"), 'console.log("PRELOADED");\n');
    await writeFile(join(cwd, "bunfig.toml"), 'preload = ["./preload.ts"]\n');
    await writeFile(join(cwd, ".env"), `TLSCHAT_CERT_DIR=${elsewhere}\n`);
    const r = await exec([BINARY, "gencert"], { cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("PRELOADED");
    expect(await Bun.file(join(cwd, "certs", "cert.pem")).exists()).toBe(true);
    expect(await Bun.file(join(elsewhere, "cert.pem")).exists()).toBe(false);
  });
});
