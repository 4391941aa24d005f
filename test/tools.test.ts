// The CI's tool requirement outlives the CLI tests' clearing of TLSCHAT_ variables: all test
// files share one process, so clearing it would let the later ones skip where CI needs them.

import { afterEach, expect, test } from "bun:test";
import { clearTlschatEnv } from "./helpers/chat-support.ts";
import { REQUIRE_TOOLS_ENV } from "./helpers/tools.ts";

const before = process.env[REQUIRE_TOOLS_ENV];

afterEach(() => {
  if (before === undefined) delete process.env[REQUIRE_TOOLS_ENV];
  else process.env[REQUIRE_TOOLS_ENV] = before;
});

test("clearing the CLI's TLSCHAT_ variables keeps TLSCHAT_REQUIRE_TOOLS and removes the others", () => {
  process.env[REQUIRE_TOOLS_ENV] = "tshark,redis-server";
  process.env.TLSCHAT_SERVER = "example.org:7443";
  clearTlschatEnv();
  expect(process.env[REQUIRE_TOOLS_ENV]).toBe("tshark,redis-server");
  expect(process.env.TLSCHAT_SERVER).toBeUndefined();
});
