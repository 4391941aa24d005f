// The automated "Wireshark check": capture the loopback traffic of a scripted chat session with
// tshark and prove from the capture that (1) the handshake is TLS 1.3 (or, in legacy mode, TLS 1.2
// with AES128-SHA), (2) every TCP payload byte on the server port is inside a TLS record and only
// the hellos travel in the clear, and (3) no password, token, message or dm text, username or
// protocol JSON appears anywhere in the raw capture bytes. The clients present an identity (a client
// certificate, for key login): TLS 1.3 hides it, TLS 1.2 shows it. A plaintext control run shows that the
// same procedure does find a marker and does flag non-TLS bytes, so a pass is not vacuous.
//
// Needs tshark and capture rights on `lo` (root or the wireshark group); without either the file
// skips with one line saying what is missing, or fails if TLSCHAT_REQUIRE_TOOLS names tshark.

import { describe, expect, test } from "bun:test";
import { randomBytes, randomUUID, X509Certificate } from "node:crypto";
import { presenting, testIdentity } from "../helpers/certs.ts";
import { Capture, captureUsable, inspectCapture, recordSequenceProblem, type CaptureReport } from "../helpers/capture.ts";
import { TestClient, withTimeout } from "../helpers/client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";

const TEST_TIMEOUT_MS = 60_000;
const canCapture = captureUsable();

/** JSON fragments of the protocol: if any shows up in the capture, frames went out in clear. */
const PROTOCOL_FRAGMENTS = [
  '"type":"register"',
  '"type":"login"',
  '"type":"say"',
  '"type":"dm"',
  '"type":"passwd"',
  '"type":"welcome"',
  '"type":"msg"',
  '"password":',
  '"token":',
  '"text":',
];

