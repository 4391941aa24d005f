// What a command may touch of the outside world, passed in so tests can run a command in-process
// with their own streams, environment and stop signal.

export interface CliIO {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  /** Variables that are not option defaults (HOME, XDG_CONFIG_HOME, NO_COLOR). */
  env: Record<string, string | undefined>;
  /** Aborted when the process is asked to stop (SIGINT, SIGTERM). */
  signal: AbortSignal;
}

/** A failure the user caused or can fix: printed as one line, no stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Holds the exit code an action decided on; commander's action callbacks return nothing useful. */
export interface ExitCode {
  value: number;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function printLine(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text + "\n");
}
