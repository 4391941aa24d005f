// Test certificates, generated once per test process and shared: one ECDSA (the default kind)
// and one RSA (for the legacy TLS 1.2 AES128-SHA mode), both for localhost and 127.0.0.1; and
// client identities for key login, one per name, plus deliberately unusable ones.

// @peculiar/x509 relies on decorator metadata that only exists once reflect-metadata has loaded.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { generateIdentity, generateSelfSigned, fingerprint256, type CertificatePair } from "../../src/tls/certificate.ts";

const cache = new Map<string, Promise<CertificatePair>>();

function cached(key: string, make: () => Promise<CertificatePair>): Promise<CertificatePair> {
  let pair = cache.get(key);
  if (!pair) {
    pair = make();
    cache.set(key, pair);
  }
  return pair;
}

export function testCertificate(keyType: "ec" | "rsa" = "ec", sans = ["localhost", "127.0.0.1"]): Promise<CertificatePair> {
  return cached(`${keyType}:${sans.join(",")}`, () => generateSelfSigned({ keyType, sans, days: 30 }));
}

/** A client identity as `gencert --identity` makes it; the same `name` gives the same one. */
export function testIdentity(name: string): Promise<CertificatePair> {
  return cached(`identity:${name}`, generateIdentity);
}

/** The Bun TLS options that present an identity. */
export function presenting(identity: Pick<CertificatePair, "certPem" | "keyPem">): { cert: string; key: string } {
  return { cert: identity.certPem, key: identity.keyPem };
}

/** An ECDSA identity whose validity ended years ago: the server must not care. */
export function expiredIdentity(): Promise<CertificatePair> {
  return cached("identity:expired", async () => {
    const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: "01",
      name: "CN=expired",
      notBefore: new Date("2000-01-01T00:00:00Z"),
      notAfter: new Date("2001-01-01T00:00:00Z"),
      keys,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    });
    const certPem = cert.toString("pem") + "\n";
    const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY") + "\n";
    return { certPem, keyPem, fingerprint256: fingerprint256(certPem) };
  });
}

/** A self-signed identity made by openssl with `-newkey` (`rsa:512`, `ed25519`): kinds WebCrypto will not make. */
export function opensslIdentity(newkey: string): Promise<CertificatePair> {
  return cached(`identity:${newkey}`, async () => {
    const base = `${process.env.TMPDIR ?? "/tmp"}/tlschat-identity-${newkey.replace(/\W/g, "")}-${process.pid}`;
    const made = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", newkey, "-nodes", "-keyout", `${base}.key`, "-out", `${base}.crt`, "-subj", "/CN=test", "-days", "2"],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (made.exitCode !== 0) throw new Error(`openssl could not make a ${newkey} certificate: ${made.stderr.toString()}`);
    const certPem = await Bun.file(`${base}.crt`).text();
    const keyPem = await Bun.file(`${base}.key`).text();
    await Promise.all([Bun.file(`${base}.crt`).delete(), Bun.file(`${base}.key`).delete()]);
    return { certPem, keyPem, fingerprint256: fingerprint256(certPem) };
  });
}
