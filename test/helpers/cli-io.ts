// A CliIO for running commands in-process: empty stdin, captured stdout/stderr, no environment.

import { PassThrough, Writable } from "node:stream";
import type { CliIO } from "../../src/cli/io.ts";

export interface CapturedIO {
  io: CliIO;
  stdout(): string;
  stderr(): string;
  /** Aborts io.signal, as SIGINT would. */
  abort(): void;
}

export function captureIO(env: Record<string, string | undefined> = {}): CapturedIO {
  const out = capture();
  const err = capture();
  const stdin = new PassThrough();
  stdin.end();
  const stop = new AbortController();
  return {
    io: { stdin, stdout: out.stream, stderr: err.stream, env, signal: stop.signal },
    stdout: out.text,
    stderr: err.text,
    abort: () => stop.abort("SIGINT"),
  };
}

// A plain Writable rather than a PassThrough read through "data": its write callback runs inside
// write(), so everything written before a command returns is already captured, with no tick to
// wait for and no read-side buffer to fill up.
function capture(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, encoding, done) {
      chunks.push(typeof chunk === "string" ? Buffer.from(chunk, encoding) : chunk);
      done();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}
