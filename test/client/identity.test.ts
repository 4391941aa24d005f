// Loading an identity file: the certificate and key of one PEM file, in either order, and every
// way a file can be unusable, each told apart so the CLI can say what to do about it.

import { describe, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { defaultIdentityPath, IdentityError, loadIdentity, type IdentityProblem } from "../../src/client/identity.ts";
import { testIdentity } from "../helpers/certs.ts";
import { tempDir } from "../helpers/tmp.ts";

async function problemOf(path: string): Promise<IdentityProblem> {
  const error = await loadIdentity(path).catch((reason: unknown) => reason);
  if (!(error instanceof IdentityError)) throw new Error(`expected an IdentityError, got ${String(error)}`);
  expect(error.path).toBe(path);
  return error.problem;
}

describe("loadIdentity", () => {
  test("reads certificate and key from one file, in either order, with the certificate's fingerprint", async () => {
    await using dir = await tempDir();
    const identity = await testIdentity("alice");
    for (const [name, text] of [["cert-first.pem", identity.certPem + identity.keyPem], ["key-first.pem", identity.keyPem + identity.certPem]]) {
      await writeFile(dir.file(name!), text!);
      const loaded = await loadIdentity(dir.file(name!));
      expect(loaded).toEqual({ path: dir.file(name!), certPem: identity.certPem, keyPem: identity.keyPem, fingerprint256: identity.fingerprint256 });
    }
  });

  test("tells a missing file, a file without a certificate or key, a mismatched pair and garbage apart", async () => {
    await using dir = await tempDir();
    const alice = await testIdentity("alice");
    const bob = await testIdentity("bob");
    const files: Array<[string, string, IdentityProblem]> = [
      ["key-only.pem", alice.keyPem, "no_certificate"],
      ["cert-only.pem", alice.certPem, "no_key"],
      ["mismatch.pem", alice.certPem + bob.keyPem, "mismatch"],
      ["broken-cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + alice.keyPem, "no_certificate"],
      ["broken-key.pem", alice.certPem + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no_key"],
      ["garbage.pem", "not a PEM file at all", "no_certificate"],
    ];
    for (const [name, text] of files) await writeFile(dir.file(name), text);
    expect(await problemOf(dir.file("absent.pem"))).toBe("missing");
    for (const [name, , problem] of files) expect(await problemOf(dir.file(name))).toBe(problem);
  });

  test("a path that exists but cannot be read (a directory) is unreadable, not missing", async () => {
    await using dir = await tempDir();
    expect(await problemOf(dir.path)).toBe("unreadable");
  });
});

test("the default identity is identity.pem beside known_hosts", () => {
  expect(defaultIdentityPath({ XDG_CONFIG_HOME: "/x/config", HOME: "/home/u" })).toBe("/x/config/tlschat/identity.pem");
  expect(defaultIdentityPath({ HOME: "/home/u" })).toBe("/home/u/.config/tlschat/identity.pem");
});
