/**
 * OPAL's pub/sub endpoint at `/ws`, where unmodified OPAL clients connect: the handshake
 * is authenticated as OPAL's server does it (a client JWT in the Authorization header;
 * refused with 403 before the websocket is accepted, which OPAL's client takes as final),
 * then each connection becomes a session of fan-out (opal-connection.ts).
 *
 * `POST /data/callback_report/{key}` takes the update reports of one connection: the key,
 * random per connection, is in the callback URL we add to every update sent to it, so a
 * report names the client it came from (OPAL's own report carries no client id, and its
 * client sends reports without a token).
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { type Authenticator } from "../../common/auth/authenticator.js";
import { AuthError } from "../../common/auth/tokens.js";
import { HttpError, readJson, sendJson } from "../../common/http/json-io.js";
import type { UpgradeHandler } from "../../common/http/listener.js";
import type { RestRoute } from "../../common/http/rest-router.js";
import type { Logger } from "../../common/logger.js";
import { isDefaultScope } from "../../common/scopes/scoped-topics.js";
import type { Sessions } from "../sessions.js";
import { OpalConnection } from "./opal-connection.js";

export const OPAL_WS_PATH = "/ws";
export const OPAL_REPORT_ROUTE = "/data/callback_report/{key}";

export interface OpalWsOptions {
  sessions: Pick<Sessions, "open" | "close" | "ack">;
  authenticator: () => Promise<Authenticator>;
  /** OPAL_SCOPES: whether a client may subscribe within a scope other than the default. */
  scopes: boolean;
  logger: Logger;
  /** The largest frame a client may send (its requests are small). */
  maxMessageBytes?: number;
  /** Ping interval: a client that answers no ping for this long is dropped. */
  keepAliveMs?: number;
  /** The limits on an update report's body. */
  limits: { maxBodyBytes: number; maxJsonDepth: number };
}

export class OpalWsEndpoint {
  private readonly server: WebSocketServer;
  private readonly connections = new Map<string, OpalConnection>();
  private readonly alive = new WeakSet<WebSocket>();
  private timer: NodeJS.Timeout | undefined;
  private readonly refusals = new Map<string, { loggedAt: number; count: number }>();

  constructor(private readonly options: OpalWsOptions) {
    this.server = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes ?? 1024 * 1024, perMessageDeflate: false });
  }

  /** Pings every connection; one that did not answer the previous ping is dropped. */
  start(): void {
    const interval = this.options.keepAliveMs ?? 20_000;
    this.timer = setInterval(() => {
      for (const client of this.server.clients) {
        if (!this.alive.has(client)) client.terminate();
        else {
          this.alive.delete(client);
          client.ping();
        }
      }
    }, interval);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    for (const client of this.server.clients) client.close(1012, "server stopping");
  }

  get size(): number {
    return this.connections.size;
  }

  readonly upgrade: UpgradeHandler = (request, socket, head) => {
    void this.handshake(request, socket, head);
  };

  private async handshake(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { logger } = this.options;
    const peer = `${request.socket.remoteAddress ?? "unknown"}:${request.socket.remotePort ?? 0}`;
    let authenticator: Authenticator;
    try {
      authenticator = await this.options.authenticator();
      const principal = await authenticator.authenticate(request.headers.authorization, ["client"]);
      this.server.handleUpgrade(request, socket, head, (websocket) => {
        const protocol = (request.socket as { encrypted?: boolean }).encrypted === true ? "https" : "http";
        const connection: OpalConnection = new OpalConnection({
          socket: websocket,
          peer,
          reportUrl: `${protocol}://${request.headers.host ?? "localhost"}/data/callback_report`,
          sessions: this.options.sessions,
          logger,
          authorize: async (scope, topics) => {
            if (!isDefaultScope(scope) && !this.options.scopes) throw new Error(`scope ${JSON.stringify(scope)} asked for, but this server does not serve scopes (OPAL_SCOPES=false)`);
            authenticator.authorizeTopics(principal, topics);
            authenticator.authorizeScope(principal, scope);
          },
        });
        this.connections.set(connection.reportKey, connection);
        this.alive.add(websocket);
        websocket.on("pong", () => this.alive.add(websocket));
        websocket.on("close", () => this.connections.delete(connection.reportKey));
        logger.info({ peer }, "OPAL client connected at /ws");
      });
    } catch (error) {
      const reason = error instanceof AuthError ? error.message : "could not check credentials";
      if (!(error instanceof AuthError)) logger.error({ err: error, peer }, "OPAL client handshake failed");
      else this.logRefusal(request.socket.remoteAddress ?? "unknown", reason);
      // OPAL refuses with 403 before accepting: its client then stops instead of retrying forever.
      const body = JSON.stringify({ detail: reason });
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
  }

  /**
   * OPAL 0.9.9's client with websockets ≥ 14 does not recognise the refusal as final and
   * retries at once, thousands of times a second: one line per address every 10 s, with
   * the count, instead of one per attempt.
   */
  private logRefusal(address: string, reason: string): void {
    const now = Date.now();
    const seen = this.refusals.get(address);
    if (seen !== undefined && now - seen.loggedAt < 10_000) {
      seen.count++;
      return;
    }
    this.options.logger.warn({ address, reason, refusedSinceLastLine: seen?.count ?? 0 }, "OPAL client refused at /ws");
    this.refusals.set(address, { loggedAt: now, count: 0 });
    if (this.refusals.size > 10_000) this.refusals.clear();
  }

  /** The report route: OPAL's DataUpdateReport `{update_id, reports: [{entry, fetched, saved}]}`. */
  routes(): RestRoute[] {
    return [
      {
        method: "POST",
        path: OPAL_REPORT_ROUTE,
        // The key in the path is the credential: OPAL's client sends reports without a token.
        auth: "self",
        handle: async (request, response, context) => {
          const connection = this.connections.get(context.params.key ?? "");
          if (connection === undefined) throw new HttpError(404, "no OPAL client connection has this report key (it disconnected, or the key is wrong)");
          const report = (await readJson(request, this.options.limits.maxBodyBytes, this.options.limits.maxJsonDepth)) as { update_id?: unknown; reports?: unknown };
          if (typeof report.update_id !== "string") throw new HttpError(422, "update_id must be a string");
          if (!Array.isArray(report.reports)) throw new HttpError(422, "reports must be a list");
          connection.report(report.update_id, failedEntries(report.reports));
          sendJson(response, 200, { status: "ok" });
        },
      },
    ];
  }
}

/** The entries a report says were not saved, named by their destination. */
function failedEntries(reports: unknown[]): string[] {
  return reports.flatMap((report, index) => {
    const entry = typeof report === "object" && report !== null ? (report as { entry?: { dst_path?: unknown }; fetched?: unknown; saved?: unknown }) : {};
    if (entry.saved === true) return [];
    const path = typeof entry.entry?.dst_path === "string" ? entry.entry.dst_path : `entry ${index}`;
    return [`${path || "/"} (${entry.fetched === true ? "fetched, not saved" : "not fetched"})`];
  });
}
