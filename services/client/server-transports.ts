/** How the client reaches its server: Connect over HTTP/1.1 for calls, gRPC over HTTP/2 for the stream; TLS and mTLS from its config. */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { ClientTls } from "../common/config/tls-config.js";

export function callTransport(baseUrl: string, tls: ClientTls | undefined): Transport {
  return createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: tls === undefined ? undefined : { ca: tls.ca, cert: tls.cert, key: tls.key } });
}

export function streamSessions(url: string, tls: ClientTls | undefined): Http2SessionManager {
  return new Http2SessionManager(url, { pingIntervalMs: 15_000, pingTimeoutMs: 10_000, pingIdleConnection: true }, tls === undefined ? undefined : { ca: tls.ca, cert: tls.cert, key: tls.key });
}
