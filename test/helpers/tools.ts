// The one rule for tests that drive an external program (tshark, tmux, redis-server): without the
// program, or without the rights to use it, the test file skips and says in one line what to
// install; when TLSCHAT_REQUIRE_TOOLS names the program (CI, after installing it), it fails instead.

import { test } from "bun:test";

/** Comma-separated tool names, or `all`, that must be usable: a skip becomes a failure. */
export const REQUIRE_TOOLS_ENV = "TLSCHAT_REQUIRE_TOOLS";
const EVERY_TOOL = "all";

export interface ToolNeed {
  /** The executable, looked up on PATH. */
  name: string;
  debianPackage: string;
  /** The tests that need it, as the skip line names them ("capture tests"). */
  what: string;
  /** Why the program found at `path` cannot be used here (say, no capture rights); undefined if it can. */
  unusable?: (path: string) => string | undefined;
}

/**
 * Whether the tests that need `need.name` can run. Call it once at load and skip those tests when
 * it returns false; it has already printed the skip line, or, if the tool is required, registered
 * the failing test that says why.
 */
export function requireTool(need: ToolNeed): boolean {
  const path = Bun.which(need.name);
  const problem = path === null ? `install ${need.name} (Debian: apt-get install ${need.debianPackage})` : need.unusable?.(path);
  if (problem === undefined) return true;
  if (isRequired(need.name)) {
    test(`${need.name} is usable (${REQUIRE_TOOLS_ENV} requires it)`, () => {
      throw new Error(`${need.what} cannot run: ${problem}`);
    });
  } else {
    console.error(`${need.what} skipped: ${problem}`);
  }
  return false;
}

function isRequired(name: string): boolean {
  const required = (process.env[REQUIRE_TOOLS_ENV] ?? "").split(",").map((entry) => entry.trim());
  return required.includes(name) || required.includes(EVERY_TOOL);
}
