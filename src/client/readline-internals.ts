// The one place that reaches into node:readline's private members, for what the chat screen needs
// and no public API offers: muting the echo while a password is typed, measuring how many rows a
// line covers, telling readline that the cursor was already moved to the input's first row, and
// taking keys (room switching) before readline's own bindings see them.
//
// Checked on Bun 1.4.5 (node_modules/bun, the runtime we ship) and Node 20.20, which agree:
// assigning `_writeToOutput` on an Interface catches every write it makes, redraws included;
// `_getDisplayPos(text)` measures at the output's `columns`; `prevRows` is a plain property,
// absent until the first redraw, by which the next redraw moves the cursor up; every key pressed
// reaches `_ttyWrite(text, key)`, and replacing it keeps readline from acting on the key.
// test/client/readline-internals.test.ts fails when that shape changes.

import type { Interface, Key } from "node:readline";

/** Where text leaves the cursor: full rows below its start, and the column on the last row. */
export interface DisplayPos {
  rows: number;
  cols: number;
}

interface PrivateMembers {
  prevRows?: number;
  _writeToOutput(text: string): void;
  _getDisplayPos(text: string): DisplayPos;
  /** `key` is absent when text is written without a key press (rl.write("text")). */
  _ttyWrite(text: string | undefined, key: Key | undefined): void;
}

export class ReadlineInternals {
  private readonly members: PrivateMembers;

  /** Throws a TypeError when this runtime's readline lacks the members, rather than misdrawing. */
  constructor(rl: Interface) {
    const members = rl as unknown as Partial<PrivateMembers>;
    if (typeof members._writeToOutput !== "function" || typeof members._getDisplayPos !== "function" || typeof members._ttyWrite !== "function") {
      throw new TypeError("node:readline's Interface lacks _writeToOutput, _getDisplayPos or _ttyWrite");
    }
    this.members = members as PrivateMembers;
  }

  /** Routes every write readline makes through `filter`, which passes on what may be shown. */
  filterOutput(filter: (text: string, write: (text: string) => void) => void): void {
    const write = this.members._writeToOutput.bind(this.members);
    this.members._writeToOutput = (text) => filter(text, write);
  }

  /** Offers every key to `take` first; readline handles only the keys it returns false for. */
  interceptKeys(take: (key: Key) => boolean): void {
    const handle = this.members._ttyWrite.bind(this.members);
    this.members._ttyWrite = (text, key) => {
      if (key === undefined || !take(key)) handle(text, key);
    };
  }

  /** Where `text`, written from the start of a row, leaves the cursor at the output's width. */
  displayPos(text: string): DisplayPos {
    return this.members._getDisplayPos(text);
  }

  /** We moved the cursor to the input's first row ourselves: the next redraw must not move up. */
  forgetCursorRow(): void {
    this.members.prevRows = 0;
  }
}
