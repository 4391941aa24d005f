// The tlschat entrypoint: wires the real process into the CLI and is the only place that exits.

import { run } from "./cli/program.ts";

const stop = new AbortController();
let signals = 0;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    signals += 1;
    // A second Ctrl-C while a command is shutting down means "now".
    if (signals > 1) process.exit(130);
    stop.abort(signal);
  });
}

process.exitCode = await run(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: stop.signal,
});
// Commands have closed their sockets and files; anything left (a pending stdin read) must not
// keep the process alive.
process.exit();
