// Slow and silent connections, and clients that do not speak TLS (or not the right TLS): each is
// cut within the login deadline or at the handshake, while bystanders keep chatting.

import { describe, expect, test } from "bun:test";
import { Bystanders, expectAftermath, hostile, HostileClient, until } from "../helpers/hostile.ts";
import { startTestServer } from "../helpers/server.ts";

// Long enough for a bystander to register and log in (two password hashes) on a loaded machine.
const AUTH_TIMEOUT_MS = 600;
// The sweep runs every authTimeoutMs/4; a connection that never finished TLS is cut when the
// close grace (250 ms) ends. Anything later than this is a leak.
const CLOSE_DEADLINE_MS = AUTH_TIMEOUT_MS + AUTH_TIMEOUT_MS / 4 + 250 + 250;

describe("slowloris", () => {
  test("plain TCP connections that never start TLS are closed within the login deadline", async () => {
    await using server = await startTestServer({ limits: { authTimeoutMs: AUTH_TIMEOUT_MS } });
    await using bystanders = await Bystanders.start(server);
    await bystanders.during(async () => {
      const silent = await Promise.all(Array.from({ length: 8 }, () => HostileClient.open({ port: server.port, tls: false })));
      const lifetimes = await Promise.all(silent.map((client) => client.waitClosed(3_000)));
      for (const ms of lifetimes) {
        expect(ms).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 20);
        expect(ms).toBeLessThan(CLOSE_DEADLINE_MS);
      }
      for (const client of silent) expect(client.receivedBytes).toBe(0);
    });
    await expectAftermath(server, bystanders);
  });

  test("the server log gives timeout as the reason a silent plain TCP connection ended", async () => {
    // Operators tell slowloris from broken clients by this field.
    await using server = await startTestServer({ limits: { authTimeoutMs: AUTH_TIMEOUT_MS } });
    await using silent = await HostileClient.open({ port: server.port, tls: false });
    await silent.waitClosed(3_000);
    await until(() => server.logs.some((entry) => entry.event === "disconnect"), "the disconnect log line");
    const reasons = server.logs.filter((entry) => entry.event === "disconnect").map((entry) => entry.fields.reason);
    expect(reasons).toEqual(["timeout"]);
  });

  test("TLS handshake then silence: error timeout, then closed", async () => {
    await using server = await startTestServer({ limits: { authTimeoutMs: AUTH_TIMEOUT_MS } });
    await using bystanders = await Bystanders.start(server);
    await bystanders.during(async () => {
      await using silent = await hostile(server);
      expect(await silent.nextError(2_000)).toBe("timeout");
      const ms = await silent.waitClosed(2_000);
      expect(ms).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 20);
      expect(ms).toBeLessThan(CLOSE_DEADLINE_MS);
      expect(silent.frames).toEqual([]);
    });
    await expectAftermath(server, bystanders);
  });

  test("a login frame trickled a byte every 25 ms: timeout counts from connect, not from the last byte", async () => {
    const authTimeoutMs = 600;
    await using server = await startTestServer({ limits: { authTimeoutMs } });
    await using bystanders = await Bystanders.start(server);
    {
      await using registrar = await hostile(server);
      expect((await registrar.register("slowpoke", "slowpoke-password")).type).toBe("registered");
    }
    await bystanders.during(async () => {
      await using slow = await hostile(server);
      const frame = new TextEncoder().encode(JSON.stringify({ type: "login", user: "slowpoke", password: "slowpoke-password" }) + "\n");
      let sent = 0;
      // Load, not synchronisation: one byte per tick until the server gives up (the whole frame would take ~1.4 s).
      const pacer = setInterval(() => {
        if (sent < frame.length && !slow.isClosed) slow.write(frame.subarray(sent, ++sent));
      }, 25);
      try {
        expect(await slow.nextError(3_000)).toBe("timeout");
        const ms = await slow.waitClosed(2_000);
        expect(ms).toBeLessThan(authTimeoutMs + authTimeoutMs / 4 + 250 + 250);
        expect(sent).toBeLessThan(frame.length);
      } finally {
        clearInterval(pacer);
      }
      expect(slow.frames).toEqual([]);
    });
    // The trickled login never happened.
    expect(server.logs.filter((entry) => entry.event === "login" && entry.fields.user === "slowpoke")).toEqual([]);
    await expectAftermath(server, bystanders, ["slowpoke"]);
  });
});

describe("not TLS, or not our TLS", () => {
  test("a plaintext login on the TLS port: closed, no JSON reply, no login in the server log", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    const loginsBefore = server.logs.filter((entry) => entry.event === "login").length;
    await bystanders.during(async () => {
      await using plain = await HostileClient.open({ port: server.port, tls: false });
      plain.write(JSON.stringify({ type: "login", user: "bysend1", password: "bysend1-password" }) + "\n");
      await plain.waitClosed(2_000);
      // At most a TLS alert record (content type 21) comes back; never a frame.
      expect(plain.text).not.toContain("{");
      expect(plain.frames).toEqual([]);
      if (plain.receivedBytes > 0) expect(plain.chunks[0]![0]).toBe(0x15);
    });
    expect(server.logs.filter((entry) => entry.event === "login")).toHaveLength(loginsBefore);
    await expectAftermath(server, bystanders);
  });

  test("an HTTP request on the TLS port is closed without an answer", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    await bystanders.during(async () => {
      await using plain = await HostileClient.open({ port: server.port, tls: false });
      plain.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
      await plain.waitClosed(2_000);
      expect(plain.text).not.toContain("HTTP");
      expect(plain.frames).toEqual([]);
    });
    await expectAftermath(server, bystanders);
  });

  test("a TLS 1.2-only client (maxVersion 771) against the default TLS 1.3 server: handshake fails", async () => {
    await using server = await startTestServer();
    await using bystanders = await Bystanders.start(server);
    await bystanders.during(async () => {
      await using old = await HostileClient.open({ port: server.port, ca: server.certificate.certPem, tls: { maxVersion: 771 } });
      const ok = await Promise.race([old.handshake, old.closed.then(() => false)]);
      expect(ok).toBe(false);
      expect(old.handshakeError ?? "").toContain("PROTOCOL_VERSION");
      await old.waitClosed(2_000);
      expect(old.frames).toEqual([]);
    });
    await expectAftermath(server, bystanders);
  });
});
