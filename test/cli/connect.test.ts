// What `chat` and `register` share (cli/connect.ts): how USER[@HOST[:PORT]] and the connection
// options decide where to connect, that exactly one way of verifying the server is chosen, and
// which password source wins.

import { describe, expect, test } from "bun:test";
import { Command } from "commander";
import { mkdir, writeFile } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { CliError, EXIT_FAILURE, EXIT_USAGE } from "../../src/cli/io.ts";
import {
  addConnectionOptions,
  buildVerification,
  obtainPassword,
  resolveTarget,
  type ConnectionOptions,
  type Target,
} from "../../src/cli/connect.ts";
import type { Verification } from "../../src/client/connection.ts";
import { DEFAULT_PORT } from "../../src/protocol/transport.ts";
import { captureIO } from "../helpers/cli-io.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";

const FINGERPRINT = Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, "0").toUpperCase()).join(":");
const OTHER_FINGERPRINT = FINGERPRINT.replace(/^00/, "FF");

/** The CliError `action` throws (synchronously or not), or a failure if it throws nothing. */
async function cliErrorOf(action: () => unknown): Promise<CliError> {
  try {
    await action();
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    return error as CliError;
  }
  throw new Error("expected a CliError, but nothing was thrown");
}

describe("USER[@HOST[:PORT]]", () => {
  const defaults: ConnectionOptions = {};

  test.each<[string | undefined, Target]>([
    ["alice@chat.example.com:7500", { user: "alice", host: "chat.example.com", port: 7500 }],
    ["alice@chat.example.com", { user: "alice", host: "chat.example.com", port: DEFAULT_PORT }],
    ["alice", { user: "alice", host: "localhost", port: DEFAULT_PORT }],
    ["alice@10.0.0.7:8443", { user: "alice", host: "10.0.0.7", port: 8443 }],
    ["alice@[::1]:7500", { user: "alice", host: "::1", port: 7500 }],
    ["alice@[2001:db8::1]", { user: "alice", host: "2001:db8::1", port: DEFAULT_PORT }],
    ["@chat.example.com", { user: undefined, host: "chat.example.com", port: DEFAULT_PORT }],
    ["", { user: undefined, host: "localhost", port: DEFAULT_PORT }],
    [undefined, { user: undefined, host: "localhost", port: DEFAULT_PORT }],
  ])("%p means %o", (target, expected) => {
    expect(resolveTarget(target, defaults)).toEqual(expected);
  });

  test("the last @ separates the user from the host", () => {
    expect(resolveTarget("a@b@host", defaults)).toEqual({ user: "a@b", host: "host", port: DEFAULT_PORT });
  });

  test.each(["alice@", "alice@host:", "alice@::1", "alice@::1:7443", "alice@[::1", "alice@host:port", "alice@a:1:2"])(
    "%p is a usage error naming the expected form",
    async (target) => {
      const error = await cliErrorOf(() => resolveTarget(target, defaults));
      expect(error.exitCode).toBe(EXIT_USAGE);
      expect(error.message).toBe(`Cannot read "${target}": expected USER@HOST[:PORT]`);
    },
  );

  test("a port above 65535 is a usage error about the port", async () => {
    const error = await cliErrorOf(() => resolveTarget("alice@host:65536", defaults));
    expect(error.exitCode).toBe(EXIT_USAGE);
    expect(error.message).toBe('Bad port in "alice@host:65536": expected a port number 0-65535');
  });
});

