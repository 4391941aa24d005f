// The chat core's view of a connection: something that takes encoded frames and can be closed.
// The core never sees sockets, TLS or addresses beyond this.

import type { ErrorCode } from "../protocol/errors.ts";

export interface Peer {
  /** Unique per connection for the server's lifetime. */
  readonly id: number;
  /** Queues one or more encoded frames (each ending in a newline). Never blocks. */
  send(frame: Uint8Array): void;
  /**
   * Resolves once the outbound queue has room for another large reply (or the peer is gone), so
   * bulk replies such as login history go out as the socket drains instead of all at once.
   */
  writable(): Promise<void>;
  /** Closes once queued frames are flushed, after an `error` frame when a code is given. */
  close(code?: ErrorCode, message?: string): void;
}
