// The chat database's WAL checkpoints, on a thread of their own (see checkpoints.ts): a connection
// of its own copies committed pages from the WAL into the database file and syncs it, so the
// event loop never waits for that sync. Passive checkpoints only: they never wait for, nor hold
// up, the server's writes.

import { Database } from "bun:sqlite";
import type { CheckpointerReport, CheckpointerRequest } from "./checkpoints.ts";

declare const self: Worker;

let db: Database | undefined;
let timer: ReturnType<typeof setInterval> | undefined;

function report(message: CheckpointerReport): void {
  self.postMessage(message);
}

/**
 * Copies what the WAL holds now. One pass: passes in a row under sustained writes would only copy
 * the pages every commit touches again; at light load one pass finds the WAL complete, and the
 * next write starts it over.
 */
function step(): void {
  try {
    db!.run("PRAGMA wal_checkpoint(PASSIVE)");
  } catch (error) {
    stop();
    report({ kind: "failed", message: (error as Error).message });
  }
}

function stop(): void {
  clearInterval(timer);
  timer = undefined;
  db?.close();
  db = undefined;
}

self.onmessage = (event: MessageEvent<CheckpointerRequest>) => {
  const request = event.data;
  if (request.kind === "start") {
    try {
      db = new Database(request.path, { strict: true });
      db.exec(`PRAGMA busy_timeout = ${request.busyTimeoutMs}`);
      // The sync a checkpoint makes follows this connection's setting.
      db.exec(`PRAGMA synchronous = ${request.synchronous}`);
    } catch (error) {
      report({ kind: "failed", message: (error as Error).message });
      return;
    }
    timer = setInterval(step, request.intervalMs);
    report({ kind: "started" });
    return;
  }
  if (db) step();
  stop();
  report({ kind: "stopped" });
};
