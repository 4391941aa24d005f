// `tlschat chat` (placeholder until its issue lands).
import { Command } from "commander";
import { CliError, type CliIO } from "./io.ts";
import type { ExitCode } from "./program.ts";

export function chatCommand(_io: CliIO, _exit: ExitCode): Command {
  return new Command("chat").description("chat").action(() => {
    throw new CliError("chat is not available yet");
  });
}