describe("where to connect: the target, then --host/--port, then the defaults", () => {
  const flags: ConnectionOptions = { host: "flag.example", port: 9000 };

  test("host and port in the target win over --host and --port", () => {
    expect(resolveTarget("alice@target.example:7500", flags)).toEqual({ user: "alice", host: "target.example", port: 7500 });
  });

  test("--port fills in a target without a port, and --host one without a host", () => {
    expect(resolveTarget("alice@target.example", flags)).toEqual({ user: "alice", host: "target.example", port: 9000 });
    expect(resolveTarget("alice", flags)).toEqual({ user: "alice", host: "flag.example", port: 9000 });
  });

  test("--host and --port on the command line win over TLSCHAT_SERVER and TLSCHAT_SERVER_PORT", () => {
    const parse = (args: string[]) => addConnectionOptions(new Command("probe")).parse(args, { from: "user" }).opts<ConnectionOptions>();
    const saved = { host: process.env.TLSCHAT_SERVER, port: process.env.TLSCHAT_SERVER_PORT };
    process.env.TLSCHAT_SERVER = "env.example";
    process.env.TLSCHAT_SERVER_PORT = "7001";
    try {
      expect(parse([])).toMatchObject({ host: "env.example", port: 7001 });
      expect(parse(["--host", "flag.example", "--port", "7002"])).toMatchObject({ host: "flag.example", port: 7002 });
    } finally {
      restoreEnv("TLSCHAT_SERVER", saved.host);
      restoreEnv("TLSCHAT_SERVER_PORT", saved.port);
    }
  });
});

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

describe("verifying the server", () => {
  const target: Target = { user: "alice", host: "localhost", port: 7500 };
  const peer = (fingerprint256: string) => ({ fingerprint256, authorized: false, authorizationError: "DEPTH_ZERO_SELF_SIGNED_CERT" });

  /** A clean config directory, so known_hosts is this test's own. */
  function configured(dir: TempDir) {
    return captureIO({ XDG_CONFIG_HOME: dir.file("config") });
  }

  async function verification(dir: TempDir, opts: ConnectionOptions) {
    const cli = configured(dir);
    return { cli, verification: await buildVerification(cli.io, opts, target) };
  }

  test.each<[string, ConnectionOptions]>([
    ["--ca and --insecure", { ca: "ca.pem", insecure: true }],
    ["--ca and --fingerprint", { ca: "ca.pem", fingerprint: FINGERPRINT }],
    ["--fingerprint and --insecure", { fingerprint: FINGERPRINT, insecure: true }],
    ["all three", { ca: "ca.pem", fingerprint: FINGERPRINT, insecure: true }],
  ])("%s together are a usage error, before any file is read", async (_, opts) => {
    await using dir = await tempDir();
    const cli = configured(dir);
    const error = await cliErrorOf(() => buildVerification(cli.io, opts, target));
    expect(error.exitCode).toBe(EXIT_USAGE);
    expect(error.message).toBe("Use only one of --ca, --fingerprint and --insecure");
    expect(cli.stderr()).toBe("");
  });

  test("--insecure turns verification off and warns once, naming the server", async () => {
    await using dir = await tempDir();
    const { cli, verification: result } = await verification(dir, { insecure: true });
    expect(result).toEqual({ kind: "insecure" });
    expect(cli.stderr().split("\n").filter(Boolean)).toHaveLength(1);
    expect(cli.stderr()).toStartWith("WARNING: --insecure: the identity of localhost:7500 is NOT verified");
  });

  test("--ca verifies against the CA file's contents", async () => {
    await using dir = await tempDir();
    await writeFile(dir.file("ca.pem"), "PEM TEXT\n");
    const { verification: result } = await verification(dir, { ca: dir.file("ca.pem") });
    expect(result).toEqual({ kind: "ca", ca: "PEM TEXT\n" });
  });

  test("an unreadable --ca file is a failure naming the file", async () => {
    await using dir = await tempDir();
    const cli = configured(dir);
    const error = await cliErrorOf(() => buildVerification(cli.io, { ca: dir.file("missing.pem") }, target));
    expect(error.exitCode).toBe(EXIT_FAILURE);
    expect(error.message).toStartWith(`Cannot read the CA file ${dir.file("missing.pem")}: `);
  });

  test("a --fingerprint that is not a SHA-256 digest is a usage error", async () => {
    await using dir = await tempDir();
    const cli = configured(dir);
    const error = await cliErrorOf(() => buildVerification(cli.io, { fingerprint: "not-hex" }, target));
    expect(error.exitCode).toBe(EXIT_USAGE);
    expect(error.message).toStartWith("--fingerprint: ");
  });

  test("--fingerprint accepts only that certificate, and pins it for HOST:PORT", async () => {
    await using dir = await tempDir();
    const { cli, verification: result } = await verification(dir, { fingerprint: FINGERPRINT.toLowerCase() });
    const check = fingerprintCheck(result);
    await expect(check(peer(OTHER_FINGERPRINT))).rejects.toThrow("does not match --fingerprint");
    await check(peer(FINGERPRINT));
    expect(cli.stderr()).toContain(`Pinned localhost:7500 as ${FINGERPRINT}`);
  });

  test("without a choice, an unknown server is refused when nobody can confirm it", async () => {
    await using dir = await tempDir();
    const { verification: result } = await verification(dir, {});
    await expect(fingerprintCheck(result)(peer(FINGERPRINT))).rejects.toThrow("localhost:7500 is not a known server");
  });

  test("--trust-new pins an unknown server's certificate for HOST:PORT", async () => {
    await using dir = await tempDir();
    const { cli, verification: result } = await verification(dir, { trustNew: true });
    await fingerprintCheck(result)(peer(FINGERPRINT));
    expect(cli.stderr()).toContain(`Pinned localhost:7500 as ${FINGERPRINT}`);
  });

  test("unreadable known_hosts lines are ignored with a warning naming them", async () => {
    await using dir = await tempDir();
    await mkdir(dir.file("config/tlschat"), { recursive: true });
    await writeFile(dir.file("config/tlschat/known_hosts"), `localhost:7500 ${FINGERPRINT}\nnonsense\n`);
    const { cli, verification: result } = await verification(dir, {});
    expect(cli.stderr()).toBe(`warning: ignoring unreadable line(s) 2 of ${dir.file("config/tlschat/known_hosts")}\n`);
    await fingerprintCheck(result)(peer(FINGERPRINT));
  });
});

