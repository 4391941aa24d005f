// PacedOutbox: frames queue while no connection is open, room messages and dms go out no faster
// than the advertised rate (at RATE_SAFETY of it), order is kept (frames a lost connection took
// go back in front), and `emptied` says when all is out.

import { describe, expect, test } from "bun:test";
import { PacedOutbox, RATE_SAFETY } from "../../src/client/paced-outbox.ts";
import type { ClientFrame } from "../../src/protocol/frames.ts";
import { FakeClock } from "./fake-clock.ts";

const say = (text: string): ClientFrame => ({ type: "say", text });
/** 10 messages per second with a burst of 10: paced at 9/s, a burst of 9. */
const RATE = { messageRatePerSec: 10, messageBurst: 10 };
const PACED_BURST = Math.floor(RATE.messageBurst * RATE_SAFETY);
const PACED_INTERVAL_MS = Math.ceil(1000 / (RATE.messageRatePerSec * RATE_SAFETY));

function setup() {
  const clock = new FakeClock();
  const outbox = new PacedOutbox(clock);
  const sent: ClientFrame[] = [];
  const texts = () => sent.map((frame) => ("text" in frame ? frame.text : frame.type));
  return { clock, outbox, sent, texts, send: (frame: ClientFrame) => void sent.push(frame) };
}

describe("PacedOutbox", () => {
  test("holds frames until a connection is started, then sends them in order", () => {
    const { outbox, texts, send } = setup();
    outbox.push(say("one"));
    outbox.push({ type: "who" });
    expect(texts()).toEqual([]);
    outbox.start(send, RATE);
    expect(texts()).toEqual(["one", "who"]);
  });

  test("a burst goes out at once up to the paced burst; the rest one interval apart", () => {
    const { clock, outbox, texts, send } = setup();
    outbox.start(send, RATE);
    for (let i = 0; i < PACED_BURST + 2; i++) outbox.push(say(`m${i}`));
    expect(texts()).toHaveLength(PACED_BURST);
    clock.advance(PACED_INTERVAL_MS - 1);
    expect(texts()).toHaveLength(PACED_BURST);
    clock.advance(1);
    expect(texts()).toHaveLength(PACED_BURST + 1);
    clock.advance(PACED_INTERVAL_MS);
    expect(texts()).toEqual(Array.from({ length: PACED_BURST + 2 }, (_, i) => `m${i}`));
  });

  test("frames that are not messages are not paced, but keep their place behind a waiting message", () => {
    const { clock, outbox, texts, send } = setup();
    outbox.start(send, { messageRatePerSec: 1, messageBurst: 1 });
    outbox.push({ type: "who" });
    outbox.push(say("first"));
    outbox.push(say("second"));
    outbox.push({ type: "who" });
    expect(texts()).toEqual(["who", "first"]);
    clock.advance(Math.ceil(1000 / RATE_SAFETY));
    expect(texts()).toEqual(["who", "first", "second", "who"]);
  });

  test("dms are paced like room messages", () => {
    const { outbox, sent, send } = setup();
    outbox.start(send, { messageRatePerSec: 1, messageBurst: 1 });
    outbox.push({ type: "dm", to: "bob", text: "a" });
    outbox.push({ type: "dm", to: "bob", text: "b" });
    expect(sent).toEqual([{ type: "dm", to: "bob", text: "a" }]);
  });

  test("a burst below one still lets one message through", () => {
    const { outbox, texts, send } = setup();
    outbox.start(send, { messageRatePerSec: 1, messageBurst: 1 });
    outbox.push(say("one"));
    expect(texts()).toEqual(["one"]);
  });

  test("pausing keeps what is queued for the next connection, which starts with a full burst", () => {
    const { clock, outbox, texts, send } = setup();
    outbox.start(send, RATE);
    for (let i = 0; i < PACED_BURST + 1; i++) outbox.push(say(`m${i}`));
    outbox.pause();
    expect(clock.pending).toBe(0);
    clock.advance(60_000);
    expect(texts()).toHaveLength(PACED_BURST);

    const later: ClientFrame[] = [];
    outbox.start((frame) => void later.push(frame), RATE);
    expect(later).toEqual([say(`m${PACED_BURST}`)]);
  });

  test("frames put back after a lost connection go out first on the next one, paced like the rest", () => {
    const { clock, outbox, texts, send } = setup();
    outbox.push(say("typed while away"));
    outbox.putBack([say("lost 1"), say("lost 2")]);
    expect(texts()).toEqual([]);
    outbox.start(send, { messageRatePerSec: 1, messageBurst: 2 });
    expect(texts()).toEqual(["lost 1"]);
    clock.advance(Math.ceil(1000 / RATE_SAFETY));
    expect(texts()).toEqual(["lost 1", "lost 2"]);
    clock.advance(Math.ceil(1000 / RATE_SAFETY));
    expect(texts()).toEqual(["lost 1", "lost 2", "typed while away"]);
  });

  test("emptied resolves once everything queued has been handed over", async () => {
    const { clock, outbox, texts, send } = setup();
    let emptied = false;
    outbox.start(send, { messageRatePerSec: 1, messageBurst: 1 });
    outbox.push(say("a"));
    outbox.push(say("b"));
    void outbox.emptied().then(() => (emptied = true));
    await Promise.resolve();
    expect(emptied).toBe(false);
    clock.advance(Math.ceil(1000 / RATE_SAFETY));
    await outbox.emptied();
    expect(texts()).toEqual(["a", "b"]);
    expect(emptied).toBe(true);
  });

  test("close drops what is queued, cancels the pacing timer and releases emptied", async () => {
    const { clock, outbox, texts, send } = setup();
    outbox.start(send, { messageRatePerSec: 1, messageBurst: 1 });
    outbox.push(say("a"));
    outbox.push(say("b"));
    const emptied = outbox.emptied();
    outbox.close();
    await emptied;
    expect(clock.pending).toBe(0);
    clock.advance(60_000);
    expect(texts()).toEqual(["a"]);
  });
});
