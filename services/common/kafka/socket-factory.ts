/**
 * kafkajs's own socket factory (TLS or plain, keep-alive after 60 s) with Nagle's algorithm
 * off. kafkajs leaves it on: the last partial segment of a request larger than one segment
 * (a produce of large inline data), or a request written while another's bytes are still
 * unacknowledged (a heartbeat beside a held fetch), waited for the broker's delayed ACK.
 */
import net from "node:net";
import tls from "node:tls";
import type { ISocketFactory } from "kafkajs";

const KEEP_ALIVE_DELAY_MS = 60_000;

export const noDelaySocketFactory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
  const socket = ssl ? tls.connect({ host, port, ...(net.isIP(host) === 0 ? { servername: host } : {}), ...ssl }, onConnect) : net.connect({ host, port }, onConnect);
  socket.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
  socket.setNoDelay(true);
  return socket;
};
