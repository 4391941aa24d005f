// What `chat` and `register` share (cli/connect.ts): how USER[@HOST[:PORT]], --server and the
// connection options decide where to connect, that exactly one way of verifying the servers is
// chosen and each server is checked under its own name, and which password source wins.

import { describe, expect, test } from "bun:test";
import { Command } from "commander";
import { mkdir, writeFile } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { CliError, EXIT_FAILURE, EXIT_USAGE } from "../../src/cli/io.ts";
import {
  addConnectionOptions,
  obtainPassword,
  resolveTarget,
  withVerification,
  type ConnectionOptions,
  type Target,
} from "../../src/cli/connect.ts";
import { run } from "../../src/cli/program.ts";
import type { Verification } from "../../src/client/connection.ts";
import type { ServerAddress } from "../../src/client/failover.ts";
import { DEFAULT_PORT } from "../../src/protocol/transport.ts";
import { captureIO } from "../helpers/cli-io.ts";
import { tempDir, type TempDir } from "../helpers/tmp.ts";

const FINGERPRINT = Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, "0").toUpperCase()).join(":");
const OTHER_FINGERPRINT = FINGERPRINT.replace(/^00/, "FF");
const THIRD_FINGERPRINT = FINGERPRINT.replace(/^00/, "EE");

/** A target with one server. */
function one(user: string | undefined, host: string, port: number): Target {
  return { user, servers: [{ host, port }] };
}

/** The connection options commander makes of `args` (and of TLSCHAT_ variables in process.env). */
function parse(args: string[]): ConnectionOptions {
  return addConnectionOptions(new Command("probe")).parse(args, { from: "user" }).opts<ConnectionOptions>();
}

/** Runs `body` with TLSCHAT_ variables set in process.env, where commander reads them. */
function withEnv<T>(vars: Record<string, string>, body: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  Object.assign(process.env, vars);
  try {
    return body();
  } finally {
    for (const [name, value] of Object.entries(saved)) restoreEnv(name, value);
  }
}

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
    ["alice@chat.example.com:7500", one("alice", "chat.example.com", 7500)],
    ["alice@chat.example.com", one("alice", "chat.example.com", DEFAULT_PORT)],
    ["alice", one("alice", "localhost", DEFAULT_PORT)],
    ["alice@10.0.0.7:8443", one("alice", "10.0.0.7", 8443)],
    ["alice@[::1]:7500", one("alice", "::1", 7500)],
    ["alice@[2001:db8::1]", one("alice", "2001:db8::1", DEFAULT_PORT)],
    ["@chat.example.com", one(undefined, "chat.example.com", DEFAULT_PORT)],
    ["", one(undefined, "localhost", DEFAULT_PORT)],
    [undefined, one(undefined, "localhost", DEFAULT_PORT)],
  ])("%p means %o", (target, expected) => {
    expect(resolveTarget(target, defaults)).toEqual(expected);
  });

  test("the last @ separates the user from the host", () => {
    expect(resolveTarget("a@b@host", defaults)).toEqual(one("a@b", "host", DEFAULT_PORT));
  });

  test.each(["alice@", "alice@host:", "alice@::1", "alice@::1:7443", "alice@[::1", "alice@host:port", "alice@a:1:2"])(
    "%p is a usage error naming the expected form",
    async (target) => {
      const error = await cliErrorOf(() => resolveTarget(target, defaults));
      expect(error.exitCode).toBe(EXIT_USAGE);
      expect(error.message).toBe(`Cannot read "${target}": expected USER@HOST[:PORT]`);
    },
  );

  test.each(["alice@host:65536", "alice@host:0"])("%p is a usage error about the port", async (target) => {
    const error = await cliErrorOf(() => resolveTarget(target, defaults));
    expect(error.exitCode).toBe(EXIT_USAGE);
    expect(error.message).toBe(`Bad port in "${target}": expected a port number 1-65535`);
  });
});

