// Self-signed certificates for a tlschat server and for a user's identity (a client certificate
// whose key logs in like an SSH key), their fingerprints and files; knows nothing of argv or output.

// @peculiar/x509 relies on decorator metadata that only exists once reflect-metadata has loaded.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate } from "node:crypto";
import { mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { isIP } from "node:net";
import { dirname } from "node:path";

export type KeyType = "ec" | "rsa";

export interface SelfSignedOptions {
  keyType: KeyType;
  /** Host names and IP addresses the certificate is valid for; IPs become IP SANs. */
  sans: readonly string[];
  /** Validity from now, in days. */
  days: number;
  /** Defaults to the first SAN. */
  commonName?: string;
}

export interface CertificatePair {
  certPem: string;
  keyPem: string;
  /** "AA:BB:..." as `openssl x509 -noout -fingerprint -sha256` prints it. */
  fingerprint256: string;
}

export interface WriteOptions {
  certPath: string;
  keyPath: string;
  force: boolean;
}

/** Why a certificate pair was not written: `path` already exists, or is both the cert and the key path. */
export class CertificateFileError extends Error {
  override name = "CertificateFileError";
  constructor(
    readonly kind: "exists" | "same_path",
    readonly path: string,
  ) {
    super(kind === "exists" ? `${path} already exists` : `certificate and key cannot both be written to ${path}`);
  }
}

/** What a server certificate made without further instructions is valid for: this machine. */
export const DEFAULT_SANS: readonly string[] = ["localhost", "127.0.0.1", "::1"];
// Browsers and Apple platforms reject server certificates valid for more than 398 days.
export const DEFAULT_VALIDITY_DAYS = 397;

const DAY_MS = 24 * 60 * 60 * 1000;
// Clients whose clock runs a little behind would otherwise reject a certificate made just now.
const CLOCK_SKEW_MS = 5 * 60 * 1000;
// RFC 5280 ub-common-name.
const MAX_COMMON_NAME = 64;

const EC_KEY = { name: "ECDSA", namedCurve: "P-256" };
const EC_SIGNATURE = { name: "ECDSA", hash: "SHA-256" };
const RSA_KEY = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};

export async function generateSelfSigned(opts: SelfSignedOptions): Promise<CertificatePair> {
  if (opts.keyType !== "ec" && opts.keyType !== "rsa") {
    throw new Error(`unknown key type "${String(opts.keyType)}" (expected ec or rsa)`);
  }
  if (!Number.isSafeInteger(opts.days) || opts.days < 1) {
    throw new Error(`certificate validity must be a positive number of days, got ${opts.days}`);
  }
  if (opts.sans.length === 0) throw new Error("a certificate needs at least one name (SAN)");
  const names = opts.sans.map(parseSubjectAltName);
  const commonName = opts.commonName ?? defaultCommonName(names);
  if (commonName.length === 0 || commonName.length > MAX_COMMON_NAME) {
    throw new Error(`common name must be 1 to ${MAX_COMMON_NAME} characters`);
  }
  const rsa = opts.keyType === "rsa";
  // RSA keys also get keyEncipherment for TLS 1.2 RSA key exchange.
  let usages = x509.KeyUsageFlags.digitalSignature;
  if (rsa) usages |= x509.KeyUsageFlags.keyEncipherment;
  return selfSigned(opts.keyType, commonName, opts.days, usages, x509.ExtendedKeyUsage.serverAuth, [new x509.SubjectAlternativeNameExtension(names)]);
}

/** What an identity certificate says of its holder: nothing, since the key alone is the identity. */
const IDENTITY_COMMON_NAME = "tlschat identity";
/** Servers ignore the validity of an identity; clients that do not should meet it rarely. */
export const IDENTITY_VALIDITY_DAYS = 3650;

/** A client certificate for key login: ECDSA P-256, usable for TLS client authentication only. */
export function generateIdentity(): Promise<CertificatePair> {
  return selfSigned("ec", IDENTITY_COMMON_NAME, IDENTITY_VALIDITY_DAYS, x509.KeyUsageFlags.digitalSignature, x509.ExtendedKeyUsage.clientAuth, []);
}

async function selfSigned(
  keyType: KeyType,
  commonName: string,
  days: number,
  usages: number,
  extendedUsage: string,
  extra: x509.Extension[],
): Promise<CertificatePair> {
  const rsa = keyType === "rsa";
  const keys = (await crypto.subtle.generateKey(rsa ? RSA_KEY : EC_KEY, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;

  // An end-entity certificate (CA:FALSE): OpenSSL, Bun and curl accept it as its own trust
  // anchor (`--ca cert.pem`), and unlike a CA:TRUE one, verifiers such as rustls do not reject
  // it as "CA used as end entity".
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // The JSON form, so a name with "," or "=" is not read as several attributes.
    name: [{ CN: [commonName] }],
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + days * DAY_MS),
    keys,
    signingAlgorithm: rsa ? RSA_KEY : EC_SIGNATURE,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usages, true),
      new x509.ExtendedKeyUsageExtension([extendedUsage]),
      ...extra,
      // Key identifiers: strict verifiers (OpenSSL -x509_strict, recent Python) expect them.
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  });

  const certPem = withFinalNewline(cert.toString("pem"));
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  const keyPem = withFinalNewline(x509.PemConverter.encode(pkcs8, "PRIVATE KEY"));
  return { certPem, keyPem, fingerprint256: fingerprint256(certPem) };
}

