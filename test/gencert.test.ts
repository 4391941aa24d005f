// The CLI's shared behaviour (help, version, usage errors) and `tlschat gencert`, checked with
// openssl and real TLS handshakes.

import { afterEach, describe, expect, test } from "bun:test";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json";
import { run } from "../src/cli/program.ts";
import {
  fingerprint256,
  generateSelfSigned,
  IDENTITY_VALIDITY_DAYS,
  parseSubjectAltName,
  writeCertificatePair,
} from "../src/tls/certificate.ts";
import { captureIO } from "./helpers/cli-io.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "tlschat-gencert-"));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function cli(...args: string[]) {
  const cap = captureIO();
  const code = await run(args, cap.io);
  return { code, stdout: cap.stdout(), stderr: cap.stderr() };
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** Runs openssl asynchronously (a TLS server in this process must keep serving meanwhile). */
async function openssl(...args: string[]) {
  const proc = Bun.spawn(["openssl", ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: 10_000,
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr, output: stdout + stderr };
}

async function gencert(dir: string, ...extra: string[]) {
  const result = await cli("gencert", "--out", dir, ...extra);
  return { ...result, certPath: join(dir, "cert.pem"), keyPath: join(dir, "key.pem") };
}

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

async function withTlsServer<T>(dir: string, body: (port: number) => Promise<T>): Promise<T> {
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      cert: await readFile(join(dir, "cert.pem"), "utf8"),
      key: await readFile(join(dir, "key.pem"), "utf8"),
    },
    socket: { data() {}, error() {} },
  });
  try {
    return await body(server.port);
  } finally {
    server.stop(true);
  }
}

