// Where the client keeps its files (known_hosts, identity.pem): the XDG config directory.

import { isAbsolute, join } from "node:path";

/** $XDG_CONFIG_HOME/tlschat, else $HOME/.config/tlschat. */
export function configDir(env: { XDG_CONFIG_HOME?: string; HOME?: string }): string {
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, "tlschat");
  const home = env.HOME;
  if (home === undefined || home === "") throw new Error("Cannot locate the tlschat configuration directory: set HOME or XDG_CONFIG_HOME");
  return join(home, ".config", "tlschat");
}
