// A raw protocol client for tests: real TLS to a real server, frames as parsed JSON, and
// `next(type)` to await a specific frame with a timeout instead of sleeping.

import type { Socket } from "bun";

export type Frame = { type: string; [field: string]: any };

export interface TestClientOptions {
  port: number;
  host?: string;
  ca?: string;
  serverName?: string;
  /** Extra Bun TLS options (minVersion, maxVersion, ciphers). */
  tls?: Record<string, unknown>;
}

interface Waiter {
  type: string | undefined;
  resolve(frame: Frame): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const DEFAULT_TIMEOUT_MS = 5_000;

/** Turns received bytes into frames, whatever the chunking; a line that is not JSON is kept as `unparsable`. */
export class FrameReader {
  private partial = "";
  private readonly decoder = new TextDecoder();

  push(chunk: Uint8Array): Frame[] {
    this.partial += this.decoder.decode(chunk, { stream: true });
    const frames: Frame[] = [];
    let newline: number;
    while ((newline = this.partial.indexOf("\n")) >= 0) {
      const line = this.partial.slice(0, newline);
      this.partial = this.partial.slice(newline + 1);
      try {
        frames.push(JSON.parse(line));
      } catch {
        frames.push({ type: "unparsable", line });
      }
    }
    return frames;
  }
}

export class TestClient implements AsyncDisposable {
  readonly received: Frame[] = [];
  private readonly unread: Frame[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly reader = new FrameReader();
  private socket!: Socket<undefined>;
  private resolveClosed!: () => void;
  readonly closed = new Promise<void>((resolve) => (this.resolveClosed = resolve));
  isClosed = false;

  static async connect(options: TestClientOptions): Promise<TestClient> {
    const client = new TestClient();
    let handshake!: { resolve(): void; reject(error: Error): void };
    const ready = new Promise<void>((resolve, reject) => (handshake = { resolve, reject }));
    // A failed TCP connect rejects `ready` too, but Bun.connect's own rejection is what we rethrow.
    ready.catch(() => undefined);
    client.socket = await Bun.connect({
      hostname: options.host ?? "127.0.0.1",
      port: options.port,
      tls: {
        ca: options.ca,
        serverName: options.serverName ?? "localhost",
        rejectUnauthorized: options.ca !== undefined,
        ...options.tls,
      } as Bun.TLSOptions,
      socket: {
        handshake(_socket, success, error) {
          if (success || options.ca === undefined) handshake.resolve();
          else handshake.reject(new Error(`TLS verification failed: ${error?.message ?? error}`));
        },
        data(_socket, chunk) {
          client.onData(chunk);
        },
        close() {
          client.onClose();
          handshake.reject(new Error("closed before the TLS handshake completed"));
        },
        error(_socket, error) {
          handshake.reject(error);
        },
        connectError(_socket, error) {
          handshake.reject(error);
        },
      },
    });
    await withTimeout(ready, DEFAULT_TIMEOUT_MS, "TLS handshake");
    return client;
  }

  get tlsVersion(): string {
    return this.socket.getTLSVersion();
  }

  get cipher(): string {
    return this.socket.getCipher().name;
  }

  send(frame: object): void {
    this.sendRaw(JSON.stringify(frame) + "\n");
  }

  sendRaw(data: string | Uint8Array): number {
    return this.socket.write(data);
  }

  /** Resolves with the next unread frame of `type` (any type if omitted); other frames stay unread. */
  next(type?: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    const index = this.unread.findIndex((frame) => type === undefined || frame.type === type);
    if (index >= 0) return Promise.resolve(this.unread.splice(index, 1)[0]!);
    if (this.isClosed) return Promise.reject(new Error(`connection closed while waiting for ${type ?? "a frame"}`));
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = {
        type,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          const seen = this.received.map((frame) => frame.type).join(",");
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${type ?? "a frame"} (received: ${seen})`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Waits for an `error` frame and returns its code. */
  async nextError(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    return (await this.next("error", timeoutMs)).code;
  }

  /** Round trip: every frame the server sent before the pong has arrived once this resolves. */
  async sync(): Promise<void> {
    const id = `sync-${Math.random()}`;
    this.send({ type: "ping", id });
    for (;;) {
      const pong = await this.next("pong");
      if (pong.id === id) return;
    }
  }

  /** Unread frames of a type, taken out of the unread list. */
  take(type: string): Frame[] {
    const taken = this.unread.filter((frame) => frame.type === type);
    for (const frame of taken) this.unread.splice(this.unread.indexOf(frame), 1);
    return taken;
  }

  async register(user: string, password: string): Promise<void> {
    this.send({ type: "register", user, password });
    const reply = await this.nextOf(["registered", "error"]);
    if (reply.type === "error") throw new Error(`register ${user} failed: ${reply.code}`);
  }

  async login(user: string, password: string): Promise<Frame> {
    this.send({ type: "login", user, password });
    const reply = await this.nextOf(["welcome", "error"]);
    if (reply.type === "error") throw new Error(`login ${user} failed: ${reply.code}`);
    await this.next("history");
    return reply;
  }

  /** The next unread frame whose type is one of `types`. */
  async nextOf(types: string[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.unread.findIndex((frame) => types.includes(frame.type));
      if (index >= 0) return this.unread.splice(index, 1)[0]!;
      await this.nextArrival(deadline - Date.now());
    }
  }

  end(): void {
    this.socket.end();
  }

  async close(): Promise<void> {
    if (!this.isClosed) this.socket.end();
    await withTimeout(this.closed, DEFAULT_TIMEOUT_MS, "close").catch(() => this.socket.terminate());
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private arrivals: Array<() => void> = [];

  private nextArrival(timeoutMs: number): Promise<void> {
    if (timeoutMs <= 0) return Promise.reject(new Error("timed out waiting for a frame"));
    if (this.isClosed) return Promise.reject(new Error("connection closed"));
    return withTimeout(new Promise<void>((resolve) => this.arrivals.push(resolve)), timeoutMs, "a frame");
  }

  private onData(chunk: Uint8Array): void {
    for (const frame of this.reader.push(chunk)) {
      this.received.push(frame);
      const waiterIndex = this.waiters.findIndex((waiter) => waiter.type === undefined || waiter.type === frame.type);
      if (waiterIndex >= 0) {
        const [waiter] = this.waiters.splice(waiterIndex, 1);
        clearTimeout(waiter!.timer);
        waiter!.resolve(frame);
      } else {
        this.unread.push(frame);
      }
      for (const arrival of this.arrivals.splice(0)) arrival();
    }
  }

  private onClose(): void {
    this.isClosed = true;
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`connection closed while waiting for ${waiter.type ?? "a frame"}`));
    }
    for (const arrival of this.arrivals.splice(0)) arrival();
    this.resolveClosed();
  }
}

export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
