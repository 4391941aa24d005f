// The order servers are tried in and what a failure means for the search (client/failover.ts),
// with attempts that succeed or fail on cue: no sockets.

import { describe, expect, test } from "bun:test";
import { ConnectError } from "../../src/client/connection.ts";
import { after, failureText, firstAnswering, serverLabel, tryingNext, type ServerAddress } from "../../src/client/failover.ts";
import { ChatError } from "../../src/protocol/errors.ts";

const a: ServerAddress = { host: "a.example", port: 7443 };
const b: ServerAddress = { host: "::1", port: 7500 };
const c: ServerAddress = { host: "10.0.0.3", port: 7443 };

const refused = (server: ServerAddress) => new ConnectError("connect_failed", `Cannot connect to ${serverLabel(server)}: refused`);

/** Attempts that fail with the given error per server, and succeed (with the server's host) elsewhere; records the order. */
function attempts(failures: Map<ServerAddress, Error>) {
  const tried: ServerAddress[] = [];
  return {
    tried,
    attempt: async (server: ServerAddress) => {
      tried.push(server);
      const failure = failures.get(server);
      if (failure) throw failure;
      return server.host;
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error,
  );
}

describe("naming and ordering servers", () => {
  test("a label is host:port, IPv6 in brackets", () => {
    expect([a, b, c].map(serverLabel)).toEqual(["a.example:7443", "[::1]:7500", "10.0.0.3:7443"]);
  });

  test("a reconnect starts after the server last used, wrapping around, that one last", () => {
    expect(after([a, b, c], a)).toEqual([b, c, a]);
    expect(after([a, b, c], c)).toEqual([a, b, c]);
    expect(after([a], a)).toEqual([a]);
    // A server left out of the list (found untrusted): from the start.
    expect(after([a, c], b)).toEqual([a, c]);
  });

  test("a failure's line names the server; a refusal gets its code", () => {
    expect(failureText(a, refused(a))).toBe("Cannot connect to a.example:7443: refused");
    expect(failureText(b, new ChatError("server_full", "Too many connections"))).toBe("[::1]:7500: server_full: Too many connections");
    expect(tryingNext(a, refused(a), b)).toBe("Cannot connect to a.example:7443: refused; trying [::1]:7500");
  });
});

describe("firstAnswering", () => {
  test("tries in order until one succeeds, telling of each failure with the server tried next", async () => {
    const { tried, attempt } = attempts(new Map([[a, refused(a)]]));
    const failures: string[] = [];
    const answer = await firstAnswering([a, b, c], attempt, (server, error, next) => failures.push(`${serverLabel(server)} -> ${next && serverLabel(next)}: ${error.message}`));
    expect(answer).toBe("::1");
    expect(tried).toEqual([a, b]);
    expect(failures).toEqual(["a.example:7443 -> [::1]:7500: Cannot connect to a.example:7443: refused"]);
  });

  test("a refused login is the same everywhere: the search ends at once with it", async () => {
    const wrong = new ChatError("auth_failed", "Wrong username or password");
    const { tried, attempt } = attempts(new Map<ServerAddress, Error>([[a, refused(a)], [b, wrong]]));
    expect(await rejection(firstAnswering([a, b, c], attempt))).toBe(wrong);
    expect(tried).toEqual([a, b]);
  });

  test("when all fail: an untrusted server first, then a server's refusal, else every connection failure in one line", async () => {
    const untrusted = new ConnectError("untrusted", "The certificate of c HAS CHANGED");
    const full = new ChatError("server_full", "Too many connections");
    expect(await rejection(firstAnswering([a, b, c], attempts(new Map<ServerAddress, Error>([[a, refused(a)], [b, full], [c, untrusted]])).attempt))).toBe(untrusted);
    expect(await rejection(firstAnswering([a, b], attempts(new Map<ServerAddress, Error>([[a, refused(a)], [b, full]])).attempt))).toBe(full);
    const all = await rejection(firstAnswering([a, b], attempts(new Map([[a, refused(a)], [b, refused(b)]])).attempt));
    expect(all).toBeInstanceOf(ConnectError);
    expect((all as ConnectError).message).toBe("Cannot connect to a.example:7443: refused; Cannot connect to [::1]:7500: refused");
    // One server: its own error, as it was.
    const only = refused(a);
    expect(await rejection(firstAnswering([a], attempts(new Map([[a, only]])).attempt))).toBe(only);
  });
});
