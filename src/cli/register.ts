// `tlschat register`: creates an account, over the network (the server writes its store) or
// directly in a store: a file with --db (a server running on that file picks the account up), or
// a cluster's Redis with --redis (every node sees it at once). Over the network an identity binds
// its key to the new account, and then a password is optional; of several servers (a cluster's
// nodes) the first that can be reached is asked.

import { Command, Option } from "commander";
import { createAccountService } from "../auth/accounts.ts";
import { JsonFileStore, StoreError, type UserStore } from "../auth/store.ts";
import { ClientConnection } from "../client/connection.ts";
import { firstAnswering, serverLabel, tryingNext, type ServerAddress } from "../client/failover.ts";
import { MAX_CONCURRENT_LOGINS_PER_IP, RESUME_TOKEN_TTL_MS } from "../core/limits.ts";
import { ChatError } from "../protocol/errors.ts";
import { checkPassword, checkUsername } from "../protocol/validate.ts";
import { defaultLimits } from "../core/limits.ts";
import { RedisUserStore } from "../store/redis/accounts.ts";
import {
  addConnectionOptions,
  connectFailure,
  obtainPassword,
  resolveTarget,
  SERVERS_HELP,
  withVerification,
  type ConnectionOptions,
} from "./connect.ts";
import { chosenIdentity, optionalPassword } from "./identity.ts";
import { CliError, EXIT_OK, EXIT_USAGE, printLine, type CliIO, type ExitCode } from "./io.ts";
import { addRedisOptions, openRedis, redisDisplayName, type RedisOptions } from "./redis.ts";

const REPLY_TIMEOUT_MS = 30_000;

interface RegisterOptions extends ConnectionOptions, RedisOptions {
  db?: string;
}

export function registerCommand(io: CliIO, exit: ExitCode): Command {
  const command = addRedisOptions(
    addConnectionOptions(
      new Command("register")
        .description("create an account on a server (or directly in a store file with --db, or a cluster's Redis with --redis)")
        .argument("[user]", "the account name, optionally as USER@HOST[:PORT]"),
    ).addOption(new Option("--db <file>", "write the account straight into this store file instead of asking a server")),
    "write the account straight into this cluster's Redis instead of asking a server",
  )
    .addHelpText(
      "after",
      `
The password is asked twice on a terminal, or read from --password-file, TLSCHAT_PASSWORD, or
the first line of stdin when stdin is not a terminal. With an identity (tlschat gencert
--identity) its key is bound to the account and the password is optional: without one given, a
terminal asks whether to set one, and an empty stdin makes an account that logs in by key only.
With several servers the first that can be reached is asked; its answer (user_exists...) is final.
${SERVERS_HELP}

Examples:
  tlschat register alice@chat.example.com:7443 --ca server-cert.pem
  printf 'correct horse battery\\n' | tlschat register bob --trust-new
  tlschat register --db data/users.json carol        (works while a server runs on that store)
  tlschat register --redis redis://127.0.0.1:6379 dave   (every node of the cluster sees it)`,
    )
    .action(async (user: string | undefined, opts: RegisterOptions) => {
      exit.value = await runRegister(user, opts, io);
    });
  return command;
}

