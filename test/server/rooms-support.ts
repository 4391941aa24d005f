// Steps shared by the end-to-end room and moderation tests: join and part a room waiting for the
// server's answer, log several users in at once, and wait for a timed ban to run out.

import { expect } from "bun:test";
import type { Frame, TestClient } from "../helpers/client.ts";
import type { TestServer } from "../helpers/server.ts";
import { newUser } from "./support.ts";

/** How long a test waits for a timed ban to run out, with room for a slow machine. */
const BAN_EXPIRY_DEADLINE_MS = 5_000;
/** How often a banned user tries again while waiting for the ban to run out. */
const BAN_RETRY_INTERVAL_MS = 50;

/** Joins `room` and returns the `joined` reply once the room's history frame has followed it. */
export async function joinRoom(client: TestClient, room: string): Promise<Frame> {
  client.send({ type: "join", room });
  const reply = await client.nextOf(["joined", "error"]);
  if (reply.type === "error") throw new Error(`join ${room} failed: ${reply.code}`);
  const history = await client.next("history");
  expect(history.room).toBe(reply.room);
  return reply;
}

export async function partRoom(client: TestClient, room: string): Promise<void> {
  client.send({ type: "part", room });
  const reply = await client.nextOf(["parted", "error"]);
  if (reply.type === "error") throw new Error(`part ${room} failed: ${reply.code}`);
}

/**
 * Registers and logs in each user, in order, so each one's arrival is announced before the next.
 * The connections close when the server stops.
 */
export async function newUsers<Users extends string[]>(server: TestServer, ...users: Users): Promise<{ [I in keyof Users]: TestClient }> {
  const clients: TestClient[] = [];
  for (const user of users) clients.push((await newUser(server, user)).client);
  return clients as { [I in keyof Users]: TestClient };
}

/** Sends a moderation (or any operator) frame and waits for the room's `moderation` notice. */
export async function moderate(client: TestClient, frame: Record<string, unknown>): Promise<Frame> {
  client.send(frame);
  const reply = await client.nextOf(["moderation", "error"]);
  if (reply.type === "error") throw new Error(`${String(frame.type)} failed: ${reply.code}`);
  return reply;
}

/**
 * Repeats `attempt` (which returns the server's reply) while it is refused with `code`, until it
 * succeeds or a deadline passes; returns how many times it was refused.
 */
export async function refusedUntilBanEnds(code: string, attempt: () => Promise<Frame>): Promise<number> {
  const deadline = Date.now() + BAN_EXPIRY_DEADLINE_MS;
  for (let refusals = 0; ; refusals++) {
    const reply = await attempt();
    if (reply.type !== "error") return refusals;
    expect(reply.code).toBe(code);
    if (Date.now() > deadline) throw new Error(`still refused with ${code} after ${BAN_EXPIRY_DEADLINE_MS} ms`);
    await Bun.sleep(BAN_RETRY_INTERVAL_MS);
  }
}
