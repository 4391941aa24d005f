// The interactive screen: a readline input line at the bottom, with everything received printed
// above it. Printing moves up over the (possibly wrapped) input, clears down, writes, and
// redraws the prompt (which may have changed: room, unread counts) with the cursor where it was,
// so typing is never clobbered.

import { clearScreenDown, createInterface, cursorTo, moveCursor, type Interface, type Key } from "node:readline";
import { ReadlineInternals } from "./readline-internals.ts";

export interface TerminalOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Asked at every redraw, so the prompt always shows the current state. */
  prompt: () => string;
  completer: (line: string) => [string[], string];
}

/** Two Ctrl-C presses within this window quit. */
export const DOUBLE_CTRL_C_MS = 2_000;

type Handlers = {
  line: (line: string) => void;
  quit: () => void;
  /** A key pressed while typing; true when it was taken, so readline does not act on it too. */
  key: (key: Key) => boolean;
};

export class Terminal {
  private readonly rl: Interface;
  private readonly internals: ReadlineInternals;
  private readonly output: NodeJS.WritableStream;
  private lastInterruptAt = 0;
  private held: string[] | undefined;
  private closed = false;
  private readonly prompt: () => string;
  private handlers: Handlers = { line: () => {}, quit: () => {}, key: () => false };
  private secret: { resolve(value: string): void; reject(error: Error): void } | undefined;
  private muted = false;

  constructor(options: TerminalOptions) {
    this.output = options.output;
    this.prompt = options.prompt;
    this.rl = createInterface({
      input: options.input,
      output: options.output,
      terminal: true,
      completer: options.completer,
      historySize: 500,
    });
    this.internals = new ReadlineInternals(this.rl);
    // While a password is typed (its prompt already shown), echo nothing but the end of the line.
    this.internals.filterOutput((text, write) => {
      if (!this.muted || text.startsWith("\r\n") || text === "\n") write(text);
    });
    this.internals.interceptKeys((key) => this.secret === undefined && this.handlers.key(key));
    this.rl.on("line", (line) => this.onLine(line));
    this.rl.on("SIGINT", () => this.onInterrupt());
    this.rl.on("close", () => {
      this.closed = true;
      this.secret?.reject(new Error("Input closed"));
      this.handlers.quit();
    });
  }

  on<K extends keyof Handlers>(event: K, handler: Handlers[K]): void {
    this.handlers[event] = handler;
  }

  start(): void {
    this.rl.setPrompt(this.prompt());
    this.rl.prompt();
  }

  /** Prints lines above the input line, leaving what is being typed intact. */
  print(...lines: string[]): void {
    if (this.closed) {
      for (const line of lines) this.output.write(line + "\n");
      return;
    }
    if (this.held) {
      this.held.push(...lines);
      return;
    }
    this.redraw(lines);
  }

  /** Redraws the input line if the prompt has changed since it was drawn. */
  refreshPrompt(): void {
    if (this.closed || this.held || this.rl.getPrompt() === this.prompt()) return;
    this.redraw([]);
  }

  bell(): void {
    this.output.write("\x07");
  }

  /** Reads one line without echo; received messages wait until it is entered. */
  readSecret(prompt: string): Promise<string> {
    this.held = [];
    this.rl.setPrompt(prompt);
    this.rl.prompt();
    this.muted = true;
    return new Promise<string>((resolve, reject) => (this.secret = { resolve, reject })).finally(() => {
      this.muted = false;
      this.secret = undefined;
      this.rl.setPrompt(this.prompt());
      const held = this.held ?? [];
      this.held = undefined;
      if (held.length > 0) this.print(...held);
      else if (!this.closed) this.rl.prompt();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.rl.close();
  }

  private onLine(line: string): void {
    this.eraseSubmittedLine(line);
    if (this.secret) {
      this.secret.resolve(line);
      return;
    }
    this.handlers.line(line);
    if (this.closed || this.secret) return;
    this.rl.setPrompt(this.prompt());
    this.rl.prompt();
  }

  /** Moves up over the input, clears down, writes `lines`, and draws the current prompt and input. */
  private redraw(lines: string[]): void {
    // Measured with the prompt as drawn: the new one may cover a different number of rows.
    const rows = this.rl.getCursorPos().rows;
    moveCursor(this.output, 0, -rows);
    cursorTo(this.output, 0);
    clearScreenDown(this.output);
    if (lines.length > 0) this.output.write(lines.join("\n") + "\n");
    this.rl.setPrompt(this.prompt());
    // We already moved above the input; readline must not move up again over what we printed.
    this.internals.forgetCursorRow();
    this.rl.prompt(true);
  }

  /** The submitted line is shown again as a formatted message (or its command's output). */
  private eraseSubmittedLine(line: string): void {
    const shown = this.muted ? "" : line;
    const end = this.internals.displayPos(this.rl.getPrompt() + shown);
    // readline wrote "\r\n" after the line: it filled `rows` full rows, plus one partial row.
    const rows = end.cols === 0 && end.rows > 0 ? end.rows : end.rows + 1;
    moveCursor(this.output, 0, -rows);
    cursorTo(this.output, 0);
    clearScreenDown(this.output);
  }

  private onInterrupt(): void {
    if (this.secret) {
      this.output.write("\n");
      this.secret.reject(new Error("Cancelled"));
      return;
    }
    const now = Date.now();
    if (now - this.lastInterruptAt < DOUBLE_CTRL_C_MS) {
      this.handlers.quit();
      return;
    }
    this.lastInterruptAt = now;
    // Ctrl-C clears a half-typed line (as shells do) and arms the second press.
    this.rl.write(null, { ctrl: true, name: "u" });
    this.print("(press Ctrl-C again to quit, or type /quit)");
  }
}
