// Shared steps for the end-to-end server tests: connect with the test CA, make a logged-in user,
// add more connections of that user by token (no hashing), and wait for a server-side condition.

import { expect } from "bun:test";
import { TestClient, type Frame, type TestClientOptions } from "../helpers/client.ts";
import type { TestServer } from "../helpers/server.ts";

export function connect(server: TestServer, options: Partial<TestClientOptions> = {}): Promise<TestClient> {
  return TestClient.connect({ port: server.port, ca: server.certificate.certPem, ...options });
}

export interface LoggedIn {
  client: TestClient;
  welcome: Frame;
  token: string;
}

/** Registers `user` and logs in on the same connection. */
export async function newUser(server: TestServer, user: string, password = `pw-${user}-secret`): Promise<LoggedIn> {
  const client = await connect(server);
  await client.register(user, password);
  const welcome = await client.login(user, password);
  return { client, welcome, token: welcome.token };
}

/** Another connection of an existing user, logged in with a resume token. */
export async function sibling(server: TestServer, user: string, token: string): Promise<LoggedIn> {
  const client = await connect(server);
  const welcome = await resume(client, user, token);
  return { client, welcome, token: welcome.token };
}

export async function resume(client: TestClient, user: string, token: string): Promise<Frame> {
  client.send({ type: "resume", user, token });
  const reply = await client.nextOf(["welcome", "error"]);
  if (reply.type === "error") throw new Error(`resume ${user} failed: ${reply.code}`);
  await client.next("history");
  return reply;
}

/** Sends a frame and returns the code of the error it provokes. */
export async function errorFor(client: TestClient, frame: object | string): Promise<string> {
  if (typeof frame === "string") client.sendRaw(frame);
  else client.send(frame);
  return client.nextError();
}

/** Asserts the connection is open and answers: a ping round trip with no error frame before it. */
export async function expectUsable(client: TestClient): Promise<void> {
  await client.sync();
  expect(client.take("error")).toEqual([]);
  expect(client.isClosed).toBe(false);
}

/** Waits for a condition on server state (connection counts, logs) that no frame announces. */
export async function until(condition: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves when the connection closes; rejects if it stays open longer than `timeoutMs`. */
export async function closedWithin(client: TestClient, timeoutMs = 2_000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    client.closed,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Lets the event loop run once (I/O included) — to separate writes into distinct reads. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
