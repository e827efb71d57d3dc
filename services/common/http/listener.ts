/**
 * One TCP port for HTTP/1.1 (curl, OPAL's REST routes, Connect) and cleartext HTTP/2
 * (gRPC and Connect clients with prior knowledge). Node's plain http2 server cannot
 * fall back to HTTP/1.1, so the first bytes of each connection pick the server.
 * Every connection is held to the listener's limits: a first byte and a request start
 * in time, headers in time, closed when idle, and no more than so many at once.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { DEFAULT_LISTENER_LIMITS, type ListenerLimits } from "../config/listener-config.js";
import { closeWhenIdle, guardConnectionStart, lingerBeforeClose } from "./connection-guard.js";

export type RequestHandler = (
  request: IncomingMessage | Http2ServerRequest,
  response: ServerResponse | Http2ServerResponse,
) => void;

/** An HTTP/1.1 `Upgrade` request (a websocket handshake): the handler owns the socket from here on. */
export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

export interface HttpListenerOptions {
  host: string;
  port: number;
  handler: RequestHandler;
  /** HTTPS (HTTP/1.1 and HTTP/2 by ALPN); with a client CA, clients must present certificates (mTLS). */
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer | undefined };
  /** Timeouts and the connection cap (OPAL_MESH_HTTP_*, OPAL_MESH_MAX_CONNECTIONS). */
  limits?: ListenerLimits;
  /** Upgrade requests (OPAL's websocket at /ws); without it they are refused. */
  upgrade?: UpgradeHandler;
}

export class HttpListener {
  private readonly tcp: net.Server | http2.Http2SecureServer;
  private readonly http1: http.Server;
  private readonly http2: http2.Http2Server;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<Http2Session>();
  private readonly limits: ListenerLimits;
  private boundPort = 0;

  constructor(private readonly options: HttpListenerOptions) {
    const limits = (this.limits = options.limits ?? DEFAULT_LISTENER_LIMITS);
    const http1Options = {
      keepAliveTimeout: limits.idleTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: Math.max(300_000, limits.headersTimeoutMs),
      // Node checks the headers timeout on this interval (30 s by default).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    };
    this.http1 = http.createServer(http1Options, options.handler);
    this.http2 = http2.createServer({}, options.handler);
    this.http2.on("session", (session: Http2Session) => this.track(session));
    if (options.tls === undefined) {
      this.tcp = net.createServer((socket) => this.route(socket));
    } else {
      // With TLS, ALPN picks HTTP/2 or HTTP/1.1: no sniffing needed.
      const secure = http2.createSecureServer(
        {
          cert: options.tls.cert,
          key: options.tls.key,
          ca: options.tls.clientCa,
          requestCert: options.tls.clientCa !== undefined,
          rejectUnauthorized: options.tls.clientCa !== undefined,
          allowHTTP1: true,
          handshakeTimeout: limits.headersTimeoutMs,
          http1Options,
        },
        options.handler,
      );
      // resOnFinish reads it off the server; the HTTP/2 server has none of its own.
      (secure as unknown as { keepAliveTimeout: number }).keepAliveTimeout = limits.idleTimeoutMs;
      secure.on("connection", (socket: Socket) => guardConnectionStart(socket, limits.firstByteTimeoutMs, limits.headersTimeoutMs));
      secure.on("secureConnection", (socket: TLSSocket) => {
        socket.setNoDelay(true);
        this.sockets.add(socket);
        socket.once("close", () => this.sockets.delete(socket));
        if (socket.alpnProtocol !== "h2") lingerBeforeClose(socket, this.limits.lingerMs);
      });
      secure.on("session", (session: Http2Session) => this.track(session));
      this.tcp = secure;
    }
    this.tcp.maxConnections = limits.maxConnections;
    // Node answers an upgrade nobody listens for by closing the socket; say why instead.
    const upgrade: UpgradeHandler = options.upgrade ?? refuseUpgrade;
    this.http1.on("upgrade", upgrade);
    // With TLS, HTTP/1.1 requests (and their upgrades) reach the secure server itself (allowHTTP1).
    if (options.tls !== undefined) this.tcp.on("upgrade", upgrade);
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.tcp.once("error", reject);
      this.tcp.listen(this.options.port, this.options.host, () => {
        this.tcp.off("error", reject);
        resolve();
      });
    });
    this.boundPort = (this.tcp.address() as AddressInfo).port;
    // The HTTP/1.1 server only tracks connections (headers timeout, closeAllConnections)
    // once it is listening, and it never listens itself: it is handed sockets.
    this.http1.emit("listening");
  }

  /** Stops accepting, then destroys open connections: `close()` alone waits for idle sessions forever. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
    this.http1.closeAllConnections();
    this.http1.close(() => undefined);
    await closed;
  }

  private track(session: Http2Session): void {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    closeWhenIdle(session, this.limits.idleTimeoutMs);
  }

  private route(socket: Socket): void {
    // A socket from net.createServer has Nagle's algorithm on (http.createServer turns it
    // off for its own): a small answer could wait for the peer's delayed ACK (up to 40 ms).
    socket.setNoDelay(true);
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    guardConnectionStart(socket, this.limits.firstByteTimeoutMs, this.limits.headersTimeoutMs);
    // Read in paused mode so that, once the sniffed bytes are put back, the chosen server
    // starts the socket the way it would a fresh one (http2 drains the buffer natively).
    let head = Buffer.alloc(0);
    const onReadable = (): void => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
        head = Buffer.concat([head, chunk]);
      }
      const sample = head.toString("latin1", 0, Math.min(head.length, PREFACE.length));
      const couldBeHttp2 = PREFACE.startsWith(sample);
      if (couldBeHttp2 && head.length < PREFACE.length) return; // need more bytes to decide
      socket.off("readable", onReadable);
      socket.unshift(head);
      if (!couldBeHttp2) lingerBeforeClose(socket, this.limits.lingerMs);
      (couldBeHttp2 ? this.http2 : this.http1).emit("connection", socket);
    };
    socket.on("readable", onReadable);
  }
}

function refuseUpgrade(_request: IncomingMessage, socket: Duplex): void {
  socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
}
