// ircd: fanout against ngircd, the reference IRC server. The same shape as tlschat's fanout
// (50 clients in one channel, 10 senders with up to 64 messages in flight each, a warm-up round,
// then at least 5 s of relaying over TLS) and the same round code and tracker, so ngircd's server
// CPU per delivery is computed exactly as tlschat's own; run.ts pairs it with tlschat's fanout
// repetition by repetition. The server's config is in lib/ngircd.ts, the IRC clients in lib/irc.ts.

import { terminateAll, type ClientEvents } from "../lib/client.ts";
import { IRC_CHANNEL, IrcClient, joinAll, privmsgLines } from "../lib/irc.ts";
import { NgircdProcess } from "../lib/ngircd.ts";
import { userName } from "../lib/proc.ts";
import type { BenchContext } from "../lib/targets.ts";
import { BenchError, withTimeout } from "../lib/util.ts";
import { FANOUT, fanoutOn, type Metrics } from "./messages.ts";

/** Connections set up at once: ngircd listens with a backlog of 10. */
const JOIN_CONCURRENCY = 10;
/** For all clients to connect, register and join. */
const JOIN_TIMEOUT_MS = 30_000;

/**
 * One repetition on a fresh ngircd. Besides fanout's metrics: `disconnects`, connections that
 * closed before the round ended (ngircd closes a client whose write buffer would pass 32 KiB).
 */
export async function ircd(ctx: BenchContext, cfg = FANOUT): Promise<Metrics> {
  const server = await NgircdProcess.start(ctx.ws);
  let clients: IrcClient[] = [];
  try {
    let disconnects = 0;
    const events: ClientEvents = { closed: () => (disconnects += 1) };
    clients = Array.from({ length: cfg.clients }, (_, i) => new IrcClient(i, userName(i + 1), events));
    const endpoint = { port: server.port, ca: ctx.ws.certPem };
    await withTimeout(joinAll(clients, endpoint, IRC_CHANNEL, JOIN_CONCURRENCY), JOIN_TIMEOUT_MS, `${cfg.clients} IRC clients in ${IRC_CHANNEL}`);
    const metrics = await fanoutOn([server], clients, events, false, cfg, privmsgLines);
    return { ...metrics, disconnects };
  } catch (error) {
    throw new BenchError(`${(error as Error).message}\nngircd's log ends:\n${server.logTail()}`);
  } finally {
    await server.stop();
    terminateAll(clients);
  }
}
