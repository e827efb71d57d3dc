/** The client's own HTTP API (OPAL's port 7000): health, readiness and manual triggers. */
import { sendJson } from "../common/http/json-io.js";
import { HttpListener } from "../common/http/listener.js";
import { RestRouter } from "../common/http/rest-router.js";
import type { ClientHealth } from "./health.js";

export interface ClientApiOptions {
  host: string;
  port: number;
  health: ClientHealth;
  dataUpdaterEnabled: boolean;
  policyUpdaterEnabled: boolean;
  triggerDataRefresh: () => void;
  triggerPolicyRefresh: () => void;
}

export function createClientApi(options: ClientApiOptions): HttpListener {
  const { health } = options;
  const healthy = {
    method: "GET" as const,
    handle: (_request: unknown, response: Parameters<typeof sendJson>[0]) => {
      const report = health.report();
      sendJson(response, health.isHealthy() ? 200 : 503, report);
    },
  };
  const router = new RestRouter().add(
    { ...healthy, path: "/" },
    { ...healthy, path: "/healthy" },
    { ...healthy, path: "/healthcheck" },
    {
      method: "GET",
      path: "/ready",
      handle: (_request, response) => sendJson(response, health.isReady() ? 200 : 503, { ...health.report(), status: health.isReady() ? "ready" : "not ready" }),
    },
    {
      method: "POST",
      path: "/data-updater/trigger",
      handle: (_request, response) => {
        if (!options.dataUpdaterEnabled) return sendJson(response, 503, { detail: "the data updater is disabled (OPAL_DATA_UPDATER_ENABLED=false)" });
        options.triggerDataRefresh();
        sendJson(response, 200, { status: "ok" });
      },
    },
    {
      method: "POST",
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
    handler: (request, response) => {
      if (!router.handle(request, response)) sendJson(response, 404, { detail: "Not Found" });
    },
  });
}
