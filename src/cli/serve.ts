// `tlschat serve` (placeholder until its issue lands).
import { Command } from "commander";
import { CliError, type CliIO } from "./io.ts";
import type { ExitCode } from "./program.ts";

export function serveCommand(_io: CliIO, _exit: ExitCode): Command {
  return new Command("serve").description("serve").action(() => {
    throw new CliError("serve is not available yet");
  });
}
