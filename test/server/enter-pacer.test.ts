// The enter pacer: a burst of logins enters a few per event-loop turn, in arrival order, and
// what else the loop has to do (reads, writes, timers) runs between those turns.

import { expect, test } from "bun:test";
import { EnterPacer } from "../../src/server/enter-pacer.ts";

const PER_TURN = 3;

test(`a burst of logins enters ${PER_TURN} per turn, in order, with the event loop turning in between`, async () => {
  const pacer = new EnterPacer(PER_TURN);
  // Counts event-loop turns, as the socket reads and writes between them would see them.
  let turns = 0;
  let counting = true;
  const count = () => {
    turns += 1;
    if (counting) setImmediate(count);
  };
  setImmediate(count);
  const enteredAt: number[] = [];
  const entered = Array.from({ length: 8 }, (_, i) => pacer.turn().then(() => (enteredAt[i] = turns)));
  await Promise.all(entered);
  counting = false;
  const groups = Object.values(Object.groupBy(enteredAt.map((turn, login) => ({ turn, login })), (entry) => entry.turn));
  expect(groups.map((group) => group!.map((entry) => entry.login))).toEqual([[0, 1, 2], [3, 4, 5], [6, 7]]);
  expect(new Set(enteredAt).size).toBe(3);
});

test("after a quiet turn the allowance is whole again", async () => {
  const pacer = new EnterPacer(PER_TURN);
  await Promise.all(Array.from({ length: PER_TURN }, () => pacer.turn()));
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  let immediate = 0;
  const entries = Array.from({ length: PER_TURN }, () => pacer.turn().then(() => (immediate += 1)));
  await Promise.resolve();
  expect(immediate).toBe(PER_TURN);
  await Promise.all(entries);
});
