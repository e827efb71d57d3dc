/** How the client calls its server: Connect over HTTP/1.1, TLS and mTLS from its config. The stream is grpc-js's (grpc-stream.ts). */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { ClientTls } from "../common/config/tls-config.js";

export function callTransport(baseUrl: string, tls: ClientTls | undefined): Transport {
  return createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: tls === undefined ? undefined : { ca: tls.ca, cert: tls.cert, key: tls.key } });
}
