// CatchUp: every room message and dm is shown once, in order, across logins. The marks sent as
// `since` say what has been shown; a catch-up that says `more` is paged with `history after`
// until complete, live messages waiting meanwhile; our own acknowledged messages count as shown;
// older pages are asked for before the oldest shown.

import { describe, expect, test } from "bun:test";
import { CatchUp, MAX_HELD_MESSAGES, type Shown } from "../../src/client/catch-up.ts";
import { MAX_HISTORY_PAGE, MAX_SINCE_ENTRIES, type ClientFrame, type DirectMessage, type HistoryFrame, type RoomMessage } from "../../src/protocol/frames.ts";

const msg = (id: number, room = "#lobby", from = "bob"): RoomMessage => ({ type: "msg", id, room, from, text: `m${id}`, ts: id });
const dm = (id: number, from = "bob", to = "alice"): DirectMessage => ({ type: "dm", id, from, to, text: `d${id}`, ts: id });
const page = (room: string, ids: number[], more = false): HistoryFrame => ({ type: "history", room, messages: ids.map((id) => msg(id, room)), more });
const after = (room: string, id: number): ClientFrame => ({ type: "history", room, after: id, limit: MAX_HISTORY_PAGE });

function setup() {
  const shown: Shown[] = [];
  const queries: ClientFrame[] = [];
  const catchUp = new CatchUp({ show: (item) => void shown.push(item), query: (frame) => void queries.push(frame) });
  /** Ids shown so far, in the order shown, from history frames and single messages alike. */
  const ids = () => shown.flatMap((item) => (item.kind === "history" ? item.frame.messages.map((m) => m.id) : [item.message.id]));
  const causes = () => shown.flatMap((item) => (item.kind === "history" ? [item.cause] : []));
  return { catchUp, shown, queries, ids, causes };
}

/** A session that logged in to `rooms`, showed their recent history and finished its dms. */
function afterFirstLogin(histories: Record<string, number[]>) {
  const session = setup();
  session.catchUp.loggedIn(Object.keys(histories));
  for (const [room, ids] of Object.entries(histories)) session.catchUp.history(page(room, ids));
  session.catchUp.dmsCaughtUp();
  return session;
}

describe("the first login", () => {
  test("nothing shown yet: no since; the rooms' recent history is shown and sets each room's mark", () => {
    const { catchUp, ids, causes } = setup();
    expect(catchUp.since()).toBeUndefined();
    catchUp.loggedIn(["#lobby", "#rust", "#empty"]);
    catchUp.history(page("#lobby", [3, 7]));
    catchUp.history(page("#rust", [5]));
    catchUp.history(page("#empty", []));
    expect(ids()).toEqual([3, 7, 5]);
    expect(causes()).toEqual(["recent", "recent"]);
    // An empty room has missed nothing before now: everything after 0 will be new.
    expect(catchUp.since()).toEqual({ "#lobby": 7, "#rust": 5, "#empty": 0 });
  });

  test("a recent history that says more (older messages exist) is not paged", () => {
    const { catchUp, queries } = setup();
    catchUp.loggedIn(["#lobby"]);
    catchUp.history(page("#lobby", [8, 9], true));
    expect(queries).toEqual([]);
  });

  test("live messages are shown as they come and move their room's mark", () => {
    const { catchUp, ids } = afterFirstLogin({ "#lobby": [1], "#rust": [] });
    catchUp.message(msg(4, "#rust"));
    catchUp.message(msg(5, "#LOBBY"));
    expect(ids()).toEqual([1, 4, 5]);
    expect(catchUp.since()).toMatchObject({ "#lobby": 5, "#rust": 4 });
  });

  test("a live message that comes before its room's history waits for it, and is shown once", () => {
    const { catchUp, ids } = setup();
    catchUp.loggedIn(["#lobby", "#rust"]);
    catchUp.history(page("#lobby", [1]));
    // #rust's history was read after 6 was stored, but 6 was relayed before the history was sent.
    catchUp.message(msg(6, "#rust"));
    catchUp.message(msg(8, "#rust"));
    expect(ids()).toEqual([1]);
    catchUp.history(page("#rust", [2, 6]));
    expect(ids()).toEqual([1, 2, 6, 8]);
  });

  test("a message of a room this session does not follow is shown, and leaves no mark", () => {
    const { catchUp, ids } = afterFirstLogin({ "#lobby": [1] });
    catchUp.message(msg(2, "#elsewhere"));
    expect(ids()).toEqual([1, 2]);
    expect(catchUp.since()).toEqual({ "@dm": 1, "#lobby": 1 });
  });
});

