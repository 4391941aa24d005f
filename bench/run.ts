// tlschat benchmark: `bun run bench [-- options]`. Starts the server under test as a child
// process (dist/tlschat if built, else `bun src/main.ts serve`) on 127.0.0.1 with generous limits,
// drives it from this one process, and prints one JSON line per scenario and a table with the
// targets marked met/missed. See docs/PERFORMANCE.md.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { killAllChildren, makeWorkspace, openFileLimit, serverCommand, writeStore, type Workspace } from "./lib/proc.ts";
import { NGIRCD_LIMITS, NGIRCD_PACKAGE, ngircdInstalled, ngircdVersion } from "./lib/ngircd.ts";
import { REDIS_PACKAGE, redisServerInstalled, type AppendFsync } from "./lib/redis.ts";
import { CLUSTER_STORE_USERS, PASSWORD, STORE_USERS, type BenchContext } from "./lib/targets.ts";
import { fmt, log, now, summarize, type Summary } from "./lib/util.ts";
import { CONNECTIONS, connections, RECONNECT, reconnect } from "./scenarios/connections.ts";
import { KEY_LOGIN_STORM, LOGIN_STORM, loginStorm } from "./scenarios/login-storm.ts";
import { CATCH_UP, catchUp } from "./scenarios/catch-up.ts";
import { CLUSTER_FAILOVER, CLUSTER_NODES, clusterFailover, clusterFanout, clusterLatency } from "./scenarios/cluster.ts";
import { ircd } from "./scenarios/ircd.ts";
import { FANOUT, fanout, LATENCY, latency, type FanoutLog, type Metrics } from "./scenarios/messages.ts";
import { LOG, messageLogCost } from "./scenarios/log.ts";
import { fillQueryLog, queries, QUERIES, type QueryLog } from "./scenarios/queries.ts";
import { ROOMS, rooms } from "./scenarios/rooms.ts";
import { startup } from "./scenarios/startup.ts";

const SCENARIOS = [
  "startup",
  "fanout",
  "latency",
  "peer",
  "ircd",
  "log",
  "cluster-fanout",
  "cluster-latency",
  "cluster-failover",
  "rooms",
  "login-storm",
  "key-login-storm",
  "reconnect",
  "catch-up",
  "queries",
  "connections",
] as const;
type ScenarioName = (typeof SCENARIOS)[number];
const CLUSTER_SCENARIOS: readonly ScenarioName[] = ["cluster-fanout", "cluster-latency", "cluster-failover"];

const USAGE = `usage: bun run bench [-- options]

  --only LIST          scenarios to run, comma-separated (default: all, in this order):
                       ${SCENARIOS.join(", ")}
  --reps N             repetitions per scenario (default 3; see the next two)
  --fanout-reps N      repetitions of fanout, against tlschat, ncat and ngircd, and of cluster-fanout
                       (default 5; a measured fanout round relays for ${FANOUT.minSeconds} s and the
                       spread is reported); each tlschat repetition runs the memory and the durable
                       variant (and ngircd's, with ircd in --only), each cluster-fanout repetition
                       Redis's appendfsync everysec and always, alternating which goes first
  --startup-reps N     startup repetitions (default 5)
  --clients N          clients in the connections scenario (default ${CONNECTIONS.clients})
  --binary PATH        tlschat executable (default dist/tlschat; env TLSCHAT_BENCH_BINARY)
  --source             run the server as \`bun src/main.ts serve\` even if dist/tlschat exists
  --server-cpu-prof DIR  run the server (and every cluster node) from source under
                       \`bun --cpu-prof\`, profiles into DIR (a node killed with SIGKILL writes none)
  --budget SECONDS     stop starting scenarios past this (default 600); a watchdog ends the run
                       30 s after it
  -h, --help           this text

Every server is started on 127.0.0.1 only, with --msg-rate/--msg-burst 1000000 (rooms: the
server's defaults), --max-connections/--max-per-ip 20000, --idle-timeout/--auth-timeout 600,
and --message-log db (serve's default) except for fanout's memory variant (--message-log memory,
as the recorded fanout history was measured).

ircd runs fanout's load against its own ngircd (Debian ${NGIRCD_PACKAGE}) over TLS; with fanout in --only, paired by rep.

log runs the durable message log by itself, in the bench process (the server's code from source,
with its checkpoint worker): ${LOG.messages} appends with refs, ${LOG.messagesPerTurn} per group commit.

The cluster scenarios need redis-server (Debian package ${REDIS_PACKAGE}; without it they are
skipped with one line): ${CLUSTER_SCENARIOS.join(", ")}. Each repetition starts
its own redis-server on a free 127.0.0.1 port in a temp dir (--appendonly yes --appendfsync
everysec, or always for cluster-fanout's always variant) and ${CLUSTER_NODES} nodes (serve --redis, the limits
above; their log is Redis). cluster-fanout is compared with single-node fanout of the same run;
without fanout in --only, each of its repetitions runs a single-node (memory) fanout as well.`;

