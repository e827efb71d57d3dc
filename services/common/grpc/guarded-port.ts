/**
 * A grpc-js server reached through our own TCP listener, for what grpc-js does not offer:
 * a first-byte and request-start deadline and a cap on open connections. Connections
 * without a call are grpc-js's to close (`grpc.max_connection_idle_ms`).
 */
import net, { type AddressInfo, type Socket } from "node:net";
import type * as grpc from "@grpc/grpc-js";
import type { ListenerLimits } from "../config/listener-config.js";
import { guardConnectionStart } from "../http/connection-guard.js";

export interface GuardedPort {
  readonly port: number;
  /** Stops accepting and drops the connections this port handed over. */
  close(): void;
}

export async function bindGuarded(server: grpc.Server, host: string, port: number, credentials: grpc.ServerCredentials, limits: ListenerLimits): Promise<GuardedPort> {
  const injector = server.createConnectionInjector(credentials);
  const sockets = new Set<Socket>();
  const tcp = net.createServer((socket) => {
    // Nagle's algorithm is on for net.createServer's sockets (grpc-js turns it off only on
    // its client side): a frame written while the previous one is unacknowledged would
    // wait for the client's delayed ACK, up to 40 ms on Linux.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // grpc-js handles errors on its sessions; a socket failing before that must not throw.
    socket.on("error", () => socket.destroy());
    guardConnectionStart(socket, limits.firstByteTimeoutMs, limits.headersTimeoutMs);
    injector.injectConnection(socket);
  });
  tcp.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  return {
    port: (tcp.address() as AddressInfo).port,
    close() {
      tcp.close();
      injector.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}
