// A real redis-server for tests: on 127.0.0.1, a free port and a temp dir, with the persistence
// a test asks for; it can be stopped, killed with a signal and started again on the same port
// and data, and it is always shut down when the test is done (`await using`).

import type { Subprocess } from "bun";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool } from "./tools.ts";
import { withTimeout } from "./client.ts";

/** Whether redis-server can run here; prints the one skip line otherwise (see tools.ts). */
export function redisAvailable(): boolean {
  return requireTool({ name: "redis-server", debianPackage: "redis-server", what: "cluster tests" });
}

export interface RedisOptions {
  /** Append-only file with this fsync policy; no persistence at all when absent. */
  appendfsync?: "always" | "everysec" | "no";
  /** Speak TLS only (rediss://), with this certificate for localhost; clients need not present one. */
  tls?: { certPem: string; keyPem: string };
}

export interface TestRedis extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Starts it again on the same port and data (after stop or kill). */
  start(): Promise<void>;
  /** SHUTDOWN-like stop with SIGTERM (saves nothing without persistence), waiting for the exit. */
  stop(): Promise<void>;
  /** Kills the process with the signal and waits for it to go. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: the process stays, its connections stay open, and nothing answers. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** Runs one command with redis-cli and returns its output. */
  cli(...args: string[]): string;
}

const START_TIMEOUT_MS = 10_000;
/** Tries at other ports when the one picked was taken meanwhile by someone else. */
const PORT_ATTEMPTS = 5;

export async function startRedis(options: RedisOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), "tlschat-redis-"));
  if (options.tls) {
    await writeFile(join(dir, "cert.pem"), options.tls.certPem);
    await writeFile(join(dir, "key.pem"), options.tls.keyPem, { mode: 0o600 });
  }
  let port = 0;
  let proc: Subprocess | undefined;
  const tlsArgs = options.tls ? ["--tls", "--cacert", join(dir, "cert.pem")] : [];
  const args = () => [
    "redis-server",
    "--bind", "127.0.0.1",
    ...(options.tls
      ? ["--port", "0", "--tls-port", String(port), "--tls-cert-file", join(dir, "cert.pem"), "--tls-key-file", join(dir, "key.pem"), "--tls-auth-clients", "no"]
      : ["--port", String(port)]),
    "--dir", dir,
    "--save", "",
    "--appendonly", options.appendfsync ? "yes" : "no",
    ...(options.appendfsync ? ["--appendfsync", options.appendfsync] : []),
    "--protected-mode", "yes",
    "--logfile", join(dir, "redis.log"),
  ];
  const start = async () => {
    proc = Bun.spawn(args(), { stdout: "ignore", stderr: "pipe" });
    await withTimeout(waitUntilReady(port, proc, tlsArgs), START_TIMEOUT_MS, `redis-server on port ${port}`);
  };
  for (let attempt = 1; ; attempt++) {
    port = freePort();
    try {
      await start();
      break;
    } catch (error) {
      proc?.kill("SIGKILL");
      if (attempt === PORT_ATTEMPTS) throw error;
    }
  }
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    await proc.exited;
  };
  return {
    port,
    url: options.tls ? `rediss://localhost:${port}` : `redis://127.0.0.1:${port}`,
    dir,
    start,
    stop: () => kill("SIGTERM"),
    kill,
    pause: () => proc?.kill("SIGSTOP"),
    resume: () => proc?.kill("SIGCONT"),
    cli: (...command) => Bun.spawnSync(["redis-cli", "-p", String(port), ...tlsArgs, ...command]).stdout.toString(),
    [Symbol.asyncDispose]: async () => {
      proc?.kill("SIGCONT");
      await kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** Pings until it answers; fails early if the process exits (the port was taken). */
async function waitUntilReady(port: number, proc: Subprocess, tlsArgs: string[]): Promise<void> {
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
    const ping = Bun.spawn(["redis-cli", "-p", String(port), ...tlsArgs, "ping"], { stdout: "pipe", stderr: "ignore" });
    const answer = await new Response(ping.stdout).text();
    if (answer.trim() === "PONG") return;
    await new Promise<void>((resolve) => setTimeout(resolve, 20));
  }
}
