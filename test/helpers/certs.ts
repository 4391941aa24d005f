// Test certificates, generated once per test process and shared: one ECDSA (the default kind)
// and one RSA (for the legacy TLS 1.2 AES128-SHA mode), both for localhost and 127.0.0.1.

import { generateSelfSigned, type CertificatePair } from "../../src/tls/certificate.ts";

const cache = new Map<string, Promise<CertificatePair>>();

export function testCertificate(keyType: "ec" | "rsa" = "ec", sans = ["localhost", "127.0.0.1"]): Promise<CertificatePair> {
  const key = `${keyType}:${sans.join(",")}`;
  let pair = cache.get(key);
  if (!pair) {
    pair = generateSelfSigned({ keyType, sans, days: 30 });
    cache.set(key, pair);
  }
  return pair;
}
