// The slash commands for keys: /keys lists the client certificates that log in to the account,
// /key add binds the one this connection presented, /key remove FINGERPRINT unbinds one.

import type { ChatCommand, CommandRegistry } from "./commands.ts";
import { normalizeFingerprint } from "./known-hosts.ts";

export function registerKeyCommands(registry: CommandRegistry): void {
  const key: ChatCommand = {
    name: "key",
    usage: "/key add | /key remove FINGERPRINT",
    help: "Let this identity log in to your account, or stop a key from doing so",
    run(args, ctx) {
      const [action = "", fingerprint, ...rest] = args.split(/\s+/);
      if (action === "add" && fingerprint === undefined) return ctx.send({ type: "key_add" });
      if (action !== "remove" || fingerprint === undefined || rest.length > 0) return ctx.print(`Usage: ${key.usage}`, "error");
      // Accept what /keys, gencert and openssl print, with or without colons, in any case.
      ctx.send({ type: "key_remove", fingerprint: normalizeFingerprint(fingerprint) });
    },
  };
  registry.register({
    name: "keys",
    usage: "/keys",
    help: "List the keys (client certificates) that log in to your account",
    run: (_args, ctx) => ctx.send({ type: "keys" }),
  });
  registry.register(key);
}