interface Options {
  only: ScenarioName[];
  reps: number;
  fanoutReps: number;
  startupReps: number;
  clients: number;
  binary: string | undefined;
  source: boolean;
  cpuProfDir: string | undefined;
  budgetSeconds: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    only: [...SCENARIOS],
    reps: 3,
    fanoutReps: 5,
    startupReps: 5,
    clients: CONNECTIONS.clients,
    binary: process.env.TLSCHAT_BENCH_BINARY || undefined,
    source: false,
    cpuProfDir: undefined,
    budgetSeconds: 600,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) fail(`${flag} needs a value`);
    return v;
  };
  const count = (text: string, flag: string, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max) fail(`${flag} must be an integer from 1 to ${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case "--only":
        options.only = value(i, arg)
          .split(",")
          .map((name) => name.trim())
          .filter(Boolean)
          .map((name) => {
            const canonical = name === "login" || name === "login_storm" ? "login-storm" : name === "key-login" ? "key-login-storm" : name;
            if (!(SCENARIOS as readonly string[]).includes(canonical)) fail(`unknown scenario "${name}"`);
            return canonical as ScenarioName;
          });
        i++;
        break;
      case "--reps":
        options.reps = count(value(i, arg), arg, 20);
        i++;
        break;
      case "--fanout-reps":
        options.fanoutReps = count(value(i, arg), arg, 50);
        i++;
        break;
      case "--startup-reps":
        options.startupReps = count(value(i, arg), arg, 50);
        i++;
        break;
      case "--clients":
        options.clients = count(value(i, arg), arg, STORE_USERS - 100);
        i++;
        break;
      case "--binary":
        options.binary = value(i, arg);
        i++;
        break;
      case "--source":
        options.source = true;
        break;
      case "--server-cpu-prof":
        options.cpuProfDir = value(i, arg);
        i++;
        break;
      case "--budget":
        options.budgetSeconds = count(value(i, arg), arg, 3600);
        i++;
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default:
        fail(`unknown option ${arg}`);
    }
  }
  return options;
}

const NGIRCD_NOTE = `ircd: ngircd with MaxPenaltyTime ${NGIRCD_LIMITS.maxPenaltyTime} (no penalty time) and user mode ${NGIRCD_LIMITS.defaultUserModes} (relaxed flood protection) for every client, MaxConnectionsIP ${NGIRCD_LIMITS.maxConnectionsIP}, PingTimeout ${NGIRCD_LIMITS.pingTimeoutSeconds} s; compiled in and left: ${NGIRCD_LIMITS.compiledIn}`;

const REDIS_MISSING = `cluster scenarios skipped: redis-server is not installed (install ${REDIS_PACKAGE}: apt-get install -y ${REDIS_PACKAGE})`;

function fail(message: string): never {
  console.error(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Targets: what each figure must reach. Never loosened; misses are reported with their margin.

interface Row {
  scenario: string;
  metric: string;
  unit: string;
  summary: Summary;
  /** Which of the summary's values is checked against the target. */
  check?: { op: ">=" | "<=" | "=="; target: number; on: "median" | "max"; text: string };
}

/** For counts that must stay zero: loss, duplicates, refusals. */
const NONE_IN_ANY_REP: Row["check"] = { op: "==", target: 0, on: "max", text: "0 (every rep)" };

function status(row: Row): string {
  if (!row.check) return "";
  const value = row.summary[row.check.on];
  if (!Number.isFinite(value)) return "MISSED (no value)";
  const { op, target } = row.check;
  const met = op === ">=" ? value >= target : op === "<=" ? value <= target : value === target;
  if (met) return "met";
  if (op === "==") return `MISSED (${fmt(value)})`;
  const ratio = value / target;
  return op === ">=" ? `MISSED (${(ratio * 100).toFixed(1)}% of target)` : `MISSED (${ratio.toFixed(ratio < 1.1 ? 2 : 1)}x target)`;
}

function printTable(rows: Row[]): string {
  const header = ["scenario", "metric", "median", "min–max", "target", "status"];
  const body = rows.map((row) => {
    const u = row.unit ? ` ${row.unit}` : "";
    return [
      row.scenario,
      row.metric,
      `${fmt(row.summary.median)}${u}`,
      `${fmt(row.summary.min)}–${fmt(row.summary.max)}`,
      row.check ? row.check.text : "",
      status(row),
    ];
  });
  const widths = header.map((_, c) => Math.max(header[c]!.length, ...body.map((line) => line[c]!.length)));
  const line = (cells: string[]) => "| " + cells.map((cell, c) => cell.padEnd(widths[c]!)).join(" | ") + " |";
  const out = [line(header), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...body.map(line)];
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------

interface ScenarioResult {
  scenario: string;
  target: string;
  runs: Metrics[];
  summary: Record<string, Summary>;
  notes: string[];
  config: object;
}

function summarizeRuns(runs: Metrics[]): Record<string, Summary> {
  const names = new Set(runs.flatMap((run) => Object.keys(run)));
  const out: Record<string, Summary> = {};
  for (const name of names) out[name] = summarize(runs.map((run) => run[name] ?? NaN));
  return out;
}

function round(value: number): number | null {
  if (!Number.isFinite(value)) return null;
  return Math.abs(value) >= 100 ? Math.round(value) : Number(value.toPrecision(4));
}

function emitJson(result: ScenarioResult): void {
  const summary: Record<string, { median: number | null; min: number | null; max: number | null }> = {};
  for (const [name, s] of Object.entries(result.summary)) summary[name] = { median: round(s.median), min: round(s.min), max: round(s.max) };
  const runs = result.runs.map((run) => Object.fromEntries(Object.entries(run).map(([k, v]) => [k, round(v)])));
  console.log(JSON.stringify({ scenario: result.scenario, target: result.target, reps: result.runs.length, config: result.config, notes: result.notes, summary, runs }));
}

function machine(): Record<string, string | number> {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? NaN);
  const ncat = spawnSync("ncat", ["--version"], { encoding: "utf8" });
  const redis = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  return {
    nproc: availableParallelism(),
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memGiB: Number((memKiB / 1024 / 1024).toFixed(1)),
    kernel: spawnSync("uname", ["-r"], { encoding: "utf8" }).stdout.trim(),
    bun: Bun.version,
    ncat: ncat.status === 0 ? (ncat.stdout + ncat.stderr).trim().split("\n")[0]! : "not installed",
    redisServer: redis.status === 0 ? redis.stdout.trim() : "not installed",
    ngircd: ngircdVersion(),
    openFiles: openFileLimit(),
  };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const started = now();
  const budgetMs = options.budgetSeconds * 1000;
  const watchdog = setTimeout(() => {
    log(`watchdog: the run exceeded its budget of ${options.budgetSeconds} s + 30 s; stopping`);
    killAllChildren();
    process.exit(3);
  }, budgetMs + 30_000);
  watchdog.unref();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      killAllChildren();
      process.exit(130);
    });
  }

  const info = machine();
  const command = serverCommand(options.binary, options.source, options.cpuProfDir);
  const notes: string[] = [];
  log(`machine: ${JSON.stringify(info)}`);
  log(`server: ${command.describe}`);
  if (options.cpuProfDir) notes.push(`server ran under bun --cpu-prof (profiles in ${options.cpuProfDir}); figures are slower than without`);

  // Enough descriptors for the connections scenario? (Each process needs clients + headroom;
  // the server child inherits this limit.)
  let clients = options.clients;
  const limit = openFileLimit();
  if (options.only.includes("connections") && limit < clients + 200) {
    const reduced = Math.max(100, limit - 200);
    notes.push(`open-file limit ${limit} (hard limit too low to raise here): connections scenario uses ${reduced} clients instead of ${clients}`);
    clients = reduced;
  }

  const ngircdAvailable = ngircdInstalled();
  // ngircd's CPU per delivery is compared with tlschat's repetition by repetition: with both in
  // --only, every fanout repetition runs ngircd too.
  const pairIrcd = ngircdAvailable && options.only.includes("fanout") && options.only.includes("ircd");

  let ws: Workspace | undefined;
  const results: ScenarioResult[] = [];
  try {
    ws = await makeWorkspace(command);
    log(`workspace ${ws.dir}: writing a store of ${STORE_USERS} users sharing one argon2id hash`);
    const store = await writeStore(join(ws.dir, "users.json"), STORE_USERS, PASSWORD);
    const smallStore = await writeStore(join(ws.dir, "small.json"), 50, PASSWORD);
    const clusterStore = await writeStore(join(ws.dir, "cluster.json"), CLUSTER_STORE_USERS, PASSWORD);
    const ctx: BenchContext = { command, ws, store, smallStore, clusterStore };
    const ncatAvailable = info.ncat !== "not installed";
    const redisAvailable = redisServerInstalled();

    // Rough cost per repetition, to stay inside the budget.
    const estimateMs: Record<ScenarioName, number> = {
      startup: 2_000,
      // Each repetition relays 5 s with the memory log and 5 s with the durable one.
      fanout: 24_000,
      latency: 16_000,
      peer: 32_000,
      // 5 s of relaying, and the DH parameters ngircd generates when it starts.
      ircd: 14_000,
      log: 10_000,
      // Two clusters (and, without fanout in the run, a single-node fanout) per repetition.
      "cluster-fanout": 20_000,
      "cluster-latency": 18_000,
      "cluster-failover": 15_000,
      rooms: 30_000,
      connections: 140_000,
      "login-storm": 30_000,
      "key-login-storm": 20_000,
      reconnect: 15_000,
      "catch-up": 20_000,
      // The first repetition also fills the log (about 40 s here).
      queries: 60_000,
    };
    let queryLog: QueryLog | undefined;
    const order = SCENARIOS.filter((name) => options.only.includes(name));
    for (const name of order) {
      const reps =
        name === "startup"
          ? options.startupReps
          : name === "fanout" || name === "cluster-fanout" || name === "ircd"
            ? options.fanoutReps
            : name === "peer"
              ? Math.max(options.fanoutReps, options.reps)
              : options.reps;
      // By result: a scenario can give more than one (fanout and its durable variant; peer's two).
      const runs = new Map<string, { scenario: string; target: string; list: Metrics[] }>();
      const scenarioNotes: string[] = [];
      const add = (scenario: string, target: string, metrics: Metrics) => {
        const key = `${scenario} ${target}`;
        let entry = runs.get(key);
        if (!entry) runs.set(key, (entry = { scenario, target, list: [] }));
        entry.list.push(metrics);
      };
      if (name === "peer" && !ncatAvailable) {
        const note = "peer skipped: ncat is not installed (Debian: apt-get install -y ncat)";
        log(note);
        notes.push(note);
        continue;
      }
      if (name === "ircd" && !ngircdAvailable) {
        const note = `ircd skipped: ngircd is not installed (Debian: apt-get install -y ${NGIRCD_PACKAGE})`;
        log(note);
        notes.push(note);
        continue;
      }
      // Paired with fanout, ngircd ran inside fanout's repetitions.
      if (name === "ircd" && pairIrcd) continue;
      if (CLUSTER_SCENARIOS.includes(name) && !redisAvailable) {
        if (!notes.includes(REDIS_MISSING)) {
          log(REDIS_MISSING);
          notes.push(REDIS_MISSING);
        }
        continue;
      }
      for (let rep = 1; rep <= reps; rep++) {
        const remaining = budgetMs - (now() - started);
        if (remaining < estimateMs[name] + (name === "fanout" && pairIrcd ? estimateMs.ircd : 0)) {
          const note = `${name}: stopped after ${rep - 1} of ${reps} repetitions to stay within the ${options.budgetSeconds} s budget`;
          log(note);
          scenarioNotes.push(note);
          break;
        }
        log(`${name} ${rep}/${reps}`);
        try {
          switch (name) {
            case "startup":
              add(name, "tlschat", await startup(ctx));
              break;
            case "fanout": {
              // The durable target is a share of the memory figure of the same run (and of
              // ngircd's when paired): interleave them, and reverse the order every other
              // repetition so none always meets a warmer machine. All or none are kept, so
              // repetition i of one pairs with repetition i of the others.
              const variants: Array<FanoutLog | "ngircd"> = ["memory", "durable", ...(pairIrcd ? (["ngircd"] as const) : [])];
              if (rep % 2 === 0) variants.reverse();
              if (rep === 1 && pairIrcd) {
                scenarioNotes.push("ircd ran paired with fanout: every fanout repetition also ran ngircd, in the order memory, durable, ngircd, reversed every other repetition");
                scenarioNotes.push(NGIRCD_NOTE);
              }
              const measured: Array<[FanoutLog | "ngircd", Metrics]> = [];
              for (const variant of variants) measured.push([variant, variant === "ngircd" ? await ircd(ctx) : await fanout(ctx, "tlschat", variant)]);
              for (const [variant, metrics] of measured) {
                if (variant === "ngircd") add("ircd", "ngircd", metrics);
                else add(variant === "memory" ? "fanout" : "fanout-durable", "tlschat", metrics);
              }
              break;
            }
            case "ircd":
              if (rep === 1) scenarioNotes.push(NGIRCD_NOTE);
              add(name, "ngircd", await ircd(ctx));
              break;
            case "latency":
              add(name, "tlschat", await latency(ctx, "tlschat"));
              break;
            case "rooms":
              add(name, "tlschat", await rooms(ctx));
              break;
            case "cluster-fanout": {
              // The target is a share of single-node fanout in the same run: without fanout in
              // the run, a single-node (memory) fanout runs before each repetition.
              if (!options.only.includes("fanout")) {
                add("fanout", "tlschat", await fanout(ctx, "tlschat", "memory"));
                if (rep === 1) scenarioNotes.push("fanout (memory) ran as part of cluster-fanout, before each of its repetitions, for the comparison");
              }
              // Both fsync policies in turn, alternating which goes first; both or neither are kept.
              const policies: AppendFsync[] = rep % 2 === 1 ? ["everysec", "always"] : ["always", "everysec"];
              if (rep === 1) scenarioNotes.push(`${name}: every repetition runs a cluster on redis-server --appendonly yes --appendfsync everysec and one on --appendfsync always; every say carries a ref (acked once it is in Redis)`);
              const measured: Array<[AppendFsync, Metrics]> = [];
              for (const policy of policies) measured.push([policy, await clusterFanout(ctx, policy)]);
              for (const [policy, metrics] of measured) add(policy === "everysec" ? "cluster-fanout" : "cluster-fanout-always", "tlschat", metrics);
              break;
            }
            case "cluster-latency":
              if (rep === 1) scenarioNotes.push(`${name}: redis-server --appendonly yes --appendfsync everysec`);
              add(name, "tlschat", await clusterLatency(ctx));
              break;
            case "cluster-failover":
              if (rep === 1) scenarioNotes.push(`${name}: redis-server --appendonly yes --appendfsync everysec`);
              add(name, "tlschat", await clusterFailover(ctx));
              break;
            case "peer":
              if (rep <= options.fanoutReps) add("peer-fanout", "ncat", await fanout(ctx, "ncat"));
              if (rep <= options.reps) add("peer-latency", "ncat", await latency(ctx, "ncat"));
              break;
            case "connections": {
              // Never let one repetition run past the budget: its waits shrink to fit.
              const left = budgetMs - (now() - started) - 30_000;
              const readyTimeoutMs = Math.round(Math.min(CONNECTIONS.readyTimeoutMs, left * 0.6));
              const metrics = await connections(ctx, { ...CONNECTIONS, clients, readyTimeoutMs });
              add(name, "tlschat", metrics);
              if (!Number.isFinite(metrics.readySeconds)) {
                scenarioNotes.push(`connections repetition ${rep}: ${metrics.ready} of ${clients} clients were ready after ${readyTimeoutMs / 1000} s (the time it was allowed); not repeated`);
                rep = reps;
              }
              break;
            }
            case "login-storm":
              add(name, "tlschat", await loginStorm(ctx));
              break;
            case "key-login-storm":
              add(name, "tlschat", await loginStorm(ctx, KEY_LOGIN_STORM));
              break;
            case "reconnect":
              add(name, "tlschat", await reconnect(ctx));
              break;
            case "catch-up":
              add(name, "tlschat", await catchUp(ctx));
              break;
            case "log":
              add(name, "tlschat", await messageLogCost(ctx));
              break;
            case "queries":
              if (!queryLog) {
                log(`queries: filling a log of ${QUERIES.messages} messages`);
                try {
                  queryLog = await fillQueryLog(ctx);
                } catch (error) {
                  rep = reps; // a fill that failed once is not tried again
                  throw error;
                }
                scenarioNotes.push(`queries: the log of ${queryLog.messages} messages was filled in ${queryLog.fillSeconds.toFixed(1)} s and served by every repetition`);
              }
              add(name, "tlschat", await queries(ctx, queryLog));
              break;
          }
        } catch (error) {
          const note = `${name} repetition ${rep} failed: ${(error as Error).message}`;
          log(note);
          scenarioNotes.push(note);
        }
        const last = [...runs.values()].map(({ list }) => list[list.length - 1]);
        log(`${name} ${rep}/${reps}: ${last.map((m) => JSON.stringify(m && Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(v)])))).join(" ")}`);
      }
      for (const { scenario, target, list } of runs.values()) {
        const result: ScenarioResult = {
          scenario,
          target,
          runs: list,
          summary: summarizeRuns(list),
          notes: scenarioNotes,
          config: scenarioConfig(scenario, clients),
        };
        results.push(result);
        emitJson(result);
      }
      if (runs.size === 0) notes.push(...scenarioNotes);
    }
  } finally {
    killAllChildren();
    ws?.remove();
    clearTimeout(watchdog);
  }

  const rows = tableRows(results, pairIrcd);
  console.log("");
  console.log(printTable(rows));
  const allNotes = [
    "Clients log in with resume tokens issued by the bench (same secret and format as the server) in every scenario except the login storms, which send password logins (argon2id) and logins by key (client certificates).",
    ...notes,
    ...results.flatMap((result) => result.notes),
  ];
  for (const note of [...new Set(allNotes)]) console.log(`note: ${note}`);
  console.log(JSON.stringify({ scenario: "meta", machine: info, server: command.describe, argv: process.argv.slice(2), seconds: round((now() - started) / 1000) }));
}

function scenarioConfig(scenario: string, clients: number): object {
  switch (scenario) {
    case "fanout":
      return { ...FANOUT, messageLog: "memory" };
    case "fanout-durable":
      return { ...FANOUT, messageLog: "db", refs: true };
    case "peer-fanout":
      return FANOUT;
    case "ircd":
      return { ...FANOUT, server: "ngircd", transport: "TLS, IRC PRIVMSG to one channel", ngircd: NGIRCD_LIMITS };
    case "latency":
      return { ...LATENCY, messageLog: "db" };
    case "peer-latency":
      return LATENCY;
    case "cluster-fanout":
    case "cluster-fanout-always":
      return {
        ...FANOUT,
        nodes: CLUSTER_NODES,
        placement: "clients alternate between the nodes",
        refs: true,
        redis: { appendonly: "yes", appendfsync: scenario === "cluster-fanout" ? "everysec" : "always" },
      };
    case "cluster-latency":
      return { ...LATENCY, nodes: CLUSTER_NODES, placement: "senders on nodeA, receivers on nodeB; latency of nodeB's deliveries", redis: { appendonly: "yes", appendfsync: "everysec" } };
    case "cluster-failover":
      return { ...CLUSTER_FAILOVER, nodes: CLUSTER_NODES, placement: "clients on nodeA (killed with SIGKILL), sender on nodeB", redis: { appendonly: "yes", appendfsync: "everysec" } };
    case "catch-up":
      return CATCH_UP;
    case "log":
      return LOG;
    case "queries":
      return QUERIES;
    case "rooms":
      return ROOMS;
    case "connections":
      return { ...CONNECTIONS, clients };
    case "login-storm":
      return LOGIN_STORM;
    case "key-login-storm":
      return KEY_LOGIN_STORM;
    case "reconnect":
      return RECONNECT;
    default:
      return {};
  }
}

/** `pairedIrcd`: ngircd's repetitions ran inside fanout's, so they can be set against each other. */
function tableRows(results: ScenarioResult[], pairedIrcd: boolean): Row[] {
  const rows: Row[] = [];
  const find = (scenario: string, target: string) => results.find((r) => r.scenario === scenario && r.target === target);
  const get = (result: ScenarioResult | undefined, metric: string): Summary =>
    result?.summary[metric] ?? { median: NaN, min: NaN, max: NaN };
  const lossSummary = (result: ScenarioResult, prefix = ""): Summary => {
    const totals = result.runs.map(
      (run) => (run[`${prefix}lost`] ?? 0) + (run[`${prefix}duplicated`] ?? 0) + (run[`${prefix}outOfOrder`] ?? 0) + (run.unexpected ?? 0),
    );
    return summarize(totals);
  };
  const ratio = (a: Summary, b: Summary): Summary => ({ median: a.median / b.median, min: a.min / b.max, max: a.max / b.min });
  /** Repetition i of `a` over repetition i of `b`: for results measured in interleaved pairs. */
  const pairedRatio = (a: ScenarioResult, b: ScenarioResult, metric: string): Summary =>
    summarize(a.runs.slice(0, b.runs.length).map((run, i) => (run[metric] ?? NaN) / (b.runs[i]![metric] ?? NaN)));
  const sumOf = (result: ScenarioResult, metrics: string[]): Summary =>
    summarize(result.runs.map((run) => metrics.reduce((total, metric) => total + (run[metric] ?? 0), 0)));

  const startupResult = find("startup", "tlschat");
  if (startupResult) {
    rows.push({
      scenario: "startup",
      metric: "spawn → listening",
      unit: "ms",
      summary: get(startupResult, "listeningMs"),
      check: { op: "<=", target: 100, on: "median", text: "≤ 100 ms" },
    });
  }

  const fan = find("fanout", "tlschat");
  const peerFan = find("peer-fanout", "ncat");
  if (fan) {
    rows.push({
      scenario: "fanout",
      metric: "deliveries/s",
      unit: "",
      summary: get(fan, "deliveriesPerSec"),
      check: { op: ">=", target: 1e6, on: "median", text: "≥ 1.0 M" },
    });
    rows.push({
      scenario: "fanout",
      metric: "server CPU per delivery",
      unit: "µs",
      summary: get(fan, "serverCpuUsPerDelivery"),
      check: { op: "<=", target: 0.5, on: "median", text: "≤ 0.5 µs" },
    });
    rows.push({ scenario: "fanout", metric: "latency p50", unit: "ms", summary: get(fan, "p50Ms") });
    rows.push({ scenario: "fanout", metric: "latency p99", unit: "ms", summary: get(fan, "p99Ms") });
    rows.push({
      scenario: "fanout",
      metric: "lost+dup+out-of-order",
      unit: "",
      summary: lossSummary(fan),
      check: NONE_IN_ANY_REP,
    });
    rows.push({ scenario: "fanout", metric: "server CPU", unit: "%", summary: get(fan, "serverCpuPct") });
    rows.push({ scenario: "fanout", metric: "generator CPU", unit: "%", summary: get(fan, "generatorCpuPct") });
    rows.push({ scenario: "fanout", metric: "server RSS after", unit: "MiB", summary: get(fan, "serverRssMiB") });
    if (peerFan) {
      rows.push({
        scenario: "fanout",
        metric: "tlschat/ncat deliveries/s",
        unit: "x",
        summary: ratio(get(fan, "deliveriesPerSec"), get(peerFan, "deliveriesPerSec")),
        check: { op: ">=", target: 1.5, on: "median", text: "≥ 1.5x" },
      });
    }
  }

  const durable = find("fanout-durable", "tlschat");
  if (durable) {
    const add = (metric: string, unit: string, summary: Summary, check?: Row["check"]) => rows.push({ scenario: "fanout durable", metric, unit, summary, check });
    add("deliveries/s", "", get(durable, "deliveriesPerSec"));
    add("acked messages/s", "", get(durable, "ackedPerSec"));
    if (fan) {
      add("durable/memory deliveries/s (paired reps)", "x", pairedRatio(durable, fan, "deliveriesPerSec"), {
        op: ">=",
        target: 0.8,
        on: "median",
        text: "≥ 0.80x",
      });
    }
    add("server CPU per delivery", "µs", get(durable, "serverCpuUsPerDelivery"), { op: "<=", target: 0.2, on: "median", text: "≤ 0.20 µs" });
    add("latency p50", "ms", get(durable, "p50Ms"));
    add("latency p99", "ms", get(durable, "p99Ms"));
    add("ack latency p50", "ms", get(durable, "ackP50Ms"));
    add("ack latency p99", "ms", get(durable, "ackP99Ms"));
    add("lost+dup+out-of-order", "", lossSummary(durable), NONE_IN_ANY_REP);
    add("acks lost+dup+out-of-order+unexpected", "", sumOf(durable, ["ackLost", "ackDuplicated", "ackOutOfOrder", "ackUnexpected"]), NONE_IN_ANY_REP);
    add("error replies", "", get(durable, "refusals"), NONE_IN_ANY_REP);
    add("server CPU", "%", get(durable, "serverCpuPct"));
    add("generator CPU", "%", get(durable, "generatorCpuPct"));
    add("server RSS after", "MiB", get(durable, "serverRssMiB"));
  }

  const logCost = find("log", "tlschat");
  if (logCost) {
    const add = (metric: string, unit: string, summary: Summary) => rows.push({ scenario: "log alone", metric, unit, summary });
    add("appends/s (server code, bench process)", "", get(logCost, "messagesPerSec"));
    add("CPU per message", "µs", get(logCost, "cpuUsPerMessage"));
    add("CPU per message: user", "µs", get(logCost, "userUsPerMessage"));
    add("CPU per message: system", "µs", get(logCost, "systemUsPerMessage"));
    add(`CPU per message / ${LOG.receiversPerMessage} receivers`, "µs", get(logCost, "cpuUsPerDelivery"));
  }

  const lat = find("latency", "tlschat");
  const peerLat = find("peer-latency", "ncat");
  if (lat) {
    rows.push({ scenario: "latency", metric: "p50", unit: "ms", summary: get(lat, "p50Ms") });
    rows.push({
      scenario: "latency",
      metric: "p99",
      unit: "ms",
      summary: get(lat, "p99Ms"),
      check: { op: "<=", target: 5, on: "median", text: "≤ 5 ms" },
    });
    rows.push({ scenario: "latency", metric: "max", unit: "ms", summary: get(lat, "maxMs") });
    rows.push({ scenario: "latency", metric: "lost+dup+out-of-order", unit: "", summary: lossSummary(lat), check: NONE_IN_ANY_REP });
    if (peerLat) rows.push({ scenario: "latency", metric: "tlschat/ncat p99", unit: "x", summary: ratio(get(lat, "p99Ms"), get(peerLat, "p99Ms")) });
  }

  if (peerFan) {
    rows.push({ scenario: "peer ncat", metric: "fanout deliveries/s", unit: "", summary: get(peerFan, "deliveriesPerSec") });
    rows.push({ scenario: "peer ncat", metric: "fanout server CPU/delivery", unit: "µs", summary: get(peerFan, "serverCpuUsPerDelivery") });
    rows.push({ scenario: "peer ncat", metric: "fanout latency p99", unit: "ms", summary: get(peerFan, "p99Ms") });
    rows.push({ scenario: "peer ncat", metric: "fanout lost+dup+ooo", unit: "", summary: lossSummary(peerFan) });
  }
  if (peerLat) {
    rows.push({ scenario: "peer ncat", metric: "latency p50", unit: "ms", summary: get(peerLat, "p50Ms") });
    rows.push({ scenario: "peer ncat", metric: "latency p99", unit: "ms", summary: get(peerLat, "p99Ms") });
  }

  const ngircd = find("ircd", "ngircd");
  if (ngircd) {
    const add = (metric: string, unit: string, summary: Summary, check?: Row["check"]) => rows.push({ scenario: "ngircd", metric, unit, summary, check });
    add("fanout deliveries/s", "", get(ngircd, "deliveriesPerSec"));
    add("fanout server CPU per delivery", "µs", get(ngircd, "serverCpuUsPerDelivery"));
    if (pairedIrcd && durable) {
      add("fanout durable / ngircd server CPU per delivery (paired reps)", "x", pairedRatio(durable, ngircd, "serverCpuUsPerDelivery"), {
        op: "<=",
        target: 0.55,
        on: "median",
        text: "≤ 0.55x",
      });
    }
    if (pairedIrcd && fan) add("fanout (memory) / ngircd server CPU per delivery (paired reps)", "x", pairedRatio(fan, ngircd, "serverCpuUsPerDelivery"));
    add("fanout latency p50", "ms", get(ngircd, "p50Ms"));
    add("fanout latency p99", "ms", get(ngircd, "p99Ms"));
    add("fanout lost+dup+ooo", "", lossSummary(ngircd));
    add("fanout disconnects", "", get(ngircd, "disconnects"));
    add("fanout error replies", "", get(ngircd, "refusals"));
    add("fanout server CPU", "%", get(ngircd, "serverCpuPct"));
    add("fanout generator CPU", "%", get(ngircd, "generatorCpuPct"));
    add("fanout server RSS after", "MiB", get(ngircd, "serverRssMiB"));
  }

  const clusterFan = find("cluster-fanout", "tlschat");
  const clusterFanAlways = find("cluster-fanout-always", "tlschat");
  for (const [result, label] of [
    [clusterFan, "cluster fanout (everysec)"],
    [clusterFanAlways, "cluster fanout (always)"],
  ] as const) {
    if (!result) continue;
    const add = (metric: string, unit: string, summary: Summary, check?: Row["check"]) => rows.push({ scenario: label, metric, unit, summary, check });
    add("deliveries/s", "", get(result, "deliveriesPerSec"));
    if (fan) {
      const versus = ratio(get(result, "deliveriesPerSec"), get(fan, "deliveriesPerSec"));
      add("cluster/single-node deliveries/s", "x", versus, result === clusterFan ? { op: ">=", target: 0.7, on: "median", text: "≥ 0.70x" } : undefined);
    }
    if (durable) add("cluster/single-node durable deliveries/s", "x", ratio(get(result, "deliveriesPerSec"), get(durable, "deliveriesPerSec")));
    if (result === clusterFanAlways && clusterFan) add("always/everysec deliveries/s (paired reps)", "x", pairedRatio(result, clusterFan, "deliveriesPerSec"));
    add("acked messages/s", "", get(result, "ackedPerSec"));
    add("CPU per delivery, nodes + redis", "µs", get(result, "serverCpuUsPerDelivery"));
    for (const part of ["nodeA", "nodeB", "redis"]) add(`CPU per delivery, ${part}`, "µs", get(result, `${part}CpuUsPerDelivery`));
    add("latency p50", "ms", get(result, "p50Ms"));
    add("latency p99", "ms", get(result, "p99Ms"));
    add("ack latency p99", "ms", get(result, "ackP99Ms"));
    add("lost+dup+out-of-order", "", lossSummary(result), NONE_IN_ANY_REP);
    add("acks lost+dup+out-of-order+unexpected", "", sumOf(result, ["ackLost", "ackDuplicated", "ackOutOfOrder", "ackUnexpected"]), NONE_IN_ANY_REP);
    add("error replies", "", get(result, "refusals"), NONE_IN_ANY_REP);
    add("CPU, nodes + redis", "%", get(result, "serverCpuPct"));
    for (const part of ["nodeA", "nodeB", "redis"]) add(`CPU, ${part}`, "%", get(result, `${part}CpuPct`));
    add("generator CPU", "%", get(result, "generatorCpuPct"));
    add("RSS after, nodes + redis", "MiB", get(result, "serverRssMiB"));
  }

  const clusterLat = find("cluster-latency", "tlschat");
  if (clusterLat) {
    const add = (metric: string, unit: string, summary: Summary, check?: Row["check"]) => rows.push({ scenario: "cluster latency", metric, unit, summary, check });
    add("cross-node p50", "ms", get(clusterLat, "p50Ms"));
    add("cross-node p99", "ms", get(clusterLat, "p99Ms"), { op: "<=", target: 10, on: "median", text: "≤ 10 ms" });
    add("cross-node max", "ms", get(clusterLat, "maxMs"));
    add("lost+dup+out-of-order", "", lossSummary(clusterLat), NONE_IN_ANY_REP);
    if (lat) add("cluster/single-node p99", "x", ratio(get(clusterLat, "p99Ms"), get(lat, "p99Ms")));
    add("CPU, nodes + redis", "%", get(clusterLat, "serverCpuPct"));
  }

  const failover = find("cluster-failover", "tlschat");
  if (failover) {
    const add = (metric: string, unit: string, summary: Summary, check?: Row["check"]) => rows.push({ scenario: "cluster failover", metric, unit, summary, check });
    const n = fmt(failover.runs[0]?.clients ?? NaN);
    add(`SIGKILL → ${n} back on the other node`, "s", get(failover, "backSeconds"), { op: "<=", target: 5, on: "median", text: "≤ 5 s" });
    add("SIGKILL → all caught up", "s", get(failover, "caughtUpSeconds"));
    add("acked messages lost", "", get(failover, "lost"), NONE_IN_ANY_REP);
    add("messages repeated", "", get(failover, "duplicated"), NONE_IN_ANY_REP);
    add("unexpected messages", "", get(failover, "unexpected"), NONE_IN_ANY_REP);
    add("acks lost+dup+out-of-order+unexpected", "", sumOf(failover, ["ackLost", "ackDuplicated", "ackOutOfOrder", "ackUnexpected"]), NONE_IN_ANY_REP);
    add("attempts per client", "", get(failover, "attemptsPerClient"));
    add("refused logins", "", get(failover, "loginRefusals"));
    add("catch-up messages per client", "", get(failover, "catchUpMessagesPerClient"));
    add("acked messages (whole run)", "", get(failover, "acked"));
  }

  const room = find("rooms", "tlschat");
  if (room) {
    const add = (metric: string, unit: string, summary: Summary, check?: Row["check"]) => rows.push({ scenario: "rooms", metric, unit, summary, check });
    add(`${fmt(room.runs[0]?.clients ?? NaN)} clients logged in + joined`, "s", get(room, "setupSeconds"));
    add("deliveries/s", "", get(room, "deliveriesPerSec"));
    add("latency p50", "ms", get(room, "p50Ms"));
    add("latency p99", "ms", get(room, "p99Ms"));
    add("latency max", "ms", get(room, "maxMs"));
    add("server CPU per delivery", "µs", get(room, "serverCpuUsPerDelivery"));
    add("lost+dup+out-of-order", "", lossSummary(room), NONE_IN_ANY_REP);
    add("rate_limited refusals", "", get(room, "rateLimited"), NONE_IN_ANY_REP);
    add("server CPU", "%", get(room, "serverCpuPct"));
    add("generator CPU", "%", get(room, "generatorCpuPct"));
    add("server RSS after", "MiB", get(room, "serverRssMiB"));
  }

  const conn = find("connections", "tlschat");
  if (conn) {
    const n = conn.runs[0]?.clients ?? NaN;
    rows.push({
      scenario: "connections",
      metric: `${fmt(n)} clients ready`,
      unit: "s",
      summary: get(conn, "readySeconds"),
      check: { op: "<=", target: 10, on: "median", text: "≤ 10 s" },
    });
    rows.push({ scenario: "connections", metric: "server CPU until all ready", unit: "s", summary: get(conn, "readyServerCpuSeconds") });
    rows.push({ scenario: "connections", metric: "presence notices still sending after", unit: "s", summary: get(conn, "quietWaitSeconds") });
    rows.push({ scenario: "connections", metric: "bytes received per client", unit: "KiB", summary: get(conn, "receivedPerClientKiB") });
    rows.push({
      scenario: "connections",
      metric: "server RSS per connection",
      unit: "KiB",
      summary: get(conn, "rssPerConnectionKiB"),
      check: { op: "<=", target: 20, on: "median", text: "≤ 20 KiB" },
    });
    rows.push({ scenario: "connections", metric: "100 msgs → all: deliveries/s", unit: "", summary: get(conn, "msgDeliveriesPerSec") });
    rows.push({ scenario: "connections", metric: "100 msgs → all: p50", unit: "ms", summary: get(conn, "msgP50Ms") });
    rows.push({ scenario: "connections", metric: "100 msgs → all: p99", unit: "ms", summary: get(conn, "msgP99Ms") });
    rows.push({ scenario: "connections", metric: "100 msgs → all: lost+dup+ooo", unit: "", summary: lossSummary(conn, "msg") });
  }

  const storm = find("login-storm", "tlschat");
  if (storm) {
    rows.push({ scenario: "login storm", metric: "password logins/s", unit: "", summary: get(storm, "loginsPerSec") });
    rows.push({ scenario: "login storm", metric: "500 logins done", unit: "s", summary: get(storm, "stormSeconds") });
    rows.push({ scenario: "login storm", metric: "chat p99 before storm", unit: "ms", summary: get(storm, "chatBaselineP99Ms") });
    rows.push({
      scenario: "login storm",
      metric: "chat p99 during storm",
      unit: "ms",
      summary: get(storm, "chatP99Ms"),
      check: { op: "<=", target: 50, on: "median", text: "≤ 50 ms" },
    });
    rows.push({ scenario: "login storm", metric: "server_busy retries", unit: "", summary: get(storm, "busyRetries") });
  }

  const keyStorm = find("key-login-storm", "tlschat");
  if (keyStorm) {
    const n = fmt(keyStorm.runs[0]?.logins ?? NaN);
    rows.push({ scenario: "key login storm", metric: `${n} TLS handshakes with certificates`, unit: "s", summary: get(keyStorm, "connectSeconds") });
    rows.push({ scenario: "key login storm", metric: "key logins/s", unit: "", summary: get(keyStorm, "loginsPerSec") });
    rows.push({
      scenario: "key login storm",
      metric: `${n} logins done`,
      unit: "s",
      summary: get(keyStorm, "stormSeconds"),
      check: { op: "<=", target: 2, on: "median", text: "≤ 2 s" },
    });
    rows.push({ scenario: "key login storm", metric: "chat p99 before storm", unit: "ms", summary: get(keyStorm, "chatBaselineP99Ms") });
    rows.push({
      scenario: "key login storm",
      metric: "chat p99 during storm",
      unit: "ms",
      summary: get(keyStorm, "chatP99Ms"),
      check: { op: "<=", target: 50, on: "median", text: "≤ 50 ms" },
    });
    rows.push({ scenario: "key login storm", metric: "refused logins", unit: "", summary: get(keyStorm, "loginFailures"), check: NONE_IN_ANY_REP });
  }

  const rec = find("reconnect", "tlschat");
  if (rec) {
    rows.push({
      scenario: "reconnect",
      metric: "listening → 1000 back",
      unit: "s",
      summary: get(rec, "reconnectSeconds"),
      check: { op: "<=", target: 5, on: "median", text: "≤ 5 s" },
    });
    rows.push({ scenario: "reconnect", metric: "SIGTERM → all back", unit: "s", summary: get(rec, "outageSeconds") });
    rows.push({ scenario: "reconnect", metric: "attempts per client", unit: "", summary: get(rec, "attemptsPerClient") });
  }

  const caught = find("catch-up", "tlschat");
  if (caught) {
    const add = (metric: string, unit: string, summary: Summary, check?: Row["check"]) => rows.push({ scenario: "catch-up", metric, unit, summary, check });
    const run = caught.runs[0];
    add(`listening → ${fmt(run?.clients ?? NaN)} × ${fmt(run?.missedPerClient ?? NaN)} missed caught up`, "s", get(caught, "catchUpSeconds"), {
      op: "<=",
      target: 5,
      on: "median",
      text: "≤ 5 s",
    });
    add("listening → all resumed", "s", get(caught, "resumedSeconds"));
    add("missing+dup+out-of-order+unexpected", "", sumOf(caught, ["missing", "duplicated", "outOfOrder", "unexpected"]), NONE_IN_ANY_REP);
    add("history replies per client", "", get(caught, "historyRepliesPerClient"));
    add("received per client", "KiB", get(caught, "receivedPerClientKiB"));
    add("server CPU until caught up", "s", get(caught, "serverCpuSeconds"));
    add("SIGTERM → listening", "s", get(caught, "restartSeconds"));
  }

  const query = find("queries", "tlschat");
  if (query) {
    const add = (metric: string, unit: string, summary: Summary, check?: Row["check"]) => rows.push({ scenario: "queries", metric, unit, summary, check });
    const log = fmt(query.runs[0]?.messages ?? NaN);
    add(`history before, ${log} log: p50`, "ms", get(query, "historyP50Ms"));
    add(`history before, ${log} log: p99`, "ms", get(query, "historyP99Ms"), { op: "<=", target: 10, on: "median", text: "≤ 10 ms" });
    add("history before: max", "ms", get(query, "historyMaxMs"));
    add("history before: messages per reply", "", get(query, "historyMessagesPerReply"));
    add(`search, ${log} log: p50`, "ms", get(query, "searchP50Ms"));
    add(`search, ${log} log: p99`, "ms", get(query, "searchP99Ms"), { op: "<=", target: 50, on: "median", text: "≤ 50 ms" });
    add("search: max", "ms", get(query, "searchMaxMs"));
    add("search: results per reply", "", get(query, "searchResultsPerReply"));
    add("one retention step (server code, bench process)", "ms", get(query, "retentionStepMs"));
  }
  return rows;
}

await main();
process.exit(0);