describe("tlschat CLI", () => {
  test("--help prints usage and exits 0", async () => {
    const r = await cli("--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: tlschat");
    expect(r.stdout).toContain("gencert");
    expect(r.stderr).toBe("");
  });

  test("--version prints package.json's version and exits 0", async () => {
    const r = await cli("--version");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  test("an unknown command exits 2 with one line on stderr", async () => {
    const r = await cli("frobnicate");
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain("frobnicate");
    expect(r.stdout).toBe("");
  });

  test("an unknown option exits 2 with one line on stderr", async () => {
    const r = await cli("gencert", "--bogus");
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain("--bogus");
  });
});

describe("tlschat gencert options", () => {
  test("--help shows the options, the environment variable and an example", async () => {
    const r = await cli("gencert", "--help");
    expect(r.code).toBe(0);
    for (const text of ["--out <dir>", "TLSCHAT_CERT_DIR", "--key-type", "--san", "--days", "--force", "Example"]) {
      expect(r.stdout).toContain(text);
    }
  });

  for (const bad of [
    ["--days", "0"],
    ["--days", "3651"],
    ["--days", "1.5"],
    ["--days", "abc"],
    ["--key-type", "dsa"],
    ["--san", "not a host"],
    ["--san", "fe80::1%eth0"],
    ["--san", ""],
  ]) {
    test(`${bad.join(" ")} is a usage error and writes nothing`, async () => {
      const dir = join(await tempDir(), "out");
      const r = await gencert(dir, ...bad);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(bad[0]!);
      expect(await Bun.file(r.certPath).exists()).toBe(false);
    });
  }
});

describe("tlschat gencert", () => {
  test("writes the certificate 0644 and the key 0600, creating the directory", async () => {
    const dir = join(await tempDir(), "nested", "certs");
    const r = await gencert(dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(await modeOf(r.certPath)).toBe(0o644);
    expect(await modeOf(r.keyPath)).toBe(0o600);
    expect(await readFile(r.certPath, "utf8")).toStartWith("-----BEGIN CERTIFICATE-----\n");
    expect(await readFile(r.keyPath, "utf8")).toStartWith("-----BEGIN PRIVATE KEY-----\n");
    expect(r.stdout).toContain(r.certPath);
    expect(r.stdout).toContain(r.keyPath);
  });

  test("prints the fingerprint exactly as openssl computes it", async () => {
    const dir = await tempDir();
    const r = await gencert(dir);
    const printed = lines(r.stdout).find((line) => line.startsWith("SHA256 Fingerprint="));
    expect(printed).toMatch(/^SHA256 Fingerprint=([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const o = await openssl("x509", "-in", r.certPath, "-noout", "-fingerprint", "-sha256");
    expect(o.code).toBe(0);
    expect(printed!.split("=")[1]).toBe(o.stdout.trim().split("=")[1]!);
  });

  test("the default certificate is EC P-256 for localhost, 127.0.0.1 and ::1, valid 397 days", async () => {
    const dir = await tempDir();
    const before = Date.now();
    const r = await gencert(dir);
    expect(r.code).toBe(0);
    const text = await openssl("x509", "-in", r.certPath, "-noout", "-text");
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1\n");
    expect(text.stdout).toContain("Public Key Algorithm: id-ecPublicKey");
    expect(text.stdout).toContain("ASN1 OID: prime256v1");
    expect(text.stdout).toContain("Signature Algorithm: ecdsa-with-SHA256");
    expect(text.stdout).toContain("Subject: CN = localhost");
    expect(text.stdout).toMatch(/Basic Constraints: critical\n\s+CA:FALSE/);
    expect(text.stdout).toMatch(/Key Usage: critical\n\s+Digital Signature\n/);
    expect(text.stdout).toContain("TLS Web Server Authentication");

    const dates = await openssl("x509", "-in", r.certPath, "-noout", "-dates");
    const notBefore = Date.parse(/notBefore=(.*)/.exec(dates.stdout)![1]!);
    const notAfter = Date.parse(/notAfter=(.*)/.exec(dates.stdout)![1]!);
    // Back-dated five minutes for clock skew; openssl prints whole seconds.
    expect(Math.abs(notBefore - (before - 5 * 60 * 1000))).toBeLessThan(10_000);
    expect(Math.abs(notAfter - (before + 397 * DAY_MS))).toBeLessThan(10_000);
    expect(createPrivateKey(await readFile(r.keyPath, "utf8")).asymmetricKeyType).toBe("ec");
  });

  test("--key-type rsa makes a 2048-bit RSA key", async () => {
    const dir = await tempDir();
    const r = await gencert(dir, "--key-type", "rsa", "--days", "30");
    expect(r.code).toBe(0);
    const text = await openssl("x509", "-in", r.certPath, "-noout", "-text");
    expect(text.stdout).toContain("Public Key Algorithm: rsaEncryption");
    expect(text.stdout).toContain("Public-Key: (2048 bit)");
    expect(text.stdout).toContain("Signature Algorithm: sha256WithRSAEncryption");
    // TLS 1.2 RSA key exchange encrypts to this key; OpenSSL does not insist, stricter clients do.
    expect(text.stdout).toMatch(/Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/);
    expect(createPrivateKey(await readFile(r.keyPath, "utf8")).asymmetricKeyType).toBe("rsa");
    const cert = new X509Certificate(await readFile(r.certPath));
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / DAY_MS;
    expect(days).toBeCloseTo(30 + 5 / (24 * 60), 3);
  });

  test("--san replaces the defaults, takes commas and names the subject after the first", async () => {
    const dir = await tempDir();
    const r = await gencert(dir, "--san", "chat.example.com", "--san", "10.0.0.7,::ffff:192.0.2.1,[2001:db8::1]");
    expect(r.code).toBe(0);
    const text = await openssl("x509", "-in", r.certPath, "-noout", "-text");
    expect(text.stdout).toContain(
      "DNS:chat.example.com, IP Address:10.0.0.7, IP Address:0:0:0:0:0:FFFF:C000:201, IP Address:2001:DB8:0:0:0:0:0:1\n",
    );
    expect(text.stdout).toContain("Subject: CN = chat.example.com");
    expect(text.stdout).not.toContain("localhost");
  });

  test("refuses to overwrite without --force and leaves both files as they were", async () => {
    const dir = await tempDir();
    const first = await gencert(dir);
    expect(first.code).toBe(0);
    const cert = await readFile(first.certPath);
    const key = await readFile(first.keyPath);

    const again = await gencert(dir);
    expect(again.code).toBe(1);
    expect(lines(again.stderr)).toHaveLength(1);
    expect(again.stderr).toContain(first.certPath);
    expect(again.stderr).toContain("--force");
    expect(again.stdout).toBe("");
    expect(await readFile(first.certPath)).toEqual(cert);
    expect(await readFile(first.keyPath)).toEqual(key);
  });

  test("refuses when only the key exists, without writing the certificate", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "key.pem"), "old key\n", { mode: 0o600 });
    const r = await gencert(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(dir, "key.pem"));
    expect(await Bun.file(join(dir, "cert.pem")).exists()).toBe(false);
    expect(await readFile(join(dir, "key.pem"), "utf8")).toBe("old key\n");
  });

  test("--force replaces both files and makes a world-readable old key 0600", async () => {
    const dir = await tempDir();
    const first = await gencert(dir);
    await chmod(first.keyPath, 0o644);
    await chmod(first.certPath, 0o600);
    const oldKey = await readFile(first.keyPath, "utf8");

    const second = await gencert(dir, "--force");
    expect(second.code).toBe(0);
    expect(await readFile(first.keyPath, "utf8")).not.toBe(oldKey);
    expect(await modeOf(first.keyPath)).toBe(0o600);
    expect(await modeOf(first.certPath)).toBe(0o644);
    const printed = lines(second.stdout).at(-1)!.split("=")[1];
    expect(printed).toBe(fingerprint256(await readFile(first.certPath, "utf8")));
    expect(printed).not.toBe(lines(first.stdout).at(-1)!.split("=")[1]);
  });
});

describe("a generated certificate in a real TLS handshake", () => {
  for (const keyType of ["ec", "rsa"]) {
    test(`openssl s_client trusts a ${keyType} certificate as its CA and checks the host name`, async () => {
      const dir = await tempDir();
      expect((await gencert(dir, "--key-type", keyType)).code).toBe(0);
      const ca = join(dir, "cert.pem");
      await withTlsServer(dir, async (port) => {
        const connect = ["s_client", "-connect", `127.0.0.1:${port}`, "-verify_return_error", "-CAfile", ca];
        const good = await openssl(...connect, "-verify_hostname", "localhost");
        expect(good.output).toContain("Verify return code: 0 (ok)");
        expect(good.code).toBe(0);

        const ip = await openssl(...connect, "-verify_ip", "127.0.0.1", "-x509_strict");
        expect(ip.output).toContain("Verify return code: 0 (ok)");
        expect(ip.code).toBe(0);

        const wrong = await openssl(...connect, "-verify_hostname", "wrong.example");
        expect(wrong.output).toContain("hostname mismatch");
        expect(wrong.code).not.toBe(0);
      });
    });
  }

  test("a TLS 1.2 client using RSA key exchange accepts an RSA certificate", async () => {
    const dir = await tempDir();
    expect((await gencert(dir, "--key-type", "rsa")).code).toBe(0);
    await withTlsServer(dir, async (port) => {
      const r = await openssl(
        "s_client", "-connect", `127.0.0.1:${port}`, "-verify_return_error",
        "-CAfile", join(dir, "cert.pem"), "-tls1_2", "-cipher", "AES128-SHA",
      );
      expect(r.output).toContain("Cipher is AES128-SHA");
      expect(r.code).toBe(0);
    });
  });

  test("Bun.connect with the certificate as CA accepts the server and rejects a wrong name", async () => {
    const dir = await tempDir();
    expect((await gencert(dir)).code).toBe(0);
    const ca = await readFile(join(dir, "cert.pem"), "utf8");
    const handshake = (port: number, serverName: string) =>
      new Promise<{ authorized: boolean; error: string | undefined }>((resolve, reject) => {
        Bun.connect({
          hostname: "127.0.0.1",
          port,
          tls: { ca, serverName, rejectUnauthorized: true },
          socket: {
            handshake(socket, authorized, error) {
              resolve({ authorized, error: (error as NodeJS.ErrnoException | null)?.code ?? error?.message });
              socket.end();
            },
            data() {},
            error(_socket, error) {
              reject(error);
            },
            connectError(_socket, error) {
              reject(error);
            },
          },
        }).catch(reject);
      });
    await withTlsServer(dir, async (port) => {
      expect(await handshake(port, "localhost")).toEqual({ authorized: true, error: undefined });
      const wrong = await handshake(port, "wrong.example").catch((error: Error) => ({
        authorized: false,
        error: error.message,
      }));
      expect(wrong).toEqual({ authorized: false, error: "ERR_TLS_CERT_ALTNAME_INVALID" });
    });
  });
});

describe("tls/certificate", () => {
  test("parseSubjectAltName tells IPs from host names and rejects the rest", () => {
    expect(parseSubjectAltName("127.0.0.1")).toEqual({ type: "ip", value: "127.0.0.1" });
    expect(parseSubjectAltName("::1")).toEqual({ type: "ip", value: "0:0:0:0:0:0:0:1" });
    expect(parseSubjectAltName("Chat.Example.com.")).toEqual({ type: "dns", value: "Chat.Example.com" });
    expect(parseSubjectAltName("*.example.com")).toEqual({ type: "dns", value: "*.example.com" });
    for (const bad of ["", "a b", "*.com", "exa*mple.com", "-bad.example", "1.2.3.4:80", "a..b"]) {
      expect(() => parseSubjectAltName(bad)).toThrow();
    }
  });

  test("generateSelfSigned rejects bad input before making a key", async () => {
    await expect(generateSelfSigned({ keyType: "ec", sans: [], days: 1 })).rejects.toThrow("at least one");
    await expect(generateSelfSigned({ keyType: "ec", sans: ["localhost"], days: 0 })).rejects.toThrow("days");
    await expect(generateSelfSigned({ keyType: "ec", sans: ["localhost"], days: 1, commonName: "x".repeat(65) })).rejects.toThrow(
      "common name",
    );
  });

  test("a long first SAN does not become an over-long common name", async () => {
    const long = `${"a".repeat(60)}.example.com`;
    const pair = await generateSelfSigned({ keyType: "ec", sans: [long], days: 1 });
    const cert = new X509Certificate(pair.certPem);
    expect(cert.subject).toBe("CN=tlschat");
    expect(cert.subjectAltName).toBe(`DNS:${long}`);
  });

  test("serial numbers are 16 random bytes and positive", async () => {
    const serials = await Promise.all(
      [1, 2, 3].map(async () => new X509Certificate((await generateSelfSigned({ keyType: "ec", sans: ["a"], days: 1 })).certPem).serialNumber),
    );
    for (const serial of serials) {
      expect(serial).toMatch(/^[4-7][0-9A-F]{31}$/);
    }
    expect(new Set(serials).size).toBe(3);
  });

  test("writeCertificatePair refuses the same path for both files", async () => {
    const dir = await tempDir();
    const path = join(dir, "both.pem");
    await expect(writeCertificatePair({ certPem: "c", keyPem: "k" }, { certPath: path, keyPath: path, force: true })).rejects.toThrow(
      "both",
    );
  });
});

describe("tlschat gencert --identity", () => {
  test("writes identity.pem (certificate, then key) 0600 in a 0700 config directory and prints openssl's fingerprint", async () => {
    const config = join(await tempDir(), "config");
    const cap = captureIO({ XDG_CONFIG_HOME: config });
    expect(await run(["gencert", "--identity"], cap.io)).toBe(0);
    const path = join(config, "tlschat", "identity.pem");
    expect(cap.stdout()).toContain(`identity: ${path}`);
    expect(await modeOf(path)).toBe(0o600);
    expect(await modeOf(join(config, "tlschat"))).toBe(0o700);
    const text = await readFile(path, "utf8");
    expect(text).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/);
    const printed = lines(cap.stdout()).find((line) => line.startsWith("SHA256 Fingerprint="));
    const o = await openssl("x509", "-in", path, "-noout", "-fingerprint", "-sha256");
    expect(printed!.split("=")[1]).toBe(o.stdout.trim().split("=")[1]!);
  });

  test("the identity is an ECDSA P-256 client certificate, long-lived, whose key is in the same file", async () => {
    const dir = await tempDir();
    expect((await cli("gencert", "--identity", "--out", dir)).code).toBe(0);
    const text = await readFile(join(dir, "identity.pem"), "utf8");
    const certificate = new X509Certificate(text);
    expect(certificate.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(certificate.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"]); // clientAuth
    expect(new Date(certificate.validTo).getTime() - Date.now()).toBeGreaterThan((IDENTITY_VALIDITY_DAYS - 1) * DAY_MS);
    const check = await openssl("x509", "-in", join(dir, "identity.pem"), "-noout", "-checkend", "0");
    expect(check.code).toBe(0);
    const key = await openssl("pkey", "-in", join(dir, "identity.pem"), "-noout");
    expect(key.code).toBe(0);
  });

  test("refuses to replace an identity without --force; --force makes a new key", async () => {
    const dir = await tempDir();
    await cli("gencert", "--identity", "--out", dir);
    const first = await readFile(join(dir, "identity.pem"), "utf8");
    const again = await cli("gencert", "--identity", "--out", dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("--force");
    expect(await readFile(join(dir, "identity.pem"), "utf8")).toBe(first);
    expect((await cli("gencert", "--identity", "--out", dir, "--force")).code).toBe(0);
    expect(await readFile(join(dir, "identity.pem"), "utf8")).not.toBe(first);
  });

  test("--identity with server-certificate options is a usage error and writes nothing", async () => {
    const dir = await tempDir();
    for (const extra of [["--san", "example.com"], ["--key-type", "rsa"], ["--days", "30"]]) {
      const r = await cli("gencert", "--identity", "--out", dir, ...extra);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toHaveLength(1);
    }
    expect(await Bun.file(join(dir, "identity.pem")).exists()).toBe(false);
  });
});