describe("catching up after a reconnect", () => {
  test("the login sends the marks; what followed them is shown as missed", () => {
    const { catchUp, ids, causes } = afterFirstLogin({ "#lobby": [1, 2] });
    expect(catchUp.since()).toEqual({ "@dm": 2, "#lobby": 2 });
    catchUp.loggedIn(["#lobby"]);
    catchUp.history(page("#lobby", [3, 4]));
    expect(ids()).toEqual([1, 2, 3, 4]);
    expect(causes()).toEqual(["recent", "missed"]);
    expect(catchUp.since()).toMatchObject({ "#lobby": 4 });
  });

  test("an answer that says more is paged with history after until complete; live messages wait and none is shown twice", () => {
    const { catchUp, queries, ids } = afterFirstLogin({ "#lobby": [1] });
    catchUp.loggedIn(["#lobby"]);
    catchUp.message(msg(50)); // Relayed before the catch-up was sent: the pages will bring it.
    catchUp.history(page("#lobby", [2, 3], true));
    expect(queries).toEqual([after("#lobby", 3)]);
    expect(ids()).toEqual([1, 2, 3]);
    // Until the room is complete, the mark is where the pages are, not where live messages are.
    catchUp.message(msg(60));
    expect(catchUp.since()).toMatchObject({ "#lobby": 3 });
    catchUp.history(page("#lobby", [4, 50], true));
    expect(queries).toEqual([after("#lobby", 3), after("#lobby", 50)]);
    catchUp.message(msg(61)); // After the last query went out: it may or may not be in its answer.
    catchUp.history(page("#lobby", [60]));
    expect(ids()).toEqual([1, 2, 3, 4, 50, 60, 61]);
    catchUp.message(msg(62));
    expect(ids()).toEqual([1, 2, 3, 4, 50, 60, 61, 62]);
    expect(catchUp.since()).toMatchObject({ "#lobby": 62 });
    expect(queries).toHaveLength(2);
  });

  test("an answer that says more but brings nothing is not asked for again", () => {
    const { catchUp, queries, ids } = afterFirstLogin({ "#lobby": [1] });
    catchUp.loggedIn(["#lobby"]);
    catchUp.history(page("#lobby", [], true));
    expect(queries).toEqual([]);
    catchUp.message(msg(9));
    expect(ids()).toEqual([1, 9]);
  });

  test("more live messages than can be held are let go, and one more page brings them", () => {
    const { catchUp, queries, ids } = afterFirstLogin({ "#lobby": [1] });
    catchUp.loggedIn(["#lobby"]);
    for (let id = 100; id < 100 + MAX_HELD_MESSAGES + 1; id++) catchUp.message(msg(id));
    catchUp.history(page("#lobby", [2]));
    expect(queries).toEqual([after("#lobby", 2)]);
    expect(ids()).toEqual([1, 2]);
  });

  test("a lost connection while paging: the next login goes on from the last page", () => {
    const { catchUp, ids } = afterFirstLogin({ "#lobby": [1] });
    catchUp.loggedIn(["#lobby"]);
    catchUp.history(page("#lobby", [2, 3], true));
    catchUp.message(msg(9));
    catchUp.loggedIn(["#lobby"]);
    expect(catchUp.since()).toMatchObject({ "#lobby": 3 });
    catchUp.history(page("#lobby", [4, 9]));
    expect(ids()).toEqual([1, 2, 3, 4, 9]);
  });

  test("rooms left while away are forgotten; rooms joined while away get their recent history", () => {
    const { catchUp, ids, causes } = afterFirstLogin({ "#lobby": [1], "#old": [2] });
    catchUp.loggedIn(["#lobby", "#new"]);
    expect(catchUp.since()).toEqual({ "@dm": 2, "#lobby": 1 });
    catchUp.history(page("#lobby", []));
    catchUp.history(page("#new", [3], true));
    expect(ids()).toEqual([1, 2, 3]);
    expect(causes()).toEqual(["recent", "recent", "recent"]);
  });

  test("the marks sent are capped at what a login may carry", () => {
    const rooms = Array.from({ length: MAX_SINCE_ENTRIES + 5 }, (_, i) => `#r${i}`);
    const { catchUp } = afterFirstLogin(Object.fromEntries(rooms.map((room, i) => [room, [i + 1]])));
    expect(Object.keys(catchUp.since()!)).toHaveLength(MAX_SINCE_ENTRIES);
  });
});

