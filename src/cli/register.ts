// `tlschat register` (placeholder until its issue lands).
import { Command } from "commander";
import { CliError, type CliIO } from "./io.ts";
import type { ExitCode } from "./program.ts";

export function registerCommand(_io: CliIO, _exit: ExitCode): Command {
  return new Command("register").description("register").action(() => {
    throw new CliError("register is not available yet");
  });
}