describe("where to connect: the target, then --host/--port, then the defaults", () => {
  const flags: ConnectionOptions = { host: "flag.example", port: 9000 };

  test("host and port in the target win over --host and --port", () => {
    expect(resolveTarget("alice@target.example:7500", flags)).toEqual(one("alice", "target.example", 7500));
  });

  test("--port fills in a target without a port, and --host one without a host", () => {
    expect(resolveTarget("alice@target.example", flags)).toEqual(one("alice", "target.example", 9000));
    expect(resolveTarget("alice", flags)).toEqual(one("alice", "flag.example", 9000));
  });

  test("--host and --port on the command line win over TLSCHAT_SERVER and TLSCHAT_SERVER_PORT", () => {
    withEnv({ TLSCHAT_SERVER: "env.example", TLSCHAT_SERVER_PORT: "7001" }, () => {
      expect(parse([])).toMatchObject({ host: "env.example", port: 7001 });
      expect(parse(["--host", "flag.example", "--port", "7002"])).toMatchObject({ host: "flag.example", port: 7002 });
    });
  });
});

describe("several servers: --server, then USER@HOST[:PORT], then --host/--port, then the defaults", () => {
  test("a comma-separated list, repeatable, in order; IPv6 in brackets; spaces around entries ignored", () => {
    expect(parse(["--server", "a.example:7500, b.example", "--server", "[::1]:7501"]).server).toEqual([
      { host: "a.example", port: 7500 },
      { host: "b.example", port: undefined },
      { host: "::1", port: 7501 },
    ]);
  });

  test("--server replaces the host and port of USER@HOST and --host; --port fills in entries without a port", () => {
    const opts = { ...parse(["--server", "a.example:7500,[2001:db8::1]"]), host: "flag.example", port: 9000 };
    expect(resolveTarget("alice@target.example:7600", opts)).toEqual({
      user: "alice",
      servers: [
        { host: "a.example", port: 7500 },
        { host: "2001:db8::1", port: 9000 },
      ],
    });
    expect(resolveTarget("alice", { server: [{ host: "a.example", port: undefined }] })).toEqual(one("alice", "a.example", DEFAULT_PORT));
  });

  test("TLSCHAT_SERVERS gives the list when --server is not on the command line; an empty one counts as unset", () => {
    withEnv({ TLSCHAT_SERVERS: "env-a:7001,env-b:7002" }, () => {
      expect(parse([]).server).toEqual([
        { host: "env-a", port: 7001 },
        { host: "env-b", port: 7002 },
      ]);
      expect(parse(["--server", "flag:7003"]).server).toEqual([{ host: "flag", port: 7003 }]);
    });
    withEnv({ TLSCHAT_SERVERS: "" }, () => {
      expect(resolveTarget("alice@target.example:7600", parse([]))).toEqual(one("alice", "target.example", 7600));
    });
  });

  test.each([
    ["a:7443,,b:7443", 'Cannot read server ""'],
    ["a:7443,", 'Cannot read server ""'],
    ["::1", 'Cannot read server "::1"'],
    ["[::1", 'Cannot read server "[::1"'],
    ["a:1:2", 'Cannot read server "a:1:2"'],
    ["host:port", 'Cannot read server "host:port"'],
    ["host:0", 'Bad port in server "host:0": expected a port number 1-65535'],
    ["b:7443,host:65536", 'Bad port in server "host:65536"'],
  ])("--server %p is a usage error of one line: %s", async (value, message) => {
    const fromFlag = captureIO();
    expect(await run(["chat", "alice", "--server", value], fromFlag.io)).toBe(EXIT_USAGE);
    expect(fromFlag.stderr().split("\n").filter(Boolean)).toHaveLength(1);
    expect(fromFlag.stderr()).toContain(message);

    const fromEnv = captureIO();
    const code = await withEnv({ TLSCHAT_SERVERS: value }, () => run(["register", "alice"], fromEnv.io));
    expect(code).toBe(EXIT_USAGE);
    expect(fromEnv.stderr().split("\n").filter(Boolean)).toHaveLength(1);
    expect(fromEnv.stderr()).toContain("TLSCHAT_SERVERS");
    expect(fromEnv.stderr()).toContain(message);
  });

  test("--fingerprint is repeatable and takes commas, as TLSCHAT_FINGERPRINT does", () => {
    expect(parse(["--fingerprint", `${FINGERPRINT},${OTHER_FINGERPRINT}`, "--fingerprint", THIRD_FINGERPRINT]).fingerprint).toEqual([
      FINGERPRINT,
      OTHER_FINGERPRINT,
      THIRD_FINGERPRINT,
    ]);
    withEnv({ TLSCHAT_FINGERPRINT: `${FINGERPRINT}, ${OTHER_FINGERPRINT}` }, () => {
      expect(parse([]).fingerprint).toEqual([FINGERPRINT, OTHER_FINGERPRINT]);
    });
  });
});

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

