// The private node:readline members the chat screen relies on, checked on a real readline
// Interface over in-memory streams: if the runtime changes their shape, these fail before a
// terminal misdraws.

import { describe, expect, test } from "bun:test";
import { createInterface, type Interface } from "node:readline";
import { PassThrough, Writable } from "node:stream";
import { ReadlineInternals } from "../../src/client/readline-internals.ts";

const WIDTH = 10;
const PROMPT = "> ";

/** A terminal-mode Interface whose output is WIDTH columns wide and recorded. */
function fakeTerminal(): { rl: Interface; output: Writable & { columns: number }; written(): string; clear(): void } {
  const chunks: string[] = [];
  const output = Object.assign(
    new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        chunks.push(String(chunk));
        done();
      },
    }),
    { columns: WIDTH, isTTY: true },
  );
  const rl = createInterface({ input: new PassThrough(), output, prompt: PROMPT, terminal: true });
  return { rl, output, written: () => chunks.join(""), clear: () => void chunks.splice(0) };
}

/** A cursor-up sequence, as readline moves to the input's first row before redrawing. */
const CURSOR_UP = /\x1b\[\d*A/;

describe("ReadlineInternals on this runtime's node:readline", () => {
  test("_writeToOutput carries every write, typed text and redraws alike, so filtering it mutes the echo", () => {
    const { rl, written } = fakeTerminal();
    const internals = new ReadlineInternals(rl);
    let muted = false;
    internals.filterOutput((text, write) => {
      if (!muted) write(text);
    });
    rl.prompt();
    muted = true;
    rl.write("hunter2");
    rl.prompt(true);
    muted = false;
    expect(rl.line).toBe("hunter2");
    expect(written()).toContain(PROMPT);
    expect(written()).not.toContain("hunter2");
    rl.write("!");
    expect(written()).toContain("!");
    rl.close();
  });

  test("_getDisplayPos measures rows and columns at the output's width", () => {
    const { rl, output } = fakeTerminal();
    const internals = new ReadlineInternals(rl);
    expect(internals.displayPos("")).toEqual({ rows: 0, cols: 0 });
    expect(internals.displayPos("x".repeat(7))).toEqual({ rows: 0, cols: 7 });
    // Exactly one full row leaves the cursor at the start of the next one.
    expect(internals.displayPos("x".repeat(WIDTH))).toEqual({ rows: 1, cols: 0 });
    expect(internals.displayPos("x".repeat(2 * WIDTH + 5))).toEqual({ rows: 2, cols: 5 });
    output.columns = 2 * WIDTH;
    expect(internals.displayPos("x".repeat(2 * WIDTH + 5))).toEqual({ rows: 1, cols: 5 });
    rl.close();
  });

  test("prevRows is what the next redraw moves up by; forgetting it redraws in place", () => {
    const { rl, written, clear } = fakeTerminal();
    const internals = new ReadlineInternals(rl);
    rl.prompt();
    // Wraps onto a third row, so the cursor sits two rows below the input's first.
    rl.write("x".repeat(2 * WIDTH + 5));
    expect(rl.getCursorPos().rows).toBe(2);
    clear();
    rl.prompt(true);
    expect(written()).toMatch(/\x1b\[2A/);

    internals.forgetCursorRow();
    clear();
    rl.prompt(true);
    expect(written()).not.toMatch(CURSOR_UP);
    expect(written()).toContain(PROMPT + "x".repeat(2 * WIDTH + 5));
    rl.close();
  });

  test("_ttyWrite sees every key first: a key taken never reaches readline, the others still do", () => {
    const { rl } = fakeTerminal();
    const internals = new ReadlineInternals(rl);
    const taken: string[] = [];
    internals.interceptKeys((key) => {
      if (!(key.ctrl && key.name === "p")) return false;
      taken.push("C-p");
      return true;
    });
    rl.prompt();
    rl.write("first");
    rl.write(null, { ctrl: true, name: "u" });
    rl.write("draft");
    // Left to readline, Ctrl-P would replace the line with this earlier one.
    (rl as unknown as { history: string[] }).history.unshift("earlier");
    rl.write(null, { ctrl: true, name: "p" });
    expect(taken).toEqual(["C-p"]);
    expect(rl.line).toBe("draft");
    rl.write(null, { ctrl: true, name: "u" });
    expect(rl.line).toBe("");
    rl.close();
  });

  test("an Interface without the members is refused at once", () => {
    expect(() => new ReadlineInternals({} as Interface)).toThrow(TypeError);
  });
});
