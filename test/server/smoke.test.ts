import { expect, test } from "bun:test";
import { TestClient } from "../helpers/client.ts";
import { startTestServer } from "../helpers/server.ts";

test("two clients register, log in and chat", async () => {
  await using server = await startTestServer();
  const ca = server.certificate.certPem;
  await using alice = await TestClient.connect({ port: server.port, ca });
  await using bob = await TestClient.connect({ port: server.port, ca });
  expect(alice.tlsVersion).toBe("TLSv1.3");
  await alice.register("alice", "correct horse");
  await bob.register("bob", "battery staple");
  await alice.login("alice", "correct horse");
  await bob.login("bob", "battery staple");
  expect((await alice.next("online")).user).toBe("bob");
  alice.send({ type: "say", text: "hi bob" });
  const msg = await bob.next("msg");
  expect(msg).toMatchObject({ from: "alice", text: "hi bob", id: 1 });
});
