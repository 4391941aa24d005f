// `openssl s_client` as a foreign TLS client for tests: spawn it, write lines to its stdin, await
// lines from its stdout with a timeout, and always kill it on dispose.

import type { Subprocess } from "bun";

export interface SClientRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Runs s_client to completion with `input` on stdin (then EOF); killed after `timeoutMs`. */
export async function runSClient(args: string[], input = "", timeoutMs = 10_000): Promise<SClientRun> {
  const proc = Bun.spawn(["openssl", "s_client", ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill(), timeoutMs);
  try {
    proc.stdin.write(input);
    await proc.stdin.end();
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    const exitCode = await proc.exited;
    return { exitCode, stdout, stderr };
  } finally {
    clearTimeout(timer);
    proc.kill();
  }
}

/** An interactive s_client session (start it with -quiet so stdout carries only the peer's bytes). */
export class SClientSession implements AsyncDisposable {
  private readonly lines: string[] = [];
  private readonly waiters: Array<() => void> = [];
  private partial = "";
  private stderrText = "";
  private ended = false;
  readonly exited: Promise<number>;

  private constructor(private readonly proc: Subprocess<"pipe", "pipe", "pipe">) {
    this.exited = proc.exited;
    void this.pump();
    void new Response(proc.stderr).text().then((text) => (this.stderrText = text));
  }

  static start(args: string[]): SClientSession {
    return new SClientSession(Bun.spawn(["openssl", "s_client", ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe" }));
  }

  get stderr(): string {
    return this.stderrText;
  }

  writeLine(line: string): void {
    this.proc.stdin.write(line + "\n");
    void this.proc.stdin.flush();
  }

  /** The next stdout line for which `accept` holds; earlier lines are consumed. */
  async nextLine(accept: (line: string) => boolean = () => true, timeoutMs = 5_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.lines.length > 0) {
        const line = this.lines.shift()!;
        if (accept(line)) return line;
      }
      if (this.ended) throw new Error(`s_client ended before the expected line; stderr: ${this.stderrText}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for a line from s_client`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next stdout line parsed as a JSON frame whose type is `type`. */
  async nextFrame(type: string, timeoutMs = 5_000): Promise<Record<string, any>> {
    const line = await this.nextLine((text) => {
      try {
        return JSON.parse(text).type === type;
      } catch {
        return false;
      }
    }, timeoutMs);
    return JSON.parse(line);
  }

  kill(): void {
    this.proc.kill();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.proc.kill();
    await Promise.race([this.proc.exited, Bun.sleep(2_000)]);
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.proc.stdout) {
        this.partial += decoder.decode(chunk, { stream: true });
        let newline: number;
        while ((newline = this.partial.indexOf("\n")) >= 0) {
          this.lines.push(this.partial.slice(0, newline).replace(/\r$/, ""));
          this.partial = this.partial.slice(newline + 1);
        }
        this.wake();
      }
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}
