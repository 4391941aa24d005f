// Steps shared by the end-to-end tests of the message log: send a message and await its ack,
// ask for history or a search, log in with a `since` mark and collect what the login sent, and
// read what the server's chat database holds.

import { Database } from "bun:sqlite";
import type { Frame, TestClient } from "../helpers/client.ts";
import type { TestServer } from "../helpers/server.ts";
import { connect, newUser } from "./support.ts";

let refCounter = 0;

/** A ref no other message of the test run uses. */
export function freshRef(): string {
  refCounter += 1;
  return `ref-${refCounter}`;
}

/** The next ack or error, which must answer the frame with `ref`; other frames stay unread. */
export async function answerTo(client: TestClient, ref: string): Promise<Frame> {
  const reply = await client.nextOf(["ack", "error"]);
  if (reply.ref !== ref) throw new Error(`expected the answer to ${ref}, got ${JSON.stringify(reply)}`);
  return reply;
}

/** Says `text` (in `room`, else the lobby) with a fresh ref and returns the ack; an error throws. */
export async function sayAcked(client: TestClient, text: string, room?: string): Promise<Frame> {
  const ref = freshRef();
  client.send(room === undefined ? { type: "say", text, ref } : { type: "say", room, text, ref });
  const reply = await answerTo(client, ref);
  if (reply.type !== "ack") throw new Error(`say ${text} refused: ${reply.code}`);
  return reply;
}

export async function dmAcked(client: TestClient, to: string, text: string): Promise<Frame> {
  const ref = freshRef();
  client.send({ type: "dm", to, text, ref });
  const reply = await answerTo(client, ref);
  if (reply.type !== "ack") throw new Error(`dm ${text} refused: ${reply.code}`);
  return reply;
}

/** Sends a query (history or search) and returns its reply of the same type, or the error. */
export async function ask(client: TestClient, query: { type: "history" | "search"; [field: string]: unknown }): Promise<Frame> {
  client.send(query);
  return client.nextOf([query.type, "error"]);
}

export function textsOf(reply: Frame): string[] {
  return reply.messages.map((message: { text: string }) => message.text);
}

export function idsOf(reply: Frame): number[] {
  return reply.messages.map((message: { id: number }) => message.id);
}

/** Registers `user`, who is then offline: dms to them wait for their next login. */
export async function offlineUser(server: TestServer, user: string): Promise<void> {
  await (await newUser(server, user)).client.close();
}

export interface Login {
  client: TestClient;
  welcome: Frame;
  /** Every frame the login sent, in order, up to the pong that followed it. */
  frames: Frame[];
  histories: Frame[];
  dms: Frame[];
}

/**
 * Logs in on a new connection, with `since` if given, and collects what the login sent: the
 * frames held behind the login are answered only after it, so a ping sent with it marks its end.
 */
export async function logIn(server: TestServer, user: string, since?: number | Record<string, number>, password = `pw-${user}-secret`): Promise<Login> {
  const client = await connect(server);
  const start = client.received.length;
  client.send(since === undefined ? { type: "login", user, password } : { type: "login", user, password, since });
  await client.sync();
  const frames = client.received.slice(start).filter((frame) => frame.type !== "pong");
  const [welcome] = client.take("welcome");
  if (!welcome) throw new Error(`login ${user} failed: ${JSON.stringify(frames)}`);
  return { client, welcome, frames, histories: client.take("history"), dms: client.take("dm") };
}

/** The messages the server's chat database holds, read by a connection of the test's own. */
export function storedMessages(chatDbPath: string): Array<{ id: number; text: string }> {
  const reader = new Database(chatDbPath, { readonly: true });
  try {
    return reader.query<{ id: number; text: string }, []>("SELECT id, text FROM messages ORDER BY id").all();
  } finally {
    reader.close();
  }
}
