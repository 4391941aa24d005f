// Builds the commander program. A fresh program per run, so tests can call `run` many times in
// one process; commands return exit codes instead of exiting.

import { Command, CommanderError, type OutputConfiguration } from "commander";
import { chatCommand } from "./chat.ts";
import { gencertCommand } from "./gencert.ts";
import { CliError, EXIT_FAILURE, EXIT_USAGE, printLine, type CliIO, type ExitCode } from "./io.ts";
import { readBooleanEnvStrictly } from "./options.ts";
import { registerCommand } from "./register.ts";
import { serveCommand } from "./serve.ts";
import { VERSION } from "./version.ts";

export function createProgram(io: CliIO, exit: ExitCode): Command {
  const program = new Command("tlschat")
    .description("Secure terminal chat over TLS: a server, a client and the tools around them.")
    .version(VERSION, "-V, --version", "print the version and exit")
    .option("--debug", "print stack traces on failure")
    .showHelpAfterError(false)
    // Commander reads option variables from process.env, so the strict reading does too.
    .hook("preAction", (_program, action) => readBooleanEnvStrictly(action, process.env))
    .exitOverride()
    .configureOutput(outputTo(io))
    .addHelpText(
      "after",
      `
Examples:
  tlschat serve                         start a server on 0.0.0.0:7443 with a generated certificate
  tlschat register alice                create an account on the server
  tlschat chat alice@localhost          chat (trusts the server's key on first use)
  tlschat gencert --out certs           make a self-signed certificate and key`,
    );

  for (const make of [serveCommand, chatCommand, registerCommand, gencertCommand]) {
    program.addCommand(make(io, exit).exitOverride().configureOutput(outputTo(io)));
  }
  return program;
}

function outputTo(io: CliIO): OutputConfiguration {
  return {
    writeOut: (text) => io.stdout.write(text),
    writeErr: (text) => io.stderr.write(text),
    // One line for usage errors: commander's message already names the problem.
    outputError: (text, write) => write(text.trimEnd().split("\n")[0] + "\n"),
  };
}

/** Runs the CLI with user arguments (no runtime/script prefix) and returns the exit code. */
export async function run(args: string[], io: CliIO): Promise<number> {
  const exit: ExitCode = { value: 0 };
  const program = createProgram(io, exit);
  try {
    await program.parseAsync(args, { from: "user" });
    return exit.value;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version arrive here as "errors" with exit code 0.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const debug = program.opts<{ debug?: boolean }>().debug === true || args.includes("--debug");
    if (error instanceof CliError) {
      printLine(io.stderr, `tlschat: ${error.message}`);
      if (debug && error.stack) printLine(io.stderr, error.stack);
      return error.exitCode;
    }
    const message = error instanceof Error ? error.message : String(error);
    printLine(io.stderr, `tlschat: ${message}`);
    if (debug && error instanceof Error && error.stack) printLine(io.stderr, error.stack);
    return EXIT_FAILURE;
  }
}
