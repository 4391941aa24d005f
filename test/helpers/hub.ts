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
  moderation: ModerationNotice[];
  clock: { now: number };
}

export async function testHub(policy: Partial<HubPolicy> = {}, clock = { now: 1_000 }, rooms: Rooms = new MemoryRooms()): Promise<TestHub> {
  const directory = new LocalDirectory();
  const moderation: ModerationNotice[] = [];
  const hub = new Hub(
    directory,
    rooms,
    new MemoryMessageLog({ perRoom: 10, perRoomBytes: 64 * 1024 }),
    new LocalFanout(directory),
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
      ...policy,
    },
    { moderated: (notice) => moderation.push(notice) },
    () => clock.now,
  );
  await hub.open();
  return { hub, rooms, moderation, clock };
}
