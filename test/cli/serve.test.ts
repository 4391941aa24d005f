import { describe, expect, test } from "bun:test";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { run } from "../../src/cli/program.ts";
import { VERSION } from "../../src/cli/version.ts";
import { defaultOutboundBudgetBytes, MAX_DEFAULT_OUTBOUND_BUDGET_BYTES } from "../../src/server/outbound-budget.ts";
import { TestClient } from "../helpers/client.ts";
import { testCertificate } from "../helpers/certs.ts";
import { captureIO } from "../helpers/cli-io.ts";
import { spawnTlschat } from "../helpers/process.ts";
import { tempDir } from "../helpers/tmp.ts";

const LISTENING = /listening address=127\.0\.0\.1:(\d+)/;

/** Each run of `tlschat` (its arguments and environment) is a usage error: exit 2 and one line on stderr, naming every one of `mentions`. */
async function expectUsageErrors(runs: Array<[string[], Record<string, string>]>, ...mentions: string[]): Promise<void> {
  await using dir = await tempDir();
  for (const [args, env] of runs) {
    await using run = spawnTlschat(args, { cwd: dir.path, env });
    expect(await run.exited).toBe(2);
    const lines = run.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    for (const mention of mentions) expect(lines[0]).toContain(mention);
  }
}

describe("tlschat serve (the real process)", () => {
  test("starts with no files: generates a certificate, creates the store, serves TLS 1.3, stops on SIGTERM", async () => {
    await using dir = await tempDir();
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0"], { cwd: dir.path });
    const port = Number((await server.waitForLine(LISTENING))[1]);
    expect(server.stderr()).toMatch(/certificate_generated cert=certs\/cert.pem key=certs\/key.pem fingerprint=([0-9A-F]{2}:){31}[0-9A-F]{2}/);
    expect((await stat(dir.file("certs/cert.pem"))).mode & 0o777).toBe(0o644);
    expect((await stat(dir.file("certs/key.pem"))).mode & 0o777).toBe(0o600);
    expect((await stat(dir.file("data/users.json"))).mode & 0o777).toBe(0o600);

    const ca = await readFile(dir.file("certs/cert.pem"), "utf8");
    await using client = await TestClient.connect({ port, ca });
    expect(client.tlsVersion).toBe("TLSv1.3");
    await client.register("alice", "correct horse");
    await client.login("alice", "correct horse");

    const stopping = Date.now();
    server.proc.kill("SIGTERM");
    expect(await client.nextError()).toBe("shutting_down");
    await client.closed;
    expect(await server.exited).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(2_000);
    const store = JSON.parse(await readFile(dir.file("data/users.json"), "utf8"));
    expect(store.users.map((user: { name: string }) => user.name)).toEqual(["alice"]);
    expect(server.stderr()).not.toContain("correct horse");
  });

  test("an explicitly named certificate that is missing is an error, not a generated one", async () => {
    await using dir = await tempDir();
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0", "--cert", "nope.pem", "--key", "nope-key.pem"], { cwd: dir.path });
    expect(await server.exited).toBe(1);
    expect(server.stderr().trim().split("\n")).toHaveLength(1);
    expect(server.stderr()).toContain("nope.pem does not exist");
  });

  test("a corrupt store stops the start with one line and is left untouched", async () => {
    await using dir = await tempDir();
    await mkdir(dir.file("data"));
    await writeFile(dir.file("data/users.json"), '{"format":"tlschat-users", oops');
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0"], { cwd: dir.path });
    expect(await server.exited).toBe(1);
    expect(server.stderr()).toContain("is corrupt (not valid UTF-8 JSON)");
    expect(server.stderr()).not.toContain("listening");
    expect(await readFile(dir.file("data/users.json"), "utf8")).toBe('{"format":"tlschat-users", oops');
  });

  test("legacy mode: TLS 1.2 with AES128-SHA needs an RSA key, and warns about forward secrecy", async () => {
    await using dir = await tempDir();
    const ec = await testCertificate("ec");
    await writeFile(dir.file("ec-cert.pem"), ec.certPem);
    await writeFile(dir.file("ec-key.pem"), ec.keyPem);
    const legacy = ["serve", "--host", "127.0.0.1", "--port", "0", "--tls-max", "1.2", "--ciphers", "AES128-SHA"];
    await using refused = spawnTlschat([...legacy, "--cert", "ec-cert.pem", "--key", "ec-key.pem"], { cwd: dir.path });
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toContain("need an RSA certificate");

    const rsa = await testCertificate("rsa");
    await writeFile(dir.file("rsa-cert.pem"), rsa.certPem);
    await writeFile(dir.file("rsa-key.pem"), rsa.keyPem);
    await using server = spawnTlschat([...legacy, "--cert", "rsa-cert.pem", "--key", "rsa-key.pem"], { cwd: dir.path });
    const port = Number((await server.waitForLine(LISTENING))[1]);
    expect(server.stderr()).toContain("no forward secrecy");
    await using client = await TestClient.connect({ port, ca: rsa.certPem, tls: { maxVersion: 771, ciphers: "AES128-SHA" } });
    expect(client.tlsVersion).toBe("TLSv1.2");
    expect(client.cipher).toBe("AES128-SHA");
  });

  test("--no-registration refuses network registration; register --db adds users while the server runs", async () => {
    await using dir = await tempDir();
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0", "--no-registration"], { cwd: dir.path });
    const port = Number((await server.waitForLine(LISTENING))[1]);
    const ca = await readFile(dir.file("certs/cert.pem"), "utf8");
    await using client = await TestClient.connect({ port, ca });
    client.send({ type: "register", user: "mallory", password: "whatever123" });
    expect(await client.nextError()).toBe("registration_closed");

    await using register = spawnTlschat(["register", "--db", "data/users.json", "carol"], { cwd: dir.path, env: { TLSCHAT_PASSWORD: "carols password" } });
    expect(await register.exited).toBe(0);
    expect(register.stdout()).toContain("Registered carol");
    await client.login("carol", "carols password");
  });

  test("bad options are usage errors: one line, exit 2", async () => {
    await expectUsageErrors([
      [["serve", "--port", "http"], {}],
      [["serve", "--tls-min", "1.1"], {}],
      [["serve", "--log-format", "xml"], {}],
    ]);
  });

  test("--log-format json prints one JSON object per line", async () => {
    await using dir = await tempDir();
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0", "--log-format", "json"], { cwd: dir.path });
    await server.waitForLine(/"event":"listening"/);
    const lines = server.stderr().trim().split("\n");
    for (const line of lines) expect(JSON.parse(line)).toHaveProperty("event");
    expect(lines.map((line) => JSON.parse(line).event)).toContain("certificate_generated");
  });
});

