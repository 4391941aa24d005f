// Shared steps for the chat client and CLI end-to-end tests: condition polling with a deadline,
// an event recorder for ChatClient and a way to start one, a CliIO with a feedable stdin whose
// output can be awaited, running the CLI in-process, and account set-up through a raw TestClient.

import { writeFile } from "node:fs/promises";
import { PassThrough, Writable } from "node:stream";
import type { CliIO } from "../../src/cli/io.ts";
import { run } from "../../src/cli/program.ts";
import { Backoff } from "../../src/client/backoff.ts";
import { ChatClient, type ChatClientOptions, type ChatEvent } from "../../src/client/chat-client.ts";
import { ConnectError, type Verification } from "../../src/client/connection.ts";
import type { ServerEndpoint } from "../../src/client/failover.ts";
import type { LoggedMessage, ServerFrame } from "../../src/protocol/frames.ts";
import { TestClient } from "./client.ts";
import type { LogEntry, TestServer } from "./server.ts";
import { REQUIRE_TOOLS_ENV } from "./tools.ts";
import type { TempDir } from "./tmp.ts";

/** Polls `condition` every few milliseconds until it holds; throws after the deadline. */
export async function until(condition: () => boolean, what: string, timeoutMs = 5_000, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Records a ChatClient's events and lets a test await the next one that matches. */
export class EventLog {
  readonly events: ChatEvent[] = [];
  private waiters: Array<{ match: (event: ChatEvent) => boolean; resolve: (event: ChatEvent) => void }> = [];

  readonly listener = (event: ChatEvent): void => {
    this.events.push(event);
    for (const waiter of this.waiters.slice()) {
      if (waiter.match(event)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(event);
      }
    }
  };

  /** The first event (already recorded after index `from`, or future) that matches. */
  waitFor(match: (event: ChatEvent) => boolean, what: string, timeoutMs = 5_000, from = 0): Promise<ChatEvent> {
    const seen = this.events.slice(from).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<ChatEvent>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (event: ChatEvent) => {
          clearTimeout(timer);
          resolve(event);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; events: ${this.describe()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Waits for a frame of `type` satisfying `match`, carried by any kind of event. */
  async frame<T extends ServerFrame["type"]>(
    type: T,
    match: (frame: Extract<ServerFrame, { type: T }>) => boolean = () => true,
    timeoutMs = 5_000,
    from = 0,
  ): Promise<Extract<ServerFrame, { type: T }>> {
    const matching = (event: ChatEvent) => {
      const frame = frameOf(event);
      return frame?.type === type && match(frame as Extract<ServerFrame, { type: T }>);
    };
    const event = await this.waitFor(matching, `a ${type} frame`, timeoutMs, from);
    return frameOf(event) as Extract<ServerFrame, { type: T }>;
  }

  /** Waits until our message with `text` is stored (its ack came); resolves with the message. */
  async stored(text: string, timeoutMs = 5_000): Promise<LoggedMessage> {
    const event = await this.waitFor((e) => e.kind === "sent" && e.message.text === text, `the ack of ${JSON.stringify(text)}`, timeoutMs);
    return (event as Extract<ChatEvent, { kind: "sent" }>).message;
  }

  /** The server's frames behind the events (acks and refusals included), optionally of one type. */
  frames(type?: ServerFrame["type"]): ServerFrame[] {
    return this.events.flatMap((event) => {
      const frame = frameOf(event);
      return frame !== undefined && (type === undefined || frame.type === type) ? [frame] : [];
    });
  }

  statuses(): string[] {
    return this.events.flatMap((e) => (e.kind === "status" ? [e.text] : []));
  }

  /** The room messages and dms shown, in the order shown: live, from history, and our own once stored. */
  shown(): LoggedMessage[] {
    return this.events.flatMap((event): LoggedMessage[] => {
      if (event.kind === "history") return event.frame.messages;
      if (event.kind === "sent") return event.alreadyShown ? [] : [event.message];
      if (event.kind === "frame" && (event.frame.type === "msg" || event.frame.type === "dm")) return [event.frame];
      return [];
    });
  }

  /** Texts of the messages shown, in order. */
  shownTexts(): string[] {
    return this.shown().map((message) => message.text);
  }

  describe(): string {
    return this.events.map((e) => (e.kind === "status" ? `status(${e.text})` : `${e.kind}(${frameOf(e)?.type})`)).join(", ");
  }
}

function frameOf(event: ChatEvent): ServerFrame | undefined {
  switch (event.kind) {
    case "frame":
    case "history":
      return event.frame;
    case "sent":
      return event.ack;
    case "refused":
      return event.error;
    case "status":
      return undefined;
  }
}

/** A server on 127.0.0.1 for ChatClientOptions; without `verification`, checked against `server`'s certificate. */
export function endpoint(server: TestServer, port = server.port, verification?: Verification): ServerEndpoint {
  return { host: "127.0.0.1", port, verification: verification ?? { kind: "ca", ca: server.certificate.certPem } };
}

/** What a test changes in chatOptions: any option, and how (`verification`) or where (`port`) its one server is reached. */
export type ChatOptionChanges = Partial<ChatClientOptions> & { verification?: Verification; port?: number };

/** ChatClient options for `user` on a test server, verified with the server's own certificate. */
export function chatOptions(server: TestServer, user: string, password: string, { verification, port, ...extra }: ChatOptionChanges = {}): ChatClientOptions {
  return {
    servers: [endpoint(server, port, verification)],
    serverName: "localhost",
    user,
    password,
    reconnect: false,
    ...extra,
  };
}

/** A logged-in ChatClient whose events are recorded; disposing it stops the client. */
export async function startChatClient(options: ChatClientOptions): Promise<{ client: ChatClient; log: EventLog } & AsyncDisposable> {
  const log = new EventLog();
  const client = await ChatClient.start(options, log.listener);
  return { client, log, [Symbol.asyncDispose]: () => client.stop() };
}

/**
 * Options for a client the server drops for idling (it pings only once a minute) and that
 * reconnects at once: with a server's short idle timeout, a way to lose a connection on cue.
 */
export function idlingReconnects(): ChatOptionChanges {
  return { reconnect: true, backoff: new Backoff({ baseMs: 20, maxMs: 40 }), pingIntervalMs: 60_000, pongTimeoutMs: 60_000 };
}

export interface HeldVerification {
  verification: Verification;
  /** Certificate checks so far: the first is the login, later ones are reconnects. */
  readonly checks: number;
  /** From now on, checks wait; the returned function lets them through. */
  hold(): () => void;
}

/** Trusts only `server`, and can hold a reconnect at the certificate check while a test acts. */
export function holdableVerification(server: TestServer): HeldVerification {
  let gate: Promise<void> | undefined;
  let checks = 0;
  return {
    verification: {
      kind: "fingerprint",
      async check(peer) {
        checks += 1;
        if (peer.fingerprint256 !== server.fingerprint256) throw new ConnectError("untrusted", "wrong server");
        await gate;
      },
    },
    get checks() {
      return checks;
    },
    hold() {
      let release!: () => void;
      gate = new Promise<void>((resolve) => (release = resolve));
      return release;
    },
  };
}

export interface FedIO {
  io: CliIO;
  /** Feed lines to the command; `end()` is EOF. */
  stdin: PassThrough;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout contains `text`. */
  waitForStdout(text: string, timeoutMs?: number): Promise<void>;
  abort(): void;
}

/** A CliIO whose stdin stays open until the test ends it, with output that can be awaited. */
export function fedIO(env: Record<string, string | undefined>, stdinText?: string, endStdin = false): FedIO {
  const stdin = new PassThrough();
  if (stdinText !== undefined) stdin.write(stdinText);
  if (endStdin) stdin.end();
  const out = capture();
  const err = capture();
  const stop = new AbortController();
  return {
    io: { stdin, stdout: out.stream, stderr: err.stream, env, signal: stop.signal },
    stdin,
    stdout: out.text,
    stderr: err.text,
    waitForStdout: (text, timeoutMs = 5_000) =>
      out.waitFor((all) => all.includes(text), `stdout to contain ${JSON.stringify(text)}; got ${JSON.stringify(out.text())}`, timeoutMs),
    abort: () => stop.abort("SIGINT"),
  };
}

function capture() {
  const chunks: Buffer[] = [];
  const listeners: Array<() => void> = [];
  const text = () => Buffer.concat(chunks).toString("utf8");
  const stream = new Writable({
    write(chunk: Buffer | string, encoding, done) {
      chunks.push(typeof chunk === "string" ? Buffer.from(chunk, encoding) : chunk);
      done();
      for (const listener of listeners.slice()) listener();
    },
  });
  const waitFor = (predicate: (all: string) => boolean, what: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      if (predicate(text())) return resolve();
      const listener = () => {
        if (!predicate(text())) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        listeners.splice(listeners.indexOf(listener), 1);
      };
      listeners.push(listener);
    });
  return { stream, text, waitFor };
}

/**
 * Commander reads option defaults from process.env; CLI tests pass every option as a flag. The
 * tool requirement stays: every test file runs in this one process, and the files after this one
 * would otherwise skip where CI requires them to run.
 */
export function clearTlschatEnv(): void {
  for (const name of Object.keys(process.env)) if (name.startsWith("TLSCHAT_") && name !== REQUIRE_TOOLS_ENV) delete process.env[name];
}

/** The environment a CLI run sees: a home of its own, and the password if given. */
export function envFor(dir: TempDir, password?: string): Record<string, string | undefined> {
  return { HOME: dir.path, XDG_CONFIG_HOME: dir.file("config"), TLSCHAT_PASSWORD: password };
}

/** Runs the CLI in-process; resolves with the exit code and the captured output. */
export async function cli(args: string[], io: FedIO): Promise<{ code: number; stdout: string; stderr: string }> {
  const code = await run(args, io.io);
  return { code, stdout: io.stdout(), stderr: io.stderr() };
}

/** The non-empty lines of a command's output. */
export function outputLines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** A port on 127.0.0.1 where nothing listens: connecting is refused at once. */
export function closedPort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** Registers accounts on the server through one raw connection. */
export async function registerUsers(server: TestServer, users: Record<string, string>): Promise<void> {
  await using client = await TestClient.connect({ port: server.port, ca: server.certificate.certPem });
  for (const [user, password] of Object.entries(users)) await client.register(user, password);
}

/** A logged-in raw client (history already read). */
export async function loggedIn(server: TestServer, user: string, password: string): Promise<TestClient> {
  const client = await TestClient.connect({ port: server.port, ca: server.certificate.certPem });
  await client.login(user, password);
  return client;
}

/** Writes the server's certificate to `dir` as the CA file a client can be given. */
export async function writeCa(dir: TempDir, server: TestServer, name = "cert.pem"): Promise<string> {
  const path = dir.file(name);
  await writeFile(path, server.certificate.certPem);
  return path;
}

export function logEvents(server: TestServer, event: string): LogEntry[] {
  return server.logs.filter((entry) => entry.event === event);
}

/** Log entries that would mean a client spoke the protocol (anything sent after TLS). */
export function authLogs(server: TestServer): LogEntry[] {
  return server.logs.filter((entry) => ["login", "register", "login_failed"].includes(entry.event));
}
