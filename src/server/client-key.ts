// What a connection's client certificate makes of it: a key, the SHA-256 fingerprint of the
// certificate the TLS handshake proved the client holds the private key of, or none. Neither a
// chain nor validity dates count (the key is the identity, as with SSH keys), but a public key
// too weak to prove anything gives no key at all.

import { X509Certificate } from "node:crypto";
import { FINGERPRINT_PATTERN } from "../protocol/validate.ts";

/** Shorter RSA moduli are within reach of factoring, so a login with one would prove nothing. */
const MIN_CLIENT_RSA_BITS = 2048;
/** Named curves as node:crypto calls them; all at least as strong as a 3072-bit RSA key. */
const ACCEPTED_CURVES: ReadonlySet<string> = new Set(["prime256v1", "secp384r1", "secp521r1"]);
const ACCEPTED_EDWARDS_KEYS: ReadonlySet<string> = new Set(["ed25519", "ed448"]);

/** The parts of Bun's `getPeerCertificate()` read here; empty when the client sent none. */
interface PeerCertificate {
  fingerprint256?: string;
  raw?: Uint8Array;
}

export function clientKeyOf(certificate: PeerCertificate | null | undefined): string | undefined {
  const fingerprint = certificate?.fingerprint256;
  if (!certificate?.raw || fingerprint === undefined || !FINGERPRINT_PATTERN.test(fingerprint)) return undefined;
  let publicKey;
  try {
    publicKey = new X509Certificate(certificate.raw).publicKey;
  } catch {
    return undefined;
  }
  const type = publicKey.asymmetricKeyType ?? "";
  const details = publicKey.asymmetricKeyDetails ?? {};
  const strong =
    ((type === "rsa" || type === "rsa-pss") && (details.modulusLength ?? 0) >= MIN_CLIENT_RSA_BITS) ||
    (type === "ec" && ACCEPTED_CURVES.has(details.namedCurve ?? "")) ||
    ACCEPTED_EDWARDS_KEYS.has(type);
  return strong ? fingerprint.toUpperCase() : undefined;
}
