// TLS policy end to end: TLS 1.3 by default, opt-in TLS 1.2 with forward-secret AEAD suites, the
// legacy TLS 1.2 + AES128-SHA mode (checked with openssl too), and configurations that must
// refuse to start instead of serving something weaker or plaintext.

import { describe, expect, test } from "bun:test";
import { MemoryRooms } from "../../src/core/rooms.ts";
import { JsonFileStore } from "../../src/auth/store.ts";
import { startServer } from "../../src/server/server.ts";
import { TlsConfigError, type TlsSettings } from "../../src/server/tls-config.ts";
import { testCertificate } from "../helpers/certs.ts";
import { runSClient } from "../helpers/openssl.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { connect, expectUsable, until } from "./support.ts";

const TLS12 = 771;
const TLS13 = 772;
const MODERN_TLS12_CIPHER = /^ECDHE-(ECDSA|RSA)-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$/;

/** Connecting must fail at the handshake, promptly (not by the helper's 5 s timeout). */
async function expectHandshakeRefused(server: TestServer, tls: Record<string, unknown>): Promise<void> {
  const started = performance.now();
  const outcome = await connect(server, { tls }).then(
    async (client) => {
      await client.close();
      return `connected with ${client.tlsVersion} ${client.cipher}`;
    },
    (error: Error) => error,
  );
  expect(outcome).toBeInstanceOf(Error);
  expect((outcome as Error).message).not.toContain("timed out");
  expect(performance.now() - started).toBeLessThan(2_000);
  await until(() => server.connectionCount === 0, "the refused connection to be gone");
  expect(server.logs.some((entry) => entry.event === "login")).toBe(false);
}

describe("default (TLS 1.3 only)", () => {
  test("negotiates TLS 1.3", async () => {
    await using server = await startTestServer();
    await using client = await connect(server);
    expect(client.tlsVersion).toBe("TLSv1.3");
    await expectUsable(client);
  });

  test("refuses a TLS 1.2-only client at the handshake", async () => {
    await using server = await startTestServer();
    await expectHandshakeRefused(server, { maxVersion: TLS12 });
  });

  test("a plaintext client gets no plaintext answer and is disconnected", async () => {
    await using server = await startTestServer();
    let received = "";
    let closed!: () => void;
    const gone = new Promise<void>((resolve) => (closed = resolve));
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.port,
      socket: {
        data(_socket, chunk) {
          received += new TextDecoder().decode(chunk);
        },
        close: () => closed(),
        error: () => closed(),
      },
    });
    try {
      socket.write(JSON.stringify({ type: "ping", id: 1 }) + "\n");
      await Promise.race([gone, Bun.sleep(3_000).then(() => Promise.reject(new Error("plaintext socket stayed open")))]);
      expect(received).not.toContain("pong");
      expect(received).not.toContain("{");
    } finally {
      socket.terminate();
    }
  });
});

describe("--tls-min 1.2", () => {
  test("accepts a TLS 1.2 client with a forward-secret AEAD suite, and still gives TLS 1.3 to others", async () => {
    await using server = await startTestServer({ tls: { minVersion: "1.2" } });
    await using old = await connect(server, { tls: { maxVersion: TLS12 } });
    expect(old.tlsVersion).toBe("TLSv1.2");
    expect(old.cipher).toMatch(MODERN_TLS12_CIPHER);
    await old.register("alice", "alice-password");
    expect((await old.login("alice", "alice-password")).user).toBe("alice");

    await using modern = await connect(server);
    expect(modern.tlsVersion).toBe("TLSv1.3");
  });

  test("refuses a TLS 1.2 client that offers only AES128-SHA (no forward secrecy)", async () => {
    await using server = await startTestServer({ keyType: "rsa", tls: { minVersion: "1.2" } });
    await expectHandshakeRefused(server, { maxVersion: TLS12, ciphers: "AES128-SHA" });
  });
});

