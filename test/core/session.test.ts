import { describe, expect, test } from "bun:test";
import { defaultLimits, FRAME_BURST, FRAME_RATE_PER_SEC, MAX_ENTERS_PER_TURN, MAX_PENDING_FRAMES, MAX_TEXT_CHARS } from "../../src/core/limits.ts";
import { Session, type Accounts, type SessionDeps } from "../../src/core/session.ts";
import { ChatError } from "../../src/protocol/errors.ts";
import { EnterPacer } from "../../src/server/enter-pacer.ts";
import { FakePeer } from "../helpers/fake-peer.ts";
import { until } from "../helpers/chat-support.ts";
import { testHub } from "../helpers/hub.ts";

/** Accounts whose login resolves when the test says so, to observe frames held meanwhile. */
function deferredAccounts() {
  const pending: Array<() => void> = [];
  const accounts: Accounts = {
    register: async (user) => user,
    login: (user, password) =>
      new Promise((resolve, reject) =>
        pending.push(() => (password === "right password" ? resolve({ user, token: "tok" }) : reject(new ChatError("auth_failed", "no")))),
      ),
    resume: () => Promise.reject(new ChatError("auth_failed", "no")),
    loginWithKey: () => Promise.reject(new ChatError("auth_failed", "no")),
    changePassword: async () => "tok2",
    addKey: async (_user, fingerprint) => fingerprint,
    keys: async () => [],
    removeKey: async () => "tok2",
  };
  return { accounts, release: () => pending.shift()?.() };
}

