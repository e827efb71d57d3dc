/**
 * One opal-mesh process: its roles behind one listener (OPAL's REST routes, Connect and
 * gRPC on one port), `/` and `/healthcheck` over every role's health, and one lifecycle:
 * a Supervisor starts tracing, the peers' transports, the roles in order, the listener and
 * then the parts that announce the process, and stops them in reverse under one deadline.
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type ComponentHealth, HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import type { ServerConfig } from "../common/config/server-config.js";
import { type HttpResponse, sendJson } from "../common/http/json-io.js";
import { withCors } from "../common/http/cors.js";
import { HttpListener, type UpgradeHandler } from "../common/http/listener.js";
import { RestRouter } from "../common/http/rest-router.js";
import { type Component, component, SupervisedComponent, Supervisor } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { create } from "@bufbuild/protobuf";
import { ComponentHealthSchema } from "../../gen/opal/mesh/v1/health_pb.js";
import { authInterceptor } from "../common/auth/connect-auth.js";
import type { Security } from "../common/auth/security.js";
import { createMetricsRegistry, metricsRoute, type Registry } from "../common/telemetry/metrics.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import { METHOD_RULES } from "./access-rules.js";
import { type Role, roleComponent } from "./roles/role.js";
import { securityRoutes } from "../common/auth/security-routes.js";

function authHealth(security: Security): ComponentHealth {
  return security.devMode
    ? create(ComponentHealthSchema, { component: "auth", state: HealthState.WARN, message: "dev mode: no keys configured, nothing is authenticated" })
    : create(ComponentHealthSchema, { component: "auth", state: HealthState.OK, message: "JWT required on every surface" });
}

export interface MeshProcessOptions {
  name: string;
  config: ServerConfig;
  logger: Logger;
  /** In dependency order: each starts after the ones before it, and stops before them. */
  roles: readonly Role[];
  security: Security;
  /** The process's one tracing, shut down last (spans still batched are exported). */
  tracing: Tracing;
  /** Parts the roles use, started before them and stopped after (e.g. transports to peers). */
  before?: readonly Component[];
  /** Parts that run once the listener is up (e.g. announcing the process to its peers). */
  after?: readonly Component[];
  /** Where `head_position` and `connected_clients` come from, when there is a distributor. */
  summary?: () => Promise<Record<string, unknown>>;
  /** The registry the roles record metrics in, served at /metrics (a new one when absent). */
  metrics?: Registry;
}

export class MeshProcess extends SupervisedComponent {
  readonly name: string;
  readonly metrics: Registry;
  private readonly http: HttpListener;
  protected readonly supervisor: Supervisor;

  constructor(private readonly options: MeshProcessOptions) {
    super();
    const { config, logger, roles, security } = options;
    this.name = options.name;
    this.metrics = options.metrics ?? createMetricsRegistry();
    const rest = new RestRouter(security).add(
      ...roles.flatMap((role) => role.routes),
      metricsRoute(this.metrics),
      ...securityRoutes(security, logger, config.limits),
      { method: "GET", path: "/", auth: "open", handle: (_request, response) => sendJson(response, 200, { status: "ok" }) },
      { method: "GET", path: "/healthcheck", auth: "open", handle: async (_request, response) => this.sendHealth(response) },
    );
    const handler = connectNodeAdapter({
      routes: (router) => {
        for (const role of roles) role.register(router);
      },
      readMaxBytes: config.limits.maxBodyBytes,
      interceptors: [authInterceptor(security, METHOD_RULES), ...roles.flatMap((role) => role.interceptors ?? [])],
      fallback: (request, nodeResponse) => {
        // connect-node's response type is a structural variant of node's own.
        const response = nodeResponse as HttpResponse;
        if (!rest.handle(request, response)) sendJson(response, 404, { detail: "Not Found" });
      },
    });
    this.http = new HttpListener({ host: config.host, port: config.port, handler: withCors(config.allowedOrigins, handler), tls: config.tls, limits: config.listener, upgrade: upgradesOf(roles) });
    const tracing = component("tracing", { stop: () => options.tracing.shutdown() });
    const listener = component("listener", { start: () => this.listening(), stop: () => this.http.stop() });
    this.supervisor = new Supervisor([tracing, ...(options.before ?? []), ...roles.map(roleComponent), listener, ...(options.after ?? [])], logger);
  }

  get port(): number {
    return this.http.port;
  }

  get url(): string {
    const host = this.options.config.host === "0.0.0.0" || this.options.config.host === "::" ? "127.0.0.1" : this.options.config.host;
    return `${this.options.config.tls === undefined ? "http" : "https"}://${host}:${this.port}`;
  }

  private async listening(): Promise<void> {
    const { logger, roles, security } = this.options;
    await this.http.start();
    if (security.devMode) {
      logger.warn("DEV MODE: no OPAL_AUTH_PRIVATE_KEY / OPAL_AUTH_PUBLIC_KEY — every route and stream is open to anyone. Configure keys before exposing this server.");
    }
    logger.info({ url: this.url, roles: roles.map((role) => role.name), ...Object.assign({}, ...roles.map((role) => role.describe())) as object }, "opal-mesh listening");
  }

  private async sendHealth(response: HttpResponse): Promise<void> {
    const { roles, security } = this.options;
    const components: ComponentHealth[] = [authHealth(security), ...(await Promise.all(roles.map((role) => role.health()))).flat()];
    const healthy = components.every((health) => health.state === HealthState.OK || health.state === HealthState.WARN);
    sendJson(response, healthy ? 200 : 503, {
      status: healthy ? "ok" : "error",
      components: components.map((health) => ({ component: health.component, state: HealthState[health.state], message: health.message })),
      ...(await this.options.summary?.()),
    });
  }
}

/** The roles' websocket endpoints as one upgrade handler: an unknown path is refused with 404. */
function upgradesOf(roles: readonly Role[]): UpgradeHandler {
  const byPath = new Map<string, UpgradeHandler>();
  for (const role of roles) for (const [path, handler] of role.upgrades ?? []) byPath.set(path, handler);
  return (request, socket, head) => {
    const path = new URL(request.url ?? "/", "http://upgrade").pathname;
    const handler = byPath.get(path);
    if (handler !== undefined) handler(request, socket, head);
    else socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  };
}
