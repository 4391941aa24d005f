// A plain TCP relay in front of a test server, to lose what the server says on a connection and
// then the connection itself, as a dying network link does; TLS passes through it untouched.

import type { Socket } from "bun";

/** One relayed connection: the client's socket, the one to the server, and bytes before it opened. */
interface Link {
  client: Socket<Link>;
  upstream: Socket<undefined> | undefined;
  early: Uint8Array[];
}

/**
 * A plain TCP relay to a server (TLS passes through it untouched), so a test can lose what the
 * server says on a connection and then the connection itself, as a dying network link does.
 */
export async function startRelay(targetPort: number) {
  const links = new Set<Link>();
  let dropping = false;
  const listener = Bun.listen<Link>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      async open(client) {
        const link: Link = { client, upstream: undefined, early: [] };
        client.data = link;
        links.add(link);
        link.upstream = await Bun.connect({
          hostname: "127.0.0.1",
          port: targetPort,
          data: undefined,
          socket: {
            data(_upstream, chunk) {
              if (!dropping) writeAll(client, chunk);
            },
            close: () => void client.end(),
          },
        });
        for (const chunk of link.early.splice(0)) writeAll(link.upstream, chunk);
      },
      data(client, chunk) {
        const upstream = client.data.upstream;
        if (upstream) writeAll(upstream, chunk);
        else client.data.early.push(chunk.slice());
      },
      close(client) {
        client.data.upstream?.end();
        links.delete(client.data);
      },
    },
  });
  return {
    port: listener.port,
    /** From now on, nothing the server sends reaches the client. */
    dropServerBytes: () => void (dropping = true),
    /** Ends every relayed connection; new ones are relayed both ways again. */
    cutAndHeal() {
      for (const link of links) {
        link.client.terminate();
        link.upstream?.terminate();
      }
      links.clear();
      dropping = false;
    },
    async [Symbol.asyncDispose]() {
      listener.stop(true);
    },
  };
}

/**
 * Relayed traffic is a few kilobytes, which loopback sockets take whole; one that takes part of
 * it would lose bytes, so that fails the test. A socket already closed takes nothing, rightly.
 */
function writeAll(socket: Socket<Link | undefined> | Socket<Link>, chunk: Uint8Array): void {
  const written = socket.write(chunk);
  if (written >= 0 && written !== chunk.length) throw new Error(`relay wrote ${written} of ${chunk.length} bytes`);
}