async function makeSession(accounts: Accounts, overrides: Partial<SessionDeps["limits"]> = {}, clock = { now: 0 }) {
  const peer = new FakePeer();
  const pacer = new EnterPacer(MAX_ENTERS_PER_TURN);
  const { hub, log } = await testHub({}, clock);
  const session = new Session(peer, "127.0.0.1", {
    hub,
    accounts,
    enterTurn: () => pacer.turn(),
    allowRegistration: true,
    now: () => clock.now,
    events: { authenticated() {}, registered() {}, refused() {}, crashed() {} },
    limits: { ...defaultLimits(), messageRatePerSec: 1, messageBurst: 3, maxRateViolations: 3, ...overrides },
  });
  const send = (frame: object) => session.receive(new TextEncoder().encode(JSON.stringify(frame)));
  return { peer, hub, log, session, send };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("Session", () => {
  test("frames other than register/login/resume/ping/quit need a login", async () => {
    const { peer, send } = await makeSession(deferredAccounts().accounts, { messageBurst: 10 });
    send({ type: "say", text: "hi" });
    send({ type: "ping", id: 1 });
    expect(peer.frames).toEqual([
      { type: "error", code: "not_authenticated", message: "Log in first" },
      { type: "pong", id: 1 },
    ]);
  });

  test("frames sent during a login are held and handled in order afterwards", async () => {
    const { accounts, release } = deferredAccounts();
    const { peer, hub, send } = await makeSession(accounts, { messageBurst: 10 });
    const other = new FakePeer();
    await hub.enter("bob", other);
    send({ type: "login", user: "alice", password: "right password" });
    send({ type: "say", text: "first" });
    expect(peer.frames).toEqual([]);
    release();
    await flush();
    expect(peer.frames.map((f) => f.type)).toEqual(["welcome", "history"]);
    expect(other.frames.filter((f) => f.type === "msg").map((f) => f.text)).toEqual(["first"]);
  });

  test("a log failure after welcome closes the connection with its code instead of leaving a gap in the catch-up", async () => {
    const { accounts, release } = deferredAccounts();
    const { peer, log, send } = await makeSession(accounts, { messageBurst: 10 });
    log.undelivered = () => Promise.reject(new ChatError("store_unavailable", "Redis is unreachable"));
    send({ type: "login", user: "alice", password: "right password" });
    send({ type: "ping", id: 1 });
    release();
    await until(() => peer.closedWith !== undefined, "the connection closed");
    expect(peer.closedWith).toBe("store_unavailable");
    expect(peer.frames.map((frame) => frame.type)).toEqual(["welcome", "history"]);
  });

  test("too many frames during a login close the connection", async () => {
    const { accounts } = deferredAccounts();
    const { peer, send } = await makeSession(accounts, { messageBurst: 10 });
    send({ type: "login", user: "alice", password: "right password" });
    for (let i = 0; i < MAX_PENDING_FRAMES; i++) send({ type: "ping" });
    expect(peer.closedWith).toBeUndefined();
    send({ type: "ping" });
    expect(peer.closedWith).toBe("rate_limited");
  });

  test("rate limit: a burst passes, then rate_limited, then a sustained flood is disconnected", async () => {
    const clock = { now: 0 };
    const { peer, send } = await makeSession(deferredAccounts().accounts, {}, clock);
    // The frame allowance is never below the fixed floor, however low the message rate.
    for (let i = 0; i < FRAME_BURST; i++) send({ type: "ping" });
    expect(peer.frames.map((f) => f.type)).toEqual(Array(FRAME_BURST).fill("pong"));
    send({ type: "ping" });
    expect(peer.frames.at(-1)).toMatchObject({ type: "error", code: "rate_limited" });
    send({ type: "ping" });
    expect(peer.closedWith).toBeUndefined();
    send({ type: "ping" });
    expect(peer.closedWith).toBe("rate_limited");
  });

  test("the bucket refills over time", async () => {
    const clock = { now: 0 };
    const { peer, send } = await makeSession(deferredAccounts().accounts, {}, clock);
    for (let i = 0; i <= FRAME_BURST; i++) send({ type: "ping" });
    expect(peer.frames.at(-1)?.code).toBe("rate_limited");
    clock.now = 1_000 / FRAME_RATE_PER_SEC;
    send({ type: "ping" });
    expect(peer.frames.at(-1)?.type).toBe("pong");
  });

  test("welcome advertises the limits; a second login is already_authenticated", async () => {
    const { accounts, release } = deferredAccounts();
    const { peer, send } = await makeSession(accounts, { messageBurst: 10 });
    send({ type: "login", user: "alice", password: "right password" });
    release();
    await flush();
    expect(peer.frames[0]).toMatchObject({ type: "welcome", user: "alice", online: ["alice"], token: "tok", limits: { messageRatePerSec: 1, messageBurst: 10, maxTextChars: MAX_TEXT_CHARS } });
    send({ type: "login", user: "alice", password: "right password" });
    await flush();
    expect(peer.frames.at(-1)).toMatchObject({ type: "error", code: "already_authenticated" });
  });

  test("an unexpected failure in a handler is internal_error for that frame, and the session goes on", async () => {
    const { accounts } = deferredAccounts();
    accounts.register = async () => {
      throw new TypeError("boom");
    };
    const { peer, send } = await makeSession(accounts, { messageBurst: 10 });
    send({ type: "register", user: "alice", password: "whatever1" });
    await flush();
    send({ type: "ping", id: 1 });
    expect(peer.frames).toEqual([
      { type: "error", code: "internal_error", message: "The server failed to handle that frame" },
      { type: "pong", id: 1 },
    ]);
    expect(peer.closedWith).toBeUndefined();
  });

  test("a moderation reason follows the message-text rules: control characters are invalid_text", async () => {
    const { accounts, release } = deferredAccounts();
    const { peer, send } = await makeSession(accounts, { messageBurst: 10 });
    send({ type: "login", user: "alice", password: "right password" });
    release();
    await flush();
    send({ type: "ban", room: "#lobby", user: "bob", reason: "\u001b[2Jgotcha" });
    await flush();
    expect(peer.frames.at(-1)).toMatchObject({ type: "error", code: "invalid_text" });
  });

  test("quit says bye and closes without an error frame", async () => {
    const { peer, send } = await makeSession(deferredAccounts().accounts);
    send({ type: "quit" });
    expect(peer.frames).toEqual([{ type: "bye" }]);
    expect(peer.closedWith).toBe("quit");
  });
});