describe("dms", () => {
  test("those of a login wait until it has delivered them all, then show in id order, each once", () => {
    const { catchUp, ids } = afterFirstLogin({ "#lobby": [10] });
    catchUp.message(dm(11));
    catchUp.loggedIn(["#lobby"]);
    catchUp.history(page("#lobby", []));
    catchUp.message(dm(15)); // Live, before the login's missed dms were sent.
    catchUp.message(dm(12));
    catchUp.message(dm(15));
    expect(ids()).toEqual([10, 11]);
    catchUp.dmsCaughtUp();
    expect(ids()).toEqual([10, 11, 12, 15]);
    catchUp.message(dm(16));
    expect(ids()).toEqual([10, 11, 12, 15, 16]);
    expect(catchUp.since()).toEqual({ "@dm": 16, "#lobby": 10 });
  });

  test("at the first login, dms stored while offline are shown however old; the mark starts at the newest id seen", () => {
    const { catchUp, ids } = setup();
    catchUp.loggedIn(["#lobby"]);
    catchUp.history(page("#lobby", [40, 41]));
    catchUp.message(dm(7));
    catchUp.dmsCaughtUp();
    expect(ids()).toEqual([40, 41, 7]);
    expect(catchUp.since()).toEqual({ "@dm": 41, "#lobby": 41 });
  });

  test("with nothing seen anywhere, no dm mark is sent (the server's own record of delivery decides)", () => {
    const { catchUp } = afterFirstLogin({ "#lobby": [] });
    expect(catchUp.since()).toEqual({ "#lobby": 0 });
  });
});

describe("our own messages", () => {
  test("acknowledged in a complete room: shown, and the mark moves past it", () => {
    const { catchUp } = afterFirstLogin({ "#lobby": [1] });
    expect(catchUp.acknowledged(msg(5, "#lobby", "alice"))).toBe(true);
    expect(catchUp.since()).toMatchObject({ "#lobby": 5 });
    expect(catchUp.acknowledged(dm(6, "alice", "bob"))).toBe(true);
    expect(catchUp.since()).toMatchObject({ "@dm": 6 });
  });

  test("sent again after a reconnect and already shown by the catch-up: not shown a second time", () => {
    const { catchUp, ids } = afterFirstLogin({ "#lobby": [1] });
    catchUp.loggedIn(["#lobby"]);
    catchUp.history({ type: "history", room: "#lobby", messages: [msg(2), msg(3, "#lobby", "alice")], more: false });
    expect(catchUp.acknowledged(msg(3, "#lobby", "alice"))).toBe(false);
    expect(ids()).toEqual([1, 2, 3]);
  });

  test("acknowledged while catching up: shown at once, left out of the pages, and the mark covers it once complete", () => {
    const { catchUp, ids } = afterFirstLogin({ "#lobby": [1] });
    catchUp.loggedIn(["#lobby"]);
    catchUp.history(page("#lobby", [2], true));
    expect(catchUp.acknowledged(msg(8, "#lobby", "alice"))).toBe(true);
    expect(catchUp.since()).toMatchObject({ "#lobby": 2 });
    catchUp.history({ type: "history", room: "#lobby", messages: [msg(3), msg(8, "#lobby", "alice")], more: false });
    expect(ids()).toEqual([1, 2, 3]);
    expect(catchUp.since()).toMatchObject({ "#lobby": 8 });
  });

  test("acknowledged while catching up, then the connection is lost: the next catch-up still leaves it out", () => {
    const { catchUp, ids } = afterFirstLogin({ "#lobby": [1] });
    catchUp.loggedIn(["#lobby"]);
    catchUp.history(page("#lobby", [2], true));
    catchUp.acknowledged(msg(8, "#lobby", "alice"));
    catchUp.loggedIn(["#lobby"]);
    catchUp.history({ type: "history", room: "#lobby", messages: [msg(3), msg(8, "#lobby", "alice"), msg(9)], more: false });
    expect(ids()).toEqual([1, 2, 3, 9]);
  });
});

