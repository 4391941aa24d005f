// A user's identity for key login: a client certificate and its private key in one PEM file
// (identity.pem, as `tlschat gencert --identity` writes it), where it lives unless the user names
// another, and the checks it passes before it is presented: both parts there, and belonging
// together. The server knows the identity only by the certificate's SHA-256 fingerprint.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { configDir } from "./config-dir.ts";

export const IDENTITY_FILE = "identity.pem";

export interface Identity {
  path: string;
  certPem: string;
  keyPem: string;
  /** "AA:BB:…", as the server and `openssl x509 -fingerprint -sha256` show it. */
  fingerprint256: string;
}

export type IdentityProblem = "missing" | "unreadable" | "no_certificate" | "no_key" | "mismatch";

/** Why an identity file cannot be used, with the facts a caller needs to word it. */
export class IdentityError extends Error {
  override name = "IdentityError";
  constructor(
    readonly problem: IdentityProblem,
    readonly path: string,
    readonly reason = "",
  ) {
    super(`The identity ${path} cannot be used (${problem}${reason ? `: ${reason}` : ""})`);
  }
}

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\r?\n?/;
const KEY_BLOCK = /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----[\s\S]+?-----END \1?PRIVATE KEY-----\r?\n?/;

/** $XDG_CONFIG_HOME/tlschat/identity.pem, else $HOME/.config/tlschat/identity.pem. */
export function defaultIdentityPath(env: { XDG_CONFIG_HOME?: string; HOME?: string }): string {
  return join(configDir(env), IDENTITY_FILE);
}

/** Reads and checks an identity file; an IdentityError says what is wrong with it. */
export async function loadIdentity(path: string): Promise<Identity> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IdentityError(code === "ENOENT" ? "missing" : "unreadable", path, code === "ENOENT" ? "" : (error as Error).message);
  }
  const certPem = CERTIFICATE_BLOCK.exec(text)?.[0];
  const keyPem = KEY_BLOCK.exec(text)?.[0];
  if (certPem === undefined) throw new IdentityError("no_certificate", path);
  if (keyPem === undefined) throw new IdentityError("no_key", path);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(certPem);
  } catch (error) {
    throw new IdentityError("no_certificate", path, (error as Error).message);
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(keyPem));
  } catch (error) {
    throw new IdentityError("no_key", path, (error as Error).message);
  }
  if (!matches) throw new IdentityError("mismatch", path);
  return { path, certPem, keyPem, fingerprint256: certificate.fingerprint256 };
}
