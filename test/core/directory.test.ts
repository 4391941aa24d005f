// core/directory.ts: the local directory's list of online names, which every welcome carries, is
// kept between changes and must stay what walking the directory would give.

import { describe, expect, test } from "bun:test";
import { LocalDirectory } from "../../src/core/directory.ts";
import { FakePeer } from "../helpers/fake-peer.ts";

function walked(directory: LocalDirectory): string[] {
  return Array.from(directory.users(), (entry) => entry.name);
}

describe("LocalDirectory.onlineNames", () => {
  test("the names in the order users came online, each once, through adds, second connections, removals and returns", () => {
    const directory = new LocalDirectory();
    const alice = new FakePeer();
    const aliceAgain = new FakePeer();
    const bob = new FakePeer();
    const carol = new FakePeer();
    expect(directory.onlineNames()).toEqual([]);
    directory.add("Alice", alice);
    directory.add("bob", bob);
    expect(directory.onlineNames()).toEqual(["Alice", "bob"]);
    directory.add("alice", aliceAgain);
    directory.add("carol", carol);
    expect(directory.onlineNames()).toEqual(["Alice", "bob", "carol"]);
    // One of two connections leaving changes nothing; the last one does.
    directory.remove("alice", alice);
    expect(directory.onlineNames()).toEqual(["Alice", "bob", "carol"]);
    directory.remove("alice", aliceAgain);
    expect(directory.onlineNames()).toEqual(["bob", "carol"]);
    // Back online: last in the order, as in the walk.
    directory.add("Alice", alice);
    expect(directory.onlineNames()).toEqual(["bob", "carol", "Alice"]);
    expect(directory.onlineNames()).toEqual(walked(directory));
  });

  test("each call is a copy: changing one, or the directory afterwards, leaves the others as they were", () => {
    const directory = new LocalDirectory();
    directory.add("alice", new FakePeer());
    const first = directory.onlineNames();
    first.push("mallory");
    directory.add("bob", new FakePeer());
    expect(first).toEqual(["alice", "mallory"]);
    expect(directory.onlineNames()).toEqual(["alice", "bob"]);
  });
});