function fingerprintCheck(verification: Verification) {
  if (verification.kind !== "fingerprint") throw new Error(`expected fingerprint verification, got ${verification.kind}`);
  return verification.check;
}

describe("the password: --password-file, then TLSCHAT_PASSWORD, then (off a terminal) piped stdin", () => {
  const how = { confirmTwice: false, stdinAllowed: true, prompt: "Password: " };

  function piped(text: string, env: Record<string, string> = {}) {
    const cli = captureIO(env);
    const stdin = new PassThrough();
    stdin.end(text);
    return { ...cli.io, stdin };
  }

  test("--password-file gives its first line and wins over TLSCHAT_PASSWORD and stdin", async () => {
    await using dir = await tempDir();
    await writeFile(dir.file("pw"), "from the file\r\nsecond line\n");
    const io = piped("from stdin\n", { TLSCHAT_PASSWORD: "from the env" });
    expect(await obtainPassword(io, { passwordFile: dir.file("pw") }, how)).toBe("from the file");
  });

  test("an unreadable --password-file is a failure naming the file", async () => {
    await using dir = await tempDir();
    const error = await cliErrorOf(() => obtainPassword(piped(""), { passwordFile: dir.file("none") }, how));
    expect(error.exitCode).toBe(EXIT_FAILURE);
    expect(error.message).toStartWith(`Cannot read the password file ${dir.file("none")}: `);
  });

  test("TLSCHAT_PASSWORD wins over stdin; an empty one does not count", async () => {
    expect(await obtainPassword(piped("from stdin\n", { TLSCHAT_PASSWORD: "from the env" }), {}, how)).toBe("from the env");
    expect(await obtainPassword(piped("from stdin\n", { TLSCHAT_PASSWORD: "" }), {}, how)).toBe("from stdin");
  });

  test("piped stdin gives its first line when the command allows it", async () => {
    expect(await obtainPassword(piped("first\r\nsecond\n"), {}, how)).toBe("first");
  });

  test("with no source left it is a usage error naming the non-interactive ways", async () => {
    const error = await cliErrorOf(() => obtainPassword(piped("from stdin\n"), {}, { ...how, stdinAllowed: false }));
    expect(error.exitCode).toBe(EXIT_USAGE);
    expect(error.message).toBe("No password: use --password-file or TLSCHAT_PASSWORD when stdin is not a terminal");
  });
});
