// PendingAcks: each message gets a ref of its own; an ack turns it into the stored message and an
// error with its ref into a refusal, handed out in the order the messages were sent; what a lost
// connection took unanswered is handed back, in order and with the same refs, to be sent again;
// too many unanswered messages are refused.

import { describe, expect, test } from "bun:test";
import { MAX_UNANSWERED_MESSAGES, PendingAcks, type Answer } from "../../src/client/pending-acks.ts";
import { ChatError } from "../../src/protocol/errors.ts";
import { MAX_REF_CHARS } from "../../src/protocol/frames.ts";

const say = (text: string, room?: string) => (room === undefined ? { type: "say" as const, text } : { type: "say" as const, text, room });
const ack = (ref: string, id: number, ts = 1_000) => ({ type: "ack" as const, ref, id, ts });
const refusal = (ref: string | undefined, code = "muted") => ({ type: "error" as const, code, message: "Refused", ...(ref === undefined ? {} : { ref }) });
/** "sent TEXT #ID" or "refused TEXT CODE", to read a list of answers at a glance. */
const describeAnswers = (answers: Answer[] | undefined) =>
  answers?.map((answer) => (answer.kind === "sent" ? `sent ${answer.sent.text} #${answer.message.id}` : `refused ${answer.sent.text} ${answer.error.code}`));

describe("PendingAcks", () => {
  test("refs are fresh for every message, fit the protocol's limit, and differ between sessions", () => {
    const one = new PendingAcks();
    const refs = Array.from({ length: 50 }, (_, i) => one.track(say(`m${i}`)).ref);
    expect(new Set(refs).size).toBe(50);
    for (const ref of refs) expect(ref.length).toBeLessThanOrEqual(MAX_REF_CHARS);
    expect(new PendingAcks().track(say("m0")).ref).not.toBe(refs[0]);
  });

  test("an ack gives the message as stored: the server's id and time, from us, in its room", () => {
    const pending = new PendingAcks();
    const rust = pending.track(say("borrow", "#rust"));
    const lobby = pending.track(say("hello"));
    const direct = pending.track({ type: "dm", to: "bob", text: "psst" });
    expect(pending.answer(ack(rust.ref, 8), "alice")).toEqual([
      { kind: "sent", ack: ack(rust.ref, 8), sent: rust, message: { type: "msg", id: 8, room: "#rust", from: "alice", text: "borrow", ts: 1_000 } },
    ]);
    // Without a room the server's default room is meant.
    expect(pending.answer(ack(lobby.ref, 9), "alice")?.[0]).toMatchObject({ message: { room: "#lobby", id: 9 } });
    expect(pending.answer(ack(direct.ref, 10), "alice")?.[0]).toMatchObject({
      message: { type: "dm", id: 10, from: "alice", to: "bob", text: "psst", ts: 1_000 },
    });
    expect(pending.size).toBe(0);
  });

  test("answers come out in the order the messages were sent, a refusal in its message's place", () => {
    const pending = new PendingAcks();
    const [first, second, third] = [pending.track(say("first")), pending.track(say("second")), pending.track(say("third"))];
    // The server refuses at once but acknowledges after its commit: the refusal of the second comes first.
    expect(pending.answer(refusal(second.ref), "alice")).toEqual([]);
    expect(pending.answer(ack(third.ref, 12), "alice")).toEqual([]);
    expect(describeAnswers(pending.answer(ack(first.ref, 11), "alice"))).toEqual(["sent first #11", "refused second muted", "sent third #12"]);
    expect(pending.size).toBe(0);
  });

  test("an ack or error naming no ref of ours is not an answer; each ref is answered once", () => {
    const pending = new PendingAcks();
    const sent = pending.track(say("once"));
    expect(pending.answer(ack("someone-else", 1), "alice")).toBeUndefined();
    expect(pending.answer(refusal(undefined), "alice")).toBeUndefined();
    expect(describeAnswers(pending.answer(ack(sent.ref, 2), "alice"))).toEqual(["sent once #2"]);
    expect(pending.answer(ack(sent.ref, 2), "alice")).toBeUndefined();
  });

  test("a lost connection hands back what it took and was not answered, oldest first, with the same refs, once", () => {
    const pending = new PendingAcks();
    const a = pending.track(say("a"));
    const b = pending.track(say("b"));
    const c = pending.track(say("c"));
    for (const frame of [a, b, c]) pending.handedOver(frame);
    // Never given to a connection: still in the outbox, so not handed back.
    pending.track(say("queued"));
    pending.handedOver({ type: "who" });
    // Answered, though its answer waits for a's: not sent again.
    pending.answer(ack(b.ref, 5), "alice");
    expect(pending.takeLost()).toEqual([a, c]);
    expect(pending.takeLost()).toEqual([]);
    pending.handedOver(a);
    expect(pending.takeLost()).toEqual([a]);
  });

  test("answered resolves once every message has its answer", async () => {
    const pending = new PendingAcks();
    await pending.answered();
    const first = pending.track(say("one"));
    const second = pending.track(say("two"));
    let done = false;
    const answered = pending.answered().then(() => (done = true));
    pending.answer(ack(first.ref, 1), "alice");
    await Promise.resolve();
    expect(done).toBe(false);
    pending.answer(refusal(second.ref), "alice");
    await answered;
    expect(done).toBe(true);
  });

  test("clear gives up on every message and releases whoever waits", async () => {
    const pending = new PendingAcks();
    pending.track(say("lost"));
    const answered = pending.answered();
    pending.clear();
    await answered;
    expect(pending.size).toBe(0);
  });

  test("past the limit of unanswered messages, another is refused with a typed error", () => {
    const pending = new PendingAcks();
    for (let i = 0; i < MAX_UNANSWERED_MESSAGES; i++) pending.track(say(`m${i}`));
    expect(() => pending.track(say("one too many"))).toThrow(ChatError);
    expect(pending.size).toBe(MAX_UNANSWERED_MESSAGES);
  });
});
