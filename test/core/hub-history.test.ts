// The hub's rules for the message log that need a clock or a held socket: the retry window of a
// ref, retention by age and by count, the offline dms a login hands over, and a login's history
// that must not repeat what the connection already got live while it waited for its socket.

import { describe, expect, test } from "bun:test";
import type { Hub } from "../../src/core/hub.ts";
import { defaultLimits } from "../../src/core/limits.ts";
import { Session } from "../../src/core/session.ts";
import { FakePeer } from "../helpers/fake-peer.ts";
import { testHub } from "../helpers/hub.ts";

/** Logs `user` in on a new fake connection. */
async function online(hub: Hub, user: string): Promise<FakePeer> {
  const peer = new FakePeer();
  await hub.enter(user, peer);
  return peer;
}

/** The texts of a room's history as the hub answers a `history` query. */
async function roomTexts(hub: Hub, user: string, room = "#lobby"): Promise<string[]> {
  return (await hub.history(user, { room, limit: 100 })).messages.map((message) => message.text);
}

/**
 * A connection that tells when a frame of some type arrives and, if held, keeps its socket full
 * until the test drains it, so a login can be stopped between its welcome and its history.
 */
class WatchedPeer extends FakePeer {
  private drains: Array<() => void> = [];
  private arrivals: Array<{ type: string; resolve(): void }> = [];
  private askedToWrite!: () => void;
  /** Resolves once the session waits for the socket to drain. */
  readonly waitingToWrite = new Promise<void>((resolve) => (this.askedToWrite = resolve));

  constructor(private held = false) {
    super();
  }

  override writable(): Promise<void> {
    if (!this.held) return Promise.resolve();
    this.askedToWrite();
    return new Promise((resolve) => this.drains.push(resolve));
  }

  override send(bytes: Uint8Array, start?: number, end?: number): void {
    super.send(bytes, start, end);
    const types = new Set(this.frames.map((received) => received.type));
    for (const arrival of this.arrivals.filter((waiting) => types.has(waiting.type))) arrival.resolve();
    this.arrivals = this.arrivals.filter((waiting) => !types.has(waiting.type));
  }

  drain(): void {
    this.held = false;
    for (const resolve of this.drains.splice(0)) resolve();
  }

  arrival(type: string): Promise<void> {
    if (this.of(type).length > 0) return Promise.resolve();
    return new Promise((resolve) => this.arrivals.push({ type, resolve }));
  }
}

/**
 * Logs `user` in through a session over the hub (every password is right), followed by a ping:
 * frames wait while the login is handled, so its pong says the login has sent everything.
 */
function logIn(hub: Hub, peer: WatchedPeer, clock: { now: number }, user: string, since?: number): void {
  const session = new Session(peer, "127.0.0.1", {
    hub,
    accounts: {
      register: async (user) => user,
      login: async (user) => ({ user, token: "token" }),
      resume: async (user) => ({ user, token: "token" }),
      changePassword: async () => "token",
      loginWithKey: async (user) => ({ user, token: "token" }),
      addKey: async (_user, fingerprint) => fingerprint,
      keys: async () => [],
      removeKey: async () => "token",
    },
    enterTurn: () => Promise.resolve(),
    allowRegistration: true,
    now: () => clock.now,
    events: { authenticated() {}, registered() {}, refused() {}, crashed() {} },
    limits: defaultLimits(),
  });
  for (const frame of [{ type: "login", user, password: "any", since }, { type: "ping" }]) session.receive(new TextEncoder().encode(JSON.stringify(frame)));
}

/** Every text a connection got, live or in history frames, in arrival order. */
function textsSeen(peer: FakePeer): string[] {
  return peer.frames.flatMap((frame) => (frame.type === "history" ? frame.messages.map((message: { text: string }) => message.text) : frame.type === "msg" ? [frame.text] : []));
}

const REF_WINDOW_MS = 60_000;