describe("legacy TLS 1.2 + AES128-SHA", () => {
  const legacy = { keyType: "rsa", tls: { minVersion: "1.2", maxVersion: "1.2", ciphers: "AES128-SHA" } } as const;

  test("openssl s_client negotiates TLSv1.2 with AES128-SHA, and the server logs a tls_warning", async () => {
    await using server = await startTestServer(legacy);
    await using dir = await tempDir();
    const caFile = dir.file("cert.pem");
    await Bun.write(caFile, server.certificate.certPem);
    const run = await runSClient([
      "-connect",
      `127.0.0.1:${server.port}`,
      "-tls1_2",
      "-cipher",
      "AES128-SHA",
      "-CAfile",
      caFile,
      "-verify_return_error",
    ]);
    expect(run.stdout).toContain("Cipher is AES128-SHA");
    expect(run.stdout).toMatch(/Protocol\s+: TLSv1\.2/);
    expect(run.stdout).toMatch(/Cipher\s+: AES128-SHA/);
    expect(run.stdout).toContain("Verify return code: 0 (ok)");

    const warnings = server.logs.filter((entry) => entry.event === "tls_warning");
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.map((entry) => String(entry.fields.message)).join("\n")).toContain("AES128-SHA");
  });

  test("a Bun client gets AES128-SHA over TLS 1.2 and can chat", async () => {
    await using server = await startTestServer(legacy);
    await using client = await connect(server, { tls: { maxVersion: TLS12, ciphers: "AES128-SHA" } });
    expect(client.tlsVersion).toBe("TLSv1.2");
    expect(client.cipher).toBe("AES128-SHA");
    await client.register("alice", "alice-password");
    expect((await client.login("alice", "alice-password")).user).toBe("alice");
  });

  test("refuses a TLS 1.3-only client", async () => {
    await using server = await startTestServer(legacy);
    await expectHandshakeRefused(server, { minVersion: TLS13 });
  });
});

describe("configurations that must not start", () => {
  /** Calls startServer on a port known to be free; asserts it throws and nothing listens there. */
  async function expectRefusedToStart(tls: TlsSettings, message?: RegExp): Promise<void> {
    await using dir = await tempDir();
    const store = await JsonFileStore.open(dir.file("users.json"));
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    try {
      const error = await startServer({ host: "127.0.0.1", port, tls, store, rooms: new MemoryRooms() }).then(
        async (server) => {
          await server.stop();
          return undefined;
        },
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(TlsConfigError);
      if (message) expect((error as Error).message).toMatch(message);
      const connectError = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, connectError() {} } }).then(
        (socket) => {
          socket.terminate();
          return undefined;
        },
        (reason: unknown) => reason,
      );
      expect(connectError).toMatchObject({ code: "ECONNREFUSED" });
    } finally {
      await store.close();
    }
  }

  test("an ECDSA key with AES128-SHA throws TlsConfigError mentioning RSA", async () => {
    const ec = await testCertificate("ec");
    await expectRefusedToStart(
      { cert: ec.certPem, key: ec.keyPem, minVersion: "1.2", maxVersion: "1.2", ciphers: "AES128-SHA" },
      /RSA/,
    );
  });

  test("a missing certificate throws instead of listening in plaintext", async () => {
    const ec = await testCertificate("ec");
    await expectRefusedToStart({ cert: undefined as unknown as string, key: ec.keyPem, minVersion: "1.3", maxVersion: "1.3" });
  });

  test("an empty key throws instead of listening in plaintext", async () => {
    const ec = await testCertificate("ec");
    await expectRefusedToStart({ cert: ec.certPem, key: "", minVersion: "1.3", maxVersion: "1.3" });
  });

  test("a key that does not belong to the certificate throws", async () => {
    const ec = await testCertificate("ec");
    const rsa = await testCertificate("rsa");
    await expectRefusedToStart({ cert: ec.certPem, key: rsa.keyPem, minVersion: "1.3", maxVersion: "1.3" });
  });

  test("ciphers with TLS 1.3 only throws (they would be ignored)", async () => {
    const rsa = await testCertificate("rsa");
    await expectRefusedToStart({ cert: rsa.certPem, key: rsa.keyPem, minVersion: "1.3", maxVersion: "1.3", ciphers: "AES128-SHA" });
  });

  test("a minimum version above the maximum throws", async () => {
    const ec = await testCertificate("ec");
    await expectRefusedToStart({ cert: ec.certPem, key: ec.keyPem, minVersion: "1.3", maxVersion: "1.2" });
  });
});
