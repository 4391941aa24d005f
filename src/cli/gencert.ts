// `tlschat gencert`: makes a self-signed certificate and key for a server, or with --identity a
// user's identity for key login, and prints its fingerprint.

import { Command, InvalidArgumentError, Option } from "commander";
import { join } from "node:path";
import { configDir } from "../client/config-dir.ts";
import { IDENTITY_FILE } from "../client/identity.ts";
import {
  CertificateFileError,
  DEFAULT_SANS,
  DEFAULT_VALIDITY_DAYS,
  generateIdentity,
  generateSelfSigned,
  parseSubjectAltName,
  writeCertificatePair,
  writeIdentityFile,
  type CertificatePair,
  type KeyType,
} from "../tls/certificate.ts";
import { CliError, EXIT_OK, printLine, type CliIO, type ExitCode } from "./io.ts";

export const CERT_FILE = "cert.pem";
export const KEY_FILE = "key.pem";
// Longer than this and the certificate outlives any sensible rotation habit.
const MAX_DAYS = 3650;

interface GencertOptions {
  out: string;
  keyType: KeyType;
  san: readonly string[];
  days: number;
  force?: boolean;
  identity?: boolean;
}

export function gencertCommand(io: CliIO, exit: ExitCode): Command {
  return new Command("gencert")
    .description("make a self-signed TLS certificate and private key for a tlschat server, or your identity for key login")
    .addOption(
      new Option("--out <dir>", `directory for ${CERT_FILE} and ${KEY_FILE}`)
        .default("certs")
        .env("TLSCHAT_CERT_DIR"),
    )
    .addOption(new Option("--key-type <type>", "key algorithm").choices(["ec", "rsa"]).default("ec"))
    .addOption(
      new Option("--san <name>", "host name or IP address clients connect to (repeatable)")
        .argParser(collectSans)
        .default(DEFAULT_SANS, DEFAULT_SANS.join(", ")),
    )
    .addOption(
      new Option("--days <n>", `validity in days (1 to ${MAX_DAYS})`).argParser(parseDays).default(DEFAULT_VALIDITY_DAYS),
    )
    .option("--force", "replace existing certificate and key files")
    .addOption(
      new Option("--identity", `make your identity for key login instead: ${IDENTITY_FILE} (certificate and key) in the config directory, or in --out DIR`).conflicts([
        "san",
        "keyType",
        "days",
      ]),
    )
    .addHelpText(
      "after",
      `
The certificate is its own CA: clients trust it with --ca ${CERT_FILE} or by its fingerprint.
The key is written with mode 0600.

An identity (--identity) is an ECDSA P-256 client certificate whose key logs you in like an SSH
key: chat and register present it whenever it exists. It goes to $XDG_CONFIG_HOME/tlschat (or
~/.config/tlschat) unless --out is given; TLSCHAT_CERT_DIR is for server certificates only.

Examples:
  tlschat gencert --out /etc/tlschat --san chat.example.com --san 203.0.113.7
  tlschat gencert --identity`,
    )
    .action(async (opts: GencertOptions, command: Command) => {
      try {
        if (opts.identity) {
          const dir = command.getOptionValueSource("out") === "cli" ? opts.out : configDir(io.env);
          await makeIdentity(join(dir, IDENTITY_FILE), opts.force === true, io);
        } else {
          await makeServerCertificate(opts, io);
        }
      } catch (error) {
        if (error instanceof CertificateFileError && error.kind === "exists") {
          throw new CliError(`${error.message}; use --force to replace it`);
        }
        throw new CliError(error instanceof Error ? error.message : String(error));
      }
      exit.value = EXIT_OK;
    });
}

async function makeServerCertificate(opts: GencertOptions, io: CliIO): Promise<void> {
  const certPath = join(opts.out, CERT_FILE);
  const keyPath = join(opts.out, KEY_FILE);
  const pair = await generateSelfSigned({ keyType: opts.keyType, sans: opts.san, days: opts.days });
  await writeCertificatePair(pair, { certPath, keyPath, force: opts.force === true });
  printLine(io.stdout, `certificate: ${certPath}`);
  printLine(io.stdout, `private key: ${keyPath}`);
  printFingerprint(io, pair);
}

async function makeIdentity(path: string, force: boolean, io: CliIO): Promise<void> {
  const pair = await generateIdentity();
  await writeIdentityFile(pair, path, force);
  printLine(io.stdout, `identity: ${path}`);
  printFingerprint(io, pair);
}

/** As `openssl x509 -noout -fingerprint -sha256` prints it, so the two can be compared at a glance. */
function printFingerprint(io: CliIO, pair: CertificatePair): void {
  printLine(io.stdout, `SHA256 Fingerprint=${pair.fingerprint256}`);
}

// The first --san replaces the defaults instead of adding to them; commas are allowed because
// neither host names nor IP addresses contain one.
function collectSans(value: string, previous: readonly string[]): readonly string[] {
  const base = previous === DEFAULT_SANS ? [] : previous;
  const added = value.split(",").map((name) => name.trim()).filter((name) => name !== "");
  if (added.length === 0) throw new InvalidArgumentError("expected a host name or IP address");
  for (const name of added) {
    try {
      parseSubjectAltName(name);
    } catch (error) {
      throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
    }
  }
  return [...base, ...added];
}

function parseDays(value: string): number {
  const days = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(days >= 1 && days <= MAX_DAYS)) {
    throw new InvalidArgumentError(`expected a whole number of days from 1 to ${MAX_DAYS}`);
  }
  return days;
}
