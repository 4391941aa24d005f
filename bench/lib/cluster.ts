// A cluster for the cluster scenarios: one redis-server (lib/redis.ts) and `tlschat serve --redis`
// nodes on it, each on its own port, with the same limits as every single-node server. The first
// node copies the cluster store's accounts and token secret into Redis (`--import-db`) before it
// listens, so clients log in with resume tokens the bench issues, as on a single server; the
// other nodes start after it, so none of them can have set a secret of its own first.

import { connectAll, type BenchClient, type Endpoint } from "./client.ts";
import { freePort, GENEROUS_LIMITS, ServerProcess, type Watched } from "./proc.ts";
import { RedisProcess, type AppendFsync } from "./redis.ts";
import { tokenFor, type BenchContext } from "./targets.ts";

/** Logins in progress at once per node while a scenario's clients join. */
const JOIN_CONCURRENCY = 64;

export interface Cluster {
  redis: RedisProcess;
  /** Node 0 is "nodeA", node 1 "nodeB", ...: the names in the metrics. */
  nodes: ServerProcess[];
  endpoints: Endpoint[];
  /** Every node and redis-server, named: what a round's server CPU sums. */
  watched: Watched[];
  /** Connects each client to its node and logs it in by resume token; resolves when all are ready. */
  join(clients: readonly BenchClient[], nodeOf: (client: BenchClient) => number): Promise<void>;
  /** The resume token the bench issues for a user of the cluster store. */
  token(user: string): string;
  /** Stops every node still running, then redis-server. */
  stop(): Promise<void>;
}

export const nodeName = (index: number): string => `node${String.fromCharCode(65 + index)}`;

export async function startCluster(ctx: BenchContext, nodeCount: number, appendfsync: AppendFsync): Promise<Cluster> {
  const redis = await RedisProcess.start(ctx.ws.dir, appendfsync);
  const nodes: ServerProcess[] = [];
  const stop = async () => {
    for (const node of nodes) await node.stop();
    await redis.stop();
  };
  try {
    for (let i = 0; i < nodeCount; i++) {
      const state = { kind: "cluster", redisUrl: redis.url, ...(i === 0 ? { importAccounts: ctx.clusterStore.path } : {}) } as const;
      nodes.push(await ServerProcess.startTlschat(ctx.command, ctx.ws, { state, limits: GENEROUS_LIMITS }, freePort()));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const endpoints = nodes.map((node) => ({ port: node.port, ca: ctx.ws.certPem }));
  const token = (user: string) => tokenFor(ctx, user, ctx.clusterStore);
  const watched: Watched[] = [
    ...nodes.map((node, i) => ({ name: nodeName(i), cpuMs: () => node.cpuMs(), rssKiB: () => node.rssKiB() })),
    { name: "redis", cpuMs: () => redis.cpuMs(), rssKiB: () => redis.rssKiB() },
  ];
  return {
    redis,
    nodes,
    endpoints,
    watched,
    token,
    async join(clients, nodeOf) {
      await Promise.all(
        endpoints.map((endpoint, n) =>
          connectAll(
            clients.filter((client) => nodeOf(client) === n),
            endpoint,
            (client) => token(client.user),
            JOIN_CONCURRENCY,
          ),
        ),
      );
    },
    stop,
  };
}