describe("a retried ref", () => {
  test("within the window it is acknowledged with the first id and not stored again; after it, it is a new message", async () => {
    const { hub, clock } = await testHub({ refWindowMs: REF_WINDOW_MS });
    const alice = await online(hub, "alice");
    await hub.say("alice", alice, undefined, "only once", "r1");
    const [first] = alice.of("ack");

    clock.now += REF_WINDOW_MS;
    await hub.say("Alice", alice, undefined, "only once", "r1");
    expect(alice.of("ack")[1]).toEqual(first!);
    expect(await roomTexts(hub, "alice")).toEqual(["only once"]);

    clock.now += 1;
    await hub.say("alice", alice, undefined, "only once", "r1");
    expect(alice.of("ack")[2]!.id).toBeGreaterThan(first!.id);
    expect(await roomTexts(hub, "alice")).toEqual(["only once", "only once"]);
  });

  test("another user's message with the same ref is a message of its own", async () => {
    const { hub } = await testHub();
    const alice = await online(hub, "alice");
    const bob = await online(hub, "bob");
    await hub.say("alice", alice, undefined, "from alice", "same");
    await hub.say("bob", bob, undefined, "from bob", "same");
    expect(bob.of("ack")[0]!.id).toBeGreaterThan(alice.of("ack")[0]!.id);
    expect(await roomTexts(hub, "bob")).toEqual(["from alice", "from bob"]);
  });
});

describe("retention on the hub's clock", () => {
  const RETENTION_MS = 10_000;

  test("trimHistory removes the messages older than the retention and keeps the rest", async () => {
    const { hub, clock } = await testHub({ retentionMs: RETENTION_MS });
    const alice = await online(hub, "alice");
    await hub.say("alice", alice, undefined, "old", undefined);
    clock.now += 1;
    await hub.say("alice", alice, undefined, "newer", undefined);

    clock.now += RETENTION_MS - 1;
    expect(await hub.trimHistory()).toBe(0);
    clock.now += 1;
    expect(await hub.trimHistory()).toBe(1);
    expect(await roomTexts(hub, "alice")).toEqual(["newer"]);
  });

  test("trimHistory keeps the newest messages of each room up to the maximum; a dm conversation is not a room", async () => {
    const { hub } = await testHub({ maxMessagesPerRoom: 2 }, undefined, undefined, ["bob"]);
    const alice = await online(hub, "alice");
    for (const text of ["one", "two", "three"]) {
      await hub.say("alice", alice, undefined, text, undefined);
      await hub.dm("alice", alice, "bob", text, undefined);
    }
    expect(await hub.trimHistory()).toBe(1);
    expect(await roomTexts(hub, "alice")).toEqual(["two", "three"]);
    const dms = await hub.history("alice", { with: "bob" });
    expect(dms.messages.map((message) => message.text)).toEqual(["one", "two", "three"]);
  });
});

describe("offline dms at login", () => {
  const CATCH_UP = 3;

  test("a login gets every dm stored while the user was offline, even more than a catch-up page, and the next login none", async () => {
    const clock = { now: 1_000 };
    const { hub } = await testHub({ catchUpPerRoom: CATCH_UP }, clock, undefined, ["bob"]);
    const alice = await online(hub, "alice");
    const texts = Array.from({ length: CATCH_UP * 2 + 1 }, (_, i) => `dm ${i}`);
    for (const text of texts) await hub.dm("alice", alice, "bob", text, undefined);

    const login = new WatchedPeer();
    logIn(hub, login, clock, "bob");
    await login.arrival("pong");
    expect(login.of("dm").map((dm) => dm.text)).toEqual(texts);

    const again = new WatchedPeer();
    logIn(hub, again, clock, "bob");
    await again.arrival("pong");
    expect(again.of("dm")).toEqual([]);
  });
});

describe("a login's history and the live messages meanwhile", () => {
  test("a message relayed live while the login waited for its socket is not in the history that follows", async () => {
    const clock = { now: 1_000 };
    const { hub } = await testHub({}, clock);
    hub.leave("alice", await online(hub, "alice"));
    const bob = await online(hub, "bob");
    await hub.say("bob", bob, undefined, "before", undefined);

    const alice = new WatchedPeer(true);
    logIn(hub, alice, clock, "alice", 0);
    await alice.waitingToWrite;
    await hub.say("bob", bob, undefined, "while waiting", undefined);
    alice.drain();
    await alice.arrival("pong");

    expect(textsSeen(alice).sort()).toEqual(["before", "while waiting"]);
  });
});
