// login storms: many clients send logins at the same moment while 5 others chat at 20 msg/s
// each, by password or by key.
//
// By password: 500 clients. Password checks are argon2id (~35 ms each) and the server runs a
// bounded number at once, refusing the excess with `server_busy`; refused clients retry after
// 100-300 ms. The storm's clients come from 100 loopback source addresses (127.0.1.1-127.0.1.100,
// 5 each; the destination is 127.0.0.1 as always): the server's per-address throttle counts a
// password attempt as a failure until it has been checked and allows 5, so 500 simultaneous
// logins from one address would mostly be answered `throttled`. A `throttled` client retries
// after the delay the server names.
//
// By key: 1,000 clients, each with its own identity (client certificate) bound to its account
// in a store of the same size as the password storm's. They have all been in the chat before
// (a warm-up logs each in once by token), but their keys were last used long ago, so every login
// also records its key's use in the store, as the first logins of a day do. No hashing and no
// throttle slots: all come from 127.0.0.1. The clients' TLS handshakes (where the key is proved)
// are timed apart from the logins.

import { join } from "node:path";
import { generateIdentity } from "../../src/tls/certificate.ts";
import { loopbackSource, sayLines, terminateAll, type BenchClient } from "../lib/client.ts";
import { userName, writeStore } from "../lib/proc.ts";
import { makeClients, PASSWORD, startTlschat, STORE_USERS, type BenchContext } from "../lib/targets.ts";
import { Tracker } from "../lib/tracker.ts";
import { cpuShare, jitter, log, now, sleep, waitUntil } from "../lib/util.ts";
import type { Metrics } from "./messages.ts";

export interface LoginStormConfig {
  credential: "password" | "key";
  stormers: number;
  /** Storm clients per loopback source address (password logins only: keys are not throttled per slot). */
  perAddress?: number;
  chatters: number;
  ratePerSec: number;
  baselineMs: number;
  timeoutMs: number;
}

export const LOGIN_STORM: LoginStormConfig = { credential: "password", stormers: 500, perAddress: 5, chatters: 5, ratePerSec: 20, baselineMs: 1_000, timeoutMs: 90_000 };
export const KEY_LOGIN_STORM: LoginStormConfig = { credential: "key", stormers: 1_000, chatters: 5, ratePerSec: 20, baselineMs: 1_000, timeoutMs: 30_000 };

interface KeyFixture {
  /** By user name: the identity presented, and its certificate's fingerprint bound in the store. */
  identities: Map<string, { cert: string; key: string }>;
  keys: Map<string, string>;
}

let keyFixture: Promise<KeyFixture> | undefined;

/** An identity for each of the storm's users; made once per run. */
function keyStormFixture(cfg: LoginStormConfig): Promise<KeyFixture> {
  keyFixture ??= (async () => {
    const started = now();
    const users = Array.from({ length: cfg.stormers }, (_, i) => userName(cfg.chatters + i + 1));
    const pairs = await Promise.all(users.map(() => generateIdentity()));
    log(`key login storm: ${users.length} identities made in ${((now() - started) / 1000).toFixed(1)} s`);
    return {
      identities: new Map(users.map((user, i) => [user, { cert: pairs[i]!.certPem, key: pairs[i]!.keyPem }])),
      keys: new Map(users.map((user, i) => [user, pairs[i]!.fingerprint256])),
    };
  })();
  return keyFixture;
}

export async function loginStorm(ctx: BenchContext, cfg = LOGIN_STORM): Promise<Metrics> {
  const fixture = cfg.credential === "key" ? await keyStormFixture(cfg) : undefined;
  // Written afresh for each repetition, so every one starts from keys last used long ago.
  const store = fixture ? await writeStore(join(ctx.ws.dir, "keys.json"), STORE_USERS, PASSWORD, fixture.keys) : ctx.store;
  const target = await startTlschat(ctx, { store });
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
    const logIn = (client: BenchClient) => (cfg.credential === "key" ? client.loginByKey() : client.login(PASSWORD));
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
          setTimeout(() => logIn(client), jitter(100, 300));
        } else if (code === "throttled") {
          throttled += 1;
          const seconds = Number(/try again in (\d+) s/.exec(message)?.[1] ?? 1);
          setTimeout(() => logIn(client), seconds * 1000 + jitter(0, 100));
        } else {
          failures += 1;
          log(`login storm: ${client.user} refused: ${code}: ${message}`);
        }
      },
    };
    stormers = makeClients(cfg.stormers, stormEvents, cfg.chatters);
    if (fixture) {
      // "Yesterday": every storm user has logged in before (by token, which leaves the keys'
      // last use as it was), so the storm measures logins, not first visits to the chat database.
      await target.join(stormers);
      terminateAll(stormers);
      await waitUntil(() => stormers.every((client) => client.state === "closed"), 10_000, "the warm-up connections to close");
      await sleep(500);
      loggedIn = 0;
      lastLoginAt = NaN;
      for (const client of stormers) client.identity = fixture.identities.get(client.user);
    }
    await target.join(chatters);
    // The storm's clients connect (TLS) first; their logins all go out in the same turn below.
    const connectStart = now();
    const perAddress = cfg.perAddress;
    await Promise.all(
      stormers.map((client, i) => client.connect(target.endpoint, perAddress === undefined ? undefined : loopbackSource(Math.floor(i / perAddress)))),
    );
    const connectSeconds = (now() - connectStart) / 1000;
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
    for (const client of stormers) logIn(client);
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
      connectSeconds,
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