interface SessionSecrets {
  users: string[];
  /** Passwords, the new password, tokens, message and dm markers. */
  secrets: string[];
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

/**
 * register, login, room messages both ways, dms both ways, a password change, and a login with
 * the new password; every frame is awaited, so the traffic is complete when this returns.
 */
async function runSession(server: TestServer, tls: Record<string, unknown> = {}): Promise<SessionSecrets> {
  const ca = server.certificate.certPem;
  // Random suffixes make the usernames long enough that finding one by chance in ciphertext is impossible.
  const alice = `alice-${hex(6)}`;
  const bob = `bob-${hex(6)}`;
  const alicePassword = `pw-${randomUUID()}`;
  const bobPassword = `pw-${randomUUID()}`;
  const aliceNewPassword = `pw-new-${randomUUID()}`;
  const markers = {
    aliceSays: `room-${randomUUID()}`,
    bobSays: `room-${randomUUID()}`,
    aliceDm: `dm-${randomUUID()}`,
    bobDm: `dm-${randomUUID()}`,
  };
  const secrets: string[] = [alicePassword, bobPassword, aliceNewPassword, ...Object.values(markers)];

  await using a = await TestClient.connect({ port: server.port, ca, tls });
  await using b = await TestClient.connect({ port: server.port, ca, tls });
  await a.register(alice, alicePassword);
  await b.register(bob, bobPassword);
  secrets.push((await a.login(alice, alicePassword)).token);
  secrets.push((await b.login(bob, bobPassword)).token);
  expect((await a.next("online")).user).toBe(bob);

  a.send({ type: "say", text: markers.aliceSays });
  expect(await b.next("msg")).toMatchObject({ from: alice, text: markers.aliceSays });
  b.send({ type: "say", text: markers.bobSays });
  expect(await a.next("msg")).toMatchObject({ from: bob, text: markers.bobSays });
  a.send({ type: "dm", to: bob, text: markers.aliceDm });
  expect(await b.next("dm")).toMatchObject({ from: alice, to: bob, text: markers.aliceDm });
  b.send({ type: "dm", to: alice, text: markers.bobDm });
  expect(await a.next("dm")).toMatchObject({ from: bob, to: alice, text: markers.bobDm });

  a.send({ type: "passwd", old: alicePassword, new: aliceNewPassword });
  secrets.push((await a.nextOf(["password_changed", "error"])).token ?? "password change failed");

  // The new password works (and crosses the wire once more, inside TLS).
  await using again = await TestClient.connect({ port: server.port, ca, tls });
  const welcome = await again.login(alice, aliceNewPassword);
  secrets.push(welcome.token);

  await Promise.all([a.sync(), b.sync(), again.sync()]);
  for (const client of [a, b, again]) {
    expect(client.received.filter((frame) => frame.type === "error")).toEqual([]);
    expect(client.tlsVersion).toBe(tls.maxVersion === 771 ? "TLSv1.2" : "TLSv1.3");
  }
  await Promise.all([a.close(), b.close(), again.close()]);
  return { users: [alice, bob], secrets };
}

/** Starts a capture on `port`, runs `traffic`, makes sure all of it was captured, stops tshark. */
async function captured<T>(port: number, file: string, traffic: () => Promise<T>): Promise<T> {
  const capture = await Capture.start({ port, file });
  try {
    const result = await traffic();
    await capture.sync();
    await capture.stop();
    return result;
  } finally {
    await capture.kill();
  }
}

/** The shape checks shared by both TLS modes. */
function expectOnlyTls(report: CaptureReport, port: number, connections: number, tls13: boolean): void {
  const context = JSON.stringify(report, null, 1);
  // The session is in the capture at all (otherwise everything below would pass vacuously).
  expect(report.clientHellos, context).toBe(connections);
  expect(report.serverHellos.length, context).toBe(connections);
  const sessionFlows = report.flows.filter((flow) => flow.bytes > 0);
  expect(sessionFlows.length, context).toBe(2 * connections);
  // tshark, told the port is TLS, decodes every payload-carrying packet as TLS.
  expect(report.nonTlsPackets, context).toBe(0);
  expect(report.malformedPackets, context).toBe(0);
  // Independently of tshark's dissector: each direction of each connection is a gapless sequence
  // of TLS records ending on a record boundary, clear hellos first, then only encrypted records.
  for (const flow of sessionFlows) {
    expect(flow.notTls, context).toBeUndefined();
    expect(recordSequenceProblem(flow.records!, tls13), `${flow.srcPort}→${flow.dstPort}: ${flow.records}`).toBeUndefined();
  }
  // And by tshark's count: all TCP payload bytes per direction are TLS record headers + bodies.
  for (const side of [report.accounting.toServer, report.accounting.fromServer]) {
    expect(side.tcpPayload, context).toBeGreaterThan(0);
    expect(side.tlsRecordBytes, context).toBe(side.tcpPayload);
  }
  expect(report.flows.every((flow) => flow.srcPort === port || flow.dstPort === port)).toBe(true);
}

describe.skipIf(!canCapture)("Wireshark check (tshark on lo)", () => {
  test(
    "TLS 1.3 session: only hellos in clear, then application data; no secret in the capture bytes",
    async () => {
      await using server = await startTestServer();
      await using dir = await tempDir("tlschat-capture-");
      const file = dir.file("tls13.pcapng");
      const identity = await testIdentity("capture");
      const session = await captured(server.port, file, () => runSession(server, presenting(identity)));

      const certificate = { label: "server certificate (DER)", bytes: new X509Certificate(server.certificate.certPem).raw };
      const clientCertificate = { label: "client certificate (DER)", bytes: new X509Certificate(identity.certPem).raw };
      const report = await inspectCapture(file, server.port, [...session.secrets, ...session.users, ...PROTOCOL_FRAGMENTS, certificate, clientCertificate]);
      const context = JSON.stringify(report, null, 1);

      // Handshake: ServerHello selects TLS 1.3 through supported_versions (its legacy version stays 0x0303).
      for (const hello of report.serverHellos) {
        expect(hello.supportedVersion, context).toBe("0x0304");
        expect(hello.version, context).toBe("0x0303");
        expect(["0x1301", "0x1302", "0x1303"], context).toContain(hello.cipherSuite);
      }
      // Only Client Hello (1) and Server Hello (2) are readable; the certificate (11) is encrypted.
      expect(report.handshakeTypes, context).toEqual([1, 2]);
      // Records: handshake (22, the hellos), application data (23), and change_cipher_spec (20) if
      // the peers use middlebox compatibility mode (Bun does); never a visible alert (21).
      expect(report.recordTypes, context).toEqual(expect.arrayContaining([22, 23]));
      expect(report.recordTypes.every((type) => [20, 22, 23].includes(type)), context).toBe(true);
      expectOnlyTls(report, server.port, 3, true);

      // Nothing secret (nor either certificate, which TLS 1.3 encrypts) in the raw file bytes.
      expect(report.found, context).toEqual([]);
      expect(session.secrets.length).toBe(11);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "legacy mode: TLS 1.2 with AES128-SHA (0x002f) still hides every secret",
    async () => {
      await using server = await startTestServer({
        keyType: "rsa",
        tls: { minVersion: "1.2", maxVersion: "1.2", ciphers: "AES128-SHA" },
      });
      await using dir = await tempDir("tlschat-capture-");
      const file = dir.file("tls12.pcapng");
      const identity = await testIdentity("capture");
      const session = await captured(server.port, file, () =>
        runSession(server, { maxVersion: 771, ciphers: "AES128-SHA", ...presenting(identity) }),
      );

      const certificate = { label: "server certificate (DER)", bytes: new X509Certificate(server.certificate.certPem).raw };
      const clientCertificate = { label: "client certificate (DER)", bytes: new X509Certificate(identity.certPem).raw };
      const report = await inspectCapture(file, server.port, [...session.secrets, ...session.users, ...PROTOCOL_FRAGMENTS, certificate, clientCertificate]);
      const context = JSON.stringify(report, null, 1);

      for (const hello of report.serverHellos) {
        expect(hello.version, context).toBe("0x0303");
        expect(hello.supportedVersion, context).toBe(""); // no supported_versions extension: not TLS 1.3
        expect(hello.cipherSuite, context).toBe("0x002f"); // TLS_RSA_WITH_AES_128_CBC_SHA
      }
      // TLS 1.2 shows more of the handshake in clear: Certificate (11, both sides'),
      // CertificateRequest (13), ServerHelloDone (14), CertificateVerify (15), ClientKeyExchange
      // (16), NewSessionTicket (4); Finished is encrypted.
      expect(report.handshakeTypes, context).toEqual(expect.arrayContaining([1, 2, 11, 13, 14, 15, 16]));
      expect(report.handshakeTypes.every((type) => [1, 2, 4, 11, 13, 14, 15, 16].includes(type)), context).toBe(true);
      // 21 = close_notify alerts at the end (encrypted, but the record type is visible in TLS 1.2).
      expect(report.recordTypes.every((type) => [20, 21, 22, 23].includes(type)), context).toBe(true);
      expectOnlyTls(report, server.port, 3, false);

      // The certificates are visible in TLS 1.2, the client's identity too; nothing else is.
      expect(report.found, context).toEqual([certificate.label, clientCertificate.label]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "control: the same capture and search find a marker and non-TLS bytes on a plaintext connection",
    async () => {
      await using dir = await tempDir("tlschat-capture-");
      const file = dir.file("plain.pcapng");
      const marker = `plain-${randomUUID()}`;
      let received!: (text: string) => void;
      const arrived = new Promise<string>((resolve) => (received = resolve));
      let text = "";
      const listener = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          data(_socket, chunk) {
            text += chunk.toString();
            if (text.includes("\n")) received(text);
          },
        },
      });
      try {
        await captured(listener.port, file, async () => {
          let closed!: () => void;
          const isClosed = new Promise<void>((resolve) => (closed = resolve));
          const socket = await Bun.connect({
            hostname: "127.0.0.1",
            port: listener.port,
            socket: { data() {}, close: () => closed() },
          });
          socket.write(JSON.stringify({ type: "say", text: marker }) + "\n");
          expect(await withTimeout(arrived, 5_000, "the plaintext line")).toContain(marker);
          socket.end();
          await withTimeout(isClosed, 5_000, "the plaintext socket to close");
        });
      } finally {
        listener.stop(true);
      }

      const report = await inspectCapture(file, listener.port, [marker, ...PROTOCOL_FRAGMENTS]);
      const context = JSON.stringify(report, null, 1);
      expect(report.found, context).toEqual([marker, '"type":"say"', '"text":']);
      expect(report.nonTlsPackets, context).toBeGreaterThan(0);
      const flow = report.flows.find((candidate) => candidate.bytes > 0);
      expect(flow?.notTls, context).toContain("not TLS");
      expect(report.accounting.toServer.tlsRecordBytes, context).not.toBe(report.accounting.toServer.tcpPayload);
    },
    TEST_TIMEOUT_MS,
  );
});

