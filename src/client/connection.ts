// A client's TLS connection to a tlschat server: connects (presenting the user's identity, if
// any), verifies the server (CA chain and host name, a pinned fingerprint, or nothing when the
// user said --insecure) before a single byte is sent, then turns the byte stream into parsed
// server frames and queues outgoing frames across `drain` so nothing is silently dropped.

import type { Socket } from "bun";
import { ChatError } from "../protocol/errors.ts";
import { decodeLine, encodeFrameBytes, parseServerFrame, type ClientFrame, type ServerFrame } from "../protocol/frames.ts";
import { LineDecoder } from "../protocol/lines.ts";

/**
 * Longest server line the client buffers. The longest a server sends is `history`, which the
 * server caps at 256 KiB; the rest is headroom for servers with other history limits, and the
 * bound keeps a hostile server from growing the buffer without end.
 */
export const MAX_SERVER_LINE_BYTES = 4 * 1024 * 1024;
export const CONNECT_TIMEOUT_MS = 10_000;
/** After ending our side, how long the server gets to close before the socket is cut. */
export const CLOSE_GRACE_MS = 2_000;

export interface PeerCertificateInfo {
  fingerprint256: string;
  /** Whether the chain and host name verified against the configured CA. */
  authorized: boolean;
  authorizationError: string | undefined;
}

export type Verification =
  /** Verify the chain against this CA bundle and the host name against the certificate. */
  | { kind: "ca"; ca: string }
  /** Decide from the certificate's fingerprint (trust on first use, or an expected pin). */
  | { kind: "fingerprint"; check(peer: PeerCertificateInfo): Promise<void> }
  | { kind: "insecure" };

/** A client certificate and its key, presented in the handshake so the server can log us in by key. */
export interface ClientIdentity {
  certPem: string;
  keyPem: string;
}

/** Bun's number for TLS 1.3 (`minVersion` takes numbers, and its types leave the field out). */
const TLS_1_3 = 772;

export interface ConnectOptions {
  host: string;
  port: number;
  verification: Verification;
  /** Name to verify and to send as SNI; defaults to the host. */
  serverName?: string;
  timeoutMs?: number;
  identity?: ClientIdentity;
  /**
   * Also present the identity in TLS 1.2, which sends the client certificate in clear. Without
   * it a connection with an identity requires TLS 1.3: the certificate is chosen before the
   * handshake, so the client cannot wait to see which version the server picks.
   */
  identityOverTls12?: boolean;
}

/** `identity_needs_tls13`: the server offers no TLS 1.3, and the identity is not to be shown in TLS 1.2. */
export type ConnectFailure = "connect_failed" | "tls_failed" | "untrusted" | "identity_needs_tls13";

/** Why a connection could not be made; `kind` tells a retry loop whether trying again can help. */
export class ConnectError extends Error {
  constructor(
    readonly kind: ConnectFailure,
    message: string,
  ) {
    super(message);
    this.name = "ConnectError";
  }
}

type FrameListener = (frame: ServerFrame) => void;
type CloseListener = (error: Error | undefined) => void;

