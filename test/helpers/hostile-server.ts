// A fake tlschat server that accepts any login and then sends whatever the test wants, including
// frames a real server would never relay (escape sequences, control characters): what a client
// must survive from a malicious or compromised server.

import type { Socket, TCPSocketListener } from "bun";
import { testCertificate } from "./certs.ts";

export interface HostileServer extends AsyncDisposable {
  port: number;
  certPem: string;
  /** Resolves once a client has logged in. */
  loggedIn: Promise<string>;
  /** Sends one raw frame (serialised as JSON) to every logged-in client. */
  send(frame: object): void;
  /** Every frame the clients sent. */
  received: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startHostileServer(history: Array<{ from: string; text: string }> = []): Promise<HostileServer> {
  const certificate = await testCertificate("ec");
  const clients = new Set<Socket<{ partial: string }>>();
  const received: Array<Record<string, unknown>> = [];
  let resolveLogin!: (user: string) => void;
  const loggedIn = new Promise<string>((resolve) => (resolveLogin = resolve));
  const write = (socket: Socket<{ partial: string }>, frame: object) => socket.write(JSON.stringify(frame) + "\n");

  const listener: TCPSocketListener<{ partial: string }> = Bun.listen<{ partial: string }>({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: certificate.certPem, key: certificate.keyPem },
    socket: {
      open(socket) {
        socket.data = { partial: "" };
      },
      data(socket, chunk) {
        socket.data.partial += new TextDecoder().decode(chunk);
        let newline: number;
        while ((newline = socket.data.partial.indexOf("\n")) >= 0) {
          const line = socket.data.partial.slice(0, newline);
          socket.data.partial = socket.data.partial.slice(newline + 1);
          const frame = JSON.parse(line) as Record<string, unknown>;
          received.push(frame);
          if (frame.type === "login" || frame.type === "resume") {
            const user = String(frame.user);
            write(socket, {
              type: "welcome",
              user,
              online: [user, "mallory"],
              rooms: ["#lobby"],
              token: "not-a-real-token",
              limits: { messageRatePerSec: 10, messageBurst: 30, maxTextChars: 4096, idleTimeoutMs: 90_000 },
            });
            const ts = Date.now();
            write(socket, {
              type: "history",
              room: "#lobby",
              more: false,
              messages: history.map((m, i) => ({ type: "msg", id: i + 1, room: "#lobby", from: m.from, text: m.text, ts })),
            });
            clients.add(socket);
            resolveLogin(user);
          } else if (frame.type === "ping") {
            write(socket, frame.id === undefined ? { type: "pong" } : { type: "pong", id: frame.id });
          } else if (frame.type === "quit") {
            write(socket, { type: "bye" });
            socket.end();
          }
        }
      },
      close(socket) {
        clients.delete(socket);
      },
    },
  });
  const stop = async () => {
    listener.stop(true);
  };
  return {
    port: listener.port,
    certPem: certificate.certPem,
    loggedIn,
    received,
    send: (frame) => {
      for (const socket of clients) write(socket, frame);
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
