// ngircd for the ircd scenario: started by the bench for each repetition (`ngircd --nodaemon`),
// TLS only, on 127.0.0.1 and a free port, with a config of its own in a temp dir under the
// workspace and the workspace's certificate (the one tlschat serves, so both present the same
// key), its flood protection turned off as far as ngircd 26 lets a config do it, watched through
// /proc like the servers, and stopped by its pid (also by killAllChildren when the run fails).

import type { Subprocess } from "bun";
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MAX_WRITE_BYTES } from "./irc.ts";
import { freePort, HOST, procCpuMs, procRssKiB, terminate, trackChild, untrackChild, type Watched, type Workspace } from "./proc.ts";
import { BenchError, now, sleep } from "./util.ts";

export const NGIRCD_PACKAGE = "ngircd";

/** ngircd reads certificates, config and help file before it drops root; long enough for its DH parameters. */
const START_TIMEOUT_MS = 15_000;
/** Between looks at the log for the "ready." line while ngircd starts, in ms. */
const READY_POLL_MS = 20;
/** New ports tried when the one picked was taken in the meantime. */
const PORT_ATTEMPTS = 5;
/** Log lines quoted when ngircd fails. */
const LOG_TAIL_LINES = 20;
/** No client is pinged during a repetition (the longest is a minute), so no PONG is waited for. */
const PING_TIMEOUT_SECONDS = 600;

/**
 * The flood limits as the config leaves them, for the scenario's notes and config. What a config
 * can lift is lifted: `MaxPenaltyTime = 0` disables penalty time altogether, and user mode F
 * (relaxed flood protection, given to every client by `DefaultUserModes`) exempts a client from
 * throttling on commands per pass and bytes per second. What is compiled in stays.
 */
export const NGIRCD_LIMITS = {
  maxPenaltyTime: 0,
  defaultUserModes: "F",
  maxConnections: 0,
  maxConnectionsIP: 0,
  maxJoins: 0,
  pingTimeoutSeconds: PING_TIMEOUT_SECONDS,
  pongTimeoutSeconds: PING_TIMEOUT_SECONDS,
  compiledIn:
    "at most 10 commands per connection per pass of the main loop (MAX_COMMANDS_SERVICE, for mode F; 3 without it), " +
    "reads of at most 2048 bytes; a connection is closed when it is read with 2048 unparsed bytes in its buffer, " +
    "or when its write buffer would exceed 32 KiB (WRITEBUFFER_MAX_LEN); it never reads the rest of a TLS record " +
    `past those 2048 bytes until the client sends again, so the bench's IRC clients write at most ${MAX_WRITE_BYTES} bytes per record`,
} as const;

/** Whether ngircd can be started here. */
export function ngircdInstalled(): boolean {
  return Bun.which("ngircd") !== null;
}

/** `ngircd --version`'s first line, or "not installed". */
export function ngircdVersion(): string {
  const version = spawnSync("ngircd", ["--version"], { encoding: "utf8" });
  return version.status === 0 ? version.stdout.trim().split("\n")[0]! : "not installed";
}

function configText(dir: string, ws: Workspace, port: number): string {
  const limits = NGIRCD_LIMITS;
  return `[Global]
Name = bench.ircd
Info = tlschat bench peer
AdminInfo1 = tlschat bench
AdminInfo2 = tlschat bench
AdminEMail = bench@localhost
Listen = ${HOST}
Ports =
MotdPhrase = tlschat bench

[Limits]
MaxConnections = ${limits.maxConnections}
MaxConnectionsIP = ${limits.maxConnectionsIP}
MaxJoins = ${limits.maxJoins}
MaxPenaltyTime = ${limits.maxPenaltyTime}
PingTimeout = ${limits.pingTimeoutSeconds}
PongTimeout = ${limits.pongTimeoutSeconds}

[Options]
DNS = no
Ident = no
PAM = no
DefaultUserModes = ${limits.defaultUserModes}
IncludeDir = ${join(dir, "conf.d")}

[SSL]
CertFile = ${ws.cert}
KeyFile = ${ws.key}
Ports = ${port}
`;
}

export class NgircdProcess implements Watched {
  readonly name = "ngircd";

  private constructor(
    readonly proc: Subprocess<"ignore", number, number>,
    readonly port: number,
    readonly dir: string,
    readonly logPath: string,
  ) {}

  get pid(): number {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  cpuMs(): number {
    return procCpuMs(this.pid);
  }

  rssKiB(): number {
    return procRssKiB(this.pid);
  }

  /** The last lines ngircd logged (it logs to stdout with --nodaemon). */
  logTail(): string {
    if (!existsSync(this.logPath)) return "";
    return readFileSync(this.logPath, "utf8").trimEnd().split("\n").slice(-LOG_TAIL_LINES).join("\n");
  }

  /** A new ngircd with its own config dir under the workspace; resolves once it has logged "ready.". */
  static async start(ws: Workspace): Promise<NgircdProcess> {
    const dir = mkdtempSync(join(ws.dir, "ngircd-"));
    // Its own, empty IncludeDir: ngircd would otherwise read /etc/ngircd/ngircd.conf.d.
    mkdirSync(join(dir, "conf.d"));
    for (let attempt = 1; ; attempt++) {
      const port = freePort();
      const config = join(dir, `ngircd-${port}.conf`);
      const logPath = join(dir, `ngircd-${port}.log`);
      writeFileSync(config, configText(dir, ws, port));
      // A file, not a pipe: ngircd logs every connection, and a pipe nobody reads would block it.
      const logFd = openSync(logPath, "w");
      let proc: Subprocess<"ignore", number, number>;
      try {
        proc = Bun.spawn(["ngircd", "--nodaemon", "--config", config], { cwd: dir, stdin: "ignore", stdout: logFd, stderr: logFd });
      } finally {
        closeSync(logFd);
      }
      trackChild(proc);
      const server = new NgircdProcess(proc, port, dir, logPath);
      try {
        await server.ready();
        return server;
      } catch (error) {
        const tail = server.logTail();
        await server.stop({ keepDir: true });
        if (attempt === PORT_ATTEMPTS) {
          rmSync(dir, { recursive: true, force: true });
          throw new BenchError(`ngircd did not start: ${(error as Error).message}\n${tail}`);
        }
      }
    }
  }

  /** SIGTERM, then SIGKILL after 3 s; resolves once it has exited, and removes its dir. */
  async stop(options: { keepDir?: boolean } = {}): Promise<void> {
    if (this.alive) await terminate(this.proc, "ngircd");
    untrackChild(this.proc);
    if (!options.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Waits for the "ready." log line; fails early if ngircd exits (a port taken, a bad config). */
  private async ready(): Promise<void> {
    const deadline = now() + START_TIMEOUT_MS;
    for (;;) {
      if (!this.alive) throw new BenchError(`ngircd exited (${this.proc.exitCode ?? this.proc.signalCode})`);
      if (/\) ready\.$/m.test(readFileSync(this.logPath, "utf8"))) return;
      if (now() > deadline) throw new BenchError(`no "ready." line within ${START_TIMEOUT_MS} ms`);
      await sleep(READY_POLL_MS);
    }
  }
}
