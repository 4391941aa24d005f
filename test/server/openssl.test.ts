// A foreign client: `openssl s_client` verifying the server against its certificate and speaking
// the protocol by hand, line by line, with a TestClient on the other side of the room; and
// presenting a client certificate (`-cert -key`) to log in by key.

import { expect, test } from "bun:test";
import { testIdentity } from "../helpers/certs.ts";
import { SClientSession } from "../helpers/openssl.ts";
import { startTestServer } from "../helpers/server.ts";
import { tempDir } from "../helpers/tmp.ts";
import { newUser } from "./support.ts";

test("openssl s_client registers, logs in and chats with a TestClient", async () => {
  await using server = await startTestServer();
  await using dir = await tempDir();
  const caFile = dir.file("cert.pem");
  await Bun.write(caFile, server.certificate.certPem);
  await using bob = (await newUser(server, "bob")).client;

  await using openssl = SClientSession.start([
    "-connect",
    `127.0.0.1:${server.port}`,
    "-CAfile",
    caFile,
    "-verify_return_error",
    "-verify_ip",
    "127.0.0.1",
    "-quiet",
  ]);
  openssl.writeLine(JSON.stringify({ type: "register", user: "oscar", password: "oscar-password" }));
  expect(await openssl.nextFrame("registered", 10_000)).toEqual({ type: "registered", user: "oscar" });

  openssl.writeLine(JSON.stringify({ type: "login", user: "oscar", password: "oscar-password" }));
  const welcome = await openssl.nextFrame("welcome");
  expect(welcome.user).toBe("oscar");
  expect([...welcome.online].sort()).toEqual(["bob", "oscar"]);
  await openssl.nextFrame("history");
  expect((await bob.next("online")).user).toBe("oscar");

  openssl.writeLine(JSON.stringify({ type: "say", text: "hello from openssl" }));
  expect(await bob.next("msg")).toMatchObject({ from: "oscar", text: "hello from openssl" });

  bob.send({ type: "say", text: "hello, openssl" });
  expect(await openssl.nextFrame("msg")).toMatchObject({ from: "bob", text: "hello, openssl" });

  openssl.writeLine(JSON.stringify({ type: "quit" }));
  expect(await openssl.nextFrame("bye")).toEqual({ type: "bye" });
  expect((await bob.next("offline")).user).toBe("oscar");
}, 20_000);

test("openssl s_client with -cert and -key logs in by key to an account registered with that identity", async () => {
  await using server = await startTestServer();
  await using dir = await tempDir();
  const caFile = dir.file("cert.pem");
  await Bun.write(caFile, server.certificate.certPem);
  // The file `gencert --identity` writes: certificate and key in one PEM.
  const identity = await testIdentity("oscar");
  const identityFile = dir.file("identity.pem");
  await Bun.write(identityFile, identity.certPem + identity.keyPem);
  const common = ["-connect", `127.0.0.1:${server.port}`, "-CAfile", caFile, "-verify_return_error", "-quiet", "-cert", identityFile, "-key", identityFile];

  await using registering = SClientSession.start(common);
  registering.writeLine(JSON.stringify({ type: "register", user: "oscar", key: true }));
  expect(await registering.nextFrame("registered", 10_000)).toEqual({ type: "registered", user: "oscar" });

  await using openssl = SClientSession.start(common);
  openssl.writeLine(JSON.stringify({ type: "login", user: "oscar", key: true }));
  expect((await openssl.nextFrame("welcome", 10_000)).user).toBe("oscar");
  openssl.writeLine(JSON.stringify({ type: "keys" }));
  expect((await openssl.nextFrame("keys")).keys.map((key: { fingerprint: string }) => key.fingerprint)).toEqual([identity.fingerprint256]);
  expect(server.logs.find((entry) => entry.event === "login")?.fields).toMatchObject({ user: "oscar", method: "key" });
}, 20_000);

test("openssl s_client refuses the server when it does not trust the certificate", async () => {
  await using server = await startTestServer();
  await using openssl = SClientSession.start(["-connect", `127.0.0.1:${server.port}`, "-verify_return_error", "-quiet"]);
  const exitCode = await Promise.race([openssl.exited, Bun.sleep(5_000).then(() => "still running")]);
  expect(exitCode).not.toBe("still running");
  expect(exitCode).not.toBe(0);
  expect(server.logs.some((entry) => entry.event === "login")).toBe(false);
});
