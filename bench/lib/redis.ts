// redis-server for the cluster scenarios: started by the bench on 127.0.0.1, a free port and a
// temp dir of its own, with the append-only file on and the fsync policy the scenario names (so
// an ack means what it means in production), watched through /proc like the servers, and stopped
// by its pid (also by killAllChildren when the run fails).

import type { Subprocess } from "bun";
import { RedisClient } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePort, HOST, procCpuMs, procRssKiB, terminate, trackChild, untrackChild } from "./proc.ts";
import { BenchError, now, sleep, withTimeout } from "./util.ts";

/**
 * Redis's `appendfsync`: `everysec` is the realistic production setting (an ack may lose up to a
 * second of messages if Redis's machine crashes); `always` fsyncs before answering.
 */
export type AppendFsync = "everysec" | "always";

export const REDIS_PACKAGE = "redis-server";

const START_TIMEOUT_MS = 10_000;
/** Between readiness probes while redis-server starts, in ms. */
const PROBE_EVERY_MS = 20;
/** Time one readiness probe (connect + PING) may take, in ms. */
const PROBE_TIMEOUT_MS = 500;
/** New ports tried when the one picked was taken in the meantime. */
const PORT_ATTEMPTS = 5;

/** Whether redis-server can be started here. */
export function redisServerInstalled(): boolean {
  return Bun.which("redis-server") !== null;
}

export class RedisProcess {
  private constructor(
    readonly proc: Subprocess<"ignore", "ignore", "ignore">,
    readonly port: number,
    readonly dir: string,
    readonly appendfsync: AppendFsync,
  ) {}

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  get pid(): number {
    return this.proc.pid;
  }

  cpuMs(): number {
    return procCpuMs(this.pid);
  }

  rssKiB(): number {
    return procRssKiB(this.pid);
  }

  /** A new redis-server with an empty data dir under `parent`; resolves once it answers PING. */
  static async start(parent: string, appendfsync: AppendFsync): Promise<RedisProcess> {
    const dir = mkdtempSync(join(parent, "redis-"));
    for (let attempt = 1; ; attempt++) {
      const port = freePort();
      const args = [
        "redis-server",
        "--bind", HOST,
        "--port", String(port),
        "--dir", dir,
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", appendfsync,
        "--protected-mode", "yes",
        "--logfile", join(dir, "redis.log"),
      ];
      const proc = Bun.spawn(args, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      trackChild(proc);
      const redis = new RedisProcess(proc, port, dir, appendfsync);
      try {
        await redis.ready();
        return redis;
      } catch (error) {
        await redis.stop({ keepDir: true });
        if (attempt === PORT_ATTEMPTS) {
          rmSync(dir, { recursive: true, force: true });
          throw new BenchError(`redis-server did not start: ${(error as Error).message} (log: ${join(dir, "redis.log")})`);
        }
      }
    }
  }

  /** SIGTERM (Redis flushes its append-only file and exits), SIGKILL after 3 s; removes its dir. */
  async stop(options: { keepDir?: boolean } = {}): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) await terminate(this.proc, "redis-server");
    untrackChild(this.proc);
    if (!options.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Probes with PING until it answers; fails early if the process exits (the port was taken). */
  private async ready(): Promise<void> {
    const deadline = now() + START_TIMEOUT_MS;
    for (;;) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new BenchError(`redis-server exited (${this.proc.exitCode ?? this.proc.signalCode})`);
      if (await this.answersPing()) return;
      if (now() > deadline) throw new BenchError(`no PONG on port ${this.port} within ${START_TIMEOUT_MS} ms`);
      await sleep(PROBE_EVERY_MS);
    }
  }

  private async answersPing(): Promise<boolean> {
    const client = new RedisClient(this.url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: PROBE_TIMEOUT_MS });
    try {
      const ping = client.connect().then(() => client.send("PING", []));
      return (await withTimeout(ping, PROBE_TIMEOUT_MS, "PONG")) === "PONG";
    } catch {
      return false;
    } finally {
      client.close();
    }
  }
}
