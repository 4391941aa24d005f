// login storm: 500 clients send password logins at the same moment while 5 others chat at
// 20 msg/s each. Password checks are argon2id (~35 ms each) and the server runs a bounded number
// at once, refusing the excess with `server_busy`; refused clients retry after 100-300 ms.
//
// The storm's clients come from 100 loopback source addresses (127.0.1.1-127.0.1.100, 5 each;
// the destination is 127.0.0.1 as always): the server's per-address throttle counts a password
// attempt as a failure until it has been checked and allows 5, so 500 simultaneous logins from
// one address would mostly be answered `throttled`. A `throttled` client retries after the delay
// the server names.

import { loopbackSource, sayLines, terminateAll, type BenchClient } from "../lib/client.ts";
import { makeClients, PASSWORD, startTlschat, type BenchContext } from "../lib/targets.ts";
import { Tracker } from "../lib/tracker.ts";
import { cpuShare, jitter, log, now, sleep } from "../lib/util.ts";
import type { Metrics } from "./messages.ts";

export interface LoginStormConfig {
  stormers: number;
  /** Storm clients per loopback source address. */
  perAddress: number;
  chatters: number;
  ratePerSec: number;
  baselineMs: number;
  timeoutMs: number;
}

export const LOGIN_STORM: LoginStormConfig = { stormers: 500, perAddress: 5, chatters: 5, ratePerSec: 20, baselineMs: 1_000, timeoutMs: 90_000 };

export async function loginStorm(ctx: BenchContext, cfg = LOGIN_STORM): Promise<Metrics> {
  const target = await startTlschat(ctx);
  let chatters: BenchClient[] = [];
  let stormers: BenchClient[] = [];
  const timers: ReturnType<typeof setInterval>[] = [];
  try {
    const maxMessages = Math.ceil(((cfg.baselineMs + cfg.timeoutMs + 2_000) / 1000) * cfg.ratePerSec);
    const tracker = new Tracker({ senders: cfg.chatters, clients: cfg.chatters, perSender: maxMessages });
    chatters = makeClients(cfg.chatters, { msg: tracker.msg });
    let loggedIn = 0;
    let busy = 0;
    let throttled = 0;
    let failures = 0;
    let lastLoginAt = NaN;
    const stormEvents = {
      welcome(client: BenchClient) {
        client.skip = true;
        loggedIn += 1;
        if (loggedIn === cfg.stormers) lastLoginAt = now();
      },
      error(client: BenchClient, code: string, message: string) {
        if (client.ready) return;
        if (code === "server_busy") {
          busy += 1;
          setTimeout(() => client.login(PASSWORD), jitter(100, 300));
        } else if (code === "throttled") {
          throttled += 1;
          const seconds = Number(/try again in (\d+) s/.exec(message)?.[1] ?? 1);
          setTimeout(() => client.login(PASSWORD), seconds * 1000 + jitter(0, 100));
        } else {
          failures += 1;
          log(`login storm: ${client.user} refused: ${code}: ${message}`);
        }
      },
    };
    stormers = makeClients(cfg.stormers, stormEvents, cfg.chatters);
    await target.join(chatters);
    // The storm's clients connect (TLS) first; their logins all go out in the same turn below.
    await Promise.all(stormers.map((client, i) => client.connect(target.endpoint, loopbackSource(Math.floor(i / cfg.perAddress)))));
    await sleep(200);

    const intervalMs = 1000 / cfg.ratePerSec;
    for (let s = 0; s < cfg.chatters; s++) {
      timers.push(
        setTimeout(() => {
          timers.push(
            setInterval(() => {
              if (tracker.sent[s]! >= maxMessages) return;
              chatters[s]!.writeNow(sayLines(s, tracker.sent[s]!, 1));
              tracker.sent[s]! += 1;
            }, intervalMs),
          );
        }, (s * intervalMs) / cfg.chatters),
      );
    }
    await sleep(cfg.baselineMs);

    const serverCpu0 = target.server.cpuMs();
    const share = cpuShare();
    const stormStart = now();
    for (const client of stormers) client.login(PASSWORD);
    const deadline = stormStart + cfg.timeoutMs;
    while (loggedIn + failures < cfg.stormers && now() < deadline) await sleep(10);
    const stormEnd = loggedIn === cfg.stormers ? lastLoginAt : now();
    const serverCpuSeconds = (target.server.cpuMs() - serverCpu0) / 1000;
    const generatorCpuPct = share.stop();
    await sleep(300);
    for (const timer of timers) clearInterval(timer);
    await sleep(500); // in-flight chat messages arrive
    const baseline = tracker.percentiles(-Infinity, stormStart);
    const during = tracker.percentiles(stormStart, stormEnd);
    const stormSeconds = (stormEnd - stormStart) / 1000;
    return {
      logins: loggedIn,
      loginFailures: failures,
      busyRetries: busy,
      throttledRetries: throttled,
      stormSeconds,
      loginsPerSec: loggedIn / stormSeconds,
      chatBaselineP99Ms: baseline.p99,
      chatP50Ms: during.p50,
      chatP99Ms: during.p99,
      chatMaxMs: during.max,
      chatDeliveriesDuringStorm: during.count,
      chatLost: tracker.lost,
      chatDuplicated: tracker.duplicated,
      serverCpuPct: ((serverCpuSeconds * 1000) / (stormEnd - stormStart)) * 100,
      generatorCpuPct,
    };
  } finally {
    for (const timer of timers) clearInterval(timer);
    await target.stop();
    terminateAll(chatters);
    terminateAll(stormers);
  }
}
