// Runs a command in a real terminal: a detached tmux session on its own tmux server (socket), so
// tests never touch the user's tmux; the screen is read with capture-pane and polled until a
// condition holds or a deadline passes.

import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function tmux(socket: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const result = Bun.spawnSync(["tmux", "-L", socket, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: result.exitCode ?? -1, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

export class TmuxSession implements AsyncDisposable {
  private constructor(
    readonly socket: string,
    readonly name: string,
    /** The command's exit status is written here (tmux's #{pane_dead_status} is not reliable). */
    private readonly statusFile: string,
  ) {}

  /** Starts `command` (run by sh) in a width×height terminal; the pane stays after it exits. */
  static start(command: string, width = 80, height = 24): TmuxSession {
    const id = randomUUID().slice(0, 8);
    const session = new TmuxSession(`tlschat-test-${id}`, `s${id}`, join(tmpdir(), `tlschat-tmux-${id}.status`));
    command = `${command}; echo $? > '${session.statusFile}'`;
    const started = tmux(session.socket, [
      "-f", "/dev/null",
      "new-session", "-d", "-s", session.name, "-x", String(width), "-y", String(height), command,
      ";", "set-option", "-t", session.name, "remain-on-exit", "on",
    ]);
    if (started.code !== 0) throw new Error(`tmux new-session failed: ${started.stderr}`);
    return session;
  }

  /** The visible screen, one string per row, trailing spaces removed. */
  screen(): string[] {
    const result = tmux(this.socket, ["capture-pane", "-p", "-t", this.name]);
    if (result.code !== 0) throw new Error(`tmux capture-pane failed: ${result.stderr}`);
    return result.stdout.replace(/\n$/, "").split("\n").map((row) => row.trimEnd());
  }

  /** Rows up to and including the last non-empty one. */
  content(): string[] {
    const rows = this.screen();
    while (rows.length > 0 && rows.at(-1) === "") rows.pop();
    return rows;
  }

  /** Polls the screen until `condition` holds; the error shows the last screen seen. */
  async waitFor(condition: (rows: string[]) => boolean, what: string, timeoutMs = 5_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = this.content();
      if (condition(rows)) return rows;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; screen:\n${rows.map((r) => `|${r}`).join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Types text literally (no key names interpreted). */
  type(text: string): void {
    const result = tmux(this.socket, ["send-keys", "-t", this.name, "-l", text]);
    if (result.code !== 0) throw new Error(`tmux send-keys failed: ${result.stderr}`);
  }

  /** Presses named keys ("Enter", "C-u", "C-d"). */
  press(...keys: string[]): void {
    const result = tmux(this.socket, ["send-keys", "-t", this.name, ...keys]);
    if (result.code !== 0) throw new Error(`tmux send-keys failed: ${result.stderr}`);
  }

  /** Waits for the command to exit and returns its exit status. */
  async exited(timeoutMs = 5_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (existsSync(this.statusFile)) {
        const text = readFileSync(this.statusFile, "utf8");
        if (text.endsWith("\n")) return Number(text.trim());
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the command to exit`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  kill(): void {
    tmux(this.socket, ["kill-server"]);
    rmSync(this.statusFile, { force: true });
    // tmux leaves its socket file behind.
    rmSync(join(process.env.TMUX_TMPDIR ?? "/tmp", `tmux-${process.getuid?.() ?? 0}`, this.socket), { force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill();
  }
}
