import { describe, expect, test } from "bun:test";
import { checkToken, issueToken } from "../../src/auth/tokens.ts";

const secret = new Uint8Array(32).fill(7);
const otherSecret = new Uint8Array(32).fill(8);

describe("resume tokens", () => {
  const token = issueToken(secret, "Alice", 3, 10_000);

  test("verify for the same user (any case), epoch and before expiry", () => {
    expect(() => checkToken(secret, "alice", 3, token, 9_999)).not.toThrow();
  });

  test("are refused when expired, for another epoch, user or secret, or when tampered", () => {
    const refusals: Array<() => void> = [
      () => checkToken(secret, "alice", 3, token, 10_000),
      () => checkToken(secret, "alice", 4, token, 0),
      () => checkToken(secret, "bob", 3, token, 0),
      () => checkToken(otherSecret, "alice", 3, token, 0),
      () => checkToken(secret, "alice", 3, token.replace("v1.10000", "v1.99999"), 0),
      () => checkToken(secret, "alice", 3, token.slice(0, -2), 0),
      () => checkToken(secret, "alice", 3, "garbage", 0),
      () => checkToken(secret, "alice", 3, "v1.x.y.z", 0),
    ];
    for (const refuse of refusals) expect(refuse).toThrow("Resume token is invalid or expired");
  });

  test("verify in microseconds", () => {
    const started = performance.now();
    for (let i = 0; i < 1_000; i++) checkToken(secret, "alice", 3, token, 0);
    // A generous bound: 1000 checks of an HMAC-SHA256 take a few ms; a password KDF would take minutes.
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  test("are refused when the MAC differs in one character or in length", () => {
    const mac = token.slice(token.lastIndexOf(".") + 1);
    const prefix = token.slice(0, token.length - mac.length);
    const flipped = `${mac[0] === "A" ? "B" : "A"}${mac.slice(1)}`;
    for (const forged of [flipped, mac.slice(0, -1), `${mac}A`]) {
      expect(() => checkToken(secret, "alice", 3, prefix + forged, 0)).toThrow("Resume token is invalid or expired");
    }
  });
});