describe("joining and parting", () => {
  test("a room joined during the session: live messages wait for its recent history", () => {
    const { catchUp, ids, causes } = afterFirstLogin({ "#lobby": [1] });
    catchUp.message(msg(5, "#rust")); // Before `joined`: not followed yet, shown as it comes.
    catchUp.joined("#rust");
    catchUp.message(msg(7, "#rust"));
    catchUp.history(page("#rust", [4, 6]));
    expect(ids()).toEqual([1, 5, 4, 6, 7]);
    expect(causes()).toEqual(["recent", "recent"]);
    expect(catchUp.since()).toMatchObject({ "#rust": 7 });
  });

  test("joining a room already followed (as /topic does) repeats its history, which is not shown again", () => {
    const { catchUp, ids } = afterFirstLogin({ "#lobby": [1, 2] });
    catchUp.joined("#LOBBY");
    catchUp.history(page("#lobby", [1, 2]));
    catchUp.message(msg(3));
    expect(ids()).toEqual([1, 2, 3]);
  });

  test("a room parted is forgotten: no mark for it", () => {
    const { catchUp } = afterFirstLogin({ "#lobby": [1], "#rust": [2] });
    catchUp.parted("#Rust");
    expect(catchUp.since()).toEqual({ "@dm": 2, "#lobby": 1 });
  });
});

describe("older pages", () => {
  test("ask for the messages before the oldest shown, and go on from the oldest of each page", () => {
    const { catchUp, queries, shown } = afterFirstLogin({ "#lobby": [30, 31] });
    expect(catchUp.older("#LOBBY")).toBe(true);
    expect(queries).toEqual([{ type: "history", room: "#lobby", before: 30 }]);
    catchUp.history(page("#lobby", [10, 20], true));
    expect(shown.at(-1)).toEqual({ kind: "history", frame: page("#lobby", [10, 20], true), cause: "older" });
    expect(catchUp.older("#lobby")).toBe(true);
    expect(queries.at(-1)).toEqual({ type: "history", room: "#lobby", before: 10 });
    // An older page does not move the mark.
    expect(catchUp.since()).toMatchObject({ "#lobby": 31 });
  });

  test("an empty older page is shown too, so the user learns there is nothing older", () => {
    const { catchUp, shown } = afterFirstLogin({ "#lobby": [30] });
    catchUp.older("#lobby");
    catchUp.history(page("#lobby", []));
    expect(shown.at(-1)).toEqual({ kind: "history", frame: page("#lobby", []), cause: "older" });
  });

  test("in a room with nothing shown, the newest page is asked for", () => {
    const { catchUp, queries } = afterFirstLogin({ "#lobby": [] });
    catchUp.older("#lobby");
    expect(queries).toEqual([{ type: "history", room: "#lobby" }]);
  });

  test("are declined while one is on its way, while the room catches up, and for rooms not followed", () => {
    const { catchUp, queries } = afterFirstLogin({ "#lobby": [30] });
    expect(catchUp.older("#lobby")).toBe(true);
    expect(catchUp.older("#lobby")).toBe(false);
    expect(catchUp.older("#elsewhere")).toBe(false);
    catchUp.loggedIn(["#lobby"]);
    expect(catchUp.older("#lobby")).toBe(false);
    expect(queries).toHaveLength(1);
  });
});