export class ClientConnection implements AsyncDisposable {
  readonly peer: PeerCertificateInfo;
  private readonly decoder = new LineDecoder(MAX_SERVER_LINE_BYTES);
  private frameListeners: FrameListener[] = [];
  private closeListeners: CloseListener[] = [];
  private outbound: Uint8Array[] = [];
  private flushedWaiters: Array<() => void> = [];
  private closedError: Error | undefined;
  private closed = false;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  private constructor(
    private readonly socket: Socket<ClientConnection | undefined>,
    peer: PeerCertificateInfo,
  ) {
    this.peer = peer;
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  static async connect(options: ConnectOptions): Promise<ClientConnection> {
    const serverName = options.serverName ?? options.host;
    const verification = options.verification;
    const identity = options.identity;
    const tls13Only = identity !== undefined && options.identityOverTls12 !== true;
    let settle!: { resolve(connection: ClientConnection): void; reject(error: Error): void };
    const ready = new Promise<ClientConnection>((resolve, reject) => (settle = { resolve, reject }));
    // A refused TCP connect both throws from Bun.connect and rejects `ready`; the throw is reported.
    ready.catch(() => undefined);
    let connection: ClientConnection | undefined;
    let failure: Error | undefined;
    const fail = (error: Error) => {
      failure ??= error;
      settle.reject(failure);
    };

    const timer = setTimeout(
      () => fail(new ConnectError("connect_failed", `No TLS session with ${options.host}:${options.port} after ${options.timeoutMs ?? CONNECT_TIMEOUT_MS} ms`)),
      options.timeoutMs ?? CONNECT_TIMEOUT_MS,
    );
    let socket: Socket<ClientConnection | undefined>;
    try {
      socket = await Bun.connect<ClientConnection | undefined>({
        hostname: options.host,
        port: options.port,
        data: undefined,
        tls: {
          serverName,
          ...(verification.kind === "ca" ? { ca: verification.ca } : {}),
          // Always explicit: NODE_TLS_REJECT_UNAUTHORIZED must not be able to change this.
          rejectUnauthorized: verification.kind === "ca",
          ...(identity ? { cert: identity.certPem, key: identity.keyPem } : {}),
          ...(tls13Only ? { minVersion: TLS_1_3 } : {}),
        } as Bun.TLSOptions,
        socket: {
          handshake(socket, _success, authorizationError) {
            if (tls13Only && isVersionRefusal(authorizationError)) {
              fail(new ConnectError("identity_needs_tls13", `${options.host}:${options.port} does not offer TLS 1.3, and TLS 1.2 would show the identity certificate to anyone on the path`));
              socket.terminate();
              return;
            }
            const certificate = socket.getPeerCertificate();
            const peer: PeerCertificateInfo = {
              fingerprint256: certificate?.fingerprint256 ?? "",
              authorized: authorizationError === null || authorizationError === undefined,
              authorizationError: authorizationError ? String(authorizationError.message ?? authorizationError) : undefined,
            };
            // Record the reason first: terminating runs the close handler, which would report a
            // generic handshake failure.
            if (!socket.getTLSVersion()) {
              fail(new ConnectError("tls_failed", "The server did not negotiate TLS"));
              socket.terminate();
              return;
            }
            void verify(verification, peer, options.host).then(
              () => {
                connection = new ClientConnection(socket, peer);
                socket.data = connection;
                socket.setNoDelay(true);
                clearTimeout(timer);
                settle.resolve(connection);
              },
              (error: Error) => {
                fail(error);
                socket.terminate();
              },
            );
          },
          data(socket, chunk) {
            socket.data?.onData(chunk);
          },
          drain(socket) {
            socket.data?.flush();
          },
          close(socket, error) {
            if (socket.data) socket.data.onClosed(error);
            else fail(new ConnectError("tls_failed", `TLS handshake with ${options.host}:${options.port} failed${error ? `: ${error.message}` : ""}`));
          },
          error(socket, error) {
            if (!socket.data) fail(new ConnectError("tls_failed", `TLS error with ${options.host}:${options.port}: ${error.message}`));
          },
          connectError(_socket, error) {
            fail(new ConnectError("connect_failed", `Cannot connect to ${options.host}:${options.port}: ${error.message}`));
          },
        },
      });
    } catch (error) {
      clearTimeout(timer);
      throw new ConnectError("connect_failed", `Cannot connect to ${options.host}:${options.port}: ${(error as Error).message}`);
    }
    try {
      return await ready;
    } catch (error) {
      clearTimeout(timer);
      socket.terminate();
      throw error;
    }
  }

  get tlsVersion(): string {
    return this.socket.getTLSVersion();
  }

  get cipher(): string {
    return this.socket.getCipher()?.name ?? "";
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  onFrame(listener: FrameListener): void {
    this.frameListeners.push(listener);
  }

  onClose(listener: CloseListener): void {
    this.closeListeners.push(listener);
  }

  send(frame: ClientFrame): void {
    if (this.closed) throw new ChatError("shutting_down", "The connection is closed");
    this.outbound.push(encodeFrameBytes(frame));
    this.flush();
  }

  /** Resolves once everything sent so far was handed to the socket (or the connection closed). */
  flushed(): Promise<void> {
    if (this.outbound.length === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.flushedWaiters.push(resolve));
  }

  /** Resolves with the first frame for which `match` returns a value, or rejects on close or timeout. */
  waitFor<T>(match: (frame: ServerFrame) => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const listener: FrameListener = (frame) => {
        const value = match(frame);
        if (value === undefined) return;
        cleanup();
        resolve(value);
      };
      const onClose: CloseListener = (error) => {
        cleanup();
        reject(new ConnectError("connect_failed", `The server closed the connection while waiting for ${what}${error ? `: ${error.message}` : ""}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new ConnectError("connect_failed", `No ${what} from the server within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.frameListeners = this.frameListeners.filter((l) => l !== listener);
        this.closeListeners = this.closeListeners.filter((l) => l !== onClose);
      };
      if (this.closed) {
        onClose(this.closedError);
        return;
      }
      this.frameListeners.push(listener);
      this.closeListeners.push(onClose);
    });
  }

  /** Flushes what was sent, then closes. */
  async close(): Promise<void> {
    if (!this.closed) {
      await this.flushed();
      this.socket.end();
    }
    const timeout = setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS);
    await this.closedPromise;
    clearTimeout(timeout);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  flush(): void {
    while (this.outbound.length > 0 && !this.closed) {
      const head = this.outbound[0]!;
      const written = this.socket.write(head);
      if (written < 0) return;
      if (written < head.length) {
        this.outbound[0] = head.subarray(written);
        return;
      }
      this.outbound.shift();
    }
    if (this.outbound.length === 0) for (const waiter of this.flushedWaiters.splice(0)) waiter();
  }

  private onData(chunk: Uint8Array): void {
    try {
      this.decoder.push(chunk, (line) => {
        const frame = parseServerFrame(decodeLine(line));
        // A frame type from a newer server: nothing this client can show or act on.
        if (frame) for (const listener of this.frameListeners.slice()) listener(frame);
        return !this.closed;
      });
    } catch (error) {
      // A server that breaks the protocol is not trusted with the rest of the stream.
      this.closedError = error as Error;
      this.socket.terminate();
    }
  }

  private onClosed(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closedError ??= error;
    for (const waiter of this.flushedWaiters.splice(0)) waiter();
    for (const listener of this.closeListeners.slice()) listener(this.closedError);
    this.resolveClosed();
  }
}

/** The handshake failed because the peers share no TLS version (OpenSSL and BoringSSL say it this way). */
function isVersionRefusal(error: Error | null | undefined): boolean {
  return /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/.test(error?.message ?? "");
}

async function verify(verification: Verification, peer: PeerCertificateInfo, host: string): Promise<void> {
  switch (verification.kind) {
    case "ca":
      if (!peer.authorized) {
        throw new ConnectError("untrusted", `The server's certificate is not trusted for ${host}: ${peer.authorizationError}`);
      }
      return;
    case "fingerprint":
      if (!peer.fingerprint256) throw new ConnectError("untrusted", "The server presented no certificate");
      return verification.check(peer);
    case "insecure":
      return;
    default: {
      const unreachable: never = verification;
      throw new Error(`Unknown verification ${String(unreachable)}`);
    }
  }
}
