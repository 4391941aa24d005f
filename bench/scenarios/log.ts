// log: what the durable message log costs by itself, per message: the server's own code (the
// chat database, its checkpoint worker, the log's appends with a ref on each, looked up first as
// a say's is) run in the bench process, with nothing else running there. It bounds fanout's
// durable CPU per delivery from below: a message's share of it is this figure over the
// message's receivers.

import { REF_WINDOW_MS } from "../../src/core/limits.ts";
import { LOBBY } from "../../src/protocol/validate.ts";
import { BackgroundCheckpoints } from "../../src/store/sqlite/checkpoints.ts";
import { openChatDatabase } from "../../src/store/sqlite/database.ts";
import { SqliteMessageLog } from "../../src/store/sqlite/message-log.ts";
import { TEXT } from "../lib/client.ts";
import { userName } from "../lib/proc.ts";
import type { BenchContext } from "../lib/targets.ts";
import { BenchError, now } from "../lib/util.ts";
import { FANOUT, type Metrics } from "./messages.ts";

export interface LogConfig {
  /** Appended before measuring, not measured (JIT warm-up, the first ref lookup's read-back). */
  warmupMessages: number;
  messages: number;
  /** Appends per event-loop turn, so per group commit: about what fanout's durable server commits. */
  messagesPerTurn: number;
  senders: number;
  /** Receivers of each message in fanout, for the per-delivery share. */
  receiversPerMessage: number;
}

export const LOG: LogConfig = {
  warmupMessages: 20_000,
  messages: 200_000,
  messagesPerTurn: 250,
  senders: FANOUT.senders,
  receiversPerMessage: FANOUT.clients - 1,
};

const ROOM = { key: LOBBY, name: LOBBY };

export async function messageLogCost(ctx: BenchContext, cfg = LOG): Promise<Metrics> {
  const db = await openChatDatabase(ctx.ws.newChatDb());
  // Serve would go on with checkpoints on its event loop; a figure measured so would not be serve's.
  let workerFailure: string | undefined;
  const checkpoints = await BackgroundCheckpoints.start(db, (reason) => (workerFailure = reason));
  const messageLog = new SqliteMessageLog(db);
  let sent = 0;
  const appendTurns = async (count: number) => {
    for (let done = 0; done < count; done += cfg.messagesPerTurn) {
      const stored: Array<Promise<unknown>> = [];
      for (let i = 0; i < cfg.messagesPerTurn; i++, sent++) {
        const from = userName(sent % cfg.senders);
        const ref = `r${sent}`;
        const ts = Date.now();
        if (messageLog.findByRef(from, ref, ts - REF_WINDOW_MS)) throw new BenchError(`ref ${ref} was taken for a retry`);
        stored.push(messageLog.append({ room: ROOM, from, text: TEXT, ts, ref }));
      }
      await Promise.all(stored);
    }
  };
  try {
    await appendTurns(cfg.warmupMessages);
    const cpuBefore = process.cpuUsage();
    const startedAt = now();
    await appendTurns(cfg.messages);
    const cpu = process.cpuUsage(cpuBefore);
    const seconds = (now() - startedAt) / 1000;
    if (workerFailure !== undefined) throw new BenchError(`the checkpoint worker failed: ${workerFailure}`);
    const cpuUs = cpu.user + cpu.system;
    return {
      messages: cfg.messages,
      messagesPerSec: cfg.messages / seconds,
      cpuUsPerMessage: cpuUs / cfg.messages,
      userUsPerMessage: cpu.user / cfg.messages,
      systemUsPerMessage: cpu.system / cfg.messages,
      cpuUsPerDelivery: cpuUs / cfg.messages / cfg.receiversPerMessage,
    };
  } finally {
    await messageLog.close();
    await checkpoints.close();
    db.close();
  }
}
