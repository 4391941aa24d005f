// Runs the real tlschat entrypoint as a child process and reads its stderr log line by line.

import type { Subprocess } from "bun";
import { join } from "node:path";
import { withTimeout } from "./client.ts";

export const ROOT = join(import.meta.dir, "..", "..");
export const BUN = process.execPath;
export const MAIN = join(ROOT, "src", "main.ts");

export interface RunningProcess extends AsyncDisposable {
  proc: Subprocess<"pipe", "pipe", "pipe">;
  /** Everything written to stderr so far. */
  stderr(): string;
  stdout(): string;
  /** Resolves with the first stderr line matching, or rejects after the timeout. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number>;
}

export function spawnTlschat(args: string[], options: { cwd: string; env?: Record<string, string> }): RunningProcess {
  const proc = Bun.spawn([BUN, MAIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  let errText = "";
  let outText = "";
  const listeners: Array<() => void> = [];
  const pump = async (stream: ReadableStream<Uint8Array>, append: (text: string) => void) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      append(decoder.decode(chunk, { stream: true }));
      for (const listener of listeners.slice()) listener();
    }
    for (const listener of listeners.slice()) listener();
  };
  void pump(proc.stderr, (text) => (errText += text));
  void pump(proc.stdout, (text) => (outText += text));
  const waitForLine = (pattern: RegExp, timeoutMs = 10_000) =>
    withTimeout(
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          for (const line of errText.split("\n")) {
            const match = line.match(pattern);
            if (match) {
              listeners.splice(listeners.indexOf(check), 1);
              resolve(match);
              return;
            }
          }
          if (proc.exitCode !== null) reject(new Error(`process exited (${proc.exitCode}) without printing ${pattern}; stderr:\n${errText}`));
        };
        listeners.push(check);
        check();
        void proc.exited.then(() => setImmediate(check));
      }),
      timeoutMs,
      `stderr line ${pattern}`,
    );
  return {
    proc,
    stderr: () => errText,
    stdout: () => outText,
    waitForLine,
    exited: proc.exited,
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null) {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    },
  };
}
