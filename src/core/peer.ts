// The chat core's view of a connection: something that takes encoded frames and can be closed.
// The core never sees sockets, TLS or addresses beyond this.

import type { ErrorCode } from "../protocol/errors.ts";

export interface Peer {
  /** Unique per connection for the server's lifetime. */
  readonly id: number;
  /**
   * Queues `bytes[start, end)` (the whole array by default): one or more encoded frames, each
   * ending in a newline. The bytes may be shared with other peers and written later, so they
   * must never change afterwards. Never blocks.
   */
  send(bytes: Uint8Array, start?: number, end?: number): void;
  /**
   * Resolves once the outbound queue has room for another large reply (or the peer is gone), so
   * bulk replies such as login history go out as the socket drains instead of all at once.
   */
  writable(): Promise<void>;
  /** Closes once queued frames are flushed, after an `error` frame when a code is given. */
  close(code?: ErrorCode, message?: string): void;
}