async function runRegister(userArg: string | undefined, opts: RegisterOptions, io: CliIO): Promise<number> {
  const target = resolveTarget(userArg, opts);
  if (target.user === undefined) throw new CliError("Name the account to create: tlschat register USER", EXIT_USAGE);
  const user = target.user;
  try {
    checkUsername(user);
  } catch (error) {
    throw new CliError((error as ChatError).message, EXIT_USAGE);
  }
  if (opts.db !== undefined && opts.redis !== undefined) {
    throw new CliError("--db and --redis name two different account stores; give one (TLSCHAT_REDIS_URL may be setting --redis)", EXIT_USAGE);
  }
  // A store has no TLS handshake to prove a key: --db and --redis register by password only.
  const askPassword = async () => checked(await obtainPassword(io, opts, { confirmTwice: true, stdinAllowed: true, prompt: `Password for ${user}: ` }));
  if (opts.db !== undefined) {
    const password = await askPassword();
    await registerInStore(await openFileStore(opts.db), user, password);
    printLine(io.stdout, `Registered ${user} in ${opts.db}`);
    return EXIT_OK;
  }
  if (opts.redis !== undefined) {
    // Connected before the password is asked, so an unreachable Redis is told at once.
    const connection = await openRedis(opts.redis, opts.redisCa);
    try {
      const password = await askPassword();
      await registerInStore(new RedisUserStore(connection), user, password);
    } finally {
      connection.close();
    }
    printLine(io.stdout, `Registered ${user} in Redis at ${redisDisplayName(opts.redis)}`);
    return EXIT_OK;
  }
  // The password is asked before connecting (a server would not wait while it is typed twice);
  // it is sent only after the server has passed verification.
  const servers = await withVerification(io, opts, target.servers);
  const identity = await chosenIdentity(io, opts);
  const password = identity
    ? await optionalPassword(io, opts, user)
    : await obtainPassword(io, opts, { confirmTwice: true, stdinAllowed: true, prompt: `Password for ${user}: ` });
  if (password !== undefined) checked(password);

  let connection: ClientConnection;
  let reached: ServerAddress;
  try {
    // Only connecting moves on to the next server: once one has the registration it answers for all.
    ({ connection, reached } = await firstAnswering(
      servers,
      async (server) => ({
        reached: server,
        connection: await ClientConnection.connect({ ...server, serverName: opts.serverName, identity, identityOverTls12: opts.identityOverTls12 }),
      }),
      (server, error, next) => {
        if (next) printLine(io.stderr, tryingNext(server, error, next));
      },
    ));
  } catch (error) {
    throw connectFailure(error);
  }
  try {
    const reply = connection.waitFor(
      (frame) => (frame.type === "registered" || frame.type === "error" ? frame : undefined),
      REPLY_TIMEOUT_MS,
      "answer to the registration",
    );
    const credentials = { ...(password === undefined ? {} : { password }), ...(identity ? { key: true as const } : {}) };
    connection.send({ type: "register", user, ...credentials });
    const answer = await reply;
    if (answer.type === "error") throw new CliError(`${answer.code}: ${answer.message}`);
    const bound = identity ? ` with the key ${identity.fingerprint256}${password === undefined ? "" : " and a password"}` : "";
    printLine(io.stdout, `Registered ${answer.user} on ${serverLabel(reached)}${bound}`);
    return EXIT_OK;
  } catch (error) {
    throw error instanceof CliError ? error : connectFailure(error);
  } finally {
    await connection.close();
  }
}

/** The password, if the length rules allow it; a weak one fails before anything is sent. */
function checked(password: string): string {
  try {
    return checkPassword(password);
  } catch (error) {
    throw new CliError(`weak_password: ${(error as ChatError).message}`);
  }
}

async function openFileStore(path: string): Promise<JsonFileStore> {
  try {
    return await JsonFileStore.open(path);
  } catch (error) {
    if (error instanceof StoreError) throw new CliError(error.message);
    throw error;
  }
}

/** Registers through the same account service a server builds on this store, so the rules match; closes the store. */
async function registerInStore(store: UserStore, user: string, password: string): Promise<void> {
  try {
    const { accounts } = createAccountService(store, defaultLimits(), {
      tokenTtlMs: RESUME_TOKEN_TTL_MS,
      maxLoginsPerAddress: MAX_CONCURRENT_LOGINS_PER_IP,
      now: Date.now,
    });
    await accounts.register(user, { password });
  } catch (error) {
    if (error instanceof ChatError) throw new CliError(`${error.code}: ${error.message}`);
    throw error;
  } finally {
    await store.close();
  }
}
