// A chat hub over the in-memory directory, rooms, log and fanout, for unit tests of the core.

import { LocalDirectory } from "../../src/core/directory.ts";
import { LocalFanout } from "../../src/core/fanout.ts";
import { Hub, type HubPolicy } from "../../src/core/hub.ts";
import { MemoryMessageLog } from "../../src/core/message-log.ts";
import type { ModerationNotice } from "../../src/protocol/frames.ts";
import { MemoryRooms, type Rooms } from "../../src/core/rooms.ts";

export interface TestHub {
  hub: Hub;
  rooms: Rooms;
  log: MemoryMessageLog;
  moderation: ModerationNotice[];
  clock: { now: number };
}

/** `accountNames`: the registered accounts dms may go to while their owner is offline. */
export async function testHub(
  policy: Partial<HubPolicy> = {},
  clock = { now: 1_000 },
  rooms: Rooms = new MemoryRooms(),
  accountNames: readonly string[] = [],
): Promise<TestHub> {
  const accounts = new Map(accountNames.map((name) => [name.toLowerCase(), name]));
  const directory = new LocalDirectory();
  const moderation: ModerationNotice[] = [];
  const log = new MemoryMessageLog({ perConversation: 10, perConversationBytes: 64 * 1024 });
  const hub = new Hub(
    directory,
    rooms,
    log,
    new LocalFanout(directory, 0),
    { nameOf: async (user) => accounts.get(user.toLowerCase()) },
    {
      lobby: "#lobby",
      admins: new Set(),
      maxRoomsPerUser: 5,
      maxRooms: 20,
      maxRoomsCreatedPerUser: 3,
      maxTopicChars: 50,
      presenceMaxAudience: 100,
      maxListBytes: 16 * 1024,
      roomExpiryMs: 60_000,
      recentHistory: 10,
      catchUpPerRoom: 10,
      historyPageSize: 10,
      searchPageSize: 10,
      refWindowMs: 60_000,
      retentionMs: 3_600_000,
      maxMessagesPerRoom: 100,
      ...policy,
    },
    { stored: () => {}, moderated: (notice) => moderation.push(notice), topicSet: () => {} },
    () => clock.now,
  );
  await hub.open();
  return { hub, rooms, log, moderation, clock };
}
