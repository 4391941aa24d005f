// Turns the operator's TLS choices into Bun's socket options, refusing anything that would be
// silently wrong: Bun listens in plaintext when cert or key is missing, wants versions as
// numbers, and a cipher that does not fit the key type only fails at the first handshake.

import { X509Certificate, createPrivateKey } from "node:crypto";

export type TlsVersionName = "1.2" | "1.3";

export interface TlsSettings {
  cert: string;
  key: string;
  minVersion: TlsVersionName;
  maxVersion: TlsVersionName;
  /** OpenSSL cipher list for TLS 1.2; TLS 1.3 suites are not configurable in Bun. */
  ciphers?: string;
}

/** Bun's TLS options including the fields its type declarations leave out. */
export interface BunTlsOptions {
  cert: string;
  key: string;
  minVersion: number;
  maxVersion: number;
  ciphers?: string;
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

/** What is wrong with the settings, with the facts a caller needs to word it for its own users. */
export type TlsConfigProblem =
  | { kind: "certificate_missing" }
  | { kind: "key_missing" }
  | { kind: "certificate_unparsable"; reason: string }
  | { kind: "key_unparsable"; reason: string }
  | { kind: "key_mismatch" }
  | { kind: "min_above_max"; minVersion: TlsVersionName; maxVersion: TlsVersionName }
  | { kind: "ciphers_without_tls12" }
  | { kind: "ciphers_empty" }
  | { kind: "ciphers_unfit_for_key"; ciphers: string; keyType: string };

export class TlsConfigError extends Error {
  override name = "TlsConfigError";
  constructor(readonly problem: TlsConfigProblem) {
    super(describeProblem(problem));
  }
}

function describeProblem(problem: TlsConfigProblem): string {
  switch (problem.kind) {
    case "certificate_missing":
      return "The certificate is missing or is not a PEM certificate";
    case "key_missing":
      return "The private key is missing or is not a PEM private key";
    case "certificate_unparsable":
      return `The certificate cannot be parsed: ${problem.reason}`;
    case "key_unparsable":
      return `The private key cannot be parsed: ${problem.reason}`;
    case "key_mismatch":
      return "The private key does not belong to the certificate";
    case "min_above_max":
      return `The lowest TLS version ${problem.minVersion} is above the highest ${problem.maxVersion}`;
    case "ciphers_without_tls12":
      return "A cipher list only applies to TLS 1.2, which these settings do not allow";
    case "ciphers_empty":
      return "The cipher list is empty";
    case "ciphers_unfit_for_key":
      return (
        `None of the ciphers ${problem.ciphers} works with this ${problem.keyType.toUpperCase()} key` +
        (problem.keyType === "ec" ? "; AES128-SHA and other RSA suites need an RSA certificate" : "")
      );
    default: {
      const unreachable: never = problem;
      throw new Error(`Unknown TLS configuration problem ${JSON.stringify(unreachable)}`);
    }
  }
}

const VERSION_NUMBER: Record<TlsVersionName, number> = { "1.2": 771, "1.3": 772 };

/** Forward-secret, authenticated-encryption suites for TLS 1.2. */
export const TLS12_MODERN_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

export interface ServerTls {
  options: BunTlsOptions;
  /** Things the operator should hear about at start (legacy modes). */
  warnings: string[];
  fingerprint256: string;
}

export function buildServerTls(settings: TlsSettings): ServerTls {
  if (typeof settings.cert !== "string" || !settings.cert.includes("-----BEGIN CERTIFICATE-----")) {
    throw new TlsConfigError({ kind: "certificate_missing" });
  }
  if (typeof settings.key !== "string" || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(settings.key)) {
    throw new TlsConfigError({ kind: "key_missing" });
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(settings.cert);
  } catch (error) {
    throw new TlsConfigError({ kind: "certificate_unparsable", reason: (error as Error).message });
  }
  let keyType: string;
  try {
    const key = createPrivateKey(settings.key);
    keyType = key.asymmetricKeyType ?? "unknown";
    if (!certificate.checkPrivateKey(key)) throw new TlsConfigError({ kind: "key_mismatch" });
  } catch (error) {
    if (error instanceof TlsConfigError) throw error;
    throw new TlsConfigError({ kind: "key_unparsable", reason: (error as Error).message });
  }

  const minVersion = VERSION_NUMBER[settings.minVersion];
  const maxVersion = VERSION_NUMBER[settings.maxVersion];
  if (minVersion > maxVersion) {
    throw new TlsConfigError({ kind: "min_above_max", minVersion: settings.minVersion, maxVersion: settings.maxVersion });
  }
  const warnings: string[] = [];
  // Ask every client for a certificate but demand none, and trust no chain: a certificate only
  // names a key, whose fingerprint the server compares with the accounts' (client-key.ts).
  const options: BunTlsOptions = { cert: settings.cert, key: settings.key, minVersion, maxVersion, requestCert: true, rejectUnauthorized: false };
  const allowsTls12 = minVersion <= VERSION_NUMBER["1.2"];
  if (settings.ciphers !== undefined) {
    if (!allowsTls12) throw new TlsConfigError({ kind: "ciphers_without_tls12" });
    const ciphers = settings.ciphers.split(":").filter((name) => name.length > 0);
    if (ciphers.length === 0) throw new TlsConfigError({ kind: "ciphers_empty" });
    const usable = ciphers.filter((name) => cipherFitsKey(name, keyType));
    if (usable.length === 0) throw new TlsConfigError({ kind: "ciphers_unfit_for_key", ciphers: settings.ciphers, keyType });
    const withoutForwardSecrecy = ciphers.filter((name) => !/^(ECDHE|DHE)-/.test(name));
    if (withoutForwardSecrecy.length > 0) {
      warnings.push(
        `Legacy cipher ${withoutForwardSecrecy.join(", ")} has no forward secrecy: a stolen server key decrypts recorded traffic`,
      );
    }
    options.ciphers = settings.ciphers;
  } else if (allowsTls12) {
    options.ciphers = TLS12_MODERN_CIPHERS;
  }
  if (maxVersion < VERSION_NUMBER["1.3"]) warnings.push("TLS 1.3 is disabled; clients negotiate TLS 1.2");
  return { options, warnings, fingerprint256: certificate.fingerprint256 };
}

/** Whether a TLS 1.2 suite can be served with this key type (ECDSA suites need EC, the rest RSA). */
function cipherFitsKey(cipher: string, keyType: string): boolean {
  if (cipher.includes("ECDSA")) return keyType === "ec";
  if (/^(PSK|DHE-PSK|ECDHE-PSK|SRP)/.test(cipher)) return false;
  return keyType === "rsa";
}