describe("TLS settings that cannot work are refused in terms of the options that chose them", () => {
  const refusals: Array<[options: string[], message: string]> = [
    [["--tls-min", "1.3", "--tls-max", "1.2"], "tlschat: --tls-min 1.3 is above --tls-max 1.2\n"],
    [["--ciphers", "AES128-SHA"], "tlschat: --ciphers only applies to TLS 1.2; add --tls-max 1.2 (legacy) or --tls-min 1.2\n"],
    [["--tls-min", "1.2", "--ciphers", ":"], "tlschat: --ciphers is empty\n"],
    [
      ["--tls-max", "1.2", "--ciphers", "AES128-SHA"],
      "tlschat: None of the ciphers AES128-SHA works with this EC key; AES128-SHA and other RSA suites need an RSA certificate (tlschat gencert --key-type rsa)\n",
    ],
  ];
  for (const [options, message] of refusals) {
    test(options.join(" "), async () => {
      await using dir = await tempDir();
      const ec = await testCertificate("ec");
      await writeFile(dir.file("cert.pem"), ec.certPem);
      await writeFile(dir.file("key.pem"), ec.keyPem);
      const cli = captureIO();
      const files = ["--cert", dir.file("cert.pem"), "--key", dir.file("key.pem"), "--db", dir.file("users.json")];
      const code = await run(["serve", "--host", "127.0.0.1", "--port", "0", ...files, ...options], cli.io);
      expect(code).toBe(1);
      expect(cli.stderr()).toBe(message);
    });
  }
});

describe("boolean environment variables", () => {
  test("TLSCHAT_NO_REGISTRATION=0 leaves registration on; =1 turns it off; anything else is a usage error", async () => {
    await using dir = await tempDir();
    for (const [value, expected] of [["0", "registered"], ["1", "registration_closed"]] as const) {
      await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0"], { cwd: dir.path, env: { TLSCHAT_NO_REGISTRATION: value } });
      const port = Number((await server.waitForLine(LISTENING))[1]);
      await using client = await TestClient.connect({ port, ca: await readFile(dir.file("certs/cert.pem"), "utf8") });
      client.send({ type: "register", user: `user${value}`, password: "long enough" });
      const reply = await client.nextOf(["registered", "error"]);
      expect(reply.type === "error" ? reply.code : reply.type).toBe(expected);
    }
    await using bad = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0"], { cwd: dir.path, env: { TLSCHAT_NO_REGISTRATION: "maybe" } });
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain("TLSCHAT_NO_REGISTRATION must be");
  });
});

