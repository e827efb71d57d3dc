/** The client's own HTTP API (OPAL's port 7000): health, readiness and manual triggers. */
import type { Security } from "../common/auth/security.js";
import type { ServerTls } from "../common/config/tls-config.js";
import type { ListenerLimits } from "../common/config/listener-config.js";
import { withCors } from "../common/http/cors.js";
import { sendJson } from "../common/http/json-io.js";
import { HttpListener } from "../common/http/listener.js";
import { type RestRoute, RestRouter } from "../common/http/rest-router.js";
import { metricsRoute, type Registry } from "../common/telemetry/metrics.js";
import type { ClientHealth } from "./health.js";

export interface ClientApiOptions {
  host: string;
  port: number;
  health: ClientHealth;
  dataUpdaterEnabled: boolean;
  policyUpdaterEnabled: boolean;
  triggerDataRefresh: () => void;
  triggerPolicyRefresh: () => void;
  /** With a public key, the trigger routes require listener tokens. */
  security: Security;
  /** OPAL_MESH_TLS_*: the API on https (and mTLS), as every opal-mesh listener. */
  tls?: ServerTls;
  /** The client's metrics, served at /metrics. */
  metrics?: Registry;
  /** Timeouts and the connection cap of the API port. */
  limits?: ListenerLimits;
  /** OPAL_ALLOWED_ORIGINS: none means no CORS headers. */
  allowedOrigins?: readonly string[];
  /** Read-your-writes: /wait and OPA's data API behind ?min_position= (consistency-api.ts). */
  consistency?: RestRoute[];
}

export function createClientApi(options: ClientApiOptions): HttpListener {
  const { health } = options;
  const healthy = {
    method: "GET" as const,
    auth: "open" as const,
    handle: (_request: unknown, response: Parameters<typeof sendJson>[0]) => {
      const report = health.report();
      sendJson(response, health.isHealthy() ? 200 : 503, report);
    },
  };
  const router = new RestRouter(options.security).add(
    { ...healthy, path: "/" },
    { ...healthy, path: "/healthy" },
    { ...healthy, path: "/healthcheck" },
    ...(options.metrics === undefined ? [] : [metricsRoute(options.metrics)]),
    ...(options.consistency ?? []),
    {
      method: "GET",
      auth: "open",
      path: "/ready",
      handle: (_request, response) => sendJson(response, health.isReady() ? 200 : 503, { ...health.report(), status: health.isReady() ? "ready" : "not ready" }),
    },
    {
      method: "POST",
      // Unauthenticated in OPAL; here a listener token, once the client has a public key.
      auth: ["listener"],
      path: "/data-updater/trigger",
      handle: (_request, response) => {
        if (!options.dataUpdaterEnabled) return sendJson(response, 503, { detail: "the data updater is disabled (OPAL_DATA_UPDATER_ENABLED=false)" });
        options.triggerDataRefresh();
        sendJson(response, 200, { status: "ok" });
      },
    },
    {
      method: "POST",
      auth: ["listener"],
      path: "/policy-updater/trigger",
      handle: (_request, response) => {
        if (!options.policyUpdaterEnabled) return sendJson(response, 503, { detail: "the policy updater is disabled (OPAL_POLICY_UPDATER_ENABLED=false)" });
        options.triggerPolicyRefresh();
        sendJson(response, 200, { status: "ok" });
      },
    },
  );
  return new HttpListener({
    host: options.host,
    port: options.port,
    tls: options.tls,
    limits: options.limits,
    handler: withCors(options.allowedOrigins ?? [], (request, response) => {
      if (!router.handle(request, response)) sendJson(response, 404, { detail: "Not Found" });
    }),
  });
}
