// Trust on first use, as SSH does it: a pinned fingerprint must match; an unknown server is
// trusted only when the user confirms it, passed --trust-new, named its fingerprint, or it
// presents the certificate pinned for another node of the same cluster; a changed key is always
// refused with both fingerprints and the way to remove the stale pin.

import { ConnectError, type PeerCertificateInfo, type Verification } from "./connection.ts";
import { checkPin, normalizeFingerprint, type KnownHosts } from "./known-hosts.ts";

export interface PinPolicy {
  knownHosts: KnownHosts;
  /** `hostKey(host, port)` of the server being contacted. */
  hostPort: string;
  /** `--fingerprint`: the fingerprints the user expects, any of them; the one presented is pinned. */
  expected?: readonly string[];
  /**
   * `hostKey`s of the other servers given with this one (a cluster's nodes). A certificate
   * pinned for one of them is trusted here too: only its key's holder can present it, so the
   * node is run by whoever runs the other, and a cluster with one certificate is asked about once.
   */
  siblings?: readonly string[];
  /** `--trust-new`: pin an unknown server without asking. */
  trustNew: boolean;
  /** Asks the user whether to trust an unknown fingerprint; absent, or resolving to undefined, when nobody can answer. */
  confirm?: (hostPort: string, fingerprint: string) => Promise<boolean | undefined>;
  /** Tells the user about a pin that was just stored. */
  notify(message: string): void;
}

export function pinVerification(policy: PinPolicy): Verification {
  return {
    kind: "fingerprint",
    async check(peer: PeerCertificateInfo) {
      const presented = normalizeFingerprint(peer.fingerprint256);
      const { hostPort, knownHosts } = policy;
      const expected = policy.expected?.map(normalizeFingerprint);
      if (expected !== undefined && !expected.includes(presented)) {
        throw new ConnectError(
          "untrusted",
          `The server's fingerprint does not match --fingerprint.\n  expected:  ${expected.join("\n         or  ")}\n  presented: ${presented}`,
        );
      }
      const pin = checkPin(knownHosts, hostPort, presented);
      switch (pin.status) {
        case "match":
          return;
        case "mismatch":
          throw new ConnectError("untrusted", changedKeyMessage(hostPort, pin.pinned, pin.presented, knownHosts.path));
        case "unknown": {
          const sibling = policy.siblings?.find((other) => knownHosts.lookup(other) === presented);
          if (expected === undefined && sibling === undefined && !policy.trustNew) {
            const answer = await policy.confirm?.(hostPort, presented);
            if (answer !== true) {
              throw new ConnectError(
                "untrusted",
                answer === false
                  ? `Not trusting ${hostPort}; nothing was sent`
                  : `${hostPort} is not a known server (fingerprint ${presented}). ` +
                      `Check the fingerprint with the server's operator, then pass --fingerprint ${presented}, or use --ca FILE or --trust-new`,
              );
            }
          }
          await knownHosts.add(hostPort, presented);
          const why = sibling === undefined ? "" : ` (the certificate pinned for ${sibling})`;
          policy.notify(`Pinned ${hostPort} as ${presented} in ${knownHosts.path}${why}`);
          return;
        }
      }
    },
  };
}

export function changedKeyMessage(hostPort: string, pinned: string, presented: string, path: string): string {
  return [
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    `@  WARNING: THE CERTIFICATE OF ${hostPort} HAS CHANGED!`,
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "Someone could be intercepting this connection, or the server got a new certificate.",
    `  pinned:    ${pinned}`,
    `  presented: ${presented}`,
    `Nothing was sent. If the change is expected, remove the line for ${hostPort} from`,
    `  ${path}`,
    "and connect again to pin the new certificate.",
  ].join("\n");
}
