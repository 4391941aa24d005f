// The servers under test as child processes: tlschat (compiled binary or `bun src/main.ts`), on its
// own files or as a node of a cluster on Redis, and `ncat --broker --ssl` as the peer. Each is
// started on 127.0.0.1 only, watched through /proc (CPU ticks, RSS) and stopped by its own pid:
// SIGTERM, then SIGKILL after 3 s.

import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { serialise, type UserRecord } from "../../src/auth/store-format.ts";
import { BenchError, log, now, sleep, withTimeout } from "./util.ts";

export const REPO = resolve(import.meta.dir, "../..");
export const HOST = "127.0.0.1";
const CLK_TCK = 100; // `getconf CLK_TCK` on Linux x86-64; /proc/<pid>/stat counts in these ticks.
const STOP_GRACE_MS = 3_000;
const START_TIMEOUT_MS = 15_000;

/** Every child we started, so a fatal error or the watchdog can stop them by pid. */
const children = new Set<Subprocess>();

/** Puts a child the bench started elsewhere (redis-server) under `killAllChildren`. */
export function trackChild(child: Subprocess): void {
  children.add(child);
}

/** A tracked child that has exited. */
export function untrackChild(child: Subprocess): void {
  children.delete(child);
}

export function killAllChildren(): void {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** CPU time (user + system, all threads) of a process in ms, from /proc/<pid>/stat. */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields after "pid (comm)" start at field 3 (state); utime is field 14, stime 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** Resident set size of a process in KiB, from /proc/<pid>/status. */
export function procRssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) : NaN;
}