export function fingerprint256(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export async function writeCertificatePair(
  pair: Pick<CertificatePair, "certPem" | "keyPem">,
  opts: WriteOptions,
): Promise<void> {
  if (opts.certPath === opts.keyPath) throw new CertificateFileError("same_path", opts.certPath);
  // Check both first, so a refusal leaves neither file touched.
  if (!opts.force) {
    const present = await pairFilesExist(opts);
    if (present.cert) throw new CertificateFileError("exists", opts.certPath);
    if (present.key) throw new CertificateFileError("exists", opts.keyPath);
  }
  await writeExact(opts.certPath, pair.certPem, 0o644, opts.force);
  await writeExact(opts.keyPath, pair.keyPem, 0o600, opts.force);
}

/** Writes an identity (certificate, then key, in one file) with mode 0600; refuses to replace one unless `force`. */
export async function writeIdentityFile(pair: Pick<CertificatePair, "certPem" | "keyPem">, path: string, force: boolean): Promise<void> {
  // A directory made for it is as private as the key, like ssh's ~/.ssh.
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeExact(path, pair.certPem + pair.keyPem, 0o600, force);
}

/** Which of the two files exist; failing to look (other than "no such file") throws rather than counting as absent. */
export async function pairFilesExist(paths: Pick<WriteOptions, "certPath" | "keyPath">): Promise<{ cert: boolean; key: boolean }> {
  const [cert, key] = await Promise.all([exists(paths.certPath), exists(paths.keyPath)]);
  return { cert, key };
}

export interface SanEntry {
  type: "dns" | "ip";
  value: string;
}

/** Classifies one SAN as an IP or DNS name; throws if it is neither. */
export function parseSubjectAltName(raw: string): SanEntry {
  const text = raw.trim();
  const unbracketed = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const family = isIP(unbracketed);
  if (family === 4) return { type: "ip", value: unbracketed };
  if (family === 6) {
    // A zone ("fe80::1%eth0") only means something on one host; it cannot go in a certificate.
    if (unbracketed.includes("%")) throw new Error(`"${raw}" has a zone, which a certificate cannot hold`);
    return { type: "ip", value: expandIPv6(unbracketed) };
  }
  const dns = text.endsWith(".") ? text.slice(0, -1) : text;
  if (!isDnsName(dns)) throw new Error(`"${raw}" is neither a host name nor an IP address`);
  return { type: "dns", value: dns };
}

// @peculiar/asn1-x509 encodes "::ffff:1.2.3.4" wrongly (as ...:ffff:1), so it only ever gets
// eight plain hex groups.
function expandIPv6(ip: string): string {
  let text = ip;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, dotted.index) + ((a << 8) | b).toString(16) + ":" + ((c << 8) | d).toString(16);
  }
  const [head = "", tail] = text.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const fill = tail === undefined ? [] : Array(8 - headGroups.length - tailGroups.length).fill("0");
  const groups = [...headGroups, ...fill, ...tailGroups];
  if (groups.length !== 8) throw new Error(`"${ip}" is not a valid IPv6 address`);
  return groups.map((g) => parseInt(g, 16).toString(16)).join(":");
}

function isDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split(".");
  return labels.every(
    (label, i) => (i === 0 && label === "*" && labels.length > 2) || /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label),
  );
}

function defaultCommonName(names: SanEntry[]): string {
  const first = names[0]!.value;
  return first.length <= MAX_COMMON_NAME ? first : "tlschat";
}

// 16 random bytes with the top bit clear (a positive INTEGER) and the next bit set, so the DER
// form is always exactly 16 bytes long.
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return Buffer.from(bytes).toString("hex");
}

function withFinalNewline(text: string): string {
  return text.endsWith("\n") ? text : text + "\n";
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

// The file is created with its final mode, so a key is never readable by others, not even while
// it is being written; chmod then fixes whatever the umask took away. Replacing goes through a
// new file and a rename, because truncating an existing file would keep its old (maybe wider)
// mode while the key is written into it.
async function writeExact(path: string, data: string, mode: number, replace: boolean): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const target = replace ? `${path}.${process.pid}.${Date.now().toString(36)}.tmp` : path;
  let handle;
  try {
    // "wx" also makes the no-replace case atomic: a file that appeared since the check is kept.
    handle = await open(target, "wx", mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new CertificateFileError("exists", path);
    throw error;
  }
  try {
    await handle.chmod(mode);
    await handle.writeFile(data, "utf8");
    await handle.sync();
    await handle.close();
    handle = undefined;
    if (replace) await rename(target, path);
  } catch (error) {
    await handle?.close().catch(() => {});
    await unlink(target).catch(() => {});
    throw error;
  }
}
