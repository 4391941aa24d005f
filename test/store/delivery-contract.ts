// The delivery contract: what presence (Directory) and delivery (Fanout) must do for one node,
// whether alone (LocalDirectory, LocalFanout) or in a cluster (ClusterDirectory, ClusterFanout,
// through Redis pub/sub), as one `describe` that each implementation's test file runs. Delivery in
// a cluster is asynchronous, so the fixture says how to wait for something to arrive; what must
// not arrive is checked once something sent after it has.

import { describe, expect, test } from "bun:test";
import type { Directory } from "../../src/core/directory.ts";
import type { Fanout } from "../../src/core/fanout.ts";
import { messageFrame, type MessageLog } from "../../src/core/message-log.ts";
import type { ServerFrame } from "../../src/protocol/frames.ts";
import { FakePeer } from "../helpers/fake-peer.ts";

export interface DeliveryFixture extends AsyncDisposable {
  directory: Directory;
  fanout: Fanout;
  /** The log whose appends the fanout relays. */
  log: MessageLog;
  /** Resolves once the connections attached so far receive what is sent to them. */
  ready(): Promise<void>;
  /** Resolves once `condition` holds, or fails after a timeout (at once for a synchronous fanout). */
  until(condition: () => boolean, what: string): Promise<void>;
}

const notice = (text: string): ServerFrame => ({ type: "topic", room: "#a", topic: text, by: "op", ts: 1 });

function topics(peer: FakePeer): string[] {
  return peer.of("topic").map((frame) => frame.topic as string);
}

/** A user's connection, online and in the rooms. */
function connected(fixture: DeliveryFixture, user: string, rooms: string[] = []): FakePeer {
  const peer = new FakePeer();
  fixture.directory.add(user, peer);
  for (const room of rooms) fixture.fanout.attach(room, peer);
  return peer;
}

export function describeDeliveryContract(name: string, open: () => Promise<DeliveryFixture>): void {
  describe(`${name}: the delivery contract`, () => {
    test("a user's first connection and last one are told apart; names are found in any case, as registered", async () => {
      await using fixture = await open();
      const { directory } = fixture;
      const [one, two] = [new FakePeer(), new FakePeer()];
      expect(directory.add("Alice", one)).toBe(true);
      expect(directory.add("Alice", two)).toBe(false);
      expect(directory.add("bob", new FakePeer())).toBe(true);
      expect(directory.find("ALICE")?.name).toBe("Alice");
      expect([...directory.find("alice")!.peers]).toEqual([one, two]);
      expect(Array.from(directory.users(), (user) => user.name)).toEqual(["Alice", "bob"]);
      expect(directory.size).toBe(2);
      expect(directory.remove("alice", one)).toBe(false);
      expect(directory.remove("alice", two)).toBe(true);
      expect(directory.find("alice")).toBeUndefined();
      expect(directory.size).toBe(1);
    });

    test("a room notice reaches the room's connections but the one left out, and only them", async () => {
      await using fixture = await open();
      const [alice, bob, outsider] = [connected(fixture, "alice", ["#a"]), connected(fixture, "bob", ["#a"]), connected(fixture, "carol", ["#b"])];
      await fixture.ready();
      expect(fixture.fanout.audience("#a")).toBe(2);
      fixture.fanout.toRoom("#a", notice("one"), alice);
      fixture.fanout.toRoom("#a", notice("two"));
      await fixture.until(() => topics(alice).length === 1 && topics(bob).length === 2, "both notices");
      expect(topics(alice)).toEqual(["two"]);
      expect(topics(bob)).toEqual(["one", "two"]);
      fixture.fanout.detach("#a", bob);
      expect(fixture.fanout.audience("#a")).toBe(1);
      fixture.fanout.toRoom("#a", notice("three"));
      fixture.fanout.toUser("bob", notice("for bob"));
      await fixture.until(() => topics(alice).length === 2 && topics(bob).length === 3, "the third notice");
      expect(topics(bob)).toEqual(["one", "two", "for bob"]);
      expect(outsider.frames).toEqual([]);
    });

    test("a notice for several rooms reaches each connection once, and none of the user left out", async () => {
      await using fixture = await open();
      const both = connected(fixture, "alice", ["#a", "#b"]);
      const one = connected(fixture, "bob", ["#b"]);
      const subject = connected(fixture, "carol", ["#a", "#b"]);
      await fixture.ready();
      fixture.fanout.toRooms(["#a", "#b"], notice("online"), "carol");
      fixture.fanout.toUser("carol", notice("after"));
      await fixture.until(() => topics(both).length === 1 && topics(one).length === 1 && topics(subject).length === 1, "the notices");
      expect(topics(both)).toEqual(["online"]);
      expect(topics(subject)).toEqual(["after"]);
    });

    test("a stored room message is relayed to the room but its sending connection, and counts as delivered", async () => {
      await using fixture = await open();
      const sender = connected(fixture, "alice", ["#a"]);
      const otherOfSender = connected(fixture, "alice", ["#a"]);
      const member = connected(fixture, "bob", ["#a"]);
      await fixture.ready();
      const before = await fixture.fanout.deliveredUpTo({ room: "#a" });
      const message = await fixture.log.append({ room: { key: "#a", name: "#a" }, from: "alice", text: "hello", ts: 5, connection: sender.id });
      expect(message.id).toBeGreaterThan(before);
      fixture.fanout.relay(message, messageFrame(message), sender);
      await fixture.until(() => member.of("msg").length === 1 && otherOfSender.of("msg").length === 1, "the message");
      expect(member.of("msg")).toEqual([{ type: "msg", id: message.id, room: "#a", from: "alice", text: "hello", ts: 5 }]);
      fixture.fanout.toUser("alice", notice("after"));
      await fixture.until(() => topics(sender).length === 1, "a notice after it");
      expect(sender.of("msg")).toEqual([]);
      expect(await fixture.fanout.deliveredUpTo({ room: "#a" })).toBe(message.id);
    });

    test("a stored dm reaches every connection of both users but the sending one", async () => {
      await using fixture = await open();
      const sender = connected(fixture, "alice");
      const otherOfSender = connected(fixture, "alice");
      const recipient = connected(fixture, "Bob");
      const bystander = connected(fixture, "carol");
      await fixture.ready();
      const message = await fixture.log.append({ from: "alice", to: "Bob", text: "psst", ts: 6, connection: sender.id });
      fixture.fanout.relay(message, messageFrame(message), sender);
      await fixture.until(() => recipient.of("dm").length === 1 && otherOfSender.of("dm").length === 1, "the dm");
      expect(recipient.of("dm")[0]).toMatchObject({ id: message.id, from: "alice", to: "Bob", text: "psst" });
      fixture.fanout.toUser("alice", notice("after"));
      fixture.fanout.toUser("carol", notice("after"));
      await fixture.until(() => topics(sender).length === 1 && topics(bystander).length === 1, "notices after it");
      expect(sender.of("dm")).toEqual([]);
      expect(bystander.of("dm")).toEqual([]);
    });

    test("disconnect closes every connection of the user with the code, and no one else's", async () => {
      await using fixture = await open();
      const [one, two] = [connected(fixture, "mallory", ["#a"]), connected(fixture, "mallory")];
      const bystander = connected(fixture, "bob", ["#a"]);
      await fixture.ready();
      fixture.fanout.disconnect("Mallory", "banned", "You are banned");
      await fixture.until(() => one.closedWith !== undefined && two.closedWith !== undefined, "both closed");
      expect([one.closedWith, two.closedWith]).toEqual(["banned", "banned"]);
      expect(bystander.closedWith).toBeUndefined();
    });
  });
}
