// `tlschat gencert` (placeholder until its issue lands).
import { Command } from "commander";
import { CliError, type CliIO } from "./io.ts";
import type { ExitCode } from "./program.ts";

export function gencertCommand(_io: CliIO, _exit: ExitCode): Command {
  return new Command("gencert").description("gencert").action(() => {
    throw new CliError("gencert is not available yet");
  });
}