/** The soft limit on open files of this process. */
export function openFileLimit(): number {
  const limits = readFileSync("/proc/self/limits", "utf8");
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  return !match ? NaN : match[1] === "unlimited" ? Infinity : Number(match[1]);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const probe = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** Whether a plain TCP connection to the port succeeds (a listener is up). */
export async function tcpConnects(port: number, timeoutMs = 500): Promise<boolean> {
  try {
    const socket = await withTimeout(Bun.connect({ hostname: HOST, port, socket: { data() {} } }), timeoutMs, "tcp probe");
    socket.terminate();
    return true;
  } catch {
    return false;
  }
}

export interface Workspace {
  dir: string;
  cert: string;
  key: string;
  certPem: string;
  /** A path for a new chat database, so each server starts with no rooms but the lobby. */
  newChatDb(): string;
  remove(): void;
}

/** How the tlschat server is started: the compiled binary or the sources through Bun. */
export interface ServerCommand {
  kind: "binary" | "source";
  /** argv prefix before `serve ...` */
  argv: string[];
  cwd: string;
  describe: string;
}

export function serverCommand(binary: string | undefined, forceSource: boolean, cpuProfDir?: string): ServerCommand {
  const candidate = binary ?? join(REPO, "dist/tlschat");
  if (!forceSource && cpuProfDir === undefined && existsSync(candidate)) {
    return { kind: "binary", argv: [resolve(candidate)], cwd: REPO, describe: resolve(candidate) };
  }
  if (binary !== undefined && !forceSource && cpuProfDir === undefined) throw new BenchError(`${binary} does not exist`);
  const prof = cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`, "--cpu-prof-md"];
  const argv = [process.execPath, ...prof, join(REPO, "src/main.ts")];
  return { kind: "source", argv, cwd: REPO, describe: `${process.execPath} ${prof.join(" ")} src/main.ts`.replace(/\s+/g, " ") };
}

/** A temp dir with a certificate made by `tlschat gencert` (SANs localhost, 127.0.0.1, ::1). */
export async function makeWorkspace(command: ServerCommand): Promise<Workspace> {
  const dir = mkdtempSync(join(tmpdir(), "tlschat-bench-"));
  const gencert = Bun.spawn([...command.argv, "gencert", "--out", dir], {
    cwd: command.cwd,
    env: cleanEnv(),
    stdout: "pipe",
    stderr: "pipe",
  });
  const code = await withTimeout(gencert.exited, 30_000, "tlschat gencert");
  if (code !== 0) throw new BenchError(`tlschat gencert failed: ${await new Response(gencert.stderr).text()}`);
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  let chatDbs = 0;
  return {
    dir,
    cert,
    key,
    certPem: readFileSync(cert, "utf8"),
    newChatDb: () => join(dir, `chat-${++chatDbs}.db`),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface StoreInfo {
  path: string;
  secret: Uint8Array;
  users: number;
}

/**
 * Writes a tlschat store file (in the server's own format) with users u1..uN that all share one
 * argon2id hash of `password`, computed once with the server's parameters (m=19456 KiB, t=2).
 * `keys` binds a key (certificate fingerprint) to some of them, last used long ago: each one's
 * first login then writes its use to the store, as on the first login of a day.
 */
export async function writeStore(path: string, users: number, password: string, keys: ReadonlyMap<string, string> = new Map()): Promise<StoreInfo> {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const hash = await Bun.password.hash(password, { algorithm: "argon2id", memoryCost: 19_456, timeCost: 2 });
  const records = new Map<string, UserRecord>();
  for (let i = 1; i <= users; i++) {
    const name = userName(i);
    const fingerprint = keys.get(name);
    records.set(name, { name, hash, epoch: 0, createdAt: 0, keys: fingerprint === undefined ? [] : [{ fingerprint, addedAt: 0, lastUsedAt: 0 }] });
  }
  writeFileSync(path, serialise({ secret, users: records }), { mode: 0o600 });
  return { path, secret, users };
}

export const userName = (i: number): string => `u${i}`;

/** The child's environment without TLSCHAT_* settings that would change the server's options. */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith("TLSCHAT_") || name === "NODE_TLS_REJECT_UNAUTHORIZED") continue;
    env[name] = value;
  }
  return env;
}

/** The files a tlschat server keeps its state in. */
export interface ServerFiles {
  /** The account store (users.json format). */
  accounts: string;
  /** The chat database: rooms, members, bans and (with the `db` message log) every message. */
  chat: string;
}

/** `serve --message-log`: `db` (serve's default) writes every message to the chat database. */
export type MessageLogMode = "db" | "memory";

/** The `serve` limits the bench sets. */
export interface ServeLimits {
  /** Room messages and dms per connection: sustained per second, and the burst. */
  msgRate: number;
  msgBurst: number;
  maxConnections: number;
  maxPerIp: number;
  idleTimeoutSeconds: number;
  authTimeoutSeconds: number;
}

/** Generous enough that no scenario meets a cap: the bench measures the relay, not the limits. */
export const GENEROUS_LIMITS: ServeLimits = {
  msgRate: 1_000_000,
  msgBurst: 1_000_000,
  maxConnections: 20_000,
  maxPerIp: 20_000,
  idleTimeoutSeconds: 600,
  authTimeoutSeconds: 600,
};

/** A server on its own files (serve's default). */
export interface EmbeddedState {
  kind: "embedded";
  files: ServerFiles;
  /** Passed explicitly, so every scenario's output says which log it measured. */
  messageLog: MessageLogMode;
}

/** A node of a cluster: accounts, rooms, history and presence in this Redis. */
export interface ClusterState {
  kind: "cluster";
  redisUrl: string;
  /** An account store (users.json format) to copy into Redis before listening, with its token secret. */
  importAccounts?: string;
}

/** Everything a tlschat server is started with, kept so that a restart is the same server. */
export interface ServeSettings {
  state: EmbeddedState | ClusterState;
  limits: ServeLimits;
}

/** The `serve` arguments that say where the server keeps its state. */
function stateArgs(state: EmbeddedState | ClusterState): string[] {
  if (state.kind === "embedded") return ["--db", state.files.accounts, "--chat-db", state.files.chat, "--message-log", state.messageLog];
  return ["--redis", state.redisUrl, ...(state.importAccounts === undefined ? [] : ["--import-db", state.importAccounts])];
}

/** A process whose CPU and memory a scenario measures: a server, a cluster's node or its Redis. */
export interface Watched {
  readonly name: string;
  cpuMs(): number;
  rssKiB(): number;
}

/** A running server child, TLS on 127.0.0.1:port. */
export class ServerProcess {
  readonly stderrTail: string[] = [];
  exitCode: number | null = null;
  /** performance.now() when the child was spawned and when its "listening" line was read. */
  spawnedAt = 0;
  listeningAt = NaN;
  private listening!: Promise<number>;

  /** tlschat only: starts a new server with the same command, port and settings. */
  private relaunch: (() => Promise<ServerProcess>) | undefined;

  private constructor(
    readonly name: string,
    readonly proc: Subprocess<"ignore", "ignore" | "pipe", "pipe">,
    readonly port: number,
  ) {}

  get pid(): number {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.exitCode === null;
  }

  cpuMs(): number {
    return procCpuMs(this.pid);
  }

  rssKiB(): number {
    return procRssKiB(this.pid);
  }

  /** Starts `tlschat serve` with the given settings and waits for its "listening" log line. */
  static async startTlschat(command: ServerCommand, ws: Workspace, settings: ServeSettings, port: number): Promise<ServerProcess> {
    const { limits } = settings;
    const args = [
      ...command.argv,
      "serve",
      "--host", HOST,
      "--port", String(port),
      "--cert", ws.cert,
      "--key", ws.key,
      ...stateArgs(settings.state),
      "--msg-rate", String(limits.msgRate),
      "--msg-burst", String(limits.msgBurst),
      "--max-connections", String(limits.maxConnections),
      "--max-per-ip", String(limits.maxPerIp),
      "--idle-timeout", String(limits.idleTimeoutSeconds),
      "--auth-timeout", String(limits.authTimeoutSeconds),
    ];
    const spawnedAt = now();
    const proc = Bun.spawn(args, { cwd: command.cwd, env: cleanEnv(), stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const server = new ServerProcess("tlschat", proc, port);
    server.relaunch = () => ServerProcess.startTlschat(command, ws, settings, port);
    server.spawnedAt = spawnedAt;
    children.add(proc);
    server.watchExit();
    server.listening = server.readLog(/ listening address=(\S+)/);
    try {
      await withTimeout(server.listening, START_TIMEOUT_MS, "the server's listening line");
    } catch (error) {
      await server.stop();
      throw new BenchError(`tlschat did not start: ${(error as Error).message}\n${server.stderrTail.join("\n")}`);
    }
    return server;
  }

  /** Starts `ncat --broker --ssl` and waits until its port accepts TCP connections. */
  static async startNcat(ws: Workspace, port: number, maxConns: number): Promise<ServerProcess> {
    const args = [
      "ncat", "--listen", HOST, String(port),
      "--broker", "--ssl", "--ssl-cert", ws.cert, "--ssl-key", ws.key,
      "--max-conns", String(maxConns),
    ];
    const spawnedAt = now();
    const proc = Bun.spawn(args, { cwd: ws.dir, env: cleanEnv(), stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const server = new ServerProcess("ncat", proc, port);
    server.spawnedAt = spawnedAt;
    children.add(proc);
    server.watchExit();
    server.listening = server.readLog(/(?!)/); // ncat prints nothing when it listens
    server.listening.catch(() => undefined);
    const deadline = now() + START_TIMEOUT_MS;
    while (!(await tcpConnects(port))) {
      if (!server.alive || now() > deadline) {
        await server.stop();
        throw new BenchError(`ncat did not start: ${server.stderrTail.join("\n")}`);
      }
      await sleep(10);
    }
    server.listeningAt = now();
    return server;
  }

  /**
   * A new tlschat server on the same port, files, limits and message log: the restart clients
   * come back to. Call it once this one has stopped.
   */
  startAgain(): Promise<ServerProcess> {
    if (!this.relaunch) throw new BenchError(`${this.name} cannot be started again by the bench`);
    return this.relaunch();
  }

  /** SIGKILL at once (a crash, as the failover scenario needs); resolves once the child has exited. */
  async kill(): Promise<void> {
    if (this.alive) {
      this.proc.kill("SIGKILL");
      await withTimeout(this.proc.exited, STOP_GRACE_MS, `${this.name} to die`).catch(() => undefined);
    }
    children.delete(this.proc);
  }

  /** SIGTERM, then SIGKILL after 3 s; resolves once the child has exited. */
  async stop(): Promise<void> {
    if (this.alive) await terminate(this.proc, this.name);
    children.delete(this.proc);
  }

  private watchExit(): void {
    void this.proc.exited.then((code) => {
      this.exitCode = code;
    });
  }

  /** Reads stderr line by line (keeping a tail for diagnostics); resolves at the first match. */
  private readLog(pattern: RegExp): Promise<number> {
    return new Promise<number>((resolveMatch, reject) => {
      let matched = false;
      const reader = this.proc.stderr.getReader();
      const decoder = new TextDecoder();
      let partial = "";
      const pump = async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          partial += decoder.decode(value, { stream: true });
          let newline: number;
          while ((newline = partial.indexOf("\n")) >= 0) {
            const line = partial.slice(0, newline);
            partial = partial.slice(newline + 1);
            if (!matched && pattern.test(line)) {
              matched = true;
              this.listeningAt = now();
              resolveMatch(this.listeningAt);
            }
            this.stderrTail.push(line);
            if (this.stderrTail.length > 40) this.stderrTail.shift();
          }
        }
        if (!matched) reject(new BenchError(`${this.name} exited (code ${await this.proc.exited})`));
      };
      pump().catch(reject);
    });
  }
}

/** SIGTERM, then SIGKILL after STOP_GRACE_MS; resolves once the process has exited (or after a second grace). */
export async function terminate(proc: Subprocess, name: string): Promise<void> {
  proc.kill("SIGTERM");
  try {
    await withTimeout(proc.exited, STOP_GRACE_MS, `${name} to exit`);
  } catch {
    log(`${name} pid ${proc.pid} ignored SIGTERM for ${STOP_GRACE_MS} ms: SIGKILL`);
    proc.kill("SIGKILL");
    await withTimeout(proc.exited, STOP_GRACE_MS, `${name} to die`).catch(() => undefined);
  }
}