describe("serve --metrics", () => {
  const METRICS_LISTENING = /metrics_listening address=127\.0\.0\.1:(\d+) paths=\/metrics,\/healthz/;

  test("serves /metrics and /healthz on the address given (port 0: a free one), after the chat server", async () => {
    await using dir = await tempDir();
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0", "--metrics", "127.0.0.1:0"], { cwd: dir.path });
    const metricsPort = Number((await server.waitForLine(METRICS_LISTENING))[1]);
    const lines = server.stderr().split("\n");
    expect(lines.findIndex((line) => LISTENING.test(line))).toBeLessThan(lines.findIndex((line) => METRICS_LISTENING.test(line)));

    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await metrics.text();
    expect(text).toContain("\ntlschat_up 1\n");
    expect(text).toContain(`\ntlschat_build_info{version="${VERSION}"} 1\n`);
    expect(text).toContain("\ntlschat_connections 0\n");
    const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    expect([health.status, await health.text()]).toEqual([200, "ok\n"]);

    server.proc.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${metricsPort}/healthz`)).rejects.toThrow();
  });

  test("TLSCHAT_METRICS turns it on too", async () => {
    await using dir = await tempDir();
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0"], { cwd: dir.path, env: { TLSCHAT_METRICS: "127.0.0.1:0" } });
    const metricsPort = Number((await server.waitForLine(METRICS_LISTENING))[1]);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);
  });

  test("off by default: no metrics_listening line", async () => {
    await using dir = await tempDir();
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0"], { cwd: dir.path });
    await server.waitForLine(LISTENING);
    server.proc.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(server.stderr()).not.toContain("metrics");
  });

  test("a bad value, on the command line or in TLSCHAT_METRICS, is a usage error: one line, exit 2", async () => {
    await expectUsageErrors(
      [
        [["serve", "--metrics", "9464"], {}],
        [["serve", "--metrics", "localhost:http"], {}],
        [["serve", "--metrics", "::1:9464"], {}],
        [["serve"], { TLSCHAT_METRICS: "nonsense" }],
      ],
      "--metrics",
      "expected HOST:PORT",
    );
  });

  test("an address that cannot be bound stops the start: one error line, exit 1", async () => {
    await using dir = await tempDir();
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0", "--metrics", `127.0.0.1:${taken.port}`], { cwd: dir.path });
      expect(await server.exited).toBe(1);
      const errors = server.stderr().trim().split("\n").filter((line) => line.startsWith("tlschat:"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toStartWith(`tlschat: Cannot serve metrics on 127.0.0.1:${taken.port}: `);
      expect(errors[0]).toContain("in use");
      // Everything else is log lines, the chat server's stop among them.
      expect(server.stderr()).toContain(" stopped");
      expect(server.stderr()).not.toContain("metrics_listening");
    } finally {
      taken.stop(true);
    }
  });
});

describe("serve --max-outbound-memory", () => {
  const METRICS_LISTENING = /metrics_listening address=127\.0\.0\.1:(\d+)/;
  const BUDGET_GAUGE = /\ntlschat_outbound_budget_bytes (\d+)\n/;

  /** The budget the running server enforces, as its metrics report it. */
  async function servedBudget(args: string[], env: Record<string, string> = {}): Promise<number> {
    await using dir = await tempDir();
    await using server = spawnTlschat(["serve", "--host", "127.0.0.1", "--port", "0", "--metrics", "127.0.0.1:0", ...args], { cwd: dir.path, env });
    const metricsPort = Number((await server.waitForLine(METRICS_LISTENING))[1]);
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return Number(BUDGET_GAUGE.exec(text)?.[1]);
  }

  test("the size given, on the command line or in TLSCHAT_MAX_OUTBOUND_MEMORY, is the server's budget", async () => {
    expect(await servedBudget(["--max-outbound-memory", "3M"])).toBe(3 * 1024 ** 2);
    expect(await servedBudget([], { TLSCHAT_MAX_OUTBOUND_MEMORY: "512KiB" })).toBe(512 * 1024);
  });

  test("without it, a quarter of the machine's memory, at most 2 GiB", async () => {
    expect(await servedBudget([])).toBe(defaultOutboundBudgetBytes());
    expect(defaultOutboundBudgetBytes()).toBeLessThanOrEqual(MAX_DEFAULT_OUTBOUND_BUDGET_BYTES);
  });

  test("a size that is not one is a usage error: one line naming the option, exit 2", async () => {
    await expectUsageErrors(
      [
        [["serve", "--max-outbound-memory", "0"], {}],
        [["serve", "--max-outbound-memory", "lots"], {}],
        [["serve"], { TLSCHAT_MAX_OUTBOUND_MEMORY: "1.5G" }],
      ],
      "--max-outbound-memory",
      "expected a size",
    );
  });
});
