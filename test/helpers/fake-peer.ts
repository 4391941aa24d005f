// A Peer for unit tests of the chat core: it records the frames it is sent, decoded, and how it
// was closed, with no socket behind it.

import type { Peer } from "../../src/core/peer.ts";
import type { ErrorCode } from "../../src/protocol/errors.ts";

let nextId = 1;

export class FakePeer implements Peer {
  readonly id = nextId++;
  frames: Array<Record<string, any>> = [];
  closedWith: ErrorCode | "quit" | undefined;

  send(bytes: Uint8Array, start = 0, end = bytes.length): void {
    for (const line of new TextDecoder().decode(bytes.subarray(start, end)).split("\n")) if (line) this.frames.push(JSON.parse(line));
  }

  writable(): Promise<void> {
    return Promise.resolve();
  }

  close(code?: ErrorCode): void {
    this.closedWith = code ?? "quit";
  }

  /** The frames of one type received so far. */
  of(type: string): Array<Record<string, any>> {
    return this.frames.filter((frame) => frame.type === type);
  }
}
