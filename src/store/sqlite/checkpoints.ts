// Who copies the chat database's WAL back into the database file. SQLite's default has the
// committing connection do it every 1,000 WAL pages, inside a commit, and wait for the file's
// sync: on a disk busy with other writers that holds the event loop, and every relay with it,
// for up to a second (light-load latency p99 72–122 ms against 5.6–30 ms without checkpoints,
// measured with a `dd conv=fsync` writer beside the bench). In the background, a Worker with a
// connection of its own checkpoints a few times a second instead (checkpoint-worker.ts); the
// server's connection keeps its own checkpoints only as a safety net at a far larger WAL, and
// takes them back whenever the worker fails.

import type { Database } from "bun:sqlite";
import { ChatDatabaseError } from "./database.ts";

export type CheckpointerRequest =
  | { kind: "start"; path: string; synchronous: string; busyTimeoutMs: number; intervalMs: number }
  | { kind: "stop" };

export type CheckpointerReport = { kind: "started" } | { kind: "stopped" } | { kind: "failed"; message: string };

/** How often the worker checkpoints. */
export const CHECKPOINT_INTERVAL_MS = 250;
/**
 * WAL pages at which the server's own connection checkpoints while the worker runs (8 MiB of 4
 * KiB pages). Under sustained writes the worker's passes never find the WAL complete at the next
 * commit, so only this starts it over (what is left to copy by then is little); at light load
 * the worker's passes do, and this is never reached.
 */
export const SAFETY_NET_CHECKPOINT_PAGES = 2_000;
/** SQLite's own default, taken back when the worker fails. */
export const INLINE_CHECKPOINT_PAGES = 1_000;
/** Time allowed for the worker to open its connection, and to finish at close. */
const WORKER_REPLY_TIMEOUT_MS = 5_000;

/**
 * The worker's entry point. From source it sits beside this file; in the compiled binary it is
 * embedded as an entry point of its own (build.sh), at its path under src/, while this module's
 * URL is the bundle's.
 */
const WORKER_URL = import.meta.url.includes("/$bunfs/")
  ? new URL("./store/sqlite/checkpoint-worker.ts", import.meta.url).href
  : new URL("./checkpoint-worker.ts", import.meta.url).href;

export class BackgroundCheckpoints {
  private stopped: PromiseWithResolvers<void> | undefined;

  private constructor(
    private readonly db: Database,
    private readonly worker: Worker,
    private readonly onFailure: (message: string) => void,
  ) {}

  /**
   * Starts the worker on `db`'s file and moves checkpoints to it; rejects with ChatDatabaseError
   * if it cannot start, leaving `db` as it was. `onFailure` hears of a worker that fails later.
   */
  static async start(db: Database, onFailure: (message: string) => void = () => {}): Promise<BackgroundCheckpoints> {
    const path = db.filename;
    const worker = new Worker(WORKER_URL);
    const synchronous = ["OFF", "NORMAL", "FULL", "EXTRA"][db.query<{ synchronous: number }, []>("PRAGMA synchronous").get()!.synchronous]!;
    const busyTimeoutMs = db.query<{ timeout: number }, []>("PRAGMA busy_timeout").get()!.timeout;
    const first = await reply(worker, () =>
      worker.postMessage({ kind: "start", path, synchronous, busyTimeoutMs, intervalMs: CHECKPOINT_INTERVAL_MS } satisfies CheckpointerRequest),
    );
    if (first.kind !== "started") {
      worker.terminate();
      throw new ChatDatabaseError(`The chat database's checkpoints could not start (${first.kind === "failed" ? first.message : `the worker said ${first.kind}`})`);
    }
    db.exec(`PRAGMA wal_autocheckpoint = ${SAFETY_NET_CHECKPOINT_PAGES}`);
    const checkpoints = new BackgroundCheckpoints(db, worker, onFailure);
    worker.onmessage = (event: MessageEvent<CheckpointerReport>) => checkpoints.reported(event.data);
    worker.onerror = (event) => checkpoints.reported({ kind: "failed", message: event.message });
    // A worker does not keep the process alive: closing the server is what ends it.
    worker.unref();
    return checkpoints;
  }

  /** Runs a last checkpoint in the worker and ends it; the server's connection checkpoints again. */
  async close(): Promise<void> {
    if (this.stopped) return this.stopped.promise;
    this.stopped = Promise.withResolvers();
    const timer = setTimeout(() => this.end(), WORKER_REPLY_TIMEOUT_MS);
    this.worker.postMessage({ kind: "stop" } satisfies CheckpointerRequest);
    await this.stopped.promise;
    clearTimeout(timer);
  }

  private reported(report: CheckpointerReport): void {
    if (report.kind === "failed") {
      this.onFailure(report.message);
      this.end();
    } else if (report.kind === "stopped") {
      this.end();
    }
  }

  private end(): void {
    this.worker.terminate();
    try {
      this.db.exec(`PRAGMA wal_autocheckpoint = ${INLINE_CHECKPOINT_PAGES}`);
    } catch {
      // Already closed: nothing is left to checkpoint.
    }
    this.stopped ??= Promise.withResolvers();
    this.stopped.resolve();
  }
}

/** Sends with `send` and resolves with the worker's first report (or a failure after the timeout). */
function reply(worker: Worker, send: () => void): Promise<CheckpointerReport> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ kind: "failed", message: `no answer in ${WORKER_REPLY_TIMEOUT_MS} ms` }), WORKER_REPLY_TIMEOUT_MS);
    worker.onmessage = (event: MessageEvent<CheckpointerReport>) => {
      clearTimeout(timer);
      resolve(event.data);
    };
    worker.onerror = (event) => {
      clearTimeout(timer);
      resolve({ kind: "failed", message: event.message });
    };
    send();
  });
}
