/**
 * One opal-mesh process: its roles behind one listener (OPAL's REST routes, Connect and
 * gRPC on one port), `/` and `/healthcheck` over every role's health, and one lifecycle:
 * roles start in order, the listener last, and stop in reverse.
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type ComponentHealth, HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import type { ServerConfig } from "../common/config/server-config.js";
import { type HttpResponse, sendJson } from "../common/http/json-io.js";
import { withCors } from "../common/http/cors.js";
import { HttpListener } from "../common/http/listener.js";
import { RestRouter } from "../common/http/rest-router.js";
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { create } from "@bufbuild/protobuf";
import { ComponentHealthSchema } from "../../gen/opal/mesh/v1/health_pb.js";
import { authInterceptor } from "../common/auth/connect-auth.js";
import type { Security } from "../common/auth/security.js";
import { createMetricsRegistry, metricsRoute, type Registry } from "../common/telemetry/metrics.js";
import { METHOD_RULES } from "./access-rules.js";
import type { Role } from "./roles/role.js";
import { securityRoutes } from "../common/auth/security-routes.js";
import { tracingFor } from "../common/telemetry/tracing.js";

function authHealth(security: Security): ComponentHealth {
  return security.devMode
    ? create(ComponentHealthSchema, { component: "auth", state: HealthState.WARN, message: "dev mode: no keys configured, nothing is authenticated" })
    : create(ComponentHealthSchema, { component: "auth", state: HealthState.OK, message: "JWT required on every surface" });
}

export interface MeshProcessHooks {
  /** Runs once the listener is up (e.g. announcing the process to its peers). */
  afterStart?: () => Promise<void>;
  beforeStop?: () => Promise<void>;
  /** Where `head_position` and `connected_clients` come from, when there is a distributor. */
  summary?: () => Promise<Record<string, unknown>>;
  /** The registry the roles record metrics in, served at /metrics (a new one when absent). */
  metrics?: Registry;
}

export class MeshProcess implements Component {
  private readonly http: HttpListener;
  private readonly controller = new AbortController();
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;
  private readonly started: Role[] = [];
  readonly metrics: Registry;

  constructor(
    readonly name: string,
    private readonly config: ServerConfig,
    private readonly logger: Logger,
    private readonly roles: readonly Role[],
    private readonly security: Security,
    private readonly hooks: MeshProcessHooks = {},
  ) {
    this.metrics = hooks.metrics ?? createMetricsRegistry();
    const rest = new RestRouter(security).add(
      ...roles.flatMap((role) => role.routes),
      metricsRoute(this.metrics),
      ...securityRoutes(security, logger, config.limits),
      { method: "GET", path: "/", auth: "open", handle: (_request, response) => sendJson(response, 200, { status: "ok" }) },
      {
      method: "GET",
      path: "/healthcheck",
      auth: "open",
      handle: async (_request, response) => {
        const components: ComponentHealth[] = [authHealth(security), ...(await Promise.all(roles.map((role) => role.health()))).flat()];
        const healthy = components.every((health) => health.state === HealthState.OK || health.state === HealthState.WARN);
        sendJson(response, healthy ? 200 : 503, {
          status: healthy ? "ok" : "error",
          components: components.map((health) => ({ component: health.component, state: HealthState[health.state], message: health.message })),
          ...(await this.hooks.summary?.()),
        });
      },
      },
    );
    const handler = connectNodeAdapter({
      routes: (router) => {
        for (const role of roles) role.register(router);
      },
      readMaxBytes: config.limits.maxBodyBytes,
      interceptors: [authInterceptor(security, METHOD_RULES)],
      fallback: (request, nodeResponse) => {
        // connect-node's response type is a structural variant of node's own.
        const response = nodeResponse as HttpResponse;
        if (!rest.handle(request, response)) sendJson(response, 404, { detail: "Not Found" });
      },
    });
    this.http = new HttpListener({ host: config.host, port: config.port, handler: withCors(config.allowedOrigins, handler), tls: config.tls, limits: config.listener });
  }

  get port(): number {
    return this.http.port;
  }

  get url(): string {
    const host = this.config.host === "0.0.0.0" || this.config.host === "::" ? "127.0.0.1" : this.config.host;
    return `${this.config.tls === undefined ? "http" : "https"}://${host}:${this.port}`;
  }

  async start(signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    for (const role of this.roles) {
      await role.start(this.controller.signal);
      this.started.push(role);
    }
    await this.http.start();
    await this.hooks.afterStart?.();
    if (this.security.devMode) {
      this.logger.warn("DEV MODE: no OPAL_AUTH_PRIVATE_KEY / OPAL_AUTH_PUBLIC_KEY — every route and stream is open to anyone. Configure keys before exposing this server.");
    }
    this.logger.info({ url: this.url, roles: this.roles.map((role) => role.name), ...Object.assign({}, ...this.roles.map((role) => role.describe())) as object }, "opal-mesh listening");
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopAll().finally(() => this.closing.stopped());
    return this.stopping;
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  private async stopAll(): Promise<void> {
    this.controller.abort();
    await this.hooks.beforeStop?.().catch(() => undefined);
    await this.http.stop();
    for (const role of [...this.started].reverse()) await role.stop().catch((error: unknown) => this.logger.warn({ err: (error as Error).message, role: role.name }, "stop failed"));
    // Spans still batched are exported before the process goes.
    await tracingFor(this.config.telemetry).shutdown();
  }
}
