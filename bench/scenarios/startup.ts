// startup: from spawning the server to its "listening" log line (read from its stderr pipe),
// then a check that the port really accepts a TCP connection.

import { freePort, GENEROUS_LIMITS, ServerProcess, tcpConnects } from "../lib/proc.ts";
import type { BenchContext } from "../lib/targets.ts";
import { BenchError } from "../lib/util.ts";
import type { Metrics } from "./messages.ts";

export async function startup(ctx: BenchContext): Promise<Metrics> {
  const files = { accounts: ctx.smallStore.path, chat: ctx.ws.newChatDb() };
  const state = { kind: "embedded", files, messageLog: "db" } as const;
  const server = await ServerProcess.startTlschat(ctx.command, ctx.ws, { state, limits: GENEROUS_LIMITS }, freePort());
  try {
    const listeningMs = server.listeningAt - server.spawnedAt;
    if (!(await tcpConnects(server.port, 2_000))) throw new BenchError("the server logged listening but refused a connection");
    return { listeningMs, rssMiB: server.rssKiB() / 1024 };
  } finally {
    await server.stop();
  }
}
