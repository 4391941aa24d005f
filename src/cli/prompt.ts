// Questions asked on the terminal: passwords without echo, yes/no confirmations, and reading a
// single line from a piped stdin.

import { createInterface } from "node:readline";
import { CliError, type CliIO } from "./io.ts";

const CTRL_C = "\u0003";
const CTRL_D = "\u0004";
const BACKSPACE = ["\u007f", "\b"];

/** Reads a password on a TTY without echoing it. */
export function readPassword(io: CliIO, prompt: string): Promise<string> {
  const stdin = io.stdin;
  if (!stdin.isTTY || !stdin.setRawMode) throw new CliError("Cannot prompt for a password: stdin is not a terminal", 2);
  io.stdout.write(prompt);
  return new Promise<string>((resolve, reject) => {
    let password = "";
    const finish = (error?: Error) => {
      stdin.removeListener("data", onData);
      stdin.setRawMode!(false);
      stdin.pause();
      io.stdout.write("\n");
      if (error) reject(error);
      else resolve(password);
    };
    const onData = (chunk: Buffer | string) => {
      for (const char of chunk.toString()) {
        if (char === "\r" || char === "\n") return finish();
        if (char === CTRL_C || char === CTRL_D) return finish(new CliError("Cancelled", 1));
        if (BACKSPACE.includes(char)) password = [...password].slice(0, -1).join("");
        else if (char >= " ") password += char;
      }
    };
    stdin.setRawMode!(true);
    stdin.resume();
    stdin.on("data", onData);
  });
}

/** Asks a yes/no question on a TTY; only an explicit "yes" or "y" counts as yes. */
export async function confirm(io: CliIO, question: string): Promise<boolean> {
  const answer = await askLine(io, `${question} [y/N] `);
  return /^(y|yes)$/i.test(answer.trim());
}

export function askLine(io: CliIO, prompt: string): Promise<string> {
  const rl = createInterface({ input: io.stdin, output: io.stdout, terminal: Boolean(io.stdin.isTTY) });
  return new Promise<string>((resolve) => {
    let answered = false;
    rl.question(prompt, (answer) => {
      answered = true;
      rl.close();
      resolve(answer);
    });
    rl.on("close", () => {
      if (!answered) resolve("");
    });
  });
}

/** The first line of a piped stdin (without its newline); the rest is left unread. */
export async function readStdinLine(io: CliIO): Promise<string> {
  const chunks: string[] = [];
  for await (const chunk of io.stdin) {
    const text = chunk.toString();
    const newline = text.indexOf("\n");
    if (newline >= 0) {
      chunks.push(text.slice(0, newline));
      break;
    }
    chunks.push(text);
  }
  return chunks.join("").replace(/\r$/, "");
}