describe("verifying the server", () => {
  const servers: ServerAddress[] = [{ host: "localhost", port: 7500 }];
  const peer = (fingerprint256: string) => ({ fingerprint256, authorized: false, authorizationError: "DEPTH_ZERO_SELF_SIGNED_CERT" });

  /** A clean config directory, so known_hosts is this test's own. */
  function configured(dir: TempDir) {
    return captureIO({ XDG_CONFIG_HOME: dir.file("config") });
  }

  async function verification(dir: TempDir, opts: ConnectionOptions) {
    const cli = configured(dir);
    const [endpoint] = await withVerification(cli.io, opts, servers);
    expect(endpoint).toMatchObject(servers[0]!);
    return { cli, verification: endpoint!.verification };
  }

  test.each<[string, ConnectionOptions]>([
    ["--ca and --insecure", { ca: "ca.pem", insecure: true }],
    ["--ca and --fingerprint", { ca: "ca.pem", fingerprint: [FINGERPRINT] }],
    ["--fingerprint and --insecure", { fingerprint: [FINGERPRINT], insecure: true }],
    ["all three", { ca: "ca.pem", fingerprint: [FINGERPRINT], insecure: true }],
  ])("%s together are a usage error, before any file is read", async (_, opts) => {
    await using dir = await tempDir();
    const cli = configured(dir);
    const error = await cliErrorOf(() => withVerification(cli.io, opts, servers));
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
    const error = await cliErrorOf(() => withVerification(cli.io, { ca: dir.file("missing.pem") }, servers));
    expect(error.exitCode).toBe(EXIT_FAILURE);
    expect(error.message).toStartWith(`Cannot read the CA file ${dir.file("missing.pem")}: `);
  });

  test("a --fingerprint that is not a SHA-256 digest is a usage error", async () => {
    await using dir = await tempDir();
    const cli = configured(dir);
    const error = await cliErrorOf(() => withVerification(cli.io, { fingerprint: [FINGERPRINT, "not-hex"] }, servers));
    expect(error.exitCode).toBe(EXIT_USAGE);
    expect(error.message).toStartWith("--fingerprint: ");
  });

  test("--fingerprint accepts only that certificate, and pins it for HOST:PORT", async () => {
    await using dir = await tempDir();
    const { cli, verification: result } = await verification(dir, { fingerprint: [FINGERPRINT.toLowerCase()] });
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

describe("verifying several servers", () => {
  const servers: ServerAddress[] = [
    { host: "a.example", port: 7500 },
    { host: "::1", port: 7501 },
  ];
  const peer = (fingerprint256: string) => ({ fingerprint256, authorized: false, authorizationError: "DEPTH_ZERO_SELF_SIGNED_CERT" });

  async function checks(dir: TempDir, opts: ConnectionOptions, mayAsk?: () => boolean) {
    const cli = captureIO({ XDG_CONFIG_HOME: dir.file("config") });
    const endpoints = await withVerification(cli.io, opts, servers, mayAsk);
    expect(endpoints.map(({ host, port }) => ({ host, port }))).toEqual(servers);
    return { cli, check: endpoints.map((endpoint) => fingerprintCheck(endpoint.verification)) };
  }

  test("--insecure warns once, naming every server; --ca applies to each", async () => {
    await using dir = await tempDir();
    const cli = captureIO({ XDG_CONFIG_HOME: dir.file("config") });
    expect((await withVerification(cli.io, { insecure: true }, servers)).map((e) => e.verification)).toEqual([{ kind: "insecure" }, { kind: "insecure" }]);
    expect(cli.stderr()).toStartWith("WARNING: --insecure: the identity of a.example:7500, [::1]:7501 is NOT verified;");
    expect(cli.stderr().split("\n").filter(Boolean)).toHaveLength(1);
    await writeFile(dir.file("ca.pem"), "PEM TEXT\n");
    const withCa = await withVerification(cli.io, { ca: dir.file("ca.pem") }, servers);
    expect(withCa.map((e) => e.verification)).toEqual([{ kind: "ca", ca: "PEM TEXT\n" }, { kind: "ca", ca: "PEM TEXT\n" }]);
  });

  test("with several --fingerprint, each server may present any of them, and is pinned under its own host:port", async () => {
    await using dir = await tempDir();
    const { cli, check } = await checks(dir, { fingerprint: [FINGERPRINT, OTHER_FINGERPRINT] });
    await check[0]!(peer(OTHER_FINGERPRINT));
    await check[1]!(peer(FINGERPRINT));
    const refused = check[1]!(peer(THIRD_FINGERPRINT));
    await expect(refused).rejects.toThrow(`expected:  ${FINGERPRINT}\n         or  ${OTHER_FINGERPRINT}\n  presented: ${THIRD_FINGERPRINT}`);
    expect(await Bun.file(dir.file("config/tlschat/known_hosts")).text()).toBe(`a.example:7500 ${OTHER_FINGERPRINT}\n[::1]:7501 ${FINGERPRINT}\n`);
    expect(cli.stderr()).toContain(`Pinned [::1]:7501 as ${FINGERPRINT}`);
  });

  test("a pin is per host:port, and the certificate pinned for one server is trusted for the others", async () => {
    await using dir = await tempDir();
    const first = await checks(dir, { trustNew: true });
    await first.check[0]!(peer(FINGERPRINT));
    // Without --trust-new, and with nobody to ask: the second server is unknown, unless it
    // presents the certificate just pinned for the first.
    const later = await checks(dir, {});
    await expect(later.check[1]!(peer(OTHER_FINGERPRINT))).rejects.toThrow("[::1]:7501 is not a known server");
    await later.check[1]!(peer(FINGERPRINT));
    expect(later.cli.stderr()).toContain(`Pinned [::1]:7501 as ${FINGERPRINT} in ${dir.file("config/tlschat/known_hosts")} (the certificate pinned for a.example:7500)`);
    // Pinned now: another certificate there is a changed key, whatever the first server has.
    await expect((await checks(dir, {})).check[1]!(peer(OTHER_FINGERPRINT))).rejects.toThrow("HAS CHANGED");
  });

  test("on a terminal, an unknown server is not asked about once the caller says so", async () => {
    await using dir = await tempDir();
    const cli = captureIO({ XDG_CONFIG_HOME: dir.file("config") });
    const io = { ...cli.io, stdin: Object.assign(cli.io.stdin, { isTTY: true }), stdout: Object.assign(cli.io.stdout, { isTTY: true }) };
    const [endpoint] = await withVerification(io, {}, servers, () => false);
    await expect(fingerprintCheck(endpoint!.verification)(peer(FINGERPRINT))).rejects.toThrow("a.example:7500 is not a known server");
    expect(cli.stdout()).toBe("");
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
